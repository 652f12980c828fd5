//! Tests of the log in a governed namespace: a refused entry takes what waits behind it in
//! `pending`, on every branch, once, and stays refused across a reopen.

use super::*;

fn assert_refused_by_policy(outcome: &IngestOutcome) {
    assert!(
        matches!(
            outcome,
            IngestOutcome::Rejected {
                reason: RejectReason::Policy,
                ..
            }
        ),
        "{outcome:?}"
    );
}

/// A governed log for namespace "ns" with `admin` as trust root, holding a policy that makes
/// `member` a member limited to `rate_entries` entries per minute.
fn governed_log(dir: &Path, admin: &Keypair, member: &Keypair, rate_entries: u32) -> Log {
    let log = super::governed_by(dir, admin);
    let policy = serde_json::json!({
        "version": 1,
        "roles": {"w": ["x-*"]},
        "members": [{"agent": member.agent_id().to_string(), "roles": ["w"]}],
        "limits": {"rate": {"entries": rate_entries, "windowMs": 60_000}},
    });
    let body = plexus_protocol::value::json_text_to_canonical(&policy.to_string()).unwrap();
    log.append_own(admin, "ns", "policy", body, 1).unwrap();
    log
}

#[test]
fn a_refused_entry_takes_its_waiting_successors_with_it_and_stays_refused_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (admin, member) = (Keypair::generate(), Keypair::generate());
    let chain = foreign_chain(&member, 4);
    {
        let log = governed_log(dir.path(), &admin, &member, 1);
        assert!(matches!(
            log.ingest(&chain[0].encode(), "test", 0).unwrap(),
            IngestOutcome::Accepted { .. }
        ));
        // Seq 3 and 4 wait for seq 2; seq 2 breaks the rate (one per minute).
        for entry in &chain[2..] {
            assert!(matches!(
                log.ingest(&entry.encode(), "test", 0).unwrap(),
                IngestOutcome::Pending { .. }
            ));
        }
        let outcome = log.ingest(&chain[1].encode(), "test", 0).unwrap();
        assert_refused_by_policy(&outcome);
        assert_eq!(log.stats().unwrap().pending, 0, "successors left waiting");
        let rules: Vec<Option<String>> = log
            .rejections()
            .unwrap()
            .into_iter()
            .map(|record| record.rule)
            .collect();
        assert_eq!(rules, vec![Some("rate-limited".to_owned()); 3]);
        // A duplicate of the accepted entry is not judged again.
        assert!(matches!(
            log.ingest(&chain[0].encode(), "test", 0).unwrap(),
            IngestOutcome::Duplicate { .. }
        ));
    }
    // The governance state is rebuilt from the log: seq 2 is still refused after a reopen.
    let log = governed_log(dir.path(), &admin, &member, 1);
    let outcome = log.ingest(&chain[1].encode(), "test", 0).unwrap();
    assert_refused_by_policy(&outcome);
    assert_eq!(log.head(&feed(&member)).unwrap().unwrap().seq, 1);
}

#[test]
fn a_refused_entry_takes_every_waiting_branch_behind_it() {
    let dir = tempfile::tempdir().unwrap();
    let (admin, member) = (Keypair::generate(), Keypair::generate());
    let chain = foreign_chain(&member, 4);
    // A second branch after seq 2, two entries long: the member equivocated behind it.
    let mut branch: Vec<Entry> = Vec::new();
    for seq in 3..=4 {
        let prev = branch.last().map_or(chain[1].id(), Entry::id);
        let draft = Draft {
            namespace: "ns".into(),
            seq,
            prev: Some(prev),
            timestamp_ms: 20 + seq,
            kind: "x-note".into(),
            body: text_body(&format!("branch {seq}")),
        };
        branch.push(Entry::sign(&member, draft).unwrap());
    }
    let log = governed_log(dir.path(), &admin, &member, 1);
    log.ingest(&chain[0].encode(), "test", 0).unwrap();
    for entry in chain[2..].iter().chain(&branch) {
        log.ingest(&entry.encode(), "test", 0).unwrap();
    }
    assert_eq!(log.stats().unwrap().pending, 4);
    // Seq 2 breaks the rate: nothing behind it can ever chain, on either branch.
    let outcome = log.ingest(&chain[1].encode(), "test", 0).unwrap();
    assert_refused_by_policy(&outcome);
    assert_eq!(log.stats().unwrap().pending, 0, "a branch was left waiting");
    assert_eq!(log.rejections().unwrap().len(), 5);
}

#[test]
fn a_batch_holding_a_refused_entry_twice_purges_its_successors_once() {
    let dir = tempfile::tempdir().unwrap();
    let (admin, member) = (Keypair::generate(), Keypair::generate());
    let chain = foreign_chain(&member, 4);
    let log = governed_log(dir.path(), &admin, &member, 1);
    log.ingest(&chain[0].encode(), "test", 0).unwrap();
    for entry in &chain[2..] {
        log.ingest(&entry.encode(), "test", 0).unwrap();
    }
    // An unrelated entry of an open namespace also waits, so a double count would show.
    let stranger = Entry::sign(
        &Keypair::generate(),
        Draft {
            namespace: "open".into(),
            seq: 2,
            prev: Some(plexus_crypto::sha256(b"missing")),
            timestamp_ms: 5,
            kind: "x-note".into(),
            body: text_body("waiting"),
        },
    )
    .unwrap();
    log.ingest(&stranger.encode(), "test", 0).unwrap();
    assert_eq!(log.stats().unwrap().pending, 3);
    let outcomes = log
        .ingest_entries(vec![chain[1].clone(), chain[1].clone()], "test", 0)
        .unwrap();
    assert!(outcomes.iter().all(|outcome| matches!(
        outcome,
        IngestOutcome::Rejected {
            reason: RejectReason::Policy,
            ..
        }
    )));
    assert_eq!(log.stats().unwrap().pending, 1);
    drop(log);
    // The count kept in memory matches what is on disk.
    let log = governed_log(dir.path(), &admin, &member, 1);
    assert_eq!(log.stats().unwrap().pending, 1);
}
