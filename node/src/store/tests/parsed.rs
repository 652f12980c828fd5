//! Tests of the parsed-body hand-off: every body the write path leaves for the view is the
//! body its journal record's stored entry parses to, whichever way the entry came in; each
//! entry's body is parsed once on its way from its arrival to the view; and the view files
//! every entry even when the hand-off no longer holds its body.

use plexus_protocol::coord::{body_for_view, Body};

use super::*;
use crate::coord::Coordinator;
use crate::store::parsed::parse_count;

const CLAIM: &str = r#"{"resource": "printer", "action": "print", "leaseMs": 60000}"#;

fn canonical(json: &str) -> Vec<u8> {
    plexus_protocol::value::json_text_to_canonical(json).unwrap()
}

/// Body parses the node made (outside admission, which the protocol crate's tests count)
/// while `step` ran on this thread.
fn node_parses_during(step: impl FnOnce()) -> u64 {
    let before = parse_count::on_this_thread();
    step();
    parse_count::on_this_thread() - before
}

/// Who holds `resource` in namespace "ns" in `coord`'s view at time 1,000.
fn holders(coord: &Coordinator, resource: &str) -> Vec<String> {
    let lease = coord.view().lease("ns", resource, 1_000);
    lease
        .holders
        .iter()
        .map(|claim| claim.claim_id.clone())
        .collect()
}

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

#[test]
fn an_own_claim_is_parsed_once_from_its_append_to_the_view() {
    let dir = tempfile::tempdir().unwrap();
    let (admin, member) = (Keypair::generate(), Keypair::generate());
    let log = super::governed_by(dir.path(), &admin);
    let policy = serde_json::json!({
        "version": 1,
        "roles": {"w": ["intent"]},
        "members": [{"agent": member.agent_id().to_string(), "roles": ["w"]}],
        "limits": {"maxLeaseMs": 120_000},
    });
    log.append_own(&admin, "ns", "policy", canonical(&policy.to_string()), 1)
        .unwrap();
    let coord = Coordinator::new(member.agent_id());
    coord.sync(&log, 1).unwrap();

    // In a governed namespace, where the policy reads a claim's lease: one parse for the
    // append, its policy decision, the feed's state and the view (there were four).
    let mut claim = None;
    let parses = node_parses_during(|| {
        claim = Some(
            log.append_own(&member, "ns", "intent", canonical(CLAIM), 2)
                .unwrap(),
        );
        coord.sync(&log, 2).unwrap();
    });
    assert_eq!(parses, 1);
    assert_eq!(
        holders(&coord, "printer"),
        vec![claim.unwrap().id().to_string()]
    );

    // A body built from an agent's JSON (as the API does) is encoded, never parsed again.
    let json = serde_json::from_str(&CLAIM.replace("printer", "plotter")).unwrap();
    let body = Body::from_json("intent", json).unwrap();
    let mut plotter = None;
    let parses = node_parses_during(|| {
        plotter = Some(
            log.append_own_body(&member, "ns", "intent", body, 3)
                .unwrap(),
        );
        coord.sync(&log, 3).unwrap();
    });
    assert_eq!(parses, 0);
    assert_eq!(
        holders(&coord, "plotter"),
        vec![plotter.unwrap().id().to_string()]
    );
}

#[test]
fn a_received_claim_is_parsed_by_admission_alone_and_once_more_if_it_waited() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path()).unwrap();
    let coord = Coordinator::new(Keypair::generate().agent_id());
    let chain = claims(&Keypair::generate(), &["repo/a", "repo/b"]);
    // In order: admission's parse (in the protocol crate) is the only one.
    let parses = node_parses_during(|| {
        log.ingest(&chain[0].encode(), "gossip", 0).unwrap();
        coord.sync(&log, 0).unwrap();
    });
    assert_eq!(parses, 0);
    assert_eq!(holders(&coord, "repo/a"), vec![chain[0].id().to_string()]);

    // Out of order: seq 2 waits in `pending` as bytes and is parsed once when it leaves.
    let author = Keypair::generate();
    let chain = claims(&author, &["repo/c", "repo/d"]);
    let parses = node_parses_during(|| {
        log.ingest(&chain[1].encode(), "gossip", 0).unwrap();
        log.ingest(&chain[0].encode(), "gossip", 0).unwrap();
        coord.sync(&log, 0).unwrap();
    });
    assert_eq!(parses, 1);
    assert_eq!(holders(&coord, "repo/d"), vec![chain[1].id().to_string()]);
}

#[test]
fn the_view_files_every_entry_whose_parsed_body_is_no_longer_held() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path()).unwrap();
    let me = Keypair::generate();
    let coord = Coordinator::new(me.agent_id());
    let chain = claims(&Keypair::generate(), &["repo/a", "repo/b"]);
    let mine = log
        .append_own(&me, "ns", "intent", canonical(CLAIM), 5)
        .unwrap();
    for entry in &chain {
        log.ingest(&entry.encode(), "gossip", 0).unwrap();
    }
    // As if a burst of later writes had pushed all three bodies out of the hand-off before the
    // view followed the journal: it parses each from the stored entry.
    assert!(log.take_parsed_body(u64::MAX).is_none());
    let parses = node_parses_during(|| {
        assert_eq!(coord.sync(&log, 10).unwrap(), 3);
    });
    assert_eq!(parses, 3);
    assert_eq!(holders(&coord, "printer"), vec![mine.id().to_string()]);
    assert_eq!(holders(&coord, "repo/a"), vec![chain[0].id().to_string()]);
    assert_eq!(holders(&coord, "repo/b"), vec![chain[1].id().to_string()]);
    // The same view as one fed from the hand-off.
    let fed = Coordinator::new(me.agent_id());
    let other_dir = tempfile::tempdir().unwrap();
    let other = Log::open(other_dir.path()).unwrap();
    for entry in std::iter::once(&mine).chain(&chain) {
        other.ingest(&entry.encode(), "gossip", 0).unwrap();
    }
    fed.sync(&other, 10).unwrap();
    assert_eq!(fed.view().digest(1_000), coord.view().digest(1_000));
}
