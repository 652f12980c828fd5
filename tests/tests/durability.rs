//! Durability: every append or received entry acknowledged before a crash (SIGKILL of the
//! writing process) is in the log after reopening, and the log still verifies.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use plexus_crypto::Keypair;
use plexus_node::audit::{verify_data_dir, Verdict, VerifyOptions};
use plexus_node::store::Log;
use plexus_protocol::FeedKey;
use plexus_tests::cluster::{publish_note, spawn_node, test_net_config, TestNode};

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

/// The HTTP server may still hold a handle to the node for a moment after it stops; shutdown
/// waits for the last one instead of failing, then flushes the log.
#[tokio::test]
async fn a_shared_node_shuts_down_once_its_last_other_handle_is_dropped() {
    let test_node = spawn_node(test_net_config()).await;
    let entry = publish_note(&test_node, 1).await;
    let TestNode { node, dir, .. } = test_node;
    let handle = node.clone();
    let late_handle = node.clone();
    let mut shutdown = std::pin::pin!(node.shutdown());
    // Its first look finds the handles held: it must wait, not fail.
    assert!(
        futures::poll!(shutdown.as_mut()).is_pending(),
        "shutdown did not wait for the handle"
    );
    drop(handle);
    assert!(
        futures::poll!(shutdown.as_mut()).is_pending(),
        "shutdown did not wait for the last handle"
    );
    // A second shutdown only lets go of its handle; the first then stops the node.
    late_handle.shutdown().await.unwrap();
    shutdown.await.unwrap();
    let log = Log::open(dir.path()).unwrap();
    assert!(log.contains(&entry.id()).unwrap());
}
