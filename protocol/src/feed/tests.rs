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
            expected: vec![entries[1].id()]
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
