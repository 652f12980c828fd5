//! Power cuts, not just process kills: the log lives on `plexus-lazyfs`, a file system that keeps
//! everything written since the last fsync of each file in memory only, and the power is cut by
//! killing that file system's process at a random moment while a writer appends. A process kill
//! keeps the page cache, so it cannot tell whether the log fsyncs; this can: with the fsync of
//! own appends removed, acknowledged appends are lost here (docs/reliability.md shows that run).
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

use plexus_crypto::Keypair;
use plexus_node::audit::{verify_data_dir, Verdict, VerifyOptions};
use plexus_node::store::Log;
use plexus_protocol::FeedKey;
use rand::Rng;

/// How long a mount may take to appear.
const MOUNT_TIMEOUT: Duration = Duration::from_secs(20);

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

    mount.cut_power();
    let _mount = Mount::start(&backing, &point);
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

    /// Kills the file system's process (its unsynced data dies with it) and detaches the mount.
    fn cut_power(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.point)
            .stderr(Stdio::null())
            .status();
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
