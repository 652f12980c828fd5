//! Durability: every append or received entry acknowledged before a crash (SIGKILL of the
//! writing process) is in the log after reopening, and the log still verifies.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use plexus_crypto::Keypair;
use plexus_node::audit::{verify_data_dir, Verdict, VerifyOptions};
use plexus_node::store::Log;
use plexus_protocol::FeedKey;

#[test]
fn acknowledged_appends_survive_a_killed_process() {
    survives_a_killed_process("own");
}

/// Received entries are fsynced by the group commit, not one by one: a crash of the process
/// still loses none of them (they are in the operating system's buffers once written).
#[test]
fn received_entries_survive_a_killed_process() {
    survives_a_killed_process("received");
}

fn survives_a_killed_process(mode: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_crash-writer"))
        .arg(dir.path())
        .arg(mode)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut last_acked = 0u64;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        last_acked = line.strip_prefix("acked ").unwrap().parse().unwrap();
        if last_acked == 300 {
            // SIGKILL: no destructors, no flush, exactly like a crash of the process.
            child.kill().unwrap();
            break;
        }
    }
    child.wait().unwrap();
    assert_eq!(last_acked, 300);

    let log = Log::open(dir.path()).unwrap();
    let feed = FeedKey {
        namespace: "crash".into(),
        author: Keypair::from_seed(&[9; 32]).agent_id(),
    };
    let head = log.head(&feed).unwrap().unwrap();
    assert!(
        head.seq >= last_acked,
        "acked {last_acked}, head {}",
        head.seq
    );
    for seq in 1..=last_acked {
        assert!(
            log.entry_at(&feed, seq).unwrap().is_some(),
            "seq {seq} lost"
        );
    }
    drop(log);
    let report = verify_data_dir(dir.path(), &VerifyOptions::default(), &()).unwrap();
    assert_eq!(report.verdict, Verdict::Verified, "{:#?}", report.findings);
    assert_eq!(report.entries, head.seq);
}
