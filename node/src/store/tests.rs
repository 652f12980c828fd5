//! Tests of the RocksDB log: appends, ingest outcomes, pending, forks, rejection, locking and
//! durability across reopen.

use std::path::Path;

use plexus_crypto::{sha256, Keypair};
use plexus_protocol::Draft;

use super::*;

mod memory;
mod parsed;
mod policy;

/// A log in `dir` whose namespace `ns` `admin` governs.
fn governed_by(dir: &Path, admin: &Keypair) -> Log {
    Log::open_with(
        dir,
        LogOptions {
            trust_roots: TrustRoots::from([(
                "ns".to_owned(),
                std::collections::BTreeSet::from([admin.agent_id()]),
            )]),
            ..LogOptions::default()
        },
    )
    .unwrap()
}

pub(super) fn foreign_chain(keypair: &Keypair, count: u64) -> Vec<Entry> {
    let bodies = (1..=count).map(|seq| text_body(&format!("entry {seq}")));
    chain_of(keypair, "x-note", bodies)
}

/// A feed of `keypair` in namespace "ns" holding one entry of `kind` per body, from seq 1.
fn chain_of(keypair: &Keypair, kind: &str, bodies: impl Iterator<Item = Vec<u8>>) -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    for body in bodies {
        let seq = entries.len() as u64 + 1;
        let entry = Entry::sign(
            keypair,
            Draft {
                namespace: "ns".into(),
                seq,
                prev: entries.last().map(Entry::id),
                timestamp_ms: 10 + seq,
                kind: kind.into(),
                body,
            },
        )
        .unwrap();
        entries.push(entry);
    }
    entries
}

fn feed(keypair: &Keypair) -> FeedKey {
    FeedKey {
        namespace: "ns".into(),
        author: keypair.agent_id(),
    }
}

#[test]
fn own_appends_chain_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let keypair = Keypair::generate();
    let ids: Vec<Hash256> = {
        let log = Log::open(dir.path()).unwrap();
        (0..5)
            .map(|i| {
                log.append_own(&keypair, "ns", "x-note", vec![i], 100 + u64::from(i))
                    .unwrap()
                    .id()
            })
            .collect()
    };
    let log = Log::open(dir.path()).unwrap();
    let head = log.head(&feed(&keypair)).unwrap().unwrap();
    assert_eq!(head, FeedHead { seq: 5, id: ids[4] });
    let third = log.entry_at(&feed(&keypair), 3).unwrap().unwrap();
    assert_eq!(third.header().prev, Some(ids[1]));
    let arrivals: Vec<u64> = log.journal(0).map(|item| item.unwrap().arrival).collect();
    assert_eq!(arrivals, vec![0, 1, 2, 3, 4]);
    // The journal continues where it stopped.
    log.append_own(&keypair, "ns", "x-note", vec![9], 200)
        .unwrap();
    assert_eq!(log.journal(5).next().unwrap().unwrap().arrival, 5);
}

#[test]
fn a_second_process_cannot_open_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let _log = Log::open(dir.path()).unwrap();
    let err = Log::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("in use by another plexus process"), "{err}");
    assert!(
        err.contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
}

#[test]
fn read_only_open_works_beside_a_writer_and_refuses_missing_logs() {
    let dir = tempfile::tempdir().unwrap();
    let keypair = Keypair::generate();
    let log = Log::open(dir.path()).unwrap();
    log.append_own(&keypair, "ns", "x-note", vec![1], 1)
        .unwrap();
    let reader = Log::open_read_only(dir.path()).unwrap();
    assert_eq!(reader.stats().unwrap().entries, 1);

    let empty = tempfile::tempdir().unwrap();
    let err = Log::open_read_only(empty.path()).unwrap_err().to_string();
    assert!(err.contains("run `plexus init`"), "{err}");
}

#[test]
fn ingest_accepts_duplicates_are_no_ops() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path()).unwrap();
    let entries = foreign_chain(&Keypair::generate(), 2);
    let first = log.ingest(&entries[0].encode(), "test", 0).unwrap();
    assert_eq!(
        first,
        IngestOutcome::Accepted {
            id: entries[0].id(),
            released: 0,
            forks: vec![]
        }
    );
    let again = log.ingest(&entries[0].encode(), "test", 0).unwrap();
    assert_eq!(
        again,
        IngestOutcome::Duplicate {
            id: entries[0].id()
        }
    );
    assert_eq!(log.stats().unwrap().entries, 1);
    assert_eq!(log.journal(0).count(), 1);
}

