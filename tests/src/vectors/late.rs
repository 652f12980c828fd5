//! Late-claim vectors (`tests/vectors/late-claims.json`, docs/PROTOCOL.md §9.4): a stored entry,
//! how and when a node received it, and the skew window, with whether that node must flag it
//! as a late claim. The rule reads the entry's kind and timestamp from its bytes; the
//! reception and the window are the node's own.

use plexus_crypto::Keypair;
use plexus_protocol::coord::{is_late, Arrival, Reception, DEFAULT_CLOCK_SKEW_MS};
use plexus_protocol::value::json_text_to_canonical;
use plexus_protocol::{Draft, Entry};
use serde_json::{json, Value};

use super::{hex, BASE_TIME_MS};

/// Secret seed of the late-claim vectors' author. Never use this key for anything real.
pub const SEED_LATE: [u8; 32] = [0x5a; 32];

/// Generates the late-claim vector document.
pub fn generate() -> Value {
    let author = Keypair::from_seed(&SEED_LATE);
    let window = DEFAULT_CLOCK_SKEW_MS;
    let t = BASE_TIME_MS;
    let claim = sign(
        &author,
        1,
        None,
        t,
        "intent",
        r#"{"resource": "printer", "action": "write", "leaseMs": 60000}"#,
    );
    let renew = sign(
        &author,
        2,
        Some(&claim),
        t + 1_000,
        "intent.renew",
        &format!(r#"{{"claim": "{}", "leaseMs": 60000}}"#, claim.id()),
    );
    let release = sign(
        &author,
        3,
        Some(&renew),
        t + 2_000,
        "intent.release",
        &format!(r#"{{"claim": "{}"}}"#, claim.id()),
    );
    let task = sign(
        &author,
        4,
        Some(&release),
        t + 3_000,
        "task",
        r#"{"taskId": "T-1", "status": {"state": "TASK_STATE_WORKING"}}"#,
    );
    let history = Arrival::History;
    let cases = [
        (
            &claim,
            history,
            t + window + 1,
            window,
            "history, one ms past the window",
        ),
        (
            &claim,
            history,
            t + window,
            window,
            "history, exactly at the window's edge",
        ),
        (
            &claim,
            history,
            t + 600_000,
            window,
            "history, ten minutes late (back-dated or a long partition)",
        ),
        (
            &claim,
            history,
            t + 600_000,
            3_600_000,
            "the same under a policy's one-hour window",
        ),
        (
            &claim,
            history,
            t - 5_000,
            window,
            "history, dated after it was received",
        ),
        (
            &claim,
            Arrival::Live,
            t + 600_000,
            window,
            "live arrivals are never late",
        ),
        (
            &claim,
            Arrival::Own,
            t + 600_000,
            window,
            "the node's own entries are never late",
        ),
        (
            &renew,
            history,
            t + 1_000 + window + 1,
            window,
            "a renewal is a claim kind",
        ),
        (
            &release,
            history,
            t + 2_000 + window + 1,
            window,
            "a release is a claim kind",
        ),
        (
            &task,
            history,
            t + 600_000,
            window,
            "only claim kinds are late",
        ),
        (
            &claim.without_body(),
            history,
            t + 600_000,
            window,
            "a pruned claim: kind and timestamp come from the header",
        ),
    ];
    let vectors: Vec<Value> = cases
        .into_iter()
        .map(|(entry, arrival, received_ms, window_ms, note)| {
            let header = entry.header();
            let reception = Reception {
                arrival,
                received_ms,
            };
            json!({
                "note": note,
                "envelope_hex": hex(&entry.encode()),
                "kind": header.kind,
                "timestamp_ms": header.timestamp_ms,
                "arrival": arrival.as_str(),
                "received_ms": received_ms,
                "window_ms": window_ms,
                "late": is_late(&header.kind, header.timestamp_ms, reception, window_ms),
            })
        })
        .collect();
    json!({
        "description": "docs/PROTOCOL.md §9.4: a claim (intent, intent.renew, intent.release) is \
            late on a node iff its arrival is history and received_ms > timestamp_ms + window_ms",
        "author_seed_hex": hex(&SEED_LATE),
        "vectors": vectors,
    })
}

/// The arrival named in a vector (`own`, `live`, `history`).
pub fn arrival_named(name: &str) -> Option<Arrival> {
    [Arrival::Own, Arrival::Live, Arrival::History]
        .into_iter()
        .find(|arrival| arrival.as_str() == name)
}

fn sign(
    author: &Keypair,
    seq: u64,
    prev: Option<&Entry>,
    timestamp_ms: u64,
    kind: &str,
    body: &str,
) -> Entry {
    let body = json_text_to_canonical(body).unwrap_or_else(|error| panic!("{body}: {error}"));
    Entry::sign(
        author,
        Draft {
            namespace: "vectors".into(),
            seq,
            prev: prev.map(Entry::id),
            timestamp_ms,
            kind: kind.into(),
            body,
        },
    )
    .unwrap_or_else(|error| panic!("sign: {error}"))
}
