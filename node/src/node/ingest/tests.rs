//! Tests of the ingest pipeline: the worker's batches, and one stream three ways.

use plexus_crypto::{Hash256, Keypair};
use plexus_protocol::value::json_text_to_canonical;
use plexus_protocol::{Draft, Entry};
use tokio::sync::watch;

use super::*;
use crate::node::limits::IngressLimits;

/// `count` entries of `author`'s feed in namespace `ns`, linked.
fn chain(author: &Keypair, count: u64) -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    for seq in 1..=count {
        let draft = Draft {
            namespace: "ns".into(),
            seq,
            prev: entries.last().map(Entry::id),
            timestamp_ms: 1_767_225_600_000 + seq,
            kind: "x-note".into(),
            body: json_text_to_canonical(&format!("{{\"n\": {seq}}}")).unwrap(),
        };
        entries.push(Entry::sign(author, draft).unwrap());
    }
    entries
}

#[test]
fn pipelined_sync_responses_are_verified_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path()).unwrap());
    let chain = chain(&Keypair::generate(), 8);
    let feed = FeedKey::of(&chain[0]);
    let range = |from_seq, to_seq| RangeRequest {
        feed: feed.clone(),
        from_seq,
        to_seq,
        target_seq: 8,
        lookahead: 0,
    };
    // Seq 3 of the first response carries a signature with one bit flipped.
    let mut tampered = chain[2].encode();
    let signature = chain[2].signature().0;
    let at = tampered
        .windows(signature.len())
        .position(|window| window == signature)
        .unwrap();
    tampered[at] ^= 0x01;
    let peer = PeerId::random();
    // Both responses are queued before the worker starts, so the second is verified while
    // the first is written.
    let (events_tx, events) = mpsc::channel(4);
    for (range, entries) in [
        (
            range(1, 4),
            vec![
                chain[0].encode(),
                chain[1].encode(),
                tampered.clone(),
                chain[3].encode(),
            ],
        ),
        (range(5, 8), chain[4..].iter().map(Entry::encode).collect()),
    ] {
        events_tx
            .try_send(NetEvent::Entries {
                peer,
                answered: vec![FetchedRange { range, entries }],
            })
            .unwrap();
    }
    drop(events_tx);
    let (pipeline, _commands) = pipeline(&log);
    let worker = Worker { pipeline, events };
    // Returns once both responses are handled and the channel is closed.
    worker.run();

    // Seqs 1 and 2 are stored; the tampered seq 3 is refused, on the record with its
    // source; what follows it waits for the genuine seq 3.
    assert_eq!(log.head(&feed).unwrap().map(|head| head.seq), Some(2));
    let rejections = log.rejections().unwrap();
    assert_eq!(rejections.len(), 1);
    assert_eq!(rejections[0].reason, "bad-signature");
    assert_eq!(rejections[0].source, format!("sync:{peer}"));
    assert_eq!(rejections[0].input_hash, plexus_crypto::sha256(&tampered));
    assert_eq!(log.stats().unwrap().pending, 5);
    assert!(matches!(
        log.ingest(&chain[2].encode(), "test", 0).unwrap(),
        IngestOutcome::Accepted { released: 5, .. }
    ));
    assert_eq!(log.head(&feed).unwrap().map(|head| head.seq), Some(8));
}

/// A pipeline over `log` whose commands (verdicts, fetches, proofs) land in the returned
/// receiver.
fn pipeline(log: &Arc<Log>) -> (Arc<Pipeline>, mpsc::Receiver<Command>) {
    let (commands, commands_rx) = mpsc::channel(4 * 1024);
    let pipeline = Arc::new(Pipeline {
        log: Arc::clone(log),
        net: NetworkHandle::new(commands, PeerId::random()),
        shared: Arc::new(Shared {
            quarantine_forkers: true,
            clock_skew_ms: plexus_protocol::coord::DEFAULT_CLOCK_SKEW_MS,
            quarantined: Mutex::new(Default::default()),
            changes: watch::channel(0).0,
            gossip_failures: Default::default(),
        }),
        ingress: Arc::new(Mutex::new(Ingress::new(IngressLimits::default()))),
    });
    (pipeline, commands_rx)
}

/// Heads, counts, journaled entry ids and rejection reasons of a log.
type StoredState = (
    Vec<(FeedKey, plexus_protocol::FeedHead)>,
    crate::store::LogStats,
    Vec<Hash256>,
    Vec<String>,
);

/// What a log holds, as a user would compare two nodes: heads, counts, the journal's entries
/// (in arrival order) and the rejection journal's reasons (in order).
fn stored_state(log: &Log) -> StoredState {
    let journal = log
        .journal(0)
        .map(|item| item.unwrap().entry.id())
        .collect();
    let reasons = log
        .rejections()
        .unwrap()
        .into_iter()
        .map(|record| record.reason)
        .collect();
    (log.heads().unwrap(), log.stats().unwrap(), journal, reasons)
}

/// Every gossip verdict among `commands`, in order.
fn gossip_verdicts(commands: &mut mpsc::Receiver<Command>) -> Vec<MessageAcceptance> {
    let mut verdicts = Vec::new();
    while let Ok(command) = commands.try_recv() {
        if let Command::Validate(batch) = command {
            verdicts.extend(batch.into_iter().map(|verdict| verdict.acceptance));
        }
    }
    verdicts
}

