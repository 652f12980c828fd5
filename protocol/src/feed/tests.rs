//! Tests of chain placement, the log's decisions about an arriving entry, the audit chain
//! tracker and fork proofs.

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

/// A feed's stored entries in memory, counting the reads [`decide`] makes.
struct MemoryFeed {
    stored: Vec<Entry>,
    reads: usize,
}

impl FeedLookup for MemoryFeed {
    type Error = std::convert::Infallible;

    fn stored_head(&mut self) -> Result<Option<FeedHead>, Self::Error> {
        self.reads += 1;
        Ok(self.stored.last().and_then(head))
    }

    fn stored_id_at(&mut self, seq: u64) -> Result<Option<Hash256>, Self::Error> {
        self.reads += 1;
        Ok(self
            .stored
            .iter()
            .find(|stored| stored.header().seq == seq)
            .map(Entry::id))
    }
}

fn decided(batch: &BatchState, entry: &Entry, stored: &[Entry]) -> (Decision, usize) {
    let mut feed = MemoryFeed {
        stored: stored.to_vec(),
        reads: 0,
    };
    let Ok(decision) = decide(batch, entry, &mut feed);
    (decision, feed.reads)
}

#[test]
fn what_the_write_did_decides_first_and_without_reading_the_store() {
    let keypair = Keypair::from_seed(&[5; 32]);
    let chain = chain(&keypair, 3);
    let stored = &chain[..2];
    let none = BatchState::default();
    let cases = [
        (
            BatchState {
                entry_written: true,
                ..none
            },
            Decision::Duplicate,
        ),
        (
            BatchState {
                entry_refused: true,
                ..none
            },
            Decision::RefusedAgain,
        ),
        (
            BatchState {
                prev_refused: true,
                ..none
            },
            Decision::FollowsRefused,
        ),
        (
            BatchState {
                feed_held: true,
                ..none
            },
            Decision::AfterCommit,
        ),
        // A replay or rival of an entry accepted in this write: commit before placing it.
        (
            BatchState {
                feed_tip: head(&chain[2]),
                ..none
            },
            Decision::AfterCommit,
        ),
    ];
    for (batch, expected) in cases {
        assert_eq!(
            decided(&batch, &chain[2], stored),
            (expected, 0),
            "{batch:?}"
        );
    }
    // The write's own tip is the head: the next entry after it needs no read either.
    let next = entry(&keypair, 4, Some(chain[2].id()), b"four");
    let after_tip = BatchState {
        feed_tip: head(&chain[2]),
        ..none
    };
    assert_eq!(decided(&after_tip, &next, stored), (Decision::Next, 0));
}

#[test]
fn the_stored_feed_decides_next_stored_rival_and_hold() {
    let keypair = Keypair::from_seed(&[6; 32]);
    let chain = chain(&keypair, 4);
    let stored = &chain[..2];
    let none = BatchState::default();
    // The next entry reads the head only; one at or below the head reads its position too.
    assert_eq!(decided(&none, &chain[2], stored), (Decision::Next, 1));
    assert_eq!(decided(&none, &chain[1], stored), (Decision::Stored, 2));
    let rival = entry(&keypair, 2, Some(chain[0].id()), b"rival");
    assert_eq!(
        decided(&none, &rival, stored),
        (
            Decision::Rival {
                stored: chain[1].id()
            },
            2
        )
    );
    // Ahead: missing from the seq after the head.
    assert_eq!(
        decided(&none, &chain[3], stored),
        (Decision::Hold { missing_from: 3 }, 1)
    );
    // The next seq on another branch: the head's rival is missing, so from the head's seq.
    let other_branch = entry(&keypair, 3, Some(rival.id()), b"other branch");
    assert_eq!(
        decided(&none, &other_branch, stored),
        (Decision::Hold { missing_from: 2 }, 1)
    );
    // An empty feed takes seq 1 and holds anything later.
    assert_eq!(decided(&none, &chain[0], &[]), (Decision::Next, 1));
    assert_eq!(
        decided(&none, &chain[1], &[]),
        (Decision::Hold { missing_from: 1 }, 1)
    );
}

#[test]
fn only_a_copy_with_its_body_completes_and_only_a_pruned_one() {
    assert!(completes(true, false));
    assert!(!completes(true, true));
    assert!(!completes(false, false));
    assert!(!completes(false, true));
}

#[test]
fn a_fork_proof_is_kept_once_per_position_and_within_the_bound() {
    assert!(keep_fork_proof(false, 0, 2));
    assert!(keep_fork_proof(false, 1, 2));
    assert!(!keep_fork_proof(false, 2, 2));
    assert!(!keep_fork_proof(true, 0, 2));
}

