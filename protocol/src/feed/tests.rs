//! Tests of chain placement, the audit chain tracker and fork proofs.

use super::*;
use crate::entry::Draft;
use plexus_crypto::Keypair;

fn chain(keypair: &Keypair, count: u64) -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    for seq in 1..=count {
        let prev = entries.last().map(Entry::id);
        entries.push(entry(keypair, seq, prev, b"body"));
    }
    entries
}

fn entry(keypair: &Keypair, seq: u64, prev: Option<Hash256>, body: &[u8]) -> Entry {
    Entry::sign(
        keypair,
        Draft {
            namespace: "ns".into(),
            seq,
            prev,
            timestamp_ms: 1_000 + seq,
            kind: "note".into(),
            body: body.to_vec(),
        },
    )
    .unwrap()
}

fn head(entry: &Entry) -> Option<FeedHead> {
    Some(FeedHead {
        seq: entry.header().seq,
        id: entry.id(),
    })
}

#[test]
fn placement_covers_every_case() {
    let keypair = Keypair::from_seed(&[3; 32]);
    let entries = chain(&keypair, 3);
    assert_eq!(place(None, None, &entries[0]), Placement::Next);
    assert_eq!(place(head(&entries[0]), None, &entries[1]), Placement::Next);
    assert_eq!(
        place(head(&entries[0]), None, &entries[2]),
        Placement::Ahead { missing_from: 2 }
    );
    assert_eq!(
        place(head(&entries[1]), Some(entries[0].id()), &entries[0]),
        Placement::Duplicate
    );
    let rival = entry(&keypair, 2, Some(entries[0].id()), b"other body");
    assert_eq!(
        place(head(&entries[1]), Some(entries[1].id()), &rival),
        Placement::Fork {
            stored: entries[1].id()
        }
    );
    let rival_child = entry(&keypair, 3, Some(rival.id()), b"child");
    assert_eq!(
        place(head(&entries[1]), None, &rival_child),
        Placement::BrokenLink {
            head: head(&entries[1]).unwrap()
        }
    );
}

fn observe(tracker: &mut ChainTracker, entry: &Entry) -> ChainEvent {
    tracker.observe(entry.header().seq, entry.header().prev, entry.id())
}

#[test]
fn tracker_accepts_a_clean_chain() {
    let entries = chain(&Keypair::from_seed(&[4; 32]), 5);
    let mut tracker = ChainTracker::default();
    for entry in &entries {
        assert_eq!(observe(&mut tracker, entry), ChainEvent::Extends);
    }
    assert_eq!(tracker.last_seq(), 5);
}

#[test]
fn tracker_reports_gaps_duplicates_reorders_and_forks() {
    let keypair = Keypair::from_seed(&[5; 32]);
    let entries = chain(&keypair, 6);
    let mut tracker = ChainTracker::default();
    assert_eq!(
        observe(&mut tracker, &entries[1]),
        ChainEvent::Gap {
            missing_from: 1,
            missing_to: 1
        }
    );
    assert_eq!(observe(&mut tracker, &entries[1]), ChainEvent::Duplicate);
    assert_eq!(
        observe(&mut tracker, &entries[4]),
        ChainEvent::Gap {
            missing_from: 3,
            missing_to: 4
        }
    );
    assert_eq!(
        observe(&mut tracker, &entries[2]),
        ChainEvent::OutOfOrder { after_seq: 5 }
    );
    let rival = entry(&keypair, 5, Some(entries[3].id()), b"rival");
    assert_eq!(
        observe(&mut tracker, &rival),
        ChainEvent::Fork {
            other: entries[4].id()
        }
    );
    // Either branch may continue after a fork.
    assert_eq!(observe(&mut tracker, &entries[5]), ChainEvent::Extends);
}

#[test]
fn tracker_reports_a_broken_link_but_not_after_an_unverifiable_entry() {
    let keypair = Keypair::from_seed(&[6; 32]);
    let entries = chain(&keypair, 3);
    let stranger = entry(&keypair, 3, Some(sha256_of("elsewhere")), b"x");
    let mut tracker = ChainTracker::default();
    observe(&mut tracker, &entries[0]);
    observe(&mut tracker, &entries[1]);
    assert_eq!(
        observe(&mut tracker, &stranger),
        ChainEvent::BrokenLink {
            expected: vec![entries[1].id()],
            expected_total: 1,
        }
    );

    let mut tracker = ChainTracker::default();
    observe(&mut tracker, &entries[0]);
    tracker.observe_unverified(2);
    assert_eq!(observe(&mut tracker, &entries[2]), ChainEvent::Extends);

    // A bad entry whose claimed seq was damaged (2 became 18) does not move the feed.
    let mut tracker = ChainTracker::default();
    observe(&mut tracker, &entries[0]);
    tracker.observe_unverified(18);
    assert_eq!(
        observe(&mut tracker, &entries[2]),
        ChainEvent::Gap {
            missing_from: 2,
            missing_to: 2
        }
    );
}

