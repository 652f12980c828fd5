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
fn a_position_is_read_from_the_first_four_fields_only_and_only_if_they_are_valid() {
    let entry = Entry::sign(&keypair(), draft(3, Some(sha256(b"p")), b"body")).unwrap();
    let good = entry.encode();
    let find = |needle: &[u8]| {
        good.windows(needle.len())
            .position(|w| w == needle)
            .unwrap()
    };
    // Invalid UTF-8 in the kind, after the seq: the entry is malformed but still located.
    let mut bad_kind = good.clone();
    bad_kind[find(b"note")] = 0xff;
    assert!(matches!(
        Entry::decode(&bad_kind),
        Err(EntryError::Cbor(CborError::Malformed { .. }))
    ));
    assert_eq!(
        Entry::peek_position(&bad_kind),
        Some(("team.alpha".to_owned(), keypair().agent_id(), 3))
    );
    // A namespace that is not a valid name locates nothing (a damaged name would otherwise
    // open a feed of its own in the auditor).
    let mut bad_namespace = good.clone();
    bad_namespace[find(b"team.alpha")] = b'T';
    assert_eq!(Entry::peek_position(&bad_namespace), None);
    // Only envelopes, framed as such, are located.
    let mut not_envelope = good.clone();
    not_envelope[0] = 0x83;
    assert_eq!(Entry::peek_position(&not_envelope), None);
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

/// Integers around every boundary of the CBOR head widths.
fn boundary_uint() -> impl Strategy<Value = u64> {
    prop_oneof![
        prop::sample::select(vec![
            1,
            2,
            23,
            24,
            255,
            256,
            65_535,
            65_536,
            0xffff_ffff,
            0x1_0000_0000,
            u64::MAX
        ]),
        any::<u64>(),
    ]
}

/// An envelope with arbitrary valid fields, optionally pruned.
fn valid_envelope() -> impl Strategy<Value = Vec<u8>> {
    (
        boundary_uint(),
        boundary_uint(),
        prop_oneof![
            Just(0usize),
            Just(23),
            Just(24),
            Just(255),
            Just(256),
            0..600usize
        ],
        "[a-z0-9][a-z0-9._-]{0,63}",
        "x-[a-z0-9._-]{0,62}",
        any::<[u8; 32]>(),
        any::<bool>(),
    )
        .prop_map(
            |(seq, timestamp_ms, body_len, namespace, kind, prev, pruned)| {
                let seq = seq.max(1);
                let prev = (seq > 1).then_some(Hash256(prev));
                let draft = Draft {
                    namespace,
                    seq,
                    prev,
                    timestamp_ms,
                    kind,
                    body: vec![0x5a; body_len],
                };
                let entry = Entry::sign(&keypair(), draft).unwrap();
                if pruned {
                    entry.without_body().encode()
                } else {
                    entry.encode()
                }
            },
        )
}

/// Ways to damage an envelope: overwrite, insert or delete a byte, cut the end, append bytes,
/// or widen one head into a longer, non-canonical form.
#[derive(Debug, Clone)]
enum Damage {
    Overwrite(prop::sample::Index, u8),
    Insert(prop::sample::Index, u8),
    Delete(prop::sample::Index),
    Truncate(prop::sample::Index),
    Append(Vec<u8>),
    WidenHead(prop::sample::Index, u8),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<prop::sample::Index>(), any::<u8>())
            .prop_map(|(at, byte)| Damage::Overwrite(at, byte)),
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(at, byte)| Damage::Insert(at, byte)),
        any::<prop::sample::Index>().prop_map(Damage::Delete),
        any::<prop::sample::Index>().prop_map(Damage::Truncate),
        proptest::collection::vec(any::<u8>(), 1..4).prop_map(Damage::Append),
        (any::<prop::sample::Index>(), 0u8..4).prop_map(|(at, width)| Damage::WidenHead(at, width)),
    ]
}

/// Rewrites the `head`-th of the 13 heads of a valid envelope with a `1 << width`-byte
/// argument: the same value in a longer, non-canonical form (`null` becomes `undefined`).
/// Returns the input unchanged when the value does not fit that width.
fn widen_head(mut bytes: Vec<u8>, head: usize, width: u8) -> Vec<u8> {
    let at = head_offsets(&bytes)[head];
    let initial = bytes[at];
    if initial == 0xf6 {
        bytes[at] = 0xf7;
        return bytes;
    }
    let (major, info) = (initial & 0xe0, initial & 0x1f);
    let argument_byte = |index: usize| bytes.get(at + index).copied().unwrap_or_default();
    let (argument, old_len) = match info {
        0..=23 => (u64::from(info), 1),
        24 => (u64::from(argument_byte(1)), 2),
        25 => (
            u64::from(u16::from_be_bytes([argument_byte(1), argument_byte(2)])),
            3,
        ),
        _ => return bytes,
    };
    let new_width = 1usize << width;
    if new_width < 8 && argument >> (8 * new_width) != 0 {
        return bytes;
    }
    let mut widened = vec![major | (24 + width)];
    widened.extend_from_slice(&argument.to_be_bytes()[8 - new_width..]);
    let end = (at + old_len).min(bytes.len());
    bytes.splice(at..end, widened);
    bytes
}

