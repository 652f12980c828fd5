//! Tests of what a hostile peer can make the ingest worker spend: fork proofs from fresh
//! self-equivocating keys, orphan floods in `pending`, and sync request floods.

use std::sync::{Arc, Mutex};

use libp2p::gossipsub::{MessageAcceptance, MessageId};
use libp2p::PeerId;
use plexus_crypto::Keypair;
use plexus_protocol::value::json_text_to_canonical;
use plexus_protocol::{Draft, Entry, FeedKey, ForkProof};
use tokio::sync::{mpsc, watch};

use super::ingest::{Pipeline, Worker};
use super::limits::{Ingress, IngressLimits, FORK_PROOF_BURST};
use super::Shared;
use crate::net::{topics, Command, NetEvent, NetworkHandle};
use crate::store::{
    IngestOutcome, Log, LogOptions, RejectReason, MAX_PENDING_PER_PEER, PENDING_TTL_MS,
};

const NAMESPACE: &str = "ns";

/// Entry `seq` of `author`'s feed after `prev`, with `text` in its body.
fn signed(author: &Keypair, seq: u64, prev: Option<&Entry>, text: &str) -> Entry {
    let draft = Draft {
        namespace: NAMESPACE.into(),
        seq,
        prev: prev.map(Entry::id),
        timestamp_ms: 1_767_225_600_000 + seq,
        kind: "x-note".into(),
        body: json_text_to_canonical(&format!("{{\"text\": \"{text}\"}}")).unwrap(),
    };
    Entry::sign(author, draft).unwrap()
}

/// A proof that `author` signed two entries at seq 1.
fn fork_at_one(author: &Keypair) -> (Entry, ForkProof) {
    let left = signed(author, 1, None, "left");
    let right = signed(author, 1, None, "right");
    (left.clone(), ForkProof::new(left, right).unwrap())
}

fn fork_gossip(peer: PeerId, proof: &ForkProof) -> NetEvent {
    let data = proof.encode();
    NetEvent::Gossip {
        message_id: MessageId::new(&plexus_crypto::sha256(&data).0),
        peer,
        topic: topics::fork_topic(NAMESPACE).hash().into_string(),
        data,
        received: std::time::Instant::now(),
    }
}

/// Runs a worker over `events` until they are all handled; returns the shared state and the
/// commands it sent to the swarm task.
fn run_worker(log: &Arc<Log>, events: Vec<NetEvent>) -> (Arc<Shared>, Vec<Command>) {
    let (events_tx, events_rx) = mpsc::channel(events.len().max(1));
    for event in events {
        events_tx.try_send(event).unwrap();
    }
    drop(events_tx);
    // Room for every command the worker can send (a few per event), so it never blocks.
    let (commands, mut commands_rx) = mpsc::channel(4 * 1024);
    let shared = Arc::new(Shared {
        quarantine_forkers: true,
        clock_skew_ms: plexus_protocol::coord::DEFAULT_CLOCK_SKEW_MS,
        quarantined: Mutex::new(Default::default()),
        changes: watch::channel(0).0,
        gossip_failures: Default::default(),
    });
    Worker {
        pipeline: Arc::new(Pipeline {
            log: Arc::clone(log),
            net: NetworkHandle::new(commands, PeerId::random()),
            shared: Arc::clone(&shared),
            ingress: Arc::new(Mutex::new(Ingress::new(IngressLimits::default()))),
        }),
        events: events_rx,
    }
    .run();
    let mut sent = Vec::new();
    while let Ok(command) = commands_rx.try_recv() {
        sent.push(command);
    }
    (shared, sent)
}

/// The gossip verdicts among `commands`, in order.
fn verdicts(commands: &[Command]) -> Vec<MessageAcceptance> {
    commands
        .iter()
        .flat_map(|command| match command {
            Command::Validate(verdicts) => verdicts.iter().map(|v| v.acceptance).collect(),
            _ => Vec::new(),
        })
        .collect()
}

/// Proofs published (re-gossiped) by the worker.
fn published(commands: &[Command]) -> usize {
    commands
        .iter()
        .filter(|command| matches!(command, Command::Publish { .. }))
        .count()
}

