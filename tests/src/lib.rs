//! Integration harness for Plexus: helpers to build logs, locate items in export files and
//! tamper with them, plus the generator of the checked-in test vectors.
//!
//! The scenarios themselves live in `tests/tests/*.rs`.

pub mod cluster;
pub mod fixtures;
pub mod hostile;
pub mod vectors;

/// The value after `name` in a benchmark helper's arguments.
pub fn flag(args: &[String], name: &str) -> anyhow::Result<String> {
    use anyhow::Context;
    args.iter()
        .position(|arg| arg == name)
        .and_then(|index| args.get(index + 1))
        .cloned()
        .with_context(|| format!("missing {name}"))
}