#[test]
fn out_of_order_entries_wait_in_pending_then_chain() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path()).unwrap();
    let keypair = Keypair::generate();
    let entries = foreign_chain(&keypair, 4);
    for entry in entries[1..].iter().rev() {
        let outcome = log.ingest(&entry.encode(), "test", 0).unwrap();
        assert_eq!(
            outcome,
            IngestOutcome::Pending {
                id: entry.id(),
                missing_from: 1
            }
        );
    }
    assert_eq!(log.head(&feed(&keypair)).unwrap(), None);
    assert_eq!(log.stats().unwrap().pending, 3);

    let outcome = log.ingest(&entries[0].encode(), "test", 0).unwrap();
    assert_eq!(
        outcome,
        IngestOutcome::Accepted {
            id: entries[0].id(),
            released: 3,
            forks: vec![]
        }
    );
    assert_eq!(log.head(&feed(&keypair)).unwrap().unwrap().seq, 4);
    assert_eq!(log.stats().unwrap().pending, 0);
    // Arrival order follows chain order, not receive order.
    let seqs: Vec<u64> = log
        .journal(0)
        .map(|item| item.unwrap().entry.header().seq)
        .collect();
    assert_eq!(seqs, vec![1, 2, 3, 4]);
}

#[test]
fn pending_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let keypair = Keypair::generate();
    let entries = foreign_chain(&keypair, 2);
    {
        let log = Log::open(dir.path()).unwrap();
        log.ingest(&entries[1].encode(), "test", 0).unwrap();
    }
    let log = Log::open(dir.path()).unwrap();
    assert_eq!(log.stats().unwrap().pending, 1);
    let outcome = log.ingest(&entries[0].encode(), "test", 0).unwrap();
    assert!(matches!(
        outcome,
        IngestOutcome::Accepted { released: 1, .. }
    ));
}

#[test]
fn a_fork_is_kept_as_proof_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path()).unwrap();
    let keypair = Keypair::generate();
    let entries = foreign_chain(&keypair, 2);
    for entry in &entries {
        log.ingest(&entry.encode(), "test", 0).unwrap();
    }
    let rival = Entry::sign(
        &keypair,
        Draft {
            namespace: "ns".into(),
            seq: 2,
            prev: Some(entries[0].id()),
            timestamp_ms: 99,
            kind: "x-note".into(),
            body: text_body("the other story"),
        },
    )
    .unwrap();
    let outcome = log.ingest(&rival.encode(), "peer-x", 0).unwrap();
    let IngestOutcome::Fork { proof } = outcome else {
        panic!("expected a fork, got {outcome:?}");
    };
    assert_eq!(proof.seq(), 2);
    assert_eq!(
        log.entry_at(&feed(&keypair), 2).unwrap().unwrap().id(),
        entries[1].id()
    );
    let stored = log.forks().unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0], *proof);
    assert_eq!(log.stats().unwrap().forks, 1);
    // The same rival again changes nothing.
    assert_eq!(
        log.ingest(&rival.encode(), "peer-y", 0).unwrap(),
        IngestOutcome::Duplicate { id: rival.id() }
    );
    assert_eq!(log.forks().unwrap().len(), 1);
}

#[test]
fn bad_input_is_journaled_with_reason_and_hash() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path()).unwrap();
    let garbage = b"\xff\x00not an entry";
    let outcome = log.ingest(garbage, "peer-a", 1234).unwrap();
    assert!(matches!(
        outcome,
        IngestOutcome::Rejected {
            reason: RejectReason::Malformed,
            ..
        }
    ));

    let keypair = Keypair::generate();
    let entry = &foreign_chain(&keypair, 1)[0];
    let mut forged = entry.encode();
    // Flip a bit in the signature (the last 64 bytes of the signed header precede the body).
    let signature_start = forged.len() - entry.body().unwrap().len() - 1 - 64;
    forged[signature_start] ^= 0x80;
    let outcome = log.ingest(&forged, "peer-b", 1235).unwrap();
    assert!(matches!(
        outcome,
        IngestOutcome::Rejected {
            reason: RejectReason::BadSignature,
            ..
        }
    ));

    let rejections = log.rejections().unwrap();
    assert_eq!(rejections.len(), 2);
    assert_eq!(rejections[0].reason, "malformed");
    assert_eq!(rejections[0].input_hash, sha256(garbage));
    assert_eq!(rejections[0].source, "peer-a");
    assert_eq!(rejections[1].reason, "bad-signature");
    assert!(rejections[1]
        .detail
        .contains(&keypair.agent_id().to_string()));
    // Nothing was stored as accepted.
    assert_eq!(log.stats().unwrap().entries, 0);
    assert_eq!(log.journal(0).count(), 0);
}

