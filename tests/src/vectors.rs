//! Test vectors for independent implementations: generated here deterministically, checked in
//! under `tests/vectors/`, and checked against the implementation by `tests/tests/vectors.rs`.
//!
//! Regenerate after an intentional format change with
//! `PLEXUS_WRITE_VECTORS=1 cargo test -p plexus-tests --test vectors`.

pub mod audit;

use plexus_crypto::{sha256, Hash256, Keypair};
use plexus_protocol::value::json_text_to_canonical;
use plexus_protocol::{Draft, Entry};
use serde_json::{json, Value};

pub mod floats;
pub mod late;
pub mod ranges;
pub mod reconcile;
pub mod signatures;

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Bytes of lowercase or uppercase hex; `None` for anything else.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|index| u8::from_str_radix(text.get(index..index + 2)?, 16).ok())
        .collect()
}

/// Secret seeds of the vector authors. Never use these keys for anything real.
pub const SEED_A: [u8; 32] = [0x11; 32];
pub const SEED_B: [u8; 32] = [0x22; 32];

/// A fixed timestamp: 2026-01-01T00:00:00Z.
pub const BASE_TIME_MS: u64 = 1_767_225_600_000;

/// Generates the full vector document.
pub fn generate() -> Value {
    let author_a = Keypair::from_seed(&SEED_A);
    let author_b = Keypair::from_seed(&SEED_B);
    // Every body is one its kind allows (docs/PROTOCOL.md §9), so a node stores each of them.
    let first = sign(&author_a, 1, None, "x-note", r#"{"text": "hello, plexus"}"#);
    let second = sign(
        &author_a,
        2,
        Some(first.id()),
        "intent",
        r#"{"resource": "repo/api", "action": "write", "leaseMs": 60000}"#,
    );
    let empty_body = sign(&author_b, 1, None, "x-note", "{}");
    let valid = vec![
        valid_vector("first entry of a feed", &author_a, &first),
        valid_vector("second entry, chained with prev", &author_a, &second),
        valid_vector("another author, empty object body", &author_b, &empty_body),
        valid_vector("body pruned (null)", &author_a, &second.without_body()),
    ];

    let good = first.encode();
    let mut invalid = Vec::new();
    let mut push = |name: &str, bytes: Vec<u8>, note: &str| {
        let error = Entry::decode(&bytes).err();
        let (code, message) = match &error {
            Some(error) => (error.code(), error.to_string()),
            None => (
                "bad-signature".to_owned(),
                "signature does not verify".to_owned(),
            ),
        };
        invalid.push(json!({
            "name": name,
            "note": note,
            "envelope_hex": hex(&bytes),
            "error_code": code,
            "error": message,
        }));
    };

    let mut trailing = good.clone();
    trailing.push(0x00);
    push(
        "trailing byte",
        trailing,
        "one 0x00 byte appended after the envelope",
    );

    // seq (1) re-encoded with a one-byte argument: 0x18 0x01 instead of 0x01.
    push(
        "non-minimal integer",
        replace_first_after(&good, &seq_one_marker(&first), &[0x18, 0x01]),
        "seq 1 written as 0x18 0x01 instead of 0x01",
    );

    let mut indefinite = good.clone();
    indefinite[0] = 0x9f;
    indefinite.push(0xff);
    push(
        "indefinite-length envelope",
        indefinite,
        "envelope array head 0x9f ... 0xff",
    );

    let prev_at_one = sign_unchecked(&author_a, 1, Some(sha256(b"nothing")), "x-note", b"");
    push("prev at seq 1", prev_at_one, "seq 1 must have prev = null");

    let mut body_flip = good.clone();
    let last = body_flip.len() - 1;
    body_flip[last] ^= 0x01;
    push("body bit flipped", body_flip, "last body byte XOR 0x01");

    let mut signature_flip = good.clone();
    let signature_start = good.len() - first.body().map_or(0, <[u8]>::len) - 1 - 64;
    signature_flip[signature_start] ^= 0x01;
    push(
        "signature bit flipped",
        signature_flip,
        "first signature byte XOR 0x01: decodes, but the signature does not verify",
    );

    let mut wrong_key = sign(&author_b, 1, None, "x-note", r#"{"text": "hello, plexus"}"#).encode();
    // Put author A's key where author B's is: the signature is B's, the claimed author is A.
    let position = find(&wrong_key, author_b.agent_id().as_bytes()).unwrap_or(0);
    wrong_key[position..position + 32].copy_from_slice(author_a.agent_id().as_bytes());
    push(
        "signed by another key",
        wrong_key,
        "author A's key, signature by author B",
    );

    let mut weak = good.clone();
    let position = find(&weak, author_a.agent_id().as_bytes()).unwrap_or(0);
    let mut identity_point = [0u8; 32];
    identity_point[0] = 1;
    weak[position..position + 32].copy_from_slice(&identity_point);
    push(
        "weak author key",
        weak,
        "author is the small-order identity point",
    );

    let mut version_two = good.clone();
    // The signed header starts at byte 1 (0x8a), the version at byte 2.
    version_two[2] = 0x02;
    push("unknown version", version_two, "version 2");

    let uppercase_kind = sign_unchecked(&author_a, 1, None, "Note", b"");
    push("uppercase kind", uppercase_kind, "kind names are lowercase");

    push("not an array", vec![0xa0], "an empty map");

    let bodies = [
        r#"{"b": 1, "a": [true, null, -1], "aa": "x"}"#,
        r#"{"confidence": 0.75, "count": 3, "ratio": 1.0}"#,
        r#"["zebra", {"z": {}, "y": []}, 18446744073709551615, -9223372036854775808]"#,
    ]
    .into_iter()
    .map(|text| {
        let canonical = json_text_to_canonical(text).unwrap_or_default();
        json!({ "json": text, "canonical_hex": hex(&canonical), "sha256": sha256(&canonical).to_string() })
    })
    .collect::<Vec<_>>();

    json!({
        "description": "Plexus entry format v1 test vectors; see docs/PROTOCOL.md. Secret seeds are public test keys.",
        "signing_domain_hex": hex(plexus_protocol::entry::SIGNING_DOMAIN),
        "valid": valid,
        "invalid": invalid,
        "bodies": bodies,
    })
}

fn valid_vector(name: &str, keypair: &Keypair, entry: &Entry) -> Value {
    let header = entry.header();
    let envelope = entry.encode();
    json!({
        "name": name,
        "secret_seed_hex": hex(keypair.secret_seed().as_slice()),
        "author": header.author.to_string(),
        "namespace": header.namespace,
        "seq": header.seq,
        "prev": header.prev.map(|prev| prev.to_string()),
        "timestamp_ms": header.timestamp_ms,
        "kind": header.kind,
        "body_hex": entry.body().map(hex),
        "body_hash": header.body_hash.to_string(),
        "body_len": header.body_len,
        "signing_input_hex": hex(&entry.signing_input()),
        "signature_hex": hex(&entry.signature().0),
        "signed_header_hex": hex(&envelope[1..1 + signed_header_len(entry)]),
        "id": entry.id().to_string(),
        "envelope_hex": hex(&envelope),
    })
}

fn signed_header_len(entry: &Entry) -> usize {
    let envelope = entry.encode();
    plexus_protocol::cbor::item_len(&envelope[1..])
        .ok()
        .flatten()
        .unwrap_or(0)
}

fn sign(keypair: &Keypair, seq: u64, prev: Option<Hash256>, kind: &str, body_json: &str) -> Entry {
    let body = json_text_to_canonical(body_json).unwrap_or_default();
    Entry::sign(
        keypair,
        Draft {
            namespace: "vectors".into(),
            seq,
            prev,
            timestamp_ms: BASE_TIME_MS + seq,
            kind: kind.into(),
            body,
        },
    )
    .unwrap_or_else(|error| panic!("vector entry must sign: {error}"))
}

/// Signs fields that the protocol would refuse, by building the CBOR by hand.
fn sign_unchecked(
    keypair: &Keypair,
    seq: u64,
    prev: Option<Hash256>,
    kind: &str,
    body: &[u8],
) -> Vec<u8> {
    use ciborium::Value as C;
    let fields = vec![
        C::Integer(1.into()),
        C::Text("vectors".into()),
        C::Bytes(keypair.agent_id().as_bytes().to_vec()),
        C::Integer(seq.into()),
        prev.map_or(C::Null, |prev| C::Bytes(prev.0.to_vec())),
        C::Integer(BASE_TIME_MS.into()),
        C::Text(kind.into()),
        C::Bytes(sha256(body).0.to_vec()),
        C::Integer((body.len() as u64).into()),
    ];
    let mut input = plexus_protocol::entry::SIGNING_DOMAIN.to_vec();
    input.extend(plexus_protocol::cbor::encode(&C::Array(fields.clone())));
    let mut signed = fields;
    signed.push(C::Bytes(keypair.sign(&input).0.to_vec()));
    plexus_protocol::cbor::encode(&C::Array(vec![C::Array(signed), C::Bytes(body.to_vec())]))
}

/// The bytes `0x01` right after the namespace text: the seq field of a seq-1 entry.
fn seq_one_marker(entry: &Entry) -> Vec<u8> {
    let mut marker = plexus_protocol::cbor::encode(&ciborium::Value::Bytes(
        entry.header().author.as_bytes().to_vec(),
    ));
    marker.push(0x01);
    marker
}

fn replace_first_after(bytes: &[u8], marker: &[u8], replacement: &[u8]) -> Vec<u8> {
    let position = find(bytes, marker).unwrap_or(0) + marker.len() - 1;
    let mut out = bytes[..position].to_vec();
    out.extend_from_slice(replacement);
    out.extend_from_slice(&bytes[position + 1..]);
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}
