//! The Plexus node: the RocksDB log, offline audit, configuration and the `plexus` CLI.
//!
//! Only this crate touches RocksDB, the file system, the network and the clock; `protocol` and
//! `crypto` stay pure (see ARCHITECTURE.md).
//!
//! - [`config`]: data directory, config file and key file handling.
//! - [`store`]: the append-only log in RocksDB.
//! - [`audit`]: export to a self-contained file and offline verification.
//! - [`cli`]: the `plexus` command line.

pub mod audit;
pub mod cli;
pub mod clock;
pub mod config;
pub mod store;
