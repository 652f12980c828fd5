//! Tests of admission: each refusal on each route, the order of the checks, and that a batch
//! answers exactly as its inputs would one by one.

use proptest::prelude::*;

use super::*;
use crate::entry::Draft;
use crate::value::json_text_to_canonical;
use plexus_crypto::Keypair;

fn signed(keypair: &Keypair, seq: u64, kind: &str, json: &str) -> Entry {
    Entry::sign(
        keypair,
        Draft {
            namespace: "ns".into(),
            seq,
            // Admission does not look at the chain: any predecessor will do.
            prev: (seq > 1).then(|| plexus_crypto::sha256(b"the entry before")),
            timestamp_ms: 1_000 + seq,
            kind: kind.into(),
            body: json_text_to_canonical(json).unwrap(),
        },
    )
    .unwrap()
}

fn note(keypair: &Keypair, seq: u64) -> Entry {
    signed(keypair, seq, "x-note", r#"{"text": "hello"}"#)
}

/// The entry's bytes with one bit of the signature flipped.
fn forged(entry: &Entry) -> Vec<u8> {
    let mut bytes = entry.encode();
    let signature = entry.signature().0;
    let at = bytes
        .windows(signature.len())
        .position(|window| window == signature)
        .unwrap();
    bytes[at] ^= 1;
    bytes
}

const GOSSIP: Route<'static> = Route::Gossip {
    namespace: "ns",
    suffix: "other",
};

fn reason(answer: Result<Admitted, Refusal>) -> RefusalReason {
    answer.expect_err("refused").reason
}

#[test]
fn a_valid_entry_is_admitted_on_every_route() {
    let keypair = Keypair::from_seed(&[1; 32]);
    let entry = note(&keypair, 1);
    let feed = FeedKey::of(&entry);
    let seqs = 1..=5;
    for route in [
        GOSSIP,
        Route::Submit,
        Route::Sync {
            feed: &feed,
            seqs: &seqs,
        },
        Route::History,
    ] {
        assert_eq!(admit(&entry.encode(), route).unwrap().entry(), &entry);
    }
}

#[test]
fn an_admitted_entry_carries_its_body_parsed_for_its_kind() {
    let claim = r#"{"resource": "printer", "action": "print", "leaseMs": 60000}"#;
    let entry = signed(&Keypair::from_seed(&[5; 32]), 1, "intent", claim);
    let claim_topic = Route::Gossip {
        namespace: "ns",
        suffix: "intent",
    };
    let admitted = admit(&entry.encode(), claim_topic).unwrap();
    let expected = Body::from_json("intent", serde_json::from_str(claim).unwrap()).unwrap();
    assert_eq!(admitted.body(), Some(&expected));
    let (entry_back, body) = admitted.into_parts();
    assert_eq!((entry_back, body), (entry.clone(), Some(expected)));

    // History may come pruned: admitted without a body to parse.
    let pruned = admit(&entry.without_body().encode(), Route::History).unwrap();
    assert_eq!(pruned.body(), None);
}

#[test]
fn an_admitted_entry_is_filed_in_the_view_with_its_one_parse() {
    use crate::body::parse_count;
    use crate::coord::View;

    let claim = r#"{"resource": "printer", "action": "print", "leaseMs": 60000}"#;
    let entry = signed(&Keypair::from_seed(&[6; 32]), 1, "intent", claim);
    let bytes = entry.encode();
    let claim_topic = Route::Gossip {
        namespace: "ns",
        suffix: "intent",
    };
    let before = parse_count::on_this_thread();
    let (entry, body) = admit(&bytes, claim_topic).unwrap().into_parts();
    let mut view = View::new();
    let filed = view.apply(&entry, body.unwrap()).unwrap();
    assert_eq!(filed.resource.as_deref(), Some("printer"));
    assert_eq!(
        parse_count::on_this_thread() - before,
        1,
        "admission parses the body; the view files that parse"
    );
}

