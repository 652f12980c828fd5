//! Tests of the parsed-body hand-off: every body the write path leaves for the view is the
//! body its journal record's stored entry parses to, whichever way the entry came in.

use plexus_protocol::coord::body_for_view;

use super::*;

/// Claims of `keypair` on `resources`, one feed from seq 1.
fn claims(keypair: &Keypair, resources: &[&str]) -> Vec<Entry> {
    let bodies = resources.iter().map(|resource| {
        let body = format!(r#"{{"resource": "{resource}", "action": "write", "leaseMs": 60000}}"#);
        plexus_protocol::value::json_text_to_canonical(&body).unwrap()
    });
    chain_of(keypair, "intent", bodies)
}

#[test]
fn each_journal_record_hands_the_view_the_body_its_stored_entry_parses_to() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path()).unwrap();
    let own = Keypair::generate();
    let claim_body = r#"{"resource": "printer", "action": "print", "leaseMs": 60000}"#;
    let claim_body = plexus_protocol::value::json_text_to_canonical(claim_body).unwrap();
    // Own appends: a claim, and an application entry (whose body the view never reads).
    log.append_own(&own, "ns", "intent", claim_body, 1).unwrap();
    log.append_own(&own, "ns", "x-note", text_body("note"), 2)
        .unwrap();
    // Received: seq 2 waits in `pending` until seq 1 arrives in the next write.
    let author = Keypair::generate();
    let chain = claims(&author, &["repo/a", "repo/b", "repo/c"]);
    let (first, second, third) = (&chain[0], &chain[1], &chain[2]);
    log.ingest(&second.encode(), "gossip", 0).unwrap();
    log.ingest_entries(vec![first.clone()], "gossip", 0)
        .unwrap();
    // A pruned copy: journaled without a body to hand over.
    log.ingest(&third.without_body().encode(), "history", 0)
        .unwrap();
    // Own claim, own note (never read by the view), first, second (released from
    // `pending`), pruned third.
    assert_eq!(handed_from(&log, 0), vec![true, false, true, true, false]);
    // The copy with its body completes the stored one and is journaled again, with its body.
    log.ingest(&third.encode(), "gossip", 0).unwrap();
    assert_eq!(handed_from(&log, 5), vec![true]);
    // Taken once: the view follows the journal forwards.
    assert_eq!(log.take_parsed_body(0), None);
}

/// For each journal record from `from`: asserts that the body the log hands over, if any, is
/// the one its stored entry parses to, and says whether there was one.
fn handed_from(log: &Log, from: u64) -> Vec<bool> {
    let journal: Vec<JournalEntry> = log.journal(from).map(Result::unwrap).collect();
    journal
        .iter()
        .map(|item| {
            let handed = log.take_parsed_body(item.arrival);
            if handed.is_some() {
                assert_eq!(
                    handed,
                    body_for_view(&item.entry),
                    "record {} ({})",
                    item.arrival,
                    item.entry.header().kind
                );
            }
            handed.is_some()
        })
        .collect()
}

#[test]
fn a_reopened_log_hands_nothing_and_its_reader_parses() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = Log::open(dir.path()).unwrap();
        let chain = claims(&Keypair::generate(), &["repo/a"]);
        log.ingest(&chain[0].encode(), "gossip", 0).unwrap();
    }
    let log = Log::open(dir.path()).unwrap();
    let item = log.journal(0).next().unwrap().unwrap();
    assert_eq!(log.take_parsed_body(item.arrival), None);
    assert!(body_for_view(&item.entry).is_some());
}