fn signed(keypair: &Keypair, seq: u64, prev: Option<Hash256>, body: &[u8]) -> Entry {
    Entry::sign(
        keypair,
        Draft {
            namespace: "ns".into(),
            seq,
            prev,
            timestamp_ms: 5,
            kind: "x-note".into(),
            body: text_body(&String::from_utf8_lossy(body)),
        },
    )
    .unwrap()
}

#[test]
fn a_child_of_an_unknown_branch_waits_and_completes_the_fork_proof() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path()).unwrap();
    let keypair = Keypair::generate();
    let ours = signed(&keypair, 1, None, b"ours");
    let theirs = signed(&keypair, 1, None, b"theirs");
    let their_child = signed(&keypair, 2, Some(theirs.id()), b"child");
    log.ingest(&ours.encode(), "test", 0).unwrap();
    // The child names a predecessor we do not have: held, and seq 1 is what to fetch.
    assert_eq!(
        log.ingest(&their_child.encode(), "test", 0).unwrap(),
        IngestOutcome::Pending {
            id: their_child.id(),
            missing_from: 1
        }
    );
    assert_eq!(log.head(&feed(&keypair)).unwrap().unwrap().seq, 1);
    let outcome = log.ingest(&theirs.encode(), "test", 0).unwrap();
    assert!(matches!(outcome, IngestOutcome::Fork { .. }), "{outcome:?}");
    assert_eq!(log.forks().unwrap().len(), 1);
}

#[test]
fn a_pending_entry_that_loses_its_position_becomes_a_fork_proof() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path()).unwrap();
    let keypair = Keypair::generate();
    let a1 = signed(&keypair, 1, None, b"a1");
    let a2 = signed(&keypair, 2, Some(a1.id()), b"a2");
    let a3 = signed(&keypair, 3, Some(a2.id()), b"a3");
    let b3 = signed(&keypair, 3, Some(sha256(b"another branch")), b"b3");
    log.ingest(&a1.encode(), "test", 0).unwrap();
    assert!(matches!(
        log.ingest(&b3.encode(), "test", 0).unwrap(),
        IngestOutcome::Pending { .. }
    ));
    log.ingest(&a2.encode(), "test", 0).unwrap();
    let IngestOutcome::Accepted { forks, .. } = log.ingest(&a3.encode(), "test", 0).unwrap() else {
        panic!("a3 must be accepted");
    };
    assert_eq!(forks.len(), 1);
    assert_eq!(forks[0].seq(), 3);
    assert_eq!(log.stats().unwrap().pending, 0);
    assert_eq!(log.forks().unwrap(), forks);
}

#[test]
fn batch_ingest_writes_chains_and_defers_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path()).unwrap();
    let keypair = Keypair::generate();
    let entries = foreign_chain(&keypair, 6);
    // 1..=3 chain, 3 again is a duplicate, 6 has a gap before it.
    let batch = vec![
        entries[0].clone(),
        entries[1].clone(),
        entries[2].clone(),
        entries[2].clone(),
        entries[5].clone(),
    ];
    let outcomes = log.ingest_entries(batch, "test", 0).unwrap();
    assert!(matches!(outcomes[0], IngestOutcome::Accepted { .. }));
    assert!(matches!(outcomes[2], IngestOutcome::Accepted { .. }));
    assert_eq!(
        outcomes[3],
        IngestOutcome::Duplicate {
            id: entries[2].id()
        }
    );
    assert_eq!(
        outcomes[4],
        IngestOutcome::Pending {
            id: entries[5].id(),
            missing_from: 4
        }
    );
    let outcomes = log
        .ingest_entries(vec![entries[3].clone(), entries[4].clone()], "test", 0)
        .unwrap();
    assert_eq!(outcomes.len(), 2);
    assert_eq!(log.head(&feed(&keypair)).unwrap().unwrap().seq, 6);
    assert_eq!(log.stats().unwrap().pending, 0);
}

