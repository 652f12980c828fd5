//! Integration harness for Plexus: helpers to build logs, locate items in export files and
//! tamper with them, plus the generator of the checked-in test vectors.
//!
//! The scenarios themselves live in `tests/tests/*.rs`.

pub mod attack_figures;
pub mod cluster;
pub mod fixtures;
pub mod hostile;
pub mod ingest;
pub mod localnode;
pub mod netnode;
pub mod netns;
pub mod soak;
pub mod vectors;
