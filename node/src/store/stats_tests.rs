//! Tests of [`Log::stats`]: its counts are kept by the write path, stay exact while entries
//! are written, survive a reopen, and a call neither waits for a write in progress nor holds
//! one up.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use plexus_crypto::Keypair;
use plexus_protocol::Draft;

use super::*;

use super::tests::{foreign_chain as chain, text_body};

/// The counts `stats` must report, taken the slow way: from every head and fork proof.
fn counted(log: &Log) -> (u64, u64, u64) {
    let heads = log.heads().unwrap();
    (
        heads.iter().map(|(_, head)| head.seq).sum(),
        heads.len() as u64,
        log.forks().unwrap().len() as u64,
    )
}

fn reported(log: &Log) -> (u64, u64, u64) {
    let stats = log.stats().unwrap();
    (stats.entries, stats.feeds, stats.forks)
}

#[test]
fn stats_stay_exact_while_another_thread_writes() {
    const AUTHORS: usize = 300;
    const PER_AUTHOR: u64 = 3;
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path()).unwrap());
    let authors: Vec<Keypair> = (0..AUTHORS).map(|_| Keypair::generate()).collect();
    // Batches of 20 entries: a feed's three entries can straddle two batches, so a reader
    // can see a feed at seq 1 or 2 before its last entry arrives.
    let entries: Vec<Entry> = authors
        .iter()
        .flat_map(|author| chain(author, PER_AUTHOR))
        .collect();
    let writing = Arc::new(AtomicBool::new(true));
    let reader = {
        let log = Arc::clone(&log);
        let writing = Arc::clone(&writing);
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            while writing.load(Ordering::Acquire) {
                seen.push(log.stats().unwrap());
            }
            seen
        })
    };
    for batch in entries.chunks(20) {
        log.ingest_entries(batch.to_vec(), "test", 0).unwrap();
    }
    writing.store(false, Ordering::Release);
    let seen = reader.join().unwrap();
    // Every count the reader saw was one the log held after some whole batch: entries and
    // feeds of a prefix of `entries` cut at a multiple of 20, never going back.
    let mut last = LogStats::default();
    for stats in &seen {
        assert_eq!(stats.entries % 20, 0, "a count within a batch: {stats:?}");
        assert_eq!(
            stats.feeds,
            stats.entries.div_ceil(PER_AUTHOR),
            "feeds that do not match the entries written: {stats:?}"
        );
        assert!(
            stats.entries >= last.entries,
            "the count went back: {stats:?} after {last:?}"
        );
        last = stats.clone();
    }
    let total = AUTHORS as u64 * PER_AUTHOR;
    assert_eq!(reported(&log), counted(&log));
    assert_eq!(reported(&log), (total, AUTHORS as u64, 0));
    // Duplicates change nothing; a fork adds a proof; a refused entry counts as rejected.
    log.ingest_entries(entries[..60].to_vec(), "test", 0)
        .unwrap();
    assert_eq!(reported(&log), (total, AUTHORS as u64, 0));
    let forked = Entry::sign(
        &authors[0],
        Draft {
            namespace: "ns".into(),
            seq: 1,
            prev: None,
            timestamp_ms: 99,
            kind: "x-note".into(),
            body: text_body("the other branch"),
        },
    )
    .unwrap();
    log.ingest(&forked.encode(), "test", 0).unwrap();
    assert_eq!(reported(&log), counted(&log));
    assert_eq!(log.stats().unwrap().forks, 1);
    let rejected = log.stats().unwrap().rejected;
    log.ingest(b"not an entry", "test", 0).unwrap();
    assert_eq!(log.stats().unwrap().rejected, rejected + 1);
    // A reopened log starts from the same counts.
    let before = log.stats().unwrap();
    drop(log);
    let log = Log::open(dir.path()).unwrap();
    assert_eq!(log.stats().unwrap(), before);
    log.append_own(&authors[1], "ns", "x-note", text_body("more"), 100)
        .unwrap();
    assert_eq!(reported(&log), counted(&log));
}

#[test]
fn stats_answer_while_a_write_holds_the_write_lock() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path()).unwrap());
    let author = Keypair::generate();
    log.ingest_entries(chain(&author, 5), "test", 0).unwrap();
    // A write in progress holds the write lock for its whole batch (thousands of entries on a
    // backfill). A status poll meanwhile must answer from the last committed counts, and
    // since it takes no lock a write takes for long, a write never waits for a poll either.
    let write_in_progress = log.lock_counters();
    let (answer, answered) = mpsc::channel();
    let poller = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            let _ = answer.send(log.stats().unwrap());
        })
    };
    let stats = answered
        .recv_timeout(Duration::from_secs(30))
        .expect("stats waited for the write lock");
    drop(write_in_progress);
    poller.join().unwrap();
    assert_eq!((stats.entries, stats.feeds), (5, 1));
}
