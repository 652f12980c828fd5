//! The Plexus node: the RocksDB log, offline audit, configuration and the `plexus` CLI.
//!
//! Only this crate touches RocksDB, the file system, the network and the clock; `protocol` and
//! `crypto` stay pure (see ARCHITECTURE.md).
//!
//! - [`config`]: data directory, config file and key file handling.
//! - [`store`]: the append-only log in RocksDB.
//! - [`audit`]: export to a self-contained file and offline verification.
//! - [`net`]: the libp2p swarm (gossip, discovery, backfill), owned by one task.
//! - [`coord`]: the coordination view kept current from the log, and its change events.
//! - [`node`]: a running node: log, network task and ingest worker wired together.
//! - [`api`]: the local HTTP API served by `plexus run`.
//! - [`mcp`]: the node as MCP tools, over stdio (`plexus mcp`) and at the API's `/mcp`.
//! - `heap`: what the allocator (jemalloc, the process's malloc) holds, for `/v1/metrics`.
//! - [`client`]: a small client of the HTTP API, for the CLI and tests.
//! - `cli`: the `plexus` command line, run by [`run_cli`].

pub mod api;
pub mod audit;
pub(crate) mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod coord;
pub(crate) mod heap;
pub mod mcp;
pub mod net;
pub mod node;
pub mod store;

/// The `plexus` command line (the binary's whole `main`).
pub use cli::main as run_cli;