/// Offsets of the CBOR heads of an envelope, found with the reference decoder's framing: all
/// 13 for a well-formed envelope, fewer when damage stops the walk.
fn head_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut offsets = vec![0, 1];
    let mut position = 2;
    for _ in 0..11 {
        offsets.push(position);
        match bytes.get(position..).map(cbor::item_len) {
            Some(Ok(Some(len))) => position += len,
            _ => break,
        }
    }
    offsets.retain(|offset| *offset < bytes.len());
    offsets
}

fn apply(mut bytes: Vec<u8>, damage: &Damage) -> Vec<u8> {
    if bytes.is_empty() {
        // Nothing left to overwrite, delete or widen: only growing still applies.
        return match damage {
            Damage::Insert(_, byte) => vec![*byte],
            Damage::Append(extra) => extra.clone(),
            _ => bytes,
        };
    }
    match damage {
        Damage::Overwrite(at, byte) => {
            let at = at.index(bytes.len());
            bytes[at] = *byte;
        }
        Damage::Insert(at, byte) => bytes.insert(at.index(bytes.len() + 1), *byte),
        Damage::Delete(at) => {
            bytes.remove(at.index(bytes.len()));
        }
        Damage::Truncate(at) => bytes.truncate(at.index(bytes.len())),
        Damage::Append(extra) => bytes.extend_from_slice(extra),
        Damage::WidenHead(head, width) => {
            let heads = head_offsets(&bytes).len();
            return widen_head(bytes, head.index(heads), *width);
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn the_fast_decoder_takes_every_valid_entry(bytes in valid_envelope()) {
        let fast = fast::decode(&bytes, None);
        prop_assert!(fast.is_some(), "the fast path gave up on a valid entry");
        let reference = Entry::decode_reference(&bytes).unwrap();
        prop_assert_eq!(fast.as_ref(), Some(&reference.0));
        prop_assert_eq!(reference.1, None);
        let mut cache = AgentIdCache::new();
        prop_assert_eq!(fast::decode(&bytes, Some(&mut cache)), fast);
        let view = Entry::decode_view(&bytes, &mut cache).unwrap();
        let mut input = Vec::new();
        view.append_signing_input(&mut input);
        prop_assert_eq!(input, reference.0.signing_input());
        prop_assert_eq!(view.id(), reference.0.id());
        prop_assert_eq!(view.to_entry(), reference.0);
    }

    #[test]
    fn damaged_entries_get_the_reference_verdict(
        bytes in valid_envelope(),
        damages in proptest::collection::vec(damage(), 1..3),
    ) {
        let damaged = damages.iter().fold(bytes, apply);
        let reference = Entry::decode_reference(&damaged);
        // Whatever the fast path accepts, the reference accepts identically.
        if let Some(entry) = fast::decode(&damaged, None) {
            prop_assert_eq!(&reference, &Ok((entry, None)));
        }
        prop_assert_eq!(Entry::decode_keeping_header(&damaged), reference.clone());
        let mut cache = AgentIdCache::new();
        let view = Entry::decode_view(&damaged, &mut cache).map(|view| view.to_entry());
        prop_assert_eq!(view.is_some(), matches!(reference, Ok((_, None))));
        prop_assert_eq!(
            Entry::decode_keeping_header_cached(&damaged, &mut cache),
            reference.clone()
        );
        prop_assert_eq!(Entry::decode(&damaged), reference.and_then(|(entry, error)| match error {
            Some(error) => Err(error),
            None => Ok(entry),
        }));
    }

    #[test]
    fn arbitrary_bytes_get_the_reference_verdict(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let reference = Entry::decode_reference(&bytes);
        if let Some(entry) = fast::decode(&bytes, None) {
            prop_assert_eq!(&reference, &Ok((entry, None)));
        }
        prop_assert_eq!(Entry::decode_keeping_header(&bytes), reference);
    }
}

#[test]
fn widened_heads_are_refused_by_both_decoders_alike() {
    let draft = Draft {
        kind: "x-note".into(),
        ..draft(300, Some(sha256(b"p")), b"x-note body")
    };
    let bytes = Entry::sign(&keypair(), draft).unwrap().encode();
    let mut widened_count = 0;
    for head in 0..13 {
        for width in 0..4u8 {
            let damaged = widen_head(bytes.clone(), head, width);
            if damaged == bytes {
                continue;
            }
            widened_count += 1;
            assert!(
                fast::decode(&damaged, None).is_none(),
                "head {head}, width {width}"
            );
            let reference = Entry::decode_reference(&damaged);
            assert!(
                matches!(
                    reference,
                    Err(EntryError::Cbor(CborError::NotCanonical { .. }))
                ),
                "head {head}, width {width}: {reference:?}"
            );
            assert_eq!(Entry::decode_keeping_header(&damaged), reference);
        }
    }
    // Every head can be widened at least to the 8-byte form.
    assert!(widened_count >= 13 * 3, "{widened_count}");
}