/// The issue's acceptance test for "one way in": the same mixed stream (valid, duplicate,
/// out of order, the entry that fills the gap, a body its kind refuses, malformed bytes, a
/// forged signature, a fork rival) fed as gossip, as sync responses and through the API's
/// submit ends in the same stored state, journal and rejection journal each way, and gossip
/// and submit reach the same verdict on every input.
#[test]
fn one_stream_through_gossip_sync_and_the_api_ends_the_same() {
    let author = Keypair::from_seed(&[5; 32]);
    let stranger = Keypair::from_seed(&[6; 32]);
    let strangers = chain(&stranger, 1);
    let chain = chain(&author, 3);
    let rival = Entry::sign(
        &author,
        Draft {
            namespace: "ns".into(),
            seq: 2,
            prev: Some(chain[0].id()),
            timestamp_ms: 1_767_225_600_999,
            kind: "x-note".into(),
            body: json_text_to_canonical(r#"{"n": "rival"}"#).unwrap(),
        },
    )
    .unwrap();
    let bad_body = Entry::sign(
        &stranger,
        Draft {
            namespace: "ns".into(),
            seq: 1,
            prev: None,
            timestamp_ms: 1_767_225_600_000,
            kind: "task".into(),
            body: json_text_to_canonical(r#"{"not": "a task"}"#).unwrap(),
        },
    )
    .unwrap();
    let mut forged = strangers[0].encode();
    let signature = strangers[0].signature().0;
    let at = forged
        .windows(signature.len())
        .position(|window| window == signature)
        .unwrap();
    forged[at] ^= 1;
    // (bytes, the entry's feed and seq for a sync response's range, when it decodes)
    let stream: Vec<Vec<u8>> = vec![
        chain[0].encode(),
        chain[0].encode(),
        chain[2].encode(),
        chain[1].encode(),
        bad_body.encode(),
        b"\xa1\x00 not an entry".to_vec(),
        forged,
        rival.encode(),
    ];

    // Gossip: every message on the topic its entry belongs to.
    let gossip_dir = tempfile::tempdir().unwrap();
    let gossip_log = Arc::new(Log::open(gossip_dir.path()).unwrap());
    let (gossip, mut gossip_commands) = pipeline(&gossip_log);
    let (events_tx, events) = mpsc::channel(stream.len());
    let peer = PeerId::random();
    for (index, bytes) in stream.iter().enumerate() {
        let kind =
            Entry::decode(bytes).map_or("x-note".to_owned(), |entry| entry.header().kind.clone());
        events_tx
            .try_send(NetEvent::Gossip {
                message_id: MessageId::new(&[index as u8]),
                peer,
                topic: topics::entry_topic("ns", &kind).hash().into_string(),
                data: bytes.clone(),
                received: std::time::Instant::now(),
            })
            .unwrap();
    }
    drop(events_tx);
    Worker {
        pipeline: gossip,
        events,
    }
    .run();
    let gossip_verdicts = gossip_verdicts(&mut gossip_commands);

    // Sync: each input as the response to a request for its own position.
    let sync_dir = tempfile::tempdir().unwrap();
    let sync_log = Arc::new(Log::open(sync_dir.path()).unwrap());
    let (sync, _sync_commands) = pipeline(&sync_log);
    let (events_tx, events) = mpsc::channel(stream.len());
    for bytes in &stream {
        let (feed, seq) = Entry::decode(bytes).map_or_else(
            |_| (FeedKey::of(&chain[0]), 1),
            |entry| (FeedKey::of(&entry), entry.header().seq),
        );
        let range = RangeRequest {
            feed,
            from_seq: seq,
            to_seq: seq,
            target_seq: seq,
            lookahead: 0,
        };
        events_tx
            .try_send(NetEvent::Entries {
                peer,
                answered: vec![FetchedRange {
                    range,
                    entries: vec![bytes.clone()],
                }],
            })
            .unwrap();
    }
    drop(events_tx);
    Worker {
        pipeline: sync,
        events,
    }
    .run();

    // The API: one submission after another.
    let api_dir = tempfile::tempdir().unwrap();
    let api_log = Arc::new(Log::open(api_dir.path()).unwrap());
    let (api, _api_commands) = pipeline(&api_log);
    let api_verdicts: Vec<MessageAcceptance> = stream
        .iter()
        .map(|bytes| super::verdict_of(&api.submit(bytes, "local").unwrap()))
        .collect();

    let expected = stored_state(&gossip_log);
    // The feed is complete to seq 3; the rival is a fork proof; three inputs were refused.
    assert_eq!(expected.1.entries, 3);
    assert_eq!(expected.1.forks, 1);
    assert_eq!(expected.1.pending, 0);
    assert_eq!(expected.3, vec!["bad-body", "malformed", "bad-signature"]);
    assert_eq!(stored_state(&sync_log), expected);
    assert_eq!(stored_state(&api_log), expected);
    use MessageAcceptance::{Accept, Ignore, Reject};
    assert_eq!(
        gossip_verdicts,
        vec![Accept, Ignore, Ignore, Accept, Reject, Reject, Reject, Ignore]
    );
    assert_eq!(api_verdicts, gossip_verdicts);
}
