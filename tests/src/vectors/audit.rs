//! Vectors for what two verifiers must agree on beyond a single valid entry: which §3.4 error
//! an envelope gets when several apply (`envelope-errors.json`), fork proofs
//! (`fork-proofs.json`) and whole audit export files with their expected findings
//! (`exports.json`). The expected results are written here from docs/PROTOCOL.md, not read
//! back from the implementation: `tests/tests/vectors.rs` holds the implementation to them.

use ciborium::Value as C;
use plexus_crypto::{sha256, Hash256, Keypair};
use plexus_protocol::export::{ExportHeader, ExportTrailer, TRAILER_DOMAIN};
use plexus_protocol::feed::MAX_FORK_PROOF_LEN;
use plexus_protocol::value::json_text_to_canonical;
use plexus_protocol::{cbor, Draft, Entry, ForkProof};
use serde_json::{json, Value};

use super::{hex, BASE_TIME_MS, SEED_A, SEED_B};

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

// ---------------------------------------------------------------------------------------------
// §3.4: one envelope per error code, and the order among them.

/// The ten header fields of a valid seq-1 note by `keypair` with an empty-object body, as CBOR
/// values, and that body.
fn fields(keypair: &Keypair) -> (Vec<C>, Vec<u8>) {
    let body = vec![0xa0];
    let fields = vec![
        C::Integer(1.into()),
        C::Text(NAMESPACE.into()),
        C::Bytes(keypair.agent_id().as_bytes().to_vec()),
        C::Integer(1.into()),
        C::Null,
        C::Integer(BASE_TIME_MS.into()),
        C::Text("x-note".into()),
        C::Bytes(sha256(&body).0.to_vec()),
        C::Integer((body.len() as u64).into()),
    ];
    (fields, body)
}

/// An envelope of `fields` (nine, signed here by `keypair` over whatever they hold, or ten
/// given in full) and `body`.
fn envelope(keypair: &Keypair, mut fields: Vec<C>, body: C) -> Vec<u8> {
    if fields.len() == 9 {
        let mut input = plexus_protocol::entry::SIGNING_DOMAIN.to_vec();
        input.extend(cbor::encode(&C::Array(fields.clone())));
        fields.push(C::Bytes(keypair.sign(&input).0.to_vec()));
    }
    cbor::encode(&C::Array(vec![C::Array(fields), body]))
}

