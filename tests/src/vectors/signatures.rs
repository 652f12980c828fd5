//! Crafted Ed25519 vectors (`tests/vectors/signatures.json`): the edges of the validity rule of
//! docs/PROTOCOL.md §1, each with the verdict single and batch verification must both give.
//!
//! Keys and nonce points carry torsion components (multiples of a point `T` of order 8) that an
//! honest signer never produces; see `plexus_crypto::crafted` for how they are made.

use plexus_crypto::crafted::{
    challenge_bytes, non_canonical_identity, off_curve_encoding, torsion, with_s_plus_group_order,
    CraftedSigner,
};
use plexus_crypto::{sha256, Hash256, Keypair, Signature};
use serde_json::{json, Value};

use super::{hex, BASE_TIME_MS, SEED_A};

/// One single-signature case: key, message, signature and verdict.
struct Case {
    name: &'static str,
    note: &'static str,
    key: [u8; 32],
    message: Vec<u8>,
    signature: Signature,
    valid: bool,
}

/// Generates the signature vector document.
pub fn generate() -> Value {
    let honest = Keypair::from_seed(&SEED_A);
    let plain = CraftedSigner::new(&[0x31; 32], 0);
    let torsioned = CraftedSigner::new(&[0x32; 32], 1);
    let message = |n: u8| format!("plexus signature vector {n}").into_bytes();
    let mut cases = vec![Case {
        name: "honest signature",
        note: "ed25519-dalek signature by the key of seed 0x11..11",
        key: *honest.agent_id().as_bytes(),
        message: message(0),
        signature: honest.sign(&message(0)),
        valid: true,
    }];
    let mut push = |name, note, signer: &CraftedSigner, message: Vec<u8>, signature, valid| {
        cases.push(Case {
            name,
            note,
            key: signer.public_key(),
            message,
            signature,
            valid,
        });
    };
    push(
        "torsion of order 8 in R",
        "R = [r]B + T",
        &plain,
        message(1),
        plain.sign(&message(1), b"1", 1),
        true,
    );
    push(
        "torsion of order 2 in R",
        "R = [r]B + [4]T",
        &plain,
        message(2),
        plain.sign(&message(2), b"2", 4),
        true,
    );
    let nonce = nonce_where(&torsioned, &message(3), |k| k % 8 == 0);
    push(
        "torsioned key, k a multiple of 8",
        "A = [a]B + T; k = 0 mod 8, so the cofactorless equation holds too",
        &torsioned,
        message(3),
        torsioned.sign(&message(3), &nonce, 0),
        true,
    );
    let nonce = nonce_where(&torsioned, &message(4), |k| k % 8 != 0);
    push(
        "torsioned key, k not a multiple of 8",
        "A = [a]B + T; only the cofactored equation holds",
        &torsioned,
        message(4),
        torsioned.sign(&message(4), &nonce, 0),
        true,
    );
    push(
        "torsioned key and torsion in R",
        "A = [a]B + T, R = [r]B + [3]T",
        &torsioned,
        message(5),
        torsioned.sign(&message(5), b"5", 3),
        true,
    );
    push(
        "small-order R",
        "R = [2]T exactly (r = 0), S = k·a: the cofactored equation holds",
        &plain,
        message(6),
        plain.sign_with_nonce_point(&message(6), torsion(2).compress().to_bytes(), 0u8.into()),
        true,
    );
    push(
        "non-canonical R (identity as y = p + 1)",
        "R bytes encode y = p + 1, S = k·a over those bytes: the equation holds, the encoding is refused",
        &plain,
        message(7),
        plain.sign_with_nonce_point(&message(7), non_canonical_identity(), 0u8.into()),
        false,
    );
    let good = plain.sign(&message(8), b"8", 0);
    push(
        "S not below the group order",
        "S + ℓ of a valid signature: the same point equation, refused because S ≥ ℓ",
        &plain,
        message(8),
        with_s_plus_group_order(&good),
        false,
    );
    let mut off_curve = plain.sign(&message(9), b"9", 0);
    off_curve.0[..32].copy_from_slice(&off_curve_encoding());
    push(
        "R not on the curve",
        "R bytes are a canonical y with no curve point",
        &plain,
        message(9),
        off_curve,
        false,
    );
    push(
        "signature of another message",
        "valid signature of message 10 checked against message 11",
        &torsioned,
        message(11),
        torsioned.sign(&message(10), b"10", 2),
        false,
    );
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut forged = Signature([0u8; 64]);
    forged.0[..32].copy_from_slice(&identity);
    push(
        "identity R and zero S",
        "R = identity, S = 0: valid only for a small-order key",
        &torsioned,
        message(12),
        forged,
        false,
    );
    cases.push(Case {
        name: "small-order key",
        note: "A = identity: refused as a key (§1) whatever the signature",
        key: identity,
        message: message(13),
        signature: forged,
        valid: false,
    });

    let batches = [
        ("all valid", vec![0, 1, 2, 3, 4, 5, 6]),
        ("valid torsioned and bad encodings", vec![3, 7, 4, 8, 0, 9]),
        ("mixed, with a forgery", vec![10, 1, 11, 5, 6]),
        ("one key, two valid and one bad", vec![4, 3, 10]),
    ];
    let batches: Vec<Value> = batches
        .iter()
        .map(|(name, items)| {
            let bad: Vec<usize> = items
                .iter()
                .enumerate()
                .filter(|(_, case)| cases.get(**case).is_some_and(|case| !case.valid))
                .map(|(position, _)| position)
                .collect();
            json!({ "name": name, "items": items, "bad": bad })
        })
        .collect();
    let single: Vec<Value> = cases
        .iter()
        .map(|case| {
            json!({
                "name": case.name,
                "note": case.note,
                "public_key_hex": hex(&case.key),
                "message_hex": hex(&case.message),
                "signature_hex": hex(&case.signature.0),
                "valid": case.valid,
            })
        })
        .collect();
    json!({
        "description": "Ed25519 validity (docs/PROTOCOL.md §1): canonical R that decompresses (torsion allowed), S < l, [8][S]B = [8]R + [8][k]A. Single and batch verification must give these verdicts.",
        "single": single,
        "batches": batches,
    })
}

