//! Vectors for what two verifiers must agree on beyond a single valid entry: which §3.4 error
//! an envelope gets when several apply (`envelope-errors.json`), fork proofs
//! (`fork-proofs.json`) and whole audit export files with their expected findings
//! (`exports.json`). The expected results are written here from docs/PROTOCOL.md, not read
//! back from the implementation: `tests/tests/vectors.rs` holds the implementation to them.

use plexus_crypto::{Hash256, Keypair};
use plexus_protocol::value::json_text_to_canonical;
use plexus_protocol::{Draft, Entry};
use serde_json::json;

use super::BASE_TIME_MS;

mod envelope_errors;
mod exports;
mod fork_proofs;

pub use envelope_errors::generate_envelope_errors;
pub use exports::generate_exports;
pub use fork_proofs::generate_fork_proofs;

/// Secret seed of the exporter of the export vectors.
pub const SEED_EXPORTER: [u8; 32] = [0x33; 32];
/// Secret seed of a key that is neither an author nor the exporter.
pub const SEED_OTHER: [u8; 32] = [0x44; 32];

const NAMESPACE: &str = "vectors";

/// An `x-note` entry (an application kind: any body value) in the vectors namespace.
pub fn note(keypair: &Keypair, seq: u64, prev: Option<Hash256>, text: &str) -> Entry {
    let body = json_text_to_canonical(&json!({ "text": text }).to_string())
        .unwrap_or_else(|error| panic!("vector body must encode: {error}"));
    Entry::sign(
        keypair,
        Draft {
            namespace: NAMESPACE.into(),
            seq,
            prev,
            timestamp_ms: BASE_TIME_MS + seq,
            kind: "x-note".into(),
            body,
        },
    )
    .unwrap_or_else(|error| panic!("vector entry must sign: {error}"))
}

/// A feed of `count` chained notes.
fn feed(keypair: &Keypair, count: u64, label: &str) -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    for seq in 1..=count {
        let prev = entries.last().map(Entry::id);
        entries.push(note(keypair, seq, prev, &format!("{label} {seq}")));
    }
    entries
}

/// `bytes` with the first occurrence of `from` replaced by `to`.
fn splice(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = bytes
        .windows(from.len())
        .position(|window| window == from)
        .unwrap_or_else(|| panic!("splice: {from:02x?} not found"));
    let mut out = bytes[..at].to_vec();
    out.extend_from_slice(to);
    out.extend_from_slice(&bytes[at + from.len()..]);
    out
}
