//! `fork-proofs.json`: valid fork proofs and one invalid proof per docs/PROTOCOL.md §5 error.

use ciborium::Value as C;
use plexus_crypto::Keypair;
use plexus_protocol::feed::MAX_FORK_PROOF_LEN;
use plexus_protocol::{cbor, Entry, ForkProof};
use serde_json::{json, Value};

use super::{note, NAMESPACE};
use crate::vectors::{hex, SEED_A};

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
