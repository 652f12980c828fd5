//! Power cuts, not just process kills: the log lives on `plexus-lazyfs`, a file system that keeps
//! everything written since the last fsync of each file in memory only, and the power is cut by
//! killing that file system's process at a random moment while a writer appends. A process kill
//! keeps the page cache, so it cannot tell whether the log fsyncs; this can: with the fsync of
//! own appends removed, acknowledged appends are lost here (docs/reliability.md shows that run).
//!
//! Two more tests: one of the file system itself (hard links share their file's unsynced data,
//! as `plexus init` needs for the files it puts in place whole), and one that runs a real
//! `plexus run` node on the mount beside a peer, cuts the power while the peer's entries arrive,
//! and checks that what the cut took comes back by backfill.
//!
//! Needs root and `/dev/fuse`; where either is missing each test says so loudly on stderr and
//! does nothing. Rounds per test: `PLEXUS_POWERCUT_ROUNDS` (default 3; `scripts/faults.sh` runs
//! 50). Every round prints one line of figures.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use plexus_crypto::{AgentId, Keypair};
use plexus_node::audit::{verify_data_dir, Verdict, VerifyOptions};
use plexus_node::client::ApiClient;
use plexus_node::store::Log;
use plexus_protocol::FeedKey;
use plexus_tests::localnode::LocalNode;
use plexus_tests::netnode::{plexus_binary, wait_until};
use rand::Rng;
use serde_json::json;

/// How long a mount may take to appear.
const MOUNT_TIMEOUT: Duration = Duration::from_secs(20);

/// Entries the peer publishes in the backfill test; the power is cut once half have arrived.
const PEER_ENTRIES: u64 = 600;

/// How long the node may take to receive, or to backfill, the peer's entries.
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(90);

#[test]
fn acknowledged_own_appends_survive_power_cuts() {
    run_rounds("own");
}

/// Received entries are fsynced by the group commit: a power cut may lose the last window of
/// them (backfill fetches those again from peers), but never leaves a log that does not open,
/// a hole in a feed, or an entry that does not verify.
#[test]
fn received_entries_leave_a_whole_log_after_power_cuts() {
    run_rounds("received");
}

