//! Offline audit: exporting the log to one self-contained file, and verifying a file or a data
//! directory with nothing but its bytes (and optionally a list of trusted authors).
//!
//! - [`export`] writes the CBOR-sequence export (format in `plexus_protocol::export`).
//! - [`verify`] streams a file or a log through parallel decoding and batch signature
//!   verification, then a sequential chain check with one small tracker per feed.
//! - `check` is its parallel stage: the checker thread, strict decoding in place and batch
//!   signature verification.
//! - `damage` lists the entries a damaged data directory cannot read back, for the verifier.
//! - [`late`] lists the claims a data directory's node received late (a notice, not a finding).
//! - [`report`] holds the findings and renders them for people and machines.

mod check;
mod damage;
pub mod export;
pub mod late;
pub mod policy;
pub mod report;
pub mod verify;

pub use export::{export_data_dir, export_to_file, ExportSummary};
pub use report::{Finding, FindingKind, Report, Verdict};
pub use verify::{read_trusted_keys, verify_data_dir, verify_file, Progress, VerifyOptions};