/// A valid envelope with field `index` replaced (and signed over the replacement).
fn with_field(keypair: &Keypair, index: usize, value: C) -> Vec<u8> {
    let (mut fields, body) = fields(keypair);
    fields[index] = value;
    envelope(keypair, fields, C::Bytes(body))
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

/// Generates `envelope-errors.json`.
pub fn generate_envelope_errors() -> Value {
    let a = Keypair::from_seed(&SEED_A);
    let b = Keypair::from_seed(&SEED_B);
    let (good_fields, good_body) = fields(&a);
    let good = envelope(&a, good_fields.clone(), C::Bytes(good_body.clone()));
    // The seq and prev of a seq-1 entry, after the author: a marker that occurs once.
    let mut seq_and_prev = cbor::encode(&C::Bytes(a.agent_id().as_bytes().to_vec()));
    seq_and_prev.extend([0x01, 0xf6]);
    let with_seq_and_prev = |replacement: &[u8]| {
        let mut to = seq_and_prev[..seq_and_prev.len() - 2].to_vec();
        to.extend_from_slice(replacement);
        to
    };
    let mut cases: Vec<Value> = Vec::new();
    let mut case = |name: &str, code: &str, note: &str, bytes: Vec<u8>| {
        let error = Entry::decode(&bytes).err().map(|error| error.to_string());
        cases.push(json!({
            "name": name,
            "error_code": code,
            "note": note,
            "envelope_hex": hex(&bytes),
            "error": error,
        }));
    };

    // Step 1: see "too large wins over everything" below.
    // Step 2, each code.
    case(
        "truncated",
        "truncated",
        "the valid envelope without its last byte",
        good[..good.len() - 1].to_vec(),
    );
    let mut indefinite = good.clone();
    indefinite[0] = 0x9f;
    indefinite.push(0xff);
    case(
        "indefinite length",
        "malformed-cbor",
        "envelope head 0x9f ... 0xff",
        indefinite,
    );
    case(
        "reserved additional information",
        "malformed-cbor",
        "version head 0x1c (additional information 28 is reserved)",
        splice(&good, &[0x8a, 0x01], &[0x8a, 0x1c]),
    );
    case(
        "invalid UTF-8",
        "malformed-cbor",
        "namespace text with byte 0xff",
        splice(&good, b"vectors", b"vector\xff"),
    );
    let mut deep = vec![0x82, 0x8a];
    deep.extend(std::iter::repeat_n(0x81, 62));
    deep.push(0x01);
    case(
        "too deep",
        "too-deep",
        "version field nested in 62 arrays: the 62nd is the 64th nested container",
        deep,
    );
    let mut deep_enough = vec![0x82, 0x8a];
    deep_enough.extend(std::iter::repeat_n(0x81, 61));
    deep_enough.extend(&good[2..]);
    deep_enough.truncate(deep_enough.len() - good_body.len() - 1);
    deep_enough.push(0xf6);
    case(
        "63 nested containers are not too deep",
        "field:version",
        "version field nested in 61 arrays (63 containers in all): well-formed, wrong type",
        deep_enough,
    );
    case(
        "non-minimal integer",
        "non-canonical",
        "version 1 written 0x18 0x01",
        splice(&good, &[0x8a, 0x01], &[0x8a, 0x18, 0x01]),
    );
    case(
        "tag",
        "non-canonical",
        "version 1 wrapped in tag 0 (0xc0 0x01): tags are outside the canonical subset",
        splice(&good, &[0x8a, 0x01], &[0x8a, 0xc0, 0x01]),
    );
    case(
        "bignum tag",
        "non-canonical",
        "version as tag 2 of h'01' (0xc2 0x41 0x01)",
        splice(&good, &[0x8a, 0x01], &[0x8a, 0xc2, 0x41, 0x01]),
    );
    let mut undefined = envelope(&a, good_fields.clone(), C::Null);
    if let Some(last) = undefined.last_mut() {
        *last = 0xf7;
    }
    case(
        "undefined",
        "non-canonical",
        "body item 0xf7 (undefined) instead of a byte string or null",
        undefined,
    );
    case(
        "simple value",
        "non-canonical",
        "prev as simple value 0 (0xe0) instead of null",
        splice(&good, &seq_and_prev, &with_seq_and_prev(&[0x01, 0xe0])),
    );
    let mut trailing = good.clone();
    trailing.push(0x00);
    case(
        "trailing bytes",
        "trailing-bytes",
        "one 0x00 after the envelope",
        trailing,
    );
    case(
        "unsorted map",
        "unsorted-map",
        "version as the map {\"b\": 1, \"a\": 2}",
        with_field(
            &a,
            0,
            C::Map(vec![
                (C::Text("b".into()), C::Integer(1.into())),
                (C::Text("a".into()), C::Integer(2.into())),
            ]),
        ),
    );
    // Step 2, order.
    let mut huge_and_broken = good.clone();
    huge_and_broken[0] = 0xff;
    huge_and_broken.resize(65_537, 0);
    case(
        "too large wins over everything",
        "too-large",
        "65,537 bytes starting with a break byte",
        huge_and_broken,
    );
    let mut truncated_deep = vec![0x82, 0x8a];
    truncated_deep.extend(std::iter::repeat_n(0x81, 70));
    case(
        "too deep before truncated",
        "too-deep",
        "70 nested arrays and then the input ends",
        truncated_deep,
    );
    let mut bad_text_and_trailing = splice(&good, b"vectors", b"vector\xff");
    bad_text_and_trailing.push(0x00);
    case(
        "trailing bytes before content",
        "trailing-bytes",
        "invalid UTF-8 in the namespace and a trailing byte: framing comes first",
        bad_text_and_trailing,
    );
    case(
        "non-minimal head before invalid UTF-8",
        "non-canonical",
        "version 0x18 0x01, then a namespace with 0xff: the first offending head in byte order",
        splice(
            &splice(&good, &[0x8a, 0x01], &[0x8a, 0x18, 0x01]),
            b"vectors",
            b"vector\xff",
        ),
    );
    case(
        "invalid UTF-8 before a non-minimal head",
        "malformed-cbor",
        "namespace with 0xff, then seq 1 written 0x18 0x01",
        splice(
            &splice(&good, b"vectors", b"vector\xff"),
            &seq_and_prev,
            &with_seq_and_prev(&[0x18, 0x01, 0xf6]),
        ),
    );
    let mut unsorted_then_tag = good_fields.clone();
    unsorted_then_tag[0] = C::Map(vec![
        (C::Text("b".into()), C::Integer(1.into())),
        (C::Text("a".into()), C::Integer(2.into())),
    ]);
    unsorted_then_tag[5] = C::Tag(1, Box::new(C::Integer(BASE_TIME_MS.into())));
    case(
        "a tag anywhere before key order",
        "non-canonical",
        "an unsorted map as version and a tag in the timestamp: heads are checked first",
        envelope(&a, unsorted_then_tag, C::Bytes(good_body.clone())),
    );
    // Step 3: shape and types, in field order.
    case("not an array", "field:envelope", "an empty map", vec![0xa0]);
    case(
        "envelope of three",
        "field:envelope",
        "array(3)",
        cbor::encode(&C::Array(vec![C::Null, C::Null, C::Null])),
    );
    case(
        "header of nine",
        "field:header",
        "the signed header without its signature",
        cbor::encode(&C::Array(vec![
            C::Array(good_fields.clone()),
            C::Bytes(good_body.clone()),
        ])),
    );
    case(
        "version a float",
        "field:version",
        "1.0 (0xf93c00)",
        with_field(&a, 0, C::Float(1.0)),
    );
    case(
        "namespace an integer",
        "field:namespace",
        "7",
        with_field(&a, 1, C::Integer(7.into())),
    );
    case(
        "author of 31 bytes",
        "field:author",
        "the key without its last byte",
        with_field(&a, 2, C::Bytes(a.agent_id().as_bytes()[..31].to_vec())),
    );
    case(
        "seq negative",
        "field:seq",
        "-1 (0x20)",
        with_field(&a, 3, C::Integer((-1i64).into())),
    );
    case(
        "prev of 31 bytes",
        "field:prev",
        "a 31-byte prev",
        with_field(&a, 4, C::Bytes(vec![7; 31])),
    );
    case(
        "timestamp false",
        "field:timestamp",
        "false (0xf4)",
        with_field(&a, 5, C::Bool(false)),
    );
    case(
        "kind bytes",
        "field:kind",
        "a byte string",
        with_field(&a, 6, C::Bytes(b"x-note".to_vec())),
    );
    case(
        "body hash of 31 bytes",
        "field:body_hash",
        "31 bytes",
        with_field(&a, 7, C::Bytes(vec![0; 31])),
    );
    case(
        "body length text",
        "field:body_len",
        "\"1\"",
        with_field(&a, 8, C::Text("1".into())),
    );
    let mut short_signature = good_fields.clone();
    short_signature.push(C::Bytes(vec![0; 63]));
    case(
        "signature of 63 bytes",
        "field:signature",
        "63 bytes",
        envelope(&a, short_signature, C::Bytes(good_body.clone())),
    );
    case(
        "body an integer",
        "field:body",
        "0 instead of a byte string or null",
        envelope(&a, good_fields.clone(), C::Integer(0.into())),
    );
    let mut seq_text_version_two = good_fields.clone();
    seq_text_version_two[0] = C::Integer(2.into());
    seq_text_version_two[3] = C::Text("1".into());
    case(
        "types before the version",
        "field:seq",
        "version 2 and seq \"1\": step 3 comes before step 4",
        envelope(&a, seq_text_version_two, C::Bytes(good_body.clone())),
    );
    let mut body_type_and_version = good_fields.clone();
    body_type_and_version[0] = C::Integer(2.into());
    case(
        "body type before the version",
        "field:body",
        "version 2 and an integer body: the body item's type is part of step 3",
        envelope(&a, body_type_and_version, C::Integer(0.into())),
    );
    // Step 4.
    case(
        "unknown version",
        "unsupported-version",
        "version 2",
        with_field(&a, 0, C::Integer(2.into())),
    );
    let mut version_and_namespace = good_fields.clone();
    version_and_namespace[0] = C::Integer(2.into());
    version_and_namespace[1] = C::Text("Vectors".into());
    case(
        "version before field rules",
        "unsupported-version",
        "version 2 and an uppercase namespace",
        envelope(&a, version_and_namespace, C::Bytes(good_body.clone())),
    );
    // Step 5, each rule and their order.
    case(
        "namespace rule",
        "field:namespace",
        "\"Vectors\" (uppercase)",
        with_field(&a, 1, C::Text("Vectors".into())),
    );
    let mut identity_point = [0u8; 32];
    identity_point[0] = 1;
    case(
        "weak author key",
        "field:author",
        "the small-order identity point",
        with_field(&a, 2, C::Bytes(identity_point.to_vec())),
    );
    case(
        "seq zero",
        "field:seq",
        "0",
        with_field(&a, 3, C::Integer(0.into())),
    );
    case(
        "prev at seq 1",
        "field:prev",
        "seq 1 with a prev",
        with_field(&a, 4, C::Bytes(vec![7; 32])),
    );
    let mut no_prev = good_fields.clone();
    no_prev[3] = C::Integer(2.into());
    case(
        "no prev at seq 2",
        "field:prev",
        "seq 2 with prev null",
        envelope(&a, no_prev, C::Bytes(good_body.clone())),
    );
    case(
        "kind rule",
        "field:kind",
        "\"Note\" (uppercase)",
        with_field(&a, 6, C::Text("Note".into())),
    );
    let mut over_limit = good_fields.clone();
    over_limit[8] = C::Integer(64_001u64.into());
    case(
        "body length over the limit",
        "field:body_len",
        "64,001 declared, body pruned",
        envelope(&a, over_limit, C::Null),
    );
    let mut namespace_and_kind = good_fields.clone();
    namespace_and_kind[1] = C::Text("Vectors".into());
    namespace_and_kind[6] = C::Text("Note".into());
    case(
        "field rules in field order",
        "field:namespace",
        "uppercase namespace and uppercase kind",
        envelope(&a, namespace_and_kind, C::Bytes(good_body.clone())),
    );
    // Step 6.
    case(
        "body length mismatch",
        "body-len-mismatch",
        "body_len 1, body of two bytes (whose hash is also wrong: length is checked first)",
        envelope(&a, good_fields.clone(), C::Bytes(vec![0xa0, 0x00])),
    );
    case(
        "body hash mismatch",
        "body-hash-mismatch",
        "body 0xf6 instead of 0xa0 (same length)",
        envelope(&a, good_fields.clone(), C::Bytes(vec![0xf6])),
    );
    let mut body_and_signature = good.clone();
    let last = body_and_signature.len() - 1;
    body_and_signature[last] = 0xf6;
    let signature_at = last - 1 - 64;
    body_and_signature[signature_at] ^= 0x01;
    case(
        "body before signature",
        "body-hash-mismatch",
        "a changed body and a flipped signature bit",
        body_and_signature,
    );
    // Step 7.
    let mut signature_flip = good.clone();
    signature_flip[signature_at] ^= 0x01;
    case(
        "bad signature",
        "bad-signature",
        "first signature byte XOR 0x01",
        signature_flip,
    );
    let by_b = envelope(&b, fields(&a).0, C::Bytes(good_body.clone()));
    case(
        "signed by another key",
        "bad-signature",
        "author A's key, signature by author B",
        by_b,
    );

    json!({
        "description": "One envelope per docs/PROTOCOL.md §3.4 error code, and envelopes with several faults: error_code is the one that wins. bad-signature envelopes decode but must not verify.",
        "envelopes": cases,
    })
}

// ---------------------------------------------------------------------------------------------
// §5: fork proofs.

fn proof_of(first: &Entry, second: &Entry) -> Vec<u8> {
    cbor::encode(&C::Array(vec![
        C::Text("plexus-fork-proof".into()),
        C::Bytes(first.encode()),
        C::Bytes(second.encode()),
    ]))
}

/// Generates `fork-proofs.json`.
pub fn generate_fork_proofs() -> Value {
    let a = Keypair::from_seed(&SEED_A);
    let left = note(&a, 1, None, "left").without_body();
    let right = note(&a, 1, None, "right").without_body();
    let (low, high) = if left.id() < right.id() {
        (left, right)
    } else {
        (right, left)
    };
    let valid = ForkProof::new(low.clone(), high.clone())
        .unwrap_or_else(|error| panic!("vector fork proof: {error}"))
        .encode();
    let mut invalid: Vec<Value> = Vec::new();
    let mut case = |name: &str, code: &str, note: &str, bytes: Vec<u8>| {
        invalid.push(json!({
            "name": name, "error_code": code, "note": note, "proof_hex": hex(&bytes),
        }));
    };
    let mut too_large = valid.clone();
    too_large.resize(MAX_FORK_PROOF_LEN + 1, 0);
    case(
        "too large",
        "too-large",
        "the valid proof padded to 2,049 bytes",
        too_large,
    );
    let mut non_canonical = vec![0x98, 0x03];
    non_canonical.extend_from_slice(&valid[1..]);
    case(
        "not canonical CBOR",
        "malformed-proof",
        "array head 0x98 0x03",
        non_canonical,
    );
    case(
        "wrong tag",
        "malformed-proof",
        "\"plexus-fork\" instead of \"plexus-fork-proof\"",
        cbor::encode(&C::Array(vec![
            C::Text("plexus-fork".into()),
            C::Bytes(low.encode()),
            C::Bytes(high.encode()),
        ])),
    );
    case(
        "two items",
        "malformed-proof",
        "the tag and one envelope",
        cbor::encode(&C::Array(vec![
            C::Text("plexus-fork-proof".into()),
            C::Bytes(low.encode()),
        ])),
    );
    let mut broken = low.encode();
    broken.pop();
    case(
        "entry malformed",
        "entry:truncated",
        "the first envelope without its last byte (its body item)",
        cbor::encode(&C::Array(vec![
            C::Text("plexus-fork-proof".into()),
            C::Bytes(broken),
            C::Bytes(high.encode()),
        ])),
    );
    let with_bodies = {
        let left = note(&a, 1, None, "left");
        let right = note(&a, 1, None, "right");
        if left.id() < right.id() {
            proof_of(&left, &right)
        } else {
            proof_of(&right, &left)
        }
    };
    case(
        "bodies present",
        "body-present",
        "both envelopes with their bodies",
        with_bodies,
    );
    let other_seq = note(&a, 2, Some(low.id()), "later").without_body();
    case(
        "not the same position",
        "not-same-position",
        "seq 1 and seq 2",
        proof_of(&low, &other_seq),
    );
    case(
        "identical",
        "identical",
        "the same envelope twice",
        proof_of(&low, &low),
    );
    case(
        "unordered",
        "unordered",
        "the higher id first",
        proof_of(&high, &low),
    );
    let mut forged = high.encode();
    let signature_at = forged.len() - 1 - 64;
    forged[signature_at] ^= 0x01;
    let forged_entry = Entry::decode(&forged)
        .unwrap_or_else(|error| panic!("a flipped signature still decodes: {error}"));
    let (first, second) = if low.id() < forged_entry.id() {
        (low.clone(), forged_entry)
    } else {
        (forged_entry, low.clone())
    };
    case(
        "bad signature",
        "bad-signature",
        "one entry's signature with a flipped bit",
        proof_of(&first, &second),
    );
    json!({
        "description": "Fork proofs (docs/PROTOCOL.md §5): the valid proof of a fork by author A at seq 1 of namespace vectors, and invalid proofs with the error_code a decoder must give.",
        "valid": {
            "proof_hex": hex(&valid),
            "namespace": NAMESPACE,
            "author": a.agent_id().to_string(),
            "seq": 1,
            "first_id": low.id().to_string(),
            "second_id": high.id().to_string(),
        },
        "invalid": invalid,
    })
}

// ---------------------------------------------------------------------------------------------
// §6: audit export files.

/// An export file under construction: its bytes so far.
#[derive(Debug, Default, Clone)]
struct ExportFile {
    bytes: Vec<u8>,
}

impl ExportFile {
    /// A file that starts with a header by `exporter` (created at the base time, count hint
    /// `count_hint`).
    fn with_header(exporter: &Keypair, count_hint: u64) -> ExportFile {
        let mut file = ExportFile::default();
        file.push(&header_bytes(exporter, BASE_TIME_MS, count_hint));
        file
    }

    /// Appends an item; returns its offset.
    fn push(&mut self, item: &[u8]) -> u64 {
        let offset = self.bytes.len() as u64;
        self.bytes.extend_from_slice(item);
        offset
    }

    /// Appends the trailer an honest exporter writes for `count` envelopes; returns its offset.
    fn sign(&mut self, exporter: &Keypair, count: u64) -> u64 {
        let trailer = ExportTrailer::sign(exporter, count, sha256(&self.bytes));
        self.push(&trailer.encode())
    }
}

fn header_bytes(exporter: &Keypair, created_ms: u64, count_hint: u64) -> Vec<u8> {
    ExportHeader {
        exporter: exporter.agent_id(),
        created_ms,
        entry_count: count_hint,
    }
    .encode()
}

/// An expected finding: its kind, the entry's position when the finding has one, the offset.
fn finding(kind: &str, position: Option<(&Keypair, u64)>, offset: u64) -> Value {
    match position {
        Some((author, seq)) => json!({
            "kind": kind, "namespace": NAMESPACE, "author": author.agent_id().to_string(),
            "seq": seq, "offset": offset,
        }),
        None => json!({ "kind": kind, "offset": offset }),
    }
}

/// The envelope of `entry` with the first signature byte flipped.
fn flip_signature(entry: &Entry) -> Vec<u8> {
    let mut bytes = entry.encode();
    let body_item = entry.body().map_or(1, |body| body.len() + 1);
    let at = bytes.len() - body_item - 64;
    bytes[at] ^= 0x01;
    bytes
}

/// The envelope of `entry` with its last body byte changed (same length, other hash).
fn flip_body(entry: &Entry) -> Vec<u8> {
    let mut bytes = entry.encode();
    if let Some(last) = bytes.last_mut() {
        *last ^= 0x01;
    }
    bytes
}

/// Generates `exports.json`.
pub fn generate_exports() -> Value {
    let a = Keypair::from_seed(&SEED_A);
    let b = Keypair::from_seed(&SEED_B);
    let exporter = Keypair::from_seed(&SEED_EXPORTER);
    let other = Keypair::from_seed(&SEED_OTHER);
    let feed_a = feed(&a, 3, "a");
    let feed_b = feed(&b, 1, "b");
    let [a1, a2, a3] = [&feed_a[0], &feed_a[1], &feed_a[2]].map(Entry::encode);
    let b1 = feed_b[0].encode();
    // Export order: namespace, then author bytes.
    let a_first = a.agent_id().as_bytes() < b.agent_id().as_bytes();

    let mut cases: Vec<Value> = Vec::new();
    let mut case = |name: &str,
                    note: &str,
                    file: &ExportFile,
                    trusted: Option<Vec<&Keypair>>,
                    findings: Vec<Value>| {
        let verdict = if findings.is_empty() {
            "verified"
        } else if findings.iter().all(|finding| finding["kind"] == "fork") {
            "forked"
        } else {
            "failed"
        };
        let exit_code = match verdict {
            "verified" => 0,
            "forked" => 3,
            _ => 1,
        };
        let trusted: Option<Vec<String>> =
            trusted.map(|keys| keys.iter().map(|key| key.agent_id().to_string()).collect());
        cases.push(json!({
            "name": name,
            "note": note,
            "file_hex": hex(&file.bytes),
            "trusted_authors": trusted,
            "findings": findings,
            "verdict": verdict,
            "exit_code": exit_code,
        }));
    };

    // Valid files.
    let mut valid = ExportFile::with_header(&exporter, 4);
    let header = valid.bytes.clone();
    let (first_feed, second_feed) = if a_first {
        (vec![&a1, &a2, &a3], vec![&b1])
    } else {
        (vec![&b1], vec![&a1, &a2, &a3])
    };
    let mut b1_offset = 0;
    for item in first_feed.iter().chain(&second_feed) {
        let offset = valid.push(item);
        if **item == b1 {
            b1_offset = offset;
        }
    }
    let digest = sha256(&valid.bytes);
    let valid_trailer_offset = valid.sign(&exporter, 4);
    let trailer = valid.bytes[valid_trailer_offset as usize..].to_vec();
    let mut trailer_signing_input = TRAILER_DOMAIN.to_vec();
    trailer_signing_input.extend(cbor::encode(&C::Array(vec![
        C::Integer(4.into()),
        C::Bytes(digest.0.to_vec()),
        C::Bytes(exporter.agent_id().as_bytes().to_vec()),
    ])));
    case(
        "valid",
        "two feeds, namespace then author order",
        &valid,
        None,
        vec![],
    );
    let valid_details = json!({
        "exporter_seed_hex": hex(&SEED_EXPORTER),
        "exporter": exporter.agent_id().to_string(),
        "header_hex": hex(&header),
        "created_ms": BASE_TIME_MS,
        "count_hint": 4,
        "entry_count": 4,
        "digest": digest.to_string(),
        "trailer_domain_hex": hex(TRAILER_DOMAIN),
        "trailer_signing_input_hex": hex(&trailer_signing_input),
        "trailer_hex": hex(&trailer),
        "file_hex": hex(&valid.bytes),
    });

    let mut hint = ExportFile::default();
    hint.push(&header_bytes(&exporter, 0, 99));
    for item in [&a1, &a2, &a3] {
        hint.push(item);
    }
    hint.sign(&exporter, 3);
    case(
        "count hint and creation time are not checked",
        "header with created_ms 0 and count_hint 99 for 3 entries",
        &hint,
        None,
        vec![],
    );

    // Chain findings.
    let rival = note(&a, 2, Some(feed_a[0].id()), "a 2 rival").without_body();
    let mut forked = ExportFile::with_header(&exporter, 4);
    forked.push(&a1);
    forked.push(&a2);
    let rival_offset = forked.push(&rival.encode());
    forked.push(&a3);
    forked.sign(&exporter, 4);
    case(
        "fork",
        "a rival of seq 2 (body null) after the stored seq 2; seq 3 links to the stored one",
        &forked,
        None,
        vec![finding("fork", Some((&a, 2)), rival_offset)],
    );

    let mut gap = ExportFile::with_header(&exporter, 2);
    gap.push(&a1);
    let a3_offset = gap.push(&a3);
    gap.sign(&exporter, 2);
    case(
        "gap",
        "seq 2 left out, trailer re-signed",
        &gap,
        None,
        vec![finding("gap", Some((&a, 3)), a3_offset)],
    );

    let stranger = note(&a, 3, Some(sha256(b"elsewhere")), "a 3 elsewhere").encode();
    let mut broken = ExportFile::with_header(&exporter, 3);
    broken.push(&a1);
    broken.push(&a2);
    let stranger_offset = broken.push(&stranger);
    broken.sign(&exporter, 3);
    case(
        "broken link",
        "seq 3 names a prev that is not seq 2's id",
        &broken,
        None,
        vec![finding("broken-link", Some((&a, 3)), stranger_offset)],
    );

    let mut reordered = ExportFile::with_header(&exporter, 3);
    reordered.push(&a1);
    let a3_offset = reordered.push(&a3);
    let a2_offset = reordered.push(&a2);
    reordered.sign(&exporter, 3);
    case(
        "out of order",
        "seq 1, 3, 2",
        &reordered,
        None,
        vec![
            finding("gap", Some((&a, 3)), a3_offset),
            finding("out-of-order", Some((&a, 2)), a2_offset),
        ],
    );

    let mut duplicate = ExportFile::with_header(&exporter, 4);
    duplicate.push(&a1);
    duplicate.push(&a2);
    let again = duplicate.push(&a2);
    duplicate.push(&a3);
    duplicate.sign(&exporter, 4);
    case(
        "duplicate",
        "seq 2 twice",
        &duplicate,
        None,
        vec![finding("duplicate", Some((&a, 2)), again)],
    );

    // Entry findings, and what they do to the chain.
    let mut bad_signature = ExportFile::with_header(&exporter, 3);
    bad_signature.push(&a1);
    let at = bad_signature.push(&flip_signature(&feed_a[1]));
    bad_signature.push(&a3);
    bad_signature.sign(&exporter, 3);
    case(
        "bad signature",
        "seq 2's signature flipped: it keeps its position, seq 3's link is not judged",
        &bad_signature,
        None,
        vec![finding("bad-signature", Some((&a, 2)), at)],
    );

    let mut body = ExportFile::with_header(&exporter, 3);
    body.push(&a1);
    let at = body.push(&flip_body(&feed_a[1]));
    body.push(&a3);
    body.sign(&exporter, 3);
    case(
        "body mismatch",
        "seq 2's last body byte changed: its signed header is intact and takes its position",
        &body,
        None,
        vec![finding("body-mismatch", Some((&a, 2)), at)],
    );

    let mut both = flip_body(&feed_a[1]);
    let signature_at = both.len() - feed_a[1].body().map_or(1, |body| body.len() + 1) - 64;
    both[signature_at] ^= 0x01;
    let mut body_and_signature = ExportFile::with_header(&exporter, 3);
    body_and_signature.push(&a1);
    let at = body_and_signature.push(&both);
    body_and_signature.push(&a3);
    body_and_signature.sign(&exporter, 3);
    case(
        "body mismatch and bad signature",
        "seq 2 with both faults gets only bad-signature",
        &body_and_signature,
        None,
        vec![finding("bad-signature", Some((&a, 2)), at)],
    );

    let mut located = ExportFile::with_header(&exporter, 3);
    located.push(&a1);
    let at = located.push(&splice(&a2, &[0x8a, 0x01], &[0x8a, 0x18, 0x01]));
    located.push(&a3);
    located.sign(&exporter, 3);
    case(
        "undecodable entry, position readable",
        "seq 2's version written 0x18 0x01: located, it takes its position",
        &located,
        None,
        vec![finding("bad-encoding", Some((&a, 2)), at)],
    );

    let mut unlocated = ExportFile::with_header(&exporter, 3);
    unlocated.push(&a1);
    let at = unlocated.push(&splice(&a2, b"vectors", b"Vectors"));
    let a3_offset = unlocated.push(&a3);
    unlocated.sign(&exporter, 3);
    case(
        "undecodable entry, position unreadable",
        "seq 2's namespace made \"Vectors\" (not a valid name): not located, so seq 3 follows a gap",
        &unlocated,
        None,
        vec![
            finding("bad-encoding", None, at),
            finding("gap", Some((&a, 3)), a3_offset),
        ],
    );

    // Items that are not entries.
    let mut unknown = ExportFile::with_header(&exporter, 3);
    unknown.push(&a1);
    let at = unknown.push(&cbor::encode(&C::Text("hello".into())));
    unknown.push(&a2);
    unknown.push(&a3);
    unknown.sign(&exporter, 3);
    case(
        "unknown item",
        "a text item between entries: reported, not counted, hashed",
        &unknown,
        None,
        vec![finding("bad-encoding", None, at)],
    );

    let mut not_well_formed = ExportFile::with_header(&exporter, 3);
    not_well_formed.push(&a1);
    let at = not_well_formed.push(&[0xff]);
    not_well_formed.push(&a2);
    not_well_formed.push(&a3);
    not_well_formed.sign(&exporter, 3);
    case(
        "not well-formed item",
        "a break byte: the verifier reports it and stops (nothing after it is reported)",
        &not_well_formed,
        None,
        vec![finding("bad-encoding", None, at)],
    );

    let mut too_long = ExportFile::with_header(&exporter, 3);
    too_long.push(&a1);
    let at = too_long.push(&cbor::encode(&C::Bytes(vec![0; 65_537])));
    too_long.push(&a2);
    too_long.push(&a3);
    too_long.sign(&exporter, 3);
    case(
        "item longer than any entry",
        "a 65,542-byte item (a byte string of 65,537 zeros): reported, and the verifier stops",
        &too_long,
        None,
        vec![finding("bad-encoding", None, at)],
    );

    // Headers.
    let mut headless = ExportFile::default();
    for item in [&a1, &a2, &a3] {
        headless.push(item);
    }
    headless.sign(&exporter, 3);
    case(
        "missing header",
        "the file starts with an entry, which is then judged as an entry",
        &headless,
        None,
        vec![finding("bad-encoding", None, 0)],
    );

    let mut version_two = ExportFile::default();
    version_two.push(&cbor::encode(&C::Array(vec![
        C::Text("plexus-audit".into()),
        C::Integer(2.into()),
        C::Bytes(exporter.agent_id().as_bytes().to_vec()),
        C::Integer(BASE_TIME_MS.into()),
        C::Integer(3.into()),
    ])));
    for item in [&a1, &a2, &a3] {
        version_two.push(item);
    }
    version_two.sign(&exporter, 3);
    case(
        "bad header",
        "a header of version 2: reported; the entries and trailer are still checked",
        &version_two,
        None,
        vec![finding("bad-encoding", None, 0)],
    );

    // Ends of files.
    let mut cut = ExportFile::with_header(&exporter, 3);
    cut.push(&a1);
    let at = cut.push(&a2[..10]);
    case(
        "truncated inside an item",
        "the file ends 10 bytes into seq 2",
        &cut,
        None,
        vec![finding("truncated", None, at)],
    );

    let mut no_trailer = ExportFile::with_header(&exporter, 3);
    for item in [&a1, &a2, &a3] {
        no_trailer.push(item);
    }
    let end = no_trailer.bytes.len() as u64;
    case(
        "no trailer",
        "the file ends after the last entry",
        &no_trailer,
        None,
        vec![finding("truncated", None, end)],
    );

    case(
        "empty file",
        "zero bytes",
        &ExportFile::default(),
        None,
        vec![finding("truncated", None, 0)],
    );

    // Trailers.
    let three = |exporter_of_header: &Keypair| {
        let mut file = ExportFile::with_header(exporter_of_header, 3);
        for item in [&a1, &a2, &a3] {
            file.push(item);
        }
        file
    };
    let mut count = three(&exporter);
    let at = count.sign(&exporter, 4);
    case(
        "count mismatch",
        "the trailer signs 4 entries for 3",
        &count,
        None,
        vec![finding("count-mismatch", None, at)],
    );

    let mut digest_mismatch = three(&exporter);
    let at =
        digest_mismatch.push(&ExportTrailer::sign(&exporter, 3, sha256(b"another file")).encode());
    case(
        "digest mismatch",
        "the trailer signs the digest of other bytes",
        &digest_mismatch,
        None,
        vec![finding("digest-mismatch", None, at)],
    );

    let mut forged_trailer = three(&exporter);
    let at = forged_trailer.sign(&exporter, 3);
    if let Some(last) = forged_trailer.bytes.last_mut() {
        *last ^= 0x01;
    }
    case(
        "trailer signature invalid",
        "the trailer's last signature byte flipped",
        &forged_trailer,
        None,
        vec![finding("bad-trailer", None, at)],
    );

    let mut other_signer = three(&exporter);
    let at = other_signer.sign(&other, 4);
    case(
        "trailer by another key, and its faults in order",
        "signed by a key other than the header's exporter, for 4 entries: bad-trailer, then count-mismatch",
        &other_signer,
        None,
        vec![
            finding("bad-trailer", None, at),
            finding("count-mismatch", None, at),
        ],
    );

    let mut malformed_trailer = three(&exporter);
    let at = malformed_trailer.push(&cbor::encode(&C::Array(vec![
        C::Text("plexus-audit-end".into()),
        C::Integer(3.into()),
        C::Bytes(vec![0; 31]),
        C::Bytes(exporter.agent_id().as_bytes().to_vec()),
        C::Bytes(vec![0; 64]),
    ])));
    case(
        "malformed trailer",
        "a trailer with a 31-byte digest: bad-trailer alone",
        &malformed_trailer,
        None,
        vec![finding("bad-trailer", None, at)],
    );

    let mut last_not_trailer = three(&exporter);
    let at = last_not_trailer.push(&[0x00]);
    case(
        "last item not a trailer",
        "the file ends with the item 0x00",
        &last_not_trailer,
        None,
        vec![finding("bad-trailer", None, at)],
    );

    let mut trailing = valid.clone();
    let at = trailing.push(&[0x00]);
    case(
        "trailing data",
        "one byte after the trailer",
        &trailing,
        None,
        vec![finding("trailing-data", None, at)],
    );

    // Trusted keys.
    case(
        "untrusted author and exporter",
        "trusted: author A only. Author B is reported once; the exporter is not trusted",
        &valid,
        Some(vec![&a]),
        vec![
            finding("untrusted-author", Some((&b, 1)), b1_offset),
            finding("bad-trailer", None, valid_trailer_offset),
        ],
    );
    case(
        "all trusted",
        "trusted: both authors and the exporter",
        &valid,
        Some(vec![&a, &b, &exporter]),
        vec![],
    );

    // Trust roots: a governed namespace with no policy, where only admins may post.
    let admin = Keypair::from_seed(&SEED_OTHER);
    let governed = Entry::sign(
        &a,
        Draft {
            namespace: "governed".into(),
            seq: 1,
            prev: None,
            timestamp_ms: BASE_TIME_MS,
            kind: "x-note".into(),
            body: vec![0xa0],
        },
    )
    .unwrap_or_else(|error| panic!("vector entry must sign: {error}"));
    let mut policy = ExportFile::with_header(&exporter, 1);
    let at = policy.push(&governed.encode());
    policy.sign(&exporter, 1);
    cases.push(json!({
        "name": "policy violation",
        "note": "trust root: namespace governed, admin the key of seed 0x44; author A posts there before any policy (rule no-policy)",
        "file_hex": hex(&policy.bytes),
        "trusted_authors": null,
        "trust_roots": { "governed": [admin.agent_id().to_string()] },
        "findings": [{
            "kind": "policy-violation", "namespace": "governed",
            "author": a.agent_id().to_string(), "seq": 1, "offset": at,
        }],
        "verdict": "failed",
        "exit_code": 1,
    }));

    json!({
        "description": "Audit export files (docs/PROTOCOL.md §6) with the findings a verifier must report, in order: kind, and where the finding has them namespace, author, seq; offset is the byte offset of the item. verdict and exit_code as in §6.2. trusted_authors, when not null, is the auditor's trusted keys list; trust_roots, when present, the governed namespaces and their admins (§10.5).",
        "valid": valid_details,
        "files": cases,
    })
}
