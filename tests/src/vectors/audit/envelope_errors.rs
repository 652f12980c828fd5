//! `envelope-errors.json`: one envelope per docs/PROTOCOL.md §3.4 error code, and the order
//! among them when several apply.

use ciborium::Value as C;
use plexus_crypto::{sha256, Keypair};
use plexus_protocol::{cbor, Entry};
use serde_json::{json, Value};

use super::{splice, NAMESPACE};
use crate::vectors::{hex, BASE_TIME_MS, SEED_A, SEED_B};

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