#[test]
fn fork_proofs_about_feeds_the_node_does_not_hold_are_neither_stored_nor_forwarded() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path()).unwrap());
    // Each proof from a fresh key, through a different peer, so no per-peer allowance applies.
    let events: Vec<NetEvent> = (0..200)
        .map(|_| fork_gossip(PeerId::random(), &fork_at_one(&Keypair::generate()).1))
        .collect();
    let (shared, commands) = run_worker(&log, events);
    assert_eq!(log.stats().unwrap().forks, 0, "no proof is stored");
    assert!(shared.quarantined.lock().unwrap().is_empty());
    let verdicts = verdicts(&commands);
    assert_eq!(verdicts.len(), 200);
    assert!(
        verdicts
            .iter()
            .all(|verdict| *verdict == MessageAcceptance::Ignore),
        "none is forwarded, none costs the peer score: {verdicts:?}"
    );
    assert_eq!(published(&commands), 0);
}

#[test]
fn a_proof_about_a_held_feed_is_kept_once_and_its_author_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path()).unwrap());
    let forker = Keypair::generate();
    let (held, proof) = fork_at_one(&forker);
    log.ingest(&held.encode(), "test", 0).unwrap();
    // A second proof about the same feed, at seq 2, adds nothing quarantine needs.
    let second = signed(&forker, 2, Some(&held), "two");
    let rival = signed(&forker, 2, Some(&held), "two again");
    let later = ForkProof::new(second, rival).unwrap();
    let peer = PeerId::random();
    let (shared, commands) = run_worker(
        &log,
        vec![fork_gossip(peer, &proof), fork_gossip(peer, &later)],
    );
    assert_eq!(log.forks().unwrap(), vec![proof]);
    let feed = FeedKey::of(&held);
    assert!(shared.quarantined.lock().unwrap().contains(&feed));
    assert_eq!(
        verdicts(&commands),
        vec![MessageAcceptance::Accept, MessageAcceptance::Ignore]
    );
}

#[test]
fn one_peer_spends_its_fork_proof_allowance_and_no_more() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path()).unwrap());
    // Forty forked feeds the node holds, all proved through one peer.
    let sent = 40;
    let peer = PeerId::random();
    let mut events = Vec::new();
    for _ in 0..sent {
        let (held, proof) = fork_at_one(&Keypair::generate());
        log.ingest(&held.encode(), "test", 0).unwrap();
        events.push(fork_gossip(peer, &proof));
    }
    let (_, commands) = run_worker(&log, events);
    let stored = log.stats().unwrap().forks as usize;
    // The burst, and at most one more should the allowance refill during the test.
    let burst = FORK_PROOF_BURST as usize;
    assert!(
        (burst..=burst + 1).contains(&stored),
        "{stored} of {sent} proofs stored"
    );
    let accepted = verdicts(&commands)
        .into_iter()
        .filter(|verdict| *verdict == MessageAcceptance::Accept)
        .count();
    assert_eq!(accepted, stored);
}

/// An orphan: entry 2 of a fresh author's feed, whose entry 1 the node never saw.
fn orphan() -> Entry {
    let author = Keypair::generate();
    let first = signed(&author, 1, None, "unseen");
    signed(&author, 2, Some(&first), "orphan")
}

fn is_pending(outcome: &IngestOutcome) -> bool {
    matches!(outcome, IngestOutcome::Pending { .. })
}

fn is_pending_full(outcome: &IngestOutcome) -> bool {
    matches!(
        outcome,
        IngestOutcome::Rejected {
            reason: RejectReason::PendingFull,
            ..
        }
    )
}

#[test]
fn one_peer_fills_no_more_than_its_share_of_pending() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path()).unwrap();
    let attacker = format!("gossip:{}", PeerId::random());
    let mut held = 0;
    for _ in 0..MAX_PENDING_PER_PEER + 20 {
        let outcome = log.ingest(&orphan().encode(), &attacker, 0).unwrap();
        held += usize::from(is_pending(&outcome));
    }
    assert_eq!(held, MAX_PENDING_PER_PEER);
    assert_eq!(log.stats().unwrap().pending as usize, MAX_PENDING_PER_PEER);
    // The refusal says why.
    let last = log.rejections().unwrap().pop().unwrap();
    assert_eq!(last.reason, "pending-full");
    assert!(last.detail.contains(&attacker), "{}", last.detail);
    // Another peer's orphan is still held.
    let honest = format!("sync:{}", PeerId::random());
    assert!(is_pending(
        &log.ingest(&orphan().encode(), &honest, 0).unwrap()
    ));
}