#[test]
fn each_check_refuses_with_its_reason() {
    let keypair = Keypair::from_seed(&[2; 32]);
    let entry = note(&keypair, 3);
    let feed = FeedKey::of(&entry);

    let oversized = vec![0u8; MAX_ENTRY_LEN + 1];
    let refused = admit(&oversized, GOSSIP).unwrap_err();
    assert_eq!(refused.reason, RefusalReason::Malformed);
    assert!(refused.detail.contains("entry limit"), "{}", refused.detail);

    assert_eq!(
        reason(admit(b"\x01\x02", Route::Submit)),
        RefusalReason::Malformed
    );

    let claim_topic = Route::Gossip {
        namespace: "ns",
        suffix: "intent",
    };
    assert_eq!(
        reason(admit(&entry.encode(), claim_topic)),
        RefusalReason::WrongTopic
    );
    let other_namespace = Route::Gossip {
        namespace: "elsewhere",
        suffix: "other",
    };
    assert_eq!(
        reason(admit(&entry.encode(), other_namespace)),
        RefusalReason::WrongTopic
    );

    let before = 1..=2;
    let outside = Route::Sync {
        feed: &feed,
        seqs: &before,
    };
    let refused = admit(&entry.encode(), outside).unwrap_err();
    assert_eq!(refused.reason, RefusalReason::Malformed);
    assert!(refused.detail.contains("1..=2"), "{}", refused.detail);

    let refused = admit(&forged(&entry), Route::Submit).unwrap_err();
    assert_eq!(refused.reason, RefusalReason::BadSignature);
    assert!(refused.detail.contains("seq 3"), "{}", refused.detail);

    let pruned = entry.without_body().encode();
    assert_eq!(reason(admit(&pruned, GOSSIP)), RefusalReason::PrunedBody);
    assert_eq!(
        reason(admit(&pruned, Route::Submit)),
        RefusalReason::PrunedBody
    );
    assert!(
        admit(&pruned, Route::History).is_ok(),
        "history may be pruned"
    );

    let bad_task = signed(
        &Keypair::from_seed(&[4; 32]),
        1,
        "task",
        r#"{"nonsense": true}"#,
    );
    let task_topic = Route::Gossip {
        namespace: "ns",
        suffix: "task",
    };
    let refused = admit(&bad_task.encode(), task_topic).unwrap_err();
    assert_eq!(refused.reason, RefusalReason::BadBody);
    assert!(!refused.reason.is_invalid_data());
    assert!(refused.detail.contains("seq 1"), "{}", refused.detail);
}

#[test]
fn a_forged_signature_is_found_before_a_missing_body() {
    let keypair = Keypair::from_seed(&[3; 32]);
    let pruned = note(&keypair, 1).without_body();
    let refused = admit(&forged(&pruned), GOSSIP).unwrap_err();
    assert_eq!(refused.reason, RefusalReason::BadSignature);
}

/// One input of the property test: what to send and by which route.
#[derive(Debug, Clone)]
enum Input {
    Valid,
    Forged,
    Truncated(usize),
    Pruned,
    OtherNamespace,
    BadBody,
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        4 => Just(Input::Valid),
        1 => Just(Input::Forged),
        1 => (1usize..60).prop_map(Input::Truncated),
        1 => Just(Input::Pruned),
        1 => Just(Input::OtherNamespace),
        1 => Just(Input::BadBody),
    ]
}

fn bytes_of(keypair: &Keypair, seq: u64, input: &Input) -> Vec<u8> {
    let entry = note(keypair, seq);
    match input {
        Input::Valid => entry.encode(),
        Input::Forged => forged(&entry),
        Input::Truncated(cut) => {
            let bytes = entry.encode();
            bytes[..bytes.len().saturating_sub(*cut)].to_vec()
        }
        Input::Pruned => entry.without_body().encode(),
        Input::OtherNamespace => Entry::sign(
            keypair,
            Draft {
                namespace: "elsewhere".into(),
                seq,
                prev: (seq > 1).then(|| plexus_crypto::sha256(b"the entry before")),
                timestamp_ms: 5,
                kind: "x-note".into(),
                body: json_text_to_canonical("{}").unwrap(),
            },
        )
        .unwrap()
        .encode(),
        // An unknown kind: it travels on the "other" topic, and no body is right for it.
        Input::BadBody => signed(keypair, seq, "note", "{}").encode(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever the mix, a batch answers each input exactly as admitting it alone would, in
    /// input order; an admitted entry is the entry the bytes encode; and only valid inputs
    /// are admitted.
    #[test]
    fn a_batch_answers_as_its_inputs_one_by_one(
        inputs in proptest::collection::vec(input(), 0..24),
        live in any::<bool>(),
    ) {
        let keypair = Keypair::from_seed(&[9; 32]);
        let route = if live { GOSSIP } else { Route::History };
        let all: Vec<Vec<u8>> = inputs
            .iter()
            .enumerate()
            .map(|(index, input)| bytes_of(&keypair, index as u64 + 1, input))
            .collect();
        let batch = admit_batch(all.iter().map(|bytes| (bytes.as_slice(), route)));
        prop_assert_eq!(batch.len(), all.len());
        for ((bytes, input), answer) in all.iter().zip(&inputs).zip(&batch) {
            prop_assert_eq!(answer, &admit(bytes, route));
            match (input, answer) {
                (Input::Valid, Ok(admitted)) => prop_assert_eq!(&admitted.entry().encode(), bytes),
                (Input::Pruned, Ok(_)) => prop_assert!(!live),
                (Input::OtherNamespace, Ok(_)) => prop_assert!(!live),
                (Input::BadBody, Err(refused)) => {
                    prop_assert_eq!(refused.reason, RefusalReason::BadBody)
                }
                (Input::Valid, Err(refused)) => prop_assert!(false, "valid input refused: {}", refused),
                (Input::Forged | Input::Truncated(_) | Input::BadBody, Ok(_)) => {
                    prop_assert!(false, "invalid input admitted")
                }
                _ => {}
            }
        }
    }
}