/// A hard link (how `plexus init` puts the API token in place) is a name, so it reaches the
/// disk at once as every name does on plexus-lazyfs; the data is the file's, so what was written
/// through one name and not fsynced reads through the other and is lost with the power through
/// both, and an fsync through either name keeps it.
#[test]
fn hard_links_share_their_data_and_keep_only_what_was_fsynced() {
    if let Some(reason) = missing_fuse() {
        eprintln!(
            "\n!!! SKIPPED: plexus-lazyfs hard-link test needs {reason}; nothing was tested !!!\n"
        );
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let backing = work.path().join("disk");
    let point = work.path().join("mnt");
    std::fs::create_dir_all(&backing).unwrap();
    std::fs::create_dir_all(&point).unwrap();
    let mut mount = Mount::start(&backing, &point);
    let (lost, lost_link) = (point.join("lost"), point.join("lost-link"));
    let (kept, kept_link) = (point.join("kept"), point.join("kept-link"));

    // `lost`: fsynced, linked, then written through the link without an fsync.
    let file = File::create(&lost).unwrap();
    file.write_all_at(b"synced ", 0).unwrap();
    file.sync_all().unwrap();
    std::fs::hard_link(&lost, &lost_link)
        .unwrap_or_else(|error| panic!("hard link on plexus-lazyfs: {error}"));
    File::options()
        .write(true)
        .open(&lost_link)
        .unwrap()
        .write_all_at(b"volatile", 7)
        .unwrap();
    assert_eq!(std::fs::read(&lost).unwrap(), b"synced volatile");

    // `kept`: written through one name, fsynced through the other.
    File::create(&kept)
        .unwrap()
        .write_all_at(b"fsynced through its link", 0)
        .unwrap();
    std::fs::hard_link(&kept, &kept_link).unwrap();
    File::open(&kept_link).unwrap().sync_all().unwrap();

    // `moved`: written and not fsynced, linked, its first name unlinked and the link renamed:
    // the data follows the file through its names, and an fsync under the last name keeps it.
    let (moved, moved_link, moved_last) = (
        point.join("moved"),
        point.join("moved-link"),
        point.join("moved-last"),
    );
    File::create(&moved)
        .unwrap()
        .write_all_at(b"kept under its last name", 0)
        .unwrap();
    std::fs::hard_link(&moved, &moved_link).unwrap();
    std::fs::remove_file(&moved).unwrap();
    assert_eq!(
        std::fs::read(&moved_link).unwrap(),
        b"kept under its last name",
        "unlinking one name must keep the file's unsynced data under the other"
    );
    std::fs::rename(&moved_link, &moved_last).unwrap();
    assert_eq!(
        std::fs::read(&moved_last).unwrap(),
        b"kept under its last name"
    );
    File::open(&moved_last).unwrap().sync_all().unwrap();

    mount.cut_power();
    let _powered_on = Mount::start(&backing, &point);
    for name in [&lost, &lost_link] {
        assert_eq!(
            std::fs::read(name).unwrap(),
            b"synced ",
            "{}: the power cut must keep the fsynced data and lose the rest",
            name.display()
        );
    }
    for name in [&kept, &kept_link] {
        assert_eq!(
            std::fs::read(name).unwrap(),
            b"fsynced through its link",
            "{}: an fsync through one name must keep the file's data",
            name.display()
        );
    }
    assert_eq!(std::fs::metadata(&kept).unwrap().nlink(), 2);
    assert_eq!(
        std::fs::read(&moved_last).unwrap(),
        b"kept under its last name"
    );
    assert!(!moved.exists() && !moved_link.exists());
}

/// A real node on the mount receives a peer's entries over gossip; the power is cut while
/// they arrive. Powered on, its log opens and holds a whole prefix of the peer's feed (the
/// unsynced tail is gone), and once it runs again it fetches everything it lost from the peer
/// by backfill; its log then verifies.
#[test]
fn received_entries_lost_in_a_power_cut_come_back_by_backfill() {
    if let Some(reason) = missing_fuse() {
        eprintln!(
            "\n!!! SKIPPED: power-cut backfill test needs {reason}; nothing was tested !!!\n"
        );
        return;
    }
    let binary = plexus_binary();
    let work = tempfile::tempdir().unwrap();
    let backing = work.path().join("disk");
    let point = work.path().join("mnt");
    std::fs::create_dir_all(&backing).unwrap();
    std::fs::create_dir_all(&point).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let mut peer = LocalNode::init(&binary, &work.path().join("peer"), "recover");
    peer.start(&[]);
    let peer_client = peer.client();
    let status = runtime.block_on(peer_client.get("/v1/status")).unwrap();
    let author = status["agent_id"].as_str().unwrap().to_owned();

    let mut mount = Mount::start(&backing, &point);
    let mut node = LocalNode::init(&binary, &point.join("node"), "recover");
    let bootstrap = ["--bootstrap".to_owned(), peer.p2p_address.clone()];
    node.start(&bootstrap);
    let client = node.client();
    // Gossip reaches the node only once it is connected and subscribed: wait for one entry.
    publish_note(&runtime, &peer_client, 0);
    wait_until(
        "the node to receive the peer's first entry",
        ARRIVAL_TIMEOUT,
        || (head_of(&runtime, &client, &author) >= 1).then_some(()),
    );

    // The peer's agent publishes at full speed; the power goes while the entries arrive.
    let publishing = {
        let peer_client = peer_client.clone();
        runtime.spawn(async move {
            for index in 1..PEER_ENTRIES {
                let body = note_body(index);
                let answer = peer_client.post("/v1/entries", &body).await;
                answer.unwrap_or_else(|error| panic!("the peer refused note {index}: {error}"));
            }
        })
    };
    let (seen_before_cut, _) = wait_until(
        "half the peer's entries to reach the node",
        ARRIVAL_TIMEOUT,
        || {
            let head = head_of(&runtime, &client, &author);
            (head >= PEER_ENTRIES / 2).then_some(head)
        },
    );
    mount.cut_power();
    node.kill();
    runtime.block_on(publishing).unwrap();
    let published = head_of(&runtime, &peer_client, &author);
    assert!(
        published >= PEER_ENTRIES,
        "the peer holds {published} of its {PEER_ENTRIES} entries"
    );

    // Power on (the node, declared after the mount, is dropped first if the test fails): the
    // log opens on what reached the disk, a whole prefix of the feed.
    mount = Mount::start(&backing, &point);
    let feed = FeedKey {
        namespace: "recover".into(),
        author: author.parse::<AgentId>().unwrap(),
    };
    let on_disk = {
        let log = Log::open(&node.data_dir).unwrap_or_else(|error| {
            panic!("the node's log does not open after the power cut: {error}")
        });
        let head = log.head(&feed).unwrap().map_or(0, |head| head.seq);
        for seq in 1..=head {
            assert!(
                log.entry_at(&feed, seq).unwrap().is_some(),
                "seq {seq} missing below the head {head} after the power cut"
            );
        }
        head
    };
    assert!(
        on_disk < published,
        "the power was cut after all {published} entries had reached the node's disk: nothing \
         was left to backfill"
    );

    // Running again, the node backfills everything the peer published.
    node.start(&bootstrap);
    let client = node.client();
    wait_until(
        "the node to backfill every entry of the peer",
        ARRIVAL_TIMEOUT,
        || (head_of(&runtime, &client, &author) == published).then_some(()),
    );
    assert!(node.stop().is_some_and(|status| status.success()));
    let report = verify_data_dir(&node.data_dir, &VerifyOptions::default(), &()).unwrap();
    assert_eq!(report.verdict, Verdict::Verified, "{:#?}", report.findings);
    drop(mount);
    eprintln!(
        "powercut backfill: {seen_before_cut} of {published} stored when the power was cut, \
         {on_disk} on disk after it ({} lost), all {published} back by backfill",
        seen_before_cut.saturating_sub(on_disk)
    );
}

/// The peer's feed head in `recover` as the node behind `client` reports it (0 if none yet).
fn head_of(runtime: &tokio::runtime::Runtime, client: &ApiClient, author: &str) -> u64 {
    let Ok(status) = runtime.block_on(client.get("/v1/status")) else {
        return 0;
    };
    status["feeds"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|feed| feed["author"] == author && feed["namespace"] == "recover")
        .and_then(|feed| feed["seq"].as_u64())
        .unwrap_or(0)
}

fn note_body(index: u64) -> serde_json::Value {
    json!({"kind": "x-note", "body": {"index": index, "text": "n".repeat(200)}})
}

fn publish_note(runtime: &tokio::runtime::Runtime, client: &ApiClient, index: u64) {
    runtime
        .block_on(client.post("/v1/entries", &note_body(index)))
        .unwrap_or_else(|error| panic!("the peer refused note {index}: {error}"));
}

fn run_rounds(mode: &str) {
    if let Some(reason) = missing_fuse() {
        eprintln!(
            "\n!!! SKIPPED: power-cut test ({mode}) needs {reason}; nothing was tested !!!\n"
        );
        return;
    }
    let rounds: u32 = std::env::var("PLEXUS_POWERCUT_ROUNDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(3);
    let mut rng = rand::thread_rng();
    for round in 1..=rounds {
        let work = tempfile::tempdir().unwrap();
        let backing = work.path().join("disk");
        let point = work.path().join("mnt");
        std::fs::create_dir_all(&backing).unwrap();
        std::fs::create_dir_all(&point).unwrap();
        let cut_after: u64 = rng.gen_range(1..=400);

        let mut mount = Mount::start(&backing, &point);
        let data_dir = point.join("plexus");
        let acked = write_until(&data_dir, mode, cut_after, &mut mount);
        drop(mount);

        // Power on: a new file system over what reached the disk.
        let _mount = Mount::start(&backing, &point);
        let log = Log::open(&data_dir).unwrap_or_else(|error| {
            panic!("round {round}: the log does not open after the power cut: {error}")
        });
        let feed = FeedKey {
            namespace: "crash".into(),
            author: Keypair::from_seed(&[9; 32]).agent_id(),
        };
        let head = log.head(&feed).unwrap().map_or(0, |head| head.seq);
        for seq in 1..=head {
            assert!(
                log.entry_at(&feed, seq).unwrap().is_some(),
                "round {round}: seq {seq} missing below the head {head}"
            );
        }
        if mode == "own" {
            assert!(
                head >= acked,
                "round {round}: {acked} appends were acknowledged, only {head} survived the power cut"
            );
        }
        drop(log);
        let report = verify_data_dir(&data_dir, &VerifyOptions::default(), &()).unwrap();
        assert_eq!(
            report.verdict,
            Verdict::Verified,
            "round {round}: {:#?}",
            report.findings
        );
        eprintln!(
            "powercut {mode} round {round}/{rounds}: cut after {acked} acknowledged, {head} \
             survived, {} lost",
            acked.saturating_sub(head)
        );
    }
}

/// Runs `crash-writer` on `data_dir` until it acknowledges `cut_after` entries, then cuts the
/// power (the file system first, so nothing acknowledged later can reach the disk), then kills
/// the writer. Returns the last acknowledged seq.
fn write_until(data_dir: &Path, mode: &str, cut_after: u64, mount: &mut Mount) -> u64 {
    let mut writer = Command::new(env!("CARGO_BIN_EXE_crash-writer"))
        .arg(data_dir)
        .arg(mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = writer.stdout.take().unwrap();
    let mut acked = 0u64;
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if let Some(seq) = line.strip_prefix("acked ") {
            acked = seq.parse().unwrap();
        }
        if acked >= cut_after {
            break;
        }
    }
    mount.cut_power();
    let _ = writer.kill();
    let _ = writer.wait();
    assert!(
        acked >= cut_after,
        "the writer stopped after {acked} entries"
    );
    acked
}

/// A running `plexus-lazyfs` mount; dropping it cuts the power and unmounts.
struct Mount {
    point: PathBuf,
    process: Option<Child>,
}

impl Mount {
    fn start(backing: &Path, point: &Path) -> Mount {
        let process = Command::new(env!("CARGO_BIN_EXE_plexus-lazyfs"))
            .arg(backing)
            .arg(point)
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut mount = Mount {
            point: point.to_path_buf(),
            process: Some(process),
        };
        let deadline = Instant::now() + MOUNT_TIMEOUT;
        while !mount.is_mounted() {
            if let Some(status) = mount.process.as_mut().and_then(|p| p.try_wait().unwrap()) {
                panic!("plexus-lazyfs exited before mounting: {status}");
            }
            assert!(Instant::now() < deadline, "the mount did not appear");
            std::thread::sleep(Duration::from_millis(10));
        }
        mount
    }

    fn is_mounted(&self) -> bool {
        let point = self.point.to_string_lossy().into_owned();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .any(|line| {
                let mut fields = line.split(' ');
                fields.nth(4) == Some(point.as_str()) && line.contains("plexus-lazyfs")
            })
    }

    /// Kills the file system's process (its unsynced data dies with it) and detaches the mount;
    /// does nothing the second time (a new mount may be on the same point by then).
    fn cut_power(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
            let _ = Command::new("umount")
                .arg("-l")
                .arg(&self.point)
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        self.cut_power();
    }
}

/// Why this machine cannot run the test, if it cannot.
fn missing_fuse() -> Option<&'static str> {
    if !Path::new("/dev/fuse").exists() {
        return Some("/dev/fuse");
    }
    let uid = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next().map(str::to_owned));
    if uid.as_deref() != Some("0") {
        return Some("root (to mount a FUSE file system)");
    }
    None
}
