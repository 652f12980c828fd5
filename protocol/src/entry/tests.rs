//! Unit and property tests of the entry format.

use super::*;
use proptest::prelude::*;

fn keypair() -> Keypair {
    Keypair::from_seed(&[42; 32])
}

fn draft(seq: u64, prev: Option<Hash256>, body: &[u8]) -> Draft {
    Draft {
        namespace: "team.alpha".into(),
        seq,
        prev,
        timestamp_ms: 1_764_000_000_000,
        kind: "note".into(),
        body: body.to_vec(),
    }
}

#[test]
fn a_signed_entry_round_trips_and_verifies() {
    let entry = Entry::sign(&keypair(), draft(1, None, b"hello")).unwrap();
    let bytes = entry.encode();
    assert_eq!(bytes.len(), entry.encoded_len());
    let decoded = Entry::decode(&bytes).unwrap();
    assert_eq!(decoded, entry);
    assert!(decoded.verify_signature());
    assert_eq!(decoded.id(), sha256(&decoded.signed_header_bytes));
}

#[test]
fn the_signing_input_is_the_domain_and_the_nine_fields() {
    let entry = Entry::sign(&keypair(), draft(1, None, b"x")).unwrap();
    assert_eq!(entry.signing_input(), signing_input(entry.header()));
}

#[test]
fn the_id_and_signature_survive_pruning_the_body() {
    let entry = Entry::sign(&keypair(), draft(1, None, b"a body")).unwrap();
    let pruned = Entry::decode(&entry.without_body().encode()).unwrap();
    assert_eq!(pruned.id(), entry.id());
    assert!(pruned.verify_signature());
    assert_eq!(pruned.body(), None);
}

#[test]
fn any_flipped_bit_is_caught() {
    let entry = Entry::sign(&keypair(), draft(2, Some(sha256(b"prev")), b"body bytes")).unwrap();
    let bytes = entry.encode();
    for index in 0..bytes.len() {
        for bit in 0..8 {
            let mut tampered = bytes.clone();
            tampered[index] ^= 1 << bit;
            if let Ok(decoded) = Entry::decode(&tampered) {
                assert!(
                    !decoded.verify_signature(),
                    "flipping bit {bit} of byte {index} went unnoticed"
                );
            }
        }
    }
}

#[test]
fn a_body_that_does_not_match_its_hash_is_refused() {
    let entry = Entry::sign(&keypair(), draft(1, None, b"original")).unwrap();
    let mut bytes = entry.encode();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    assert!(matches!(
        Entry::decode(&bytes),
        Err(EntryError::BodyHashMismatch { .. })
    ));
}

#[test]
fn oversized_input_is_refused_before_parsing() {
    let bytes = vec![0u8; MAX_ENTRY_LEN + 1];
    assert_eq!(
        Entry::decode(&bytes),
        Err(EntryError::TooLarge {
            len: MAX_ENTRY_LEN + 1,
            max: MAX_ENTRY_LEN
        })
    );
}

#[test]
fn oversized_bodies_cannot_be_signed() {
    let err = Entry::sign(&keypair(), draft(1, None, &vec![0; MAX_BODY_LEN + 1])).unwrap_err();
    assert!(err.to_string().contains("body limit"), "{err}");
}

#[test]
fn chain_fields_are_checked() {
    let err = Entry::sign(&keypair(), draft(0, None, b"")).unwrap_err();
    assert_eq!(err.to_string(), "field `seq`: must be 1 or more");
    let err = Entry::sign(&keypair(), draft(2, None, b"")).unwrap_err();
    assert!(err.to_string().starts_with("field `prev`"), "{err}");
    let err = Entry::sign(&keypair(), draft(1, Some(sha256(b"x")), b"")).unwrap_err();
    assert_eq!(err.to_string(), "field `prev`: must be null for seq 1");
}

#[test]
fn names_are_checked() {
    assert!(check_name("kind", "intent.renew").is_ok());
    let err = check_name("kind", "Intent").unwrap_err().to_string();
    assert!(err.contains("'I'"), "{err}");
    assert!(check_name("namespace", "").is_err());
    assert!(check_name("namespace", ".hidden").is_err());
    assert!(check_name("namespace", &"a".repeat(65)).is_err());
}