#[test]
fn thousands_of_rivals_at_one_seq_are_tracked_and_a_broken_link_names_a_bounded_few() {
    // A crafted export: 5,000 different ids at seq 1 of one feed, then a seq 2 that links to
    // none of them. Every rival is a fork against the first, a repeat of any is a duplicate,
    // and the broken link's finding names a handful of ids and says how many there were.
    let mut tracker = ChainTracker::default();
    let rivals: Vec<Hash256> = (0..5_000)
        .map(|index| sha256_of(&format!("rival {index}")))
        .collect();
    assert_eq!(tracker.observe(1, None, rivals[0]), ChainEvent::Extends);
    for rival in &rivals[1..] {
        assert_eq!(
            tracker.observe(1, None, *rival),
            ChainEvent::Fork { other: rivals[0] }
        );
    }
    assert_eq!(
        tracker.observe(1, None, rivals[4_321]),
        ChainEvent::Duplicate
    );
    assert_eq!(
        tracker.observe(2, Some(sha256_of("nowhere")), sha256_of("child")),
        ChainEvent::BrokenLink {
            expected: rivals[..MAX_LISTED_IDS].to_vec(),
            expected_total: 5_000,
        }
    );
    // A child of any rival, even the last one, links.
    let mut tracker = ChainTracker::default();
    for rival in &rivals {
        tracker.observe(1, None, *rival);
    }
    assert_eq!(
        tracker.observe(2, Some(rivals[4_999]), sha256_of("child")),
        ChainEvent::Extends
    );
}

fn sha256_of(text: &str) -> Hash256 {
    plexus_crypto::sha256(text.as_bytes())
}

#[test]
fn fork_proofs_are_canonical_and_checked() {
    let keypair = Keypair::from_seed(&[7; 32]);
    let a = entry(&keypair, 1, None, b"left");
    let b = entry(&keypair, 1, None, b"right");
    let proof = ForkProof::new(a.clone(), b.clone()).unwrap();
    assert_eq!(
        proof.encode(),
        ForkProof::new(b.clone(), a.clone()).unwrap().encode()
    );
    let decoded = ForkProof::decode(&proof.encode()).unwrap();
    assert_eq!(decoded, proof);
    assert_eq!(decoded.seq(), 1);
    assert_eq!(decoded.feed().author, keypair.agent_id());

    assert_eq!(
        ForkProof::new(a.clone(), a.clone()),
        Err(ForkProofError::Identical)
    );
    let other_seq = entry(&keypair, 2, Some(a.id()), b"x");
    assert_eq!(
        ForkProof::new(a.clone(), other_seq),
        Err(ForkProofError::NotSamePosition)
    );
    let stranger = entry(&Keypair::from_seed(&[8; 32]), 1, None, b"left");
    assert_eq!(
        ForkProof::new(a, stranger),
        Err(ForkProofError::NotSamePosition)
    );
}

/// A proof array built by hand from two envelopes, in the given order.
fn proof_bytes(first: &Entry, second: &Entry) -> Vec<u8> {
    cbor::encode(&Value::Array(vec![
        Value::Text(FORK_PROOF_TAG.into()),
        Value::Bytes(first.encode()),
        Value::Bytes(second.encode()),
    ]))
}

#[test]
fn only_the_canonical_form_of_a_fork_proof_is_accepted() {
    // One fork must have one proof encoding (gossip deduplicates by bytes), so a proof with
    // bodies, or with its entries in descending id order, is refused.
    let keypair = Keypair::from_seed(&[7; 32]);
    let a = entry(&keypair, 1, None, b"left");
    let b = entry(&keypair, 1, None, b"right");
    let (low, high) = if a.id() < b.id() { (a, b) } else { (b, a) };
    let canonical = proof_bytes(&low.without_body(), &high.without_body());
    assert!(ForkProof::decode(&canonical).is_ok());
    assert_eq!(
        ForkProof::decode(&proof_bytes(&low, &high)),
        Err(ForkProofError::BodyPresent)
    );
    assert_eq!(
        ForkProof::decode(&proof_bytes(&high.without_body(), &low.without_body())),
        Err(ForkProofError::Unordered)
    );
}

#[test]
fn a_damaged_entry_after_one_at_the_last_possible_seq_does_not_overflow_the_tracker() {
    // Anyone can sign an entry at seq u64::MAX in their own feed; a damaged entry of that feed
    // after it in an export file used to overflow `last_seq + 1` and panic the auditor.
    let keypair = Keypair::from_seed(&[8; 32]);
    let last = Entry::sign(
        &keypair,
        Draft {
            namespace: "ns".into(),
            seq: u64::MAX,
            prev: Some(sha256_of("before")),
            timestamp_ms: 1_000,
            kind: "note".into(),
            body: b"x".to_vec(),
        },
    )
    .unwrap();
    let mut tracker = ChainTracker::default();
    assert_eq!(
        observe(&mut tracker, &last),
        ChainEvent::Gap {
            missing_from: 1,
            missing_to: u64::MAX - 1
        }
    );
    tracker.observe_unverified(u64::MAX);
    tracker.observe_unverified(0);
    tracker.observe_unverified(7);
    assert_eq!(
        tracker.last_seq(),
        u64::MAX,
        "a damaged entry does not move the feed"
    );
    assert_eq!(observe(&mut tracker, &last), ChainEvent::Duplicate);
}