#[test]
fn a_successor_of_a_refused_entry_is_refused_by_the_same_rule_naming_both() {
    let keypair = Keypair::from_seed(&[7; 32]);
    let chain = chain(&keypair, 2);
    let refused = crate::policy::Violation {
        rule: crate::policy::Rule::NotMember,
        policy_version: Some(3),
        message: "author is not a member".into(),
        retry_after_ms: None,
    };
    let follow = refusal_of_successor(&chain[1], &refused);
    assert_eq!(
        (follow.rule, follow.policy_version),
        (refused.rule, refused.policy_version)
    );
    assert!(follow.message.contains("entry seq 2"), "{}", follow.message);
    assert!(
        follow.message.contains(&refused.message),
        "{}",
        follow.message
    );
}

const LIMITS: PendingLimits = PendingLimits {
    capacity: 6,
    per_author: 3,
    per_peer: 4,
};

#[test]
fn pending_refuses_over_a_quota_and_evicts_only_for_a_feed_the_node_holds() {
    let load = PendingLoad {
        occupied: 0,
        by_author: 0,
        by_peer: Some(0),
        feed_held: false,
    };
    let no_victim = || None::<u32>;
    assert_eq!(hold(&load, &LIMITS, no_victim), HoldDecision::Hold);
    let author_full = PendingLoad {
        by_author: 3,
        ..load
    };
    assert_eq!(
        hold(&author_full, &LIMITS, no_victim),
        HoldDecision::Refuse(PendingRefusal::AuthorQuota)
    );
    let peer_full = PendingLoad {
        by_peer: Some(4),
        ..load
    };
    assert_eq!(
        hold(&peer_full, &LIMITS, no_victim),
        HoldDecision::Refuse(PendingRefusal::PeerQuota)
    );
    // An unknown peer (after a restart) has no quota to exceed.
    let unknown_peer = PendingLoad {
        by_peer: None,
        ..load
    };
    assert_eq!(hold(&unknown_peer, &LIMITS, no_victim), HoldDecision::Hold);
    let full = PendingLoad {
        occupied: 6,
        ..load
    };
    assert_eq!(
        hold(&full, &LIMITS, || Some(9)),
        HoldDecision::Refuse(PendingRefusal::Full)
    );
    let full_held = PendingLoad {
        feed_held: true,
        ..full
    };
    assert_eq!(
        hold(&full_held, &LIMITS, || Some(9)),
        HoldDecision::HoldEvicting(9)
    );
    assert_eq!(
        hold(&full_held, &LIMITS, no_victim),
        HoldDecision::Refuse(PendingRefusal::Full)
    );
}

proptest::proptest! {
    /// Whatever arrives, in any order, `pending` kept by these decisions stays within its
    /// capacity and every quota, evicts only an entry of a feed the node does not hold for one
    /// of a feed it does, and refuses for room only when it is full.
    #[test]
    fn pending_stays_within_its_bounds(
        arrivals in proptest::collection::vec((0u8..4, proptest::option::of(0u8..3), proptest::bool::ANY), 0..80)
    ) {
        // Held entries in arrival order: (author, peer, feed held).
        let mut held: Vec<(u8, Option<u8>, bool)> = Vec::new();
        for (author, peer, feed_held) in arrivals {
            let load = PendingLoad {
                occupied: held.len(),
                by_author: held.iter().filter(|held| held.0 == author).count(),
                by_peer: peer.map(|peer| held.iter().filter(|held| held.1 == Some(peer)).count()),
                feed_held,
            };
            let oldest_unheld = || held.iter().position(|held| !held.2);
            match hold(&load, &LIMITS, oldest_unheld) {
                HoldDecision::Hold => held.push((author, peer, feed_held)),
                HoldDecision::HoldEvicting(victim) => {
                    proptest::prop_assert!(feed_held && !held[victim].2);
                    proptest::prop_assert_eq!(held.len(), LIMITS.capacity);
                    held.remove(victim);
                    held.push((author, peer, feed_held));
                }
                HoldDecision::Refuse(PendingRefusal::Full) => {
                    proptest::prop_assert_eq!(held.len(), LIMITS.capacity);
                    proptest::prop_assert!(!feed_held || held.iter().all(|held| held.2));
                }
                HoldDecision::Refuse(PendingRefusal::AuthorQuota) => {
                    proptest::prop_assert_eq!(load.by_author, LIMITS.per_author);
                }
                HoldDecision::Refuse(PendingRefusal::PeerQuota) => {
                    proptest::prop_assert_eq!(load.by_peer, Some(LIMITS.per_peer));
                }
            }
            proptest::prop_assert!(held.len() <= LIMITS.capacity);
            for who in 0..4 {
                proptest::prop_assert!(held.iter().filter(|held| held.0 == who).count() <= LIMITS.per_author);
                proptest::prop_assert!(held.iter().filter(|held| held.1 == Some(who)).count() <= LIMITS.per_peer);
            }
        }
    }
}
