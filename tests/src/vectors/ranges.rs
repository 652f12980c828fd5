//! Vectors of the `Ranges` sync message (`tests/vectors/ranges.json`, docs/PROTOCOL.md
//! §8.2.2): a responder's log, requests for ranges of several feeds, and the answer it must
//! give to each (its entries, or a refusal naming the first bad range), as JSON and as the
//! bytes on the wire (the sync codec's CBOR).

use plexus_crypto::Keypair;
use plexus_node::net::sync::{SyncRequest, SyncResponse, WireRange};
use plexus_node::node::answer_ranges;
use plexus_node::store::Log;
use plexus_protocol::Entry;
use serde_bytes::ByteBuf;
use serde_json::{json, Value};

use super::reconcile::{wire_request, wire_response};
use super::{hex, SEED_A, SEED_B};
use crate::fixtures::signed_chain;

/// The namespace of every case.
pub const NAMESPACE: &str = "vectors";

/// A third author, whose feed the responder does not hold.
pub const SEED_C: [u8; 32] = [0x33; 32];

/// The responder's entries: three of author A (seed `0x11…`), one of author B (`0x22…`).
pub fn held_entries() -> Vec<Entry> {
    let mut entries = signed_chain(&Keypair::from_seed(&SEED_A), NAMESPACE, 3);
    entries.extend(signed_chain(&Keypair::from_seed(&SEED_B), NAMESPACE, 1));
    entries
}

/// A log holding `entries`, in a directory removed with the returned guard.
pub fn log_holding(entries: Vec<Entry>) -> (tempfile::TempDir, Log) {
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("tempdir: {error}"));
    let log = Log::open(dir.path()).unwrap_or_else(|error| panic!("open log: {error}"));
    log.ingest_entries(entries, "vectors", 0)
        .unwrap_or_else(|error| panic!("storing the vector entries: {error}"));
    (dir, log)
}

/// The requests of the vector cases, each with a note.
pub fn requests() -> Vec<(&'static str, SyncRequest)> {
    let author =
        |seed: &[u8; 32]| ByteBuf::from(Keypair::from_seed(seed).agent_id().as_bytes().to_vec());
    let range = |seed: &[u8; 32], from_seq, to_seq| WireRange {
        author: author(seed),
        from_seq,
        to_seq,
    };
    let request = |ranges| SyncRequest::Ranges {
        namespace: NAMESPACE.into(),
        ranges,
    };
    vec![
        (
            "three feeds: A 2..=3, B 1..=4 (the responder holds only seq 1), C 1..=1 (held: none)",
            request(vec![
                range(&SEED_A, 2, 3),
                range(&SEED_B, 1, 4),
                range(&SEED_C, 1, 1),
            ]),
        ),
        (
            "a range past 512 entries is capped, not refused",
            request(vec![range(&SEED_A, 1, u64::MAX), range(&SEED_B, 1, 1)]),
        ),
        ("no range: refused", request(Vec::new())),
        (
            "range 1 starts at seq 0: refused, naming it",
            request(vec![range(&SEED_A, 1, 3), range(&SEED_B, 0, 3)]),
        ),
        (
            "range 0's author is 31 bytes: refused, naming it",
            request(vec![WireRange {
                author: ByteBuf::from(vec![0x11; 31]),
                from_seq: 1,
                to_seq: 1,
            }]),
        ),
        (
            "a namespace with capitals: refused",
            SyncRequest::Ranges {
                namespace: "Vectors".into(),
                ranges: vec![range(&SEED_A, 1, 1)],
            },
        ),
    ]
}

/// Generates the `Ranges` vector document.
pub fn generate() -> Value {
    let held = held_entries();
    let held_json: Vec<Value> = held
        .iter()
        .map(|entry| {
            json!({
                "author": entry.header().author.to_string(),
                "seq": entry.header().seq,
                "envelope_hex": hex(&entry.encode()),
            })
        })
        .collect();
    let (_dir, log) = log_holding(held);
    let cases: Vec<Value> = requests()
        .into_iter()
        .map(|(note, request)| {
            let SyncRequest::Ranges { namespace, ranges } = &request else {
                return Value::Null;
            };
            let response = answer_ranges(&log, namespace, ranges)
                .unwrap_or_else(|error| panic!("answering a vector request: {error}"));
            json!({
                "note": note,
                "request": request_json(namespace, ranges),
                "request_cbor": hex(&wire_request(request.clone())),
                "response": response_json(&response),
                "response_cbor": hex(&wire_response(response)),
            })
        })
        .collect();
    json!({
        "namespace": NAMESPACE,
        "secret_seeds": {
            "A": hex(&SEED_A),
            "B": hex(&SEED_B),
            "C": hex(&SEED_C),
        },
        "held": held_json,
        "cases": cases,
    })
}

fn request_json(namespace: &str, ranges: &[WireRange]) -> Value {
    let ranges: Vec<Value> = ranges
        .iter()
        .map(|range| {
            json!({
                "author": hex(&range.author),
                "from_seq": range.from_seq,
                "to_seq": range.to_seq,
            })
        })
        .collect();
    json!({"namespace": namespace, "ranges": ranges})
}

fn response_json(response: &SyncResponse) -> Value {
    match response {
        SyncResponse::RangeEntries { ranges } => json!({"RangeEntries": ranges
            .iter()
            .map(|list| list.iter().map(|entry| hex(entry)).collect::<Vec<_>>())
            .collect::<Vec<_>>()}),
        SyncResponse::Refused { reason } => json!({"Refused": reason}),
        _ => Value::Null,
    }
}