#[test]
fn a_full_pending_makes_room_for_a_feed_the_node_holds_even_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let options = || LogOptions {
        max_pending: 20,
        ..LogOptions::default()
    };
    {
        let log = Log::open_with(dir.path(), options()).unwrap();
        for n in 0..20 {
            let outcome = log.ingest(&orphan().encode(), &format!("gossip:p{n}"), 0);
            assert!(is_pending(&outcome.unwrap()));
        }
        assert!(is_pending_full(
            &log.ingest(&orphan().encode(), "gossip:late", 0).unwrap()
        ));
    }
    let log = Log::open_with(dir.path(), options()).unwrap();
    // A feed the node holds, and a gap in it: its entry 3 evicts an orphan of a feed the node
    // does not hold.
    let author = Keypair::generate();
    let first = signed(&author, 1, None, "one");
    let second = signed(&author, 2, Some(&first), "two");
    let third = signed(&author, 3, Some(&second), "three");
    log.ingest(&first.encode(), "test", 0).unwrap();
    assert!(is_pending(
        &log.ingest(&third.encode(), "gossip:honest", 0).unwrap()
    ));
    assert_eq!(log.stats().unwrap().pending, 20);
    // The gap filled, the feed completes.
    assert!(matches!(
        log.ingest(&second.encode(), "gossip:honest", 0).unwrap(),
        IngestOutcome::Accepted { released: 1, .. }
    ));
    assert_eq!(log.head(&FeedKey::of(&first)).unwrap().unwrap().seq, 3);
    assert_eq!(log.stats().unwrap().pending, 19);
}

#[test]
fn orphans_expire_and_free_their_slots() {
    let dir = tempfile::tempdir().unwrap();
    let options = LogOptions {
        max_pending: 10,
        ..LogOptions::default()
    };
    let log = Log::open_with(dir.path(), options).unwrap();
    let start = 1_767_225_600_000;
    for n in 0..10 {
        let outcome = log.ingest(&orphan().encode(), &format!("gossip:p{n}"), start);
        assert!(is_pending(&outcome.unwrap()));
    }
    let refused = log.ingest(&orphan().encode(), "gossip:q", start + PENDING_TTL_MS - 1);
    assert!(is_pending_full(&refused.unwrap()));
    let later = log.ingest(&orphan().encode(), "gossip:q", start + PENDING_TTL_MS);
    assert!(is_pending(&later.unwrap()));
    assert_eq!(log.stats().unwrap().pending, 1, "the expired ten are gone");
}

#[test]
fn a_gap_is_fetched_even_when_pending_has_no_room() {
    let dir = tempfile::tempdir().unwrap();
    let options = LogOptions {
        max_pending: 0,
        ..LogOptions::default()
    };
    let log = Arc::new(Log::open_with(dir.path(), options).unwrap());
    let author = Keypair::generate();
    let first = signed(&author, 1, None, "one");
    let second = signed(&author, 2, Some(&first), "two");
    let third = signed(&author, 3, Some(&second), "three");
    let peer = PeerId::random();
    let data = third.encode();
    let event = NetEvent::Gossip {
        message_id: MessageId::new(&third.id().0),
        peer,
        topic: topics::entry_topic(NAMESPACE, "x-note")
            .hash()
            .into_string(),
        data,
        received: std::time::Instant::now(),
    };
    let (_, commands) = run_worker(&log, vec![event]);
    let fetched: Vec<(u64, u64)> = commands
        .iter()
        .filter_map(|command| match command {
            Command::Fetch { peer: to, range } if *to == peer => {
                Some((range.from_seq, range.to_seq))
            }
            _ => None,
        })
        .collect();
    assert_eq!(fetched, vec![(1, 2)]);
    assert_eq!(log.stats().unwrap().pending, 0);
}