#[test]
fn a_later_range_arriving_first_waits_then_chains_behind_the_earlier_one() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path()).unwrap();
    let keypair = Keypair::generate();
    let entries = foreign_chain(&keypair, 40);
    // Pipelined backfill: the second range's response is handled before the first one's.
    let outcomes = log
        .ingest_entries(entries[20..].to_vec(), "test", 0)
        .unwrap();
    assert!(outcomes.iter().all(|outcome| matches!(
        outcome,
        IngestOutcome::Pending {
            missing_from: 1,
            ..
        }
    )));
    assert_eq!(log.stats().unwrap().pending, 20);
    assert_eq!(log.head(&feed(&keypair)).unwrap(), None);
    log.ingest_entries(entries[..20].to_vec(), "test", 0)
        .unwrap();
    assert_eq!(log.head(&feed(&keypair)).unwrap().unwrap().seq, 40);
    assert_eq!(log.stats().unwrap().pending, 0);
    // Within one batch too: 3 before 1 and 2 still ends with 3 stored.
    let other = Keypair::generate();
    let entries = foreign_chain(&other, 3);
    let batch = vec![entries[2].clone(), entries[0].clone(), entries[1].clone()];
    log.ingest_entries(batch, "test", 0).unwrap();
    assert_eq!(log.head(&feed(&other)).unwrap().unwrap().seq, 3);
    assert_eq!(log.stats().unwrap().pending, 0);
}

#[test]
fn the_rejection_journal_is_a_bounded_ring() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path()).unwrap();
    // Fill past the ring by setting the counter near the limit (writing 100,000 records here
    // would only slow the test down).
    log.lock_counters().next_rejection = MAX_REJECTIONS - 1;
    for n in 0..3u8 {
        log.record_rejection(&[n], RejectReason::Malformed, "x".into(), "t", 0)
            .unwrap();
    }
    let counters: Vec<u64> = log
        .rejections()
        .unwrap()
        .iter()
        .map(|r| r.counter)
        .collect();
    // Records 0 and 1 would have been the oldest; only the newest MAX_REJECTIONS survive.
    assert_eq!(
        counters,
        vec![MAX_REJECTIONS - 1, MAX_REJECTIONS, MAX_REJECTIONS + 1]
    );
}

#[test]
fn pending_is_bounded_and_overflow_is_journaled() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open_with(
        dir.path(),
        LogOptions {
            max_pending: 2,
            ..LogOptions::default()
        },
    )
    .unwrap();
    let keypair = Keypair::generate();
    let entries = foreign_chain(&keypair, 4);
    for entry in &entries[1..3] {
        assert!(matches!(
            log.ingest(&entry.encode(), "peer", 0).unwrap(),
            IngestOutcome::Pending { .. }
        ));
    }
    let outcome = log.ingest(&entries[3].encode(), "peer", 0).unwrap();
    let IngestOutcome::Rejected { reason, detail } = outcome else {
        panic!("expected a rejection, got {outcome:?}");
    };
    assert_eq!(reason, RejectReason::PendingFull);
    assert!(detail.contains("seq 4"), "{detail}");
    assert_eq!(log.rejections().unwrap()[0].reason, "pending-full");
    // What was held is still released once the gap fills.
    let outcome = log.ingest(&entries[0].encode(), "peer", 0).unwrap();
    assert_eq!(
        outcome,
        IngestOutcome::Accepted {
            id: entries[0].id(),
            released: 2,
            forks: vec![]
        }
    );
    // And the dropped entry is accepted when offered again.
    assert!(matches!(
        log.ingest(&entries[3].encode(), "peer", 0).unwrap(),
        IngestOutcome::Accepted { .. }
    ));
}

/// A body that is the canonical CBOR of a JSON string, as every kind's body must be canonical.
pub(super) fn text_body(text: &str) -> Vec<u8> {
    plexus_protocol::value::json_to_canonical(&serde_json::Value::String(text.to_owned())).unwrap()
}