/// The first nonce (deterministic, so the vectors are reproducible) whose torsion-free `R`
/// gives a challenge `k` with `wanted(k mod 256)`.
fn nonce_where(signer: &CraftedSigner, message: &[u8], wanted: impl Fn(u8) -> bool) -> Vec<u8> {
    (0u32..)
        .map(|n| n.to_le_bytes().to_vec())
        .find(|nonce| {
            let signature = signer.sign(message, nonce, 0);
            wanted(challenge_bytes(&r_of(&signature), &signer.public_key(), message)[0])
        })
        .unwrap_or_default()
}

/// The `R` half of a signature.
fn r_of(signature: &Signature) -> [u8; 32] {
    signature.0[..32].try_into().unwrap_or_default()
}

/// An envelope with the given fields, signed by `signer` over the protocol's signing input
/// (`docs/PROTOCOL.md` §3.2): a valid entry by a key honest tooling cannot sign for.
pub fn crafted_entry(
    signer: &CraftedSigner,
    namespace: &str,
    seq: u64,
    prev: Option<Hash256>,
    kind: &str,
    body: &[u8],
    wanted_k: impl Fn(u8) -> bool,
) -> Vec<u8> {
    use ciborium::Value as C;
    (0u64..)
        .map(|offset| {
            let fields = vec![
                C::Integer(1.into()),
                C::Text(namespace.into()),
                C::Bytes(signer.public_key().to_vec()),
                C::Integer(seq.into()),
                prev.map_or(C::Null, |prev| C::Bytes(prev.0.to_vec())),
                C::Integer((BASE_TIME_MS + seq * 1000 + offset).into()),
                C::Text(kind.into()),
                C::Bytes(sha256(body).0.to_vec()),
                C::Integer((body.len() as u64).into()),
            ];
            let mut input = plexus_protocol::entry::SIGNING_DOMAIN.to_vec();
            input.extend(plexus_protocol::cbor::encode(&C::Array(fields.clone())));
            let signature = signer.sign(&input, &offset.to_le_bytes(), 0);
            (fields, input, signature)
        })
        .find(|(_, input, signature)| {
            wanted_k(challenge_bytes(&r_of(signature), &signer.public_key(), input)[0])
        })
        .map(|(mut fields, _, signature)| {
            fields.push(C::Bytes(signature.0.to_vec()));
            plexus_protocol::cbor::encode(&C::Array(vec![
                C::Array(fields),
                C::Bytes(body.to_vec()),
            ]))
        })
        .unwrap_or_default()
}