#[test]
fn wrong_shapes_name_the_field() {
    // [[...9 items...], null]: header too short.
    let mut fields = header_fields(
        Entry::sign(&keypair(), draft(1, None, b""))
            .unwrap()
            .header(),
    );
    let short = cbor::encode(&Value::Array(vec![
        Value::Array(fields.clone()),
        Value::Null,
    ]));
    assert_eq!(
        Entry::decode(&short),
        Err(field("header", "must be an array of 10 items"))
    );
    fields.push(Value::Bytes(vec![0; 63]));
    let bad_signature = cbor::encode(&Value::Array(vec![Value::Array(fields), Value::Null]));
    assert_eq!(
        Entry::decode(&bad_signature),
        Err(field("signature", "must be 64 bytes"))
    );
}

#[test]
fn a_damaged_entry_can_still_be_located() {
    let entry = Entry::sign(&keypair(), draft(3, Some(sha256(b"p")), b"body")).unwrap();
    let mut bytes = entry.encode();
    // Make the seq non-minimal: decoding fails, peeking still finds the position.
    // Envelope head, header head, version, "team.alpha" (1 + 10), author (2 + 32): seq is next.
    let seq_at = 1 + 1 + 1 + 11 + 34;
    assert_eq!(bytes[seq_at], 0x03);
    bytes.splice(seq_at..=seq_at, [0x18, 0x03]);
    assert!(Entry::decode(&bytes).is_err());
    assert_eq!(
        Entry::peek_position(&bytes),
        Some(("team.alpha".to_owned(), keypair().agent_id(), 3))
    );
}

#[test]
fn unknown_versions_are_refused() {
    let entry = Entry::sign(&keypair(), draft(1, None, b"")).unwrap();
    let mut fields = header_fields(entry.header());
    fields[0] = Value::Integer(2.into());
    fields.push(Value::Bytes(entry.signature().0.to_vec()));
    let bytes = cbor::encode(&Value::Array(vec![Value::Array(fields), Value::Null]));
    assert_eq!(
        Entry::decode(&bytes),
        Err(EntryError::UnsupportedVersion(2))
    );
}

proptest! {
    #[test]
    fn encode_decode_round_trips(
        seq in 1u64..u64::MAX,
        timestamp_ms in any::<u64>(),
        body in proptest::collection::vec(any::<u8>(), 0..2048),
        namespace in "[a-z0-9][a-z0-9._-]{0,63}",
        kind in "[a-z0-9][a-z0-9._-]{0,63}",
        prev in any::<[u8; 32]>(),
    ) {
        let prev = (seq > 1).then_some(Hash256(prev));
        let entry = Entry::sign(&keypair(), Draft { namespace, seq, prev, timestamp_ms, kind, body })
            .unwrap();
        let decoded = Entry::decode(&entry.encode()).unwrap();
        prop_assert!(decoded.verify_signature());
        prop_assert_eq!(decoded.encode(), entry.encode());
        prop_assert_eq!(decoded, entry);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = Entry::decode(&bytes);
        let _ = Entry::peek_position(&bytes);
        let _ = cbor::item_len(&bytes);
        let _ = crate::value::canonical_to_json(&bytes);
        let _ = crate::ForkProof::decode(&bytes);
        let _ = crate::export::ExportHeader::decode(&bytes);
        let _ = crate::export::ExportTrailer::decode(&bytes);
    }

    #[test]
    fn mutated_entries_never_panic_and_never_verify(
        index in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let entry = Entry::sign(&keypair(), draft(3, Some(sha256(b"p")), b"payload")).unwrap();
        let mut bytes = entry.encode();
        let position = index.index(bytes.len());
        prop_assume!(bytes[position] != byte);
        bytes[position] = byte;
        if let Ok(decoded) = Entry::decode(&bytes) {
            prop_assert!(!decoded.verify_signature());
        }
    }
}