#[test]
fn the_journal_reads_records_that_hold_an_entry_id_as_older_logs_wrote_them() {
    let dir = tempfile::tempdir().unwrap();
    let keypair = Keypair::generate();
    let log = Log::open(dir.path()).unwrap();
    let first = log
        .append_own(&keypair, "ns", "x-note", text_body("new"), 1)
        .unwrap();
    // A record in the old layout (the entry id) pointing at the same entry.
    log.db
        .put_cf(
            log.cf(CF_JOURNAL),
            keys::counter_key(1),
            first.id().as_bytes(),
        )
        .unwrap();
    let read: Vec<(u64, Hash256)> = log
        .journal(0)
        .map(|item| item.map(|item| (item.arrival, item.entry.id())))
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(read, vec![(0, first.id()), (1, first.id())]);
}

#[test]
fn a_pruned_entry_is_completed_in_place_and_journaled_again() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path()).unwrap();
    let chain = foreign_chain(&Keypair::generate(), 2);
    let (first, second) = (&chain[0], &chain[1]);
    for entry in [first.without_body(), second.clone()] {
        assert!(matches!(
            log.ingest(&entry.encode(), "history", 0).unwrap(),
            IngestOutcome::Accepted { .. }
        ));
    }
    assert!(log.stored_without_body(&first.id()).unwrap());
    assert!(!log.stored_without_body(&second.id()).unwrap());
    // Another pruned copy changes nothing; the full copy completes the stored one.
    assert!(matches!(
        log.ingest(&first.without_body().encode(), "gossip", 0)
            .unwrap(),
        IngestOutcome::Duplicate { .. }
    ));
    assert!(matches!(
        log.ingest(&first.encode(), "gossip", 0).unwrap(),
        IngestOutcome::Accepted { released: 0, .. }
    ));
    let feed = FeedKey::of(first);
    assert_eq!(
        log.entry_at(&feed, 1).unwrap().unwrap().encode(),
        first.encode()
    );
    assert_eq!(log.head(&feed).unwrap().unwrap().seq, 2);
    // The journal names the completed entry again, with its body, for the view to apply.
    let journal: Vec<JournalEntry> = log.journal(0).map(Result::unwrap).collect();
    assert_eq!(journal.len(), 3);
    assert_eq!(journal[2].entry.encode(), first.encode());
    // Once complete, copies of either form are duplicates.
    for copy in [first.encode(), first.without_body().encode()] {
        assert!(matches!(
            log.ingest(&copy, "gossip", 0).unwrap(),
            IngestOutcome::Duplicate { .. }
        ));
    }
    assert_eq!(log.journal(0).count(), 3);
    drop(log);
    let log = Log::open(dir.path()).unwrap();
    assert!(!log.stored_without_body(&first.id()).unwrap());
    assert_eq!(log.journal(0).count(), 3);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]

    /// The one write path: entries written as one batch (gaps, replays, forks and what chains
    /// behind them mixed in any order) end in the state they reach written one by one: the
    /// same heads, entries, pending entries, fork positions and journaled entries.
    #[test]
    fn a_batch_ends_where_its_entries_one_by_one_end(
        picks in proptest::collection::vec(0usize..10, 0..24),
    ) {
        let (alice, bob) = (Keypair::from_seed(&[7; 32]), Keypair::from_seed(&[8; 32]));
        let chain = foreign_chain(&alice, 6);
        let rival = signed(&alice, 3, Some(chain[1].id()), b"rival");
        let mut pool = chain.clone();
        pool.push(rival);
        pool.extend(foreign_chain(&bob, 3));
        let batch: Vec<Entry> = picks.iter().map(|pick| pool[*pick].clone()).collect();

        let (dir_batch, dir_single) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (batched, single) = (
            Log::open(dir_batch.path()).unwrap(),
            Log::open(dir_single.path()).unwrap(),
        );
        let outcomes = batched.ingest_entries(batch.clone(), "test", 0).unwrap();
        proptest::prop_assert_eq!(outcomes.len(), batch.len());
        for entry in &batch {
            single.ingest(&entry.encode(), "test", 0).unwrap();
        }
        let state = |log: &Log| {
            let mut journal: Vec<Hash256> =
                log.journal(0).map(|item| item.unwrap().entry.id()).collect();
            journal.sort();
            let mut forks: Vec<(FeedKey, u64)> =
                log.forks().unwrap().iter().map(|proof| (proof.feed(), proof.seq())).collect();
            forks.sort();
            (log.heads().unwrap(), log.stats().unwrap(), journal, forks)
        };
        proptest::prop_assert_eq!(state(&batched), state(&single));
    }
}

