//! Single and batch verification give the same verdict on every kind of signature the rule
//! distinguishes, including the torsioned ones honest signers never make.

use proptest::prelude::*;

use super::*;
use crate::crafted::{
    non_canonical_identity, off_curve_encoding, torsion, with_s_plus_group_order, CraftedSigner,
};
use crate::identity::Keypair;

fn signed(count: usize) -> (Vec<Keypair>, Vec<Vec<u8>>, Vec<Signature>) {
    let keys: Vec<Keypair> = (0..count).map(|_| Keypair::generate()).collect();
    let messages: Vec<Vec<u8>> = (0..count)
        .map(|i| format!("message {i}").into_bytes())
        .collect();
    let signatures = keys.iter().zip(&messages).map(|(k, m)| k.sign(m)).collect();
    (keys, messages, signatures)
}

fn items<'a>(
    ids: &'a [AgentId],
    messages: &'a [Vec<u8>],
    signatures: &'a [Signature],
) -> Vec<BatchItem<'a>> {
    ids.iter()
        .zip(messages)
        .zip(signatures)
        .map(|((author, message), signature)| BatchItem {
            author,
            message,
            signature,
        })
        .collect()
}

/// The batch verdict: indexes of the bad items.
fn batch_bad(items: &[BatchItem<'_>]) -> Vec<usize> {
    verify_batch_with_fallback(items)
        .err()
        .map(|error| error.bad)
        .unwrap_or_default()
}

/// The single verdicts: indexes of the items `AgentId::verify` refuses.
fn single_bad(items: &[BatchItem<'_>]) -> Vec<usize> {
    items
        .iter()
        .enumerate()
        .filter(|(_, item)| !item.author.verify(item.message, item.signature))
        .map(|(index, _)| index)
        .collect()
}

#[test]
fn a_good_batch_verifies() {
    let (keys, messages, signatures) = signed(600);
    let ids: Vec<AgentId> = keys.iter().map(Keypair::agent_id).collect();
    let batch = items(&ids, &messages, &signatures);
    assert_eq!(verify_batch_with_fallback(&batch), Ok(()));
    assert_eq!(verify_batch_parallel(&batch), Ok(()));
}

#[test]
fn the_fallback_names_exactly_the_bad_items() {
    let (keys, mut messages, mut signatures) = signed(600);
    let ids: Vec<AgentId> = keys.iter().map(Keypair::agent_id).collect();
    messages[3].push(b'!');
    signatures[300].0[10] ^= 1;
    signatures[599] = keys[0].sign(&messages[599]);
    let batch = items(&ids, &messages, &signatures);
    assert_eq!(
        verify_batch_parallel(&batch),
        Err(VerifyError {
            bad: vec![3, 300, 599]
        })
    );
    assert_eq!(batch_bad(&batch), vec![3, 300, 599]);
}

#[test]
fn torsion_in_r_or_in_the_key_is_valid_for_single_and_batch_alike() {
    let plain = CraftedSigner::new(&[1; 32], 0);
    let torsioned = CraftedSigner::new(&[2; 32], 1);
    let ids = [
        plain.agent_id().unwrap(),
        torsioned.agent_id().unwrap(),
        torsioned.agent_id().unwrap(),
        torsioned.agent_id().unwrap(),
    ];
    let messages: Vec<Vec<u8>> = (0..4).map(|i| format!("m{i}").into_bytes()).collect();
    let signatures = [
        plain.sign(&messages[0], b"n0", 3),
        torsioned.sign(&messages[1], b"n1", 0),
        torsioned.sign(&messages[2], b"n2", 5),
        // R is exactly a small-order point (r = 0): S = k·a still satisfies the equation.
        torsioned.sign_with_nonce_point(&messages[3], torsion(2).compress().to_bytes(), 0u8.into()),
    ];
    let batch = items(&ids, &messages, &signatures);
    assert_eq!(single_bad(&batch), Vec::<usize>::new());
    assert_eq!(batch_bad(&batch), Vec::<usize>::new());
    // Several signatures of one torsioned key in one batch: its terms are merged into one.
    for round in 0..20u8 {
        let messages: Vec<Vec<u8>> = (0..8).map(|i| vec![round, i]).collect();
        let signatures: Vec<Signature> = messages
            .iter()
            .map(|message| torsioned.sign(message, &[round], message[1]))
            .collect();
        let ids = vec![torsioned.agent_id().unwrap(); 8];
        assert_eq!(
            batch_bad(&items(&ids, &messages, &signatures)),
            Vec::<usize>::new()
        );
    }
}

#[test]
fn bad_encodings_and_forgeries_are_refused_by_single_and_batch_alike() {
    let signer = CraftedSigner::new(&[3; 32], 1);
    let id = signer.agent_id().unwrap();
    let message = b"message".to_vec();
    let good = signer.sign(&message, b"n", 0);
    // The identity written with y = p + 1: the equation holds, the encoding is refused.
    let non_canonical =
        signer.sign_with_nonce_point(&message, non_canonical_identity(), 0u8.into());
    let mut canonical_identity = [0u8; 32];
    canonical_identity[0] = 1;
    let same_with_canonical_r =
        signer.sign_with_nonce_point(&message, canonical_identity, 0u8.into());
    // A forgery with R = identity and S = 0, valid only for a small-order key.
    let mut forged = Signature([0u8; 64]);
    forged.0[0] = 1;
    let mut off_curve = good;
    off_curve.0[..32].copy_from_slice(&off_curve_encoding());
    let signatures = [
        good,
        with_s_plus_group_order(&good),
        non_canonical,
        same_with_canonical_r,
        forged,
        off_curve,
    ];
    let ids = vec![id; signatures.len()];
    let messages = vec![message; signatures.len()];
    let batch = items(&ids, &messages, &signatures);
    assert_eq!(single_bad(&batch), vec![1, 2, 4, 5]);
    assert_eq!(batch_bad(&batch), vec![1, 2, 4, 5]);
}

#[test]
fn empty_batches_verify() {
    assert_eq!(verify_batch_parallel(&[]), Ok(()));
}

/// The kinds of signature the property test mixes.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Honest,
    TorsionInR(u8),
    TorsionedKey(u8),
    WrongMessage,
    SPlusOrder,
    NonCanonicalR,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        4 => Just(Kind::Honest),
        2 => (1u8..8).prop_map(Kind::TorsionInR),
        2 => (1u8..8).prop_map(Kind::TorsionedKey),
        1 => Just(Kind::WrongMessage),
        1 => Just(Kind::SPlusOrder),
        1 => Just(Kind::NonCanonicalR),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn batch_verdicts_equal_single_verdicts(kinds in prop::collection::vec(kind(), 1..40), seed: u8) {
        let mut ids = Vec::new();
        let mut messages = Vec::new();
        let mut signatures = Vec::new();
        for (index, kind) in kinds.iter().enumerate() {
            let message = vec![seed, index as u8];
            let key_torsion = match kind {
                Kind::TorsionedKey(multiple) => *multiple,
                _ => 0,
            };
            // A few authors shared across the batch, so merged terms are exercised too.
            let signer = CraftedSigner::new(&[index as u8 % 3; 32], key_torsion);
            let signature = match kind {
                Kind::Honest | Kind::TorsionedKey(_) => signer.sign(&message, &[seed], 0),
                Kind::TorsionInR(multiple) => signer.sign(&message, &[seed], *multiple),
                Kind::WrongMessage => signer.sign(b"another message", &[seed], 0),
                Kind::SPlusOrder => with_s_plus_group_order(&signer.sign(&message, &[seed], 0)),
                Kind::NonCanonicalR => {
                    signer.sign_with_nonce_point(&message, non_canonical_identity(), 0u8.into())
                }
            };
            ids.push(signer.agent_id().unwrap());
            messages.push(message);
            signatures.push(signature);
        }
        let batch = items(&ids, &messages, &signatures);
        let expected: Vec<usize> = kinds
            .iter()
            .enumerate()
            .filter(|(_, kind)| matches!(kind, Kind::WrongMessage | Kind::SPlusOrder | Kind::NonCanonicalR))
            .map(|(index, _)| index)
            .collect();
        prop_assert_eq!(single_bad(&batch), expected.clone());
        prop_assert_eq!(batch_bad(&batch), expected);
    }
}