#[test]
fn the_journal_keeps_how_and_when_each_entry_first_arrived() {
    use plexus_protocol::admit::admit_entries;
    use plexus_protocol::coord::{Arrival, Reception};

    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path()).unwrap();
    let me = Keypair::generate();
    log.append_own(&me, "ns", "x-note", text_body("mine"), 50)
        .unwrap();
    let chain = foreign_chain(&Keypair::generate(), 2);
    let offer = |entry: &Entry, arrival| Offer {
        admitted: admit_entries(vec![entry.clone()]).pop().unwrap().unwrap(),
        source: "gossip:peer".into(),
        arrival,
    };
    // Seq 2 arrives live first and waits for seq 1, which backfill brings later: each keeps
    // its own arrival, and seq 2 the time it was first received, not the time it chained.
    let outcomes = log
        .ingest_admitted(vec![offer(&chain[1], Arrival::Live)], 1_000)
        .unwrap();
    assert!(matches!(outcomes[0], IngestOutcome::Pending { .. }));
    log.ingest_admitted(vec![offer(&chain[0], Arrival::History)], 2_000)
        .unwrap();
    let receptions: Vec<(u64, Option<Reception>)> = log
        .journal(0)
        .map(|item| {
            let item = item.unwrap();
            (item.entry.header().seq, item.reception)
        })
        .collect();
    let reception = |arrival, received_ms| {
        Some(Reception {
            arrival,
            received_ms,
        })
    };
    assert_eq!(
        receptions,
        [
            (1, reception(Arrival::Own, 50)),
            (1, reception(Arrival::History, 2_000)),
            (2, reception(Arrival::Live, 1_000)),
        ]
    );
    // They survive a reopen.
    drop(log);
    let log = Log::open(dir.path()).unwrap();
    let again: Vec<Option<Reception>> =
        log.journal(0).map(|item| item.unwrap().reception).collect();
    assert_eq!(
        again,
        receptions
            .iter()
            .map(|(_, reception)| *reception)
            .collect::<Vec<_>>()
    );
}

#[test]
fn ranges_are_read_in_order_until_the_response_budget_then_stop() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path()).unwrap();
    let (first, second) = (Keypair::generate(), Keypair::generate());
    let first_chain = foreign_chain(&first, 4);
    let second_chain = foreign_chain(&second, 2);
    log.ingest_entries(first_chain.clone(), "test", 0).unwrap();
    log.ingest_entries(second_chain.clone(), "test", 0).unwrap();
    let (first_feed, second_feed, unknown) =
        (feed(&first), feed(&second), feed(&Keypair::generate()));
    let encoded = |entries: &[Entry]| entries.iter().map(Entry::encode).collect::<Vec<_>>();
    let ranges = [
        (&unknown, 1, 5),
        (&first_feed, 2, 3),
        (&second_feed, 1, 9),
        (&first_feed, 4, 4),
    ];
    // Enough room: every range answered, a feed not held as an empty list.
    let lists = log.entries_ranges(ranges, usize::MAX).unwrap();
    assert_eq!(
        lists,
        vec![
            Vec::new(),
            encoded(&first_chain[1..3]),
            encoded(&second_chain),
            encoded(&first_chain[3..]),
        ]
    );
    // Room for three entries: the third range is cut after its first and the fourth is not
    // answered at all.
    let sizes: Vec<usize> = lists.iter().flatten().map(Vec::len).collect();
    let budget = sizes[0] + sizes[1] + sizes[2];
    let lists = log.entries_ranges(ranges, budget).unwrap();
    assert_eq!(
        lists,
        vec![
            Vec::new(),
            encoded(&first_chain[1..3]),
            encoded(&second_chain[..1]),
        ]
    );
    // A budget smaller than any entry still answers with the first entry found.
    let lists = log.entries_ranges(ranges, 1).unwrap();
    assert_eq!(lists, vec![Vec::new(), encoded(&first_chain[1..2])]);
}
