//! Storage faults against the real `plexus` binary: a corrupted block in one of the log's SST
//! files, a full disk while an agent publishes, and a read-only data directory. Each checks
//! what a user sees (the node refuses to start or the write, saying what and where) and that
//! nothing acknowledged is lost or damaged.
//!
//! The full-disk and read-only tests mount a small tmpfs, which needs root; where mounting is
//! impossible they say so loudly and fail, unless `PLEXUS_ALLOW_NO_MOUNT=1`. A mount is removed
//! by a drop guard and, should the test process be killed, by a watchdog shell.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use plexus_node::client::ApiClient;
use plexus_tests::localnode::{describe, LocalNode};
use plexus_tests::netnode::{plexus_binary, wait_until};
use serde_json::{json, Value};

/// Set to `1` to let the mounting tests pass, with a loud SKIPPED line, where tmpfs cannot be
/// mounted (not root).
const ALLOW_NO_MOUNT: &str = "PLEXUS_ALLOW_NO_MOUNT";

/// How long a condition (a refused write, a resumed one) may take to appear.
const CONDITION_TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn a_corrupted_sst_block_stops_the_node_and_audit_verify_names_the_file() {
    let binary = plexus_binary();
    let work = tempfile::tempdir().unwrap();
    let data_dir = work.path().join("node");
    let mut node = LocalNode::init(&binary, &data_dir, "storage");
    node.start(&[]);
    let runtime = runtime();
    let client = node.client();
    let published: Vec<String> = (0..60)
        .map(|index| publish_note(&runtime, &client, index).expect("publish"))
        .collect();
    // A clean stop flushes the memtables: the entries are in SST files now.
    assert!(node.stop().is_some_and(|status| status.success()));

    let sst = flip_bytes_in_first_data_block(&data_dir, "entries");
    let sst_name = sst.file_name().unwrap().to_string_lossy().into_owned();

    // The node refuses to start, naming the damaged file and what to do.
    let failure = node
        .try_start(&[])
        .expect_err("the node started on a log with a damaged block");
    assert!(
        failure.stderr.contains(&sst_name) && failure.stderr.contains("damaged"),
        "the refusal names neither the damaged file {sst_name} nor the damage: {}",
        failure.stderr
    );
    assert!(
        failure.stderr.contains("plexus audit verify"),
        "the refusal does not say what to do: {}",
        failure.stderr
    );

    // Offline reads refuse the damaged entries too, rather than print anything made up.
    let log = node.offline(&["log", "--json"]);
    assert!(
        !log.status.success(),
        "`plexus log` read a damaged log: {}",
        describe(&log)
    );
    assert!(describe(&log).contains(&sst_name), "{}", describe(&log));

    // The audit locates the damage: the file, the offset, and the feed it is in.
    let verify = node.offline(&["audit", "verify", &data_dir.to_string_lossy()]);
    let text = describe(&verify);
    assert_eq!(verify.status.code(), Some(1), "audit verify: {text}");
    assert!(
        text.contains(&sst_name) && text.contains("offset"),
        "audit verify does not name the damaged file and offset: {text}"
    );
    assert!(
        text.contains("storage") && text.contains("seq"),
        "audit verify does not say which feed and entries are damaged: {text}"
    );
    assert_eq!(published.len(), 60);
}

#[test]
fn a_full_disk_refuses_publishes_clearly_and_loses_nothing_acknowledged() {
    let Some(mount) = Tmpfs::mount_or_skip("full disk", "24m") else {
        return;
    };
    let binary = plexus_binary();
    let data_dir = mount.point.join("node");
    let mut node = LocalNode::init(&binary, &data_dir, "storage");
    node.start(&[]);
    let runtime = Arc::new(runtime());
    let client = node.client();

    // An agent publishes without pause, recording every answer.
    let answers: Arc<Mutex<Vec<PublishAnswer>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (runtime, client, answers, stop) = (
            Arc::clone(&runtime),
            client.clone(),
            Arc::clone(&answers),
            Arc::clone(&stop),
        );
        std::thread::spawn(move || {
            let mut index = 0;
            while !stop.load(Ordering::Relaxed) {
                let answer = publish_note(&runtime, &client, index);
                answers.lock().unwrap().push(answer);
                index += 1;
            }
        })
    };
    wait_until("a few acknowledged publishes", CONDITION_TIMEOUT, || {
        (answers.lock().unwrap().iter().filter(|a| a.is_ok()).count() >= 20).then_some(())
    });

    // Fill the file system while the agent publishes.
    let filler = mount.point.join("filler");
    fill(&filler);
    let full_from = answers.lock().unwrap().len();
    // Every write refused for the full disk says so, not only the first: RocksDB reports the
    // file system's ENOSPC once, then refuses later writes with its own stopped state.
    let (refusals, _) = wait_until(
        "ten publishes refused for the full disk",
        CONDITION_TIMEOUT,
        || {
            let refusals: Vec<Refusal> = answers.lock().unwrap()[full_from..]
                .iter()
                .filter_map(|answer| answer.as_ref().err().cloned())
                .collect();
            (refusals.len() >= 10).then_some(refusals)
        },
    );
    for (index, refusal) in refusals.iter().enumerate() {
        assert_eq!(
            (refusal.status, refusal.code.as_str()),
            (507, "disk_full"),
            "refusal {index} after the disk filled is not 507 Insufficient Storage \
             `disk_full`: {refusal:?}"
        );
        assert!(
            refusal.message.contains("disk is full")
                && refusal.message.contains(&data_dir.display().to_string()),
            "refusal {index} does not say the disk is full and where: {refusal:?}"
        );
    }
    assert!(
        !node.has_exited(),
        "the node died on a full disk: {}",
        node.stderr_text()
    );

    stop.store(true, Ordering::Relaxed);
    publisher.join().unwrap();
    assert!(
        !node.has_exited(),
        "the node died on a full disk: {}",
        node.stderr_text()
    );

    // Space freed: after a restart writes resume (RocksDB, stopped by the failed write-ahead
    // log append, does not resume by itself here: docs/reliability.md), every acknowledged
    // entry is there, and the log verifies.
    std::fs::remove_file(&filler).unwrap();
    let acknowledged: Vec<String> = answers
        .lock()
        .unwrap()
        .iter()
        .filter_map(|answer| answer.as_ref().ok().cloned())
        .collect();
    node.stop();
    node.start(&[]);
    let client = node.client();
    let resumed =
        publish_note(&runtime, &client, 1_000_000).expect("publish after space was freed");
    let stored = logged_ids(&runtime, &client);
    assert!(
        stored.contains(&resumed),
        "the entry published after the restart ({resumed}) is not in the log of {} entries ({} acknowledged before)",
        stored.len(),
        acknowledged.len()
    );
    for id in &acknowledged {
        assert!(stored.contains(id), "acknowledged entry {id} is lost");
    }
    assert!(
        node.stop().is_some_and(|status| status.success()),
        "{}",
        node.stderr_text()
    );
    let verify = node.offline(&["audit", "verify", &data_dir.to_string_lossy()]);
    assert!(
        verify.status.success(),
        "audit verify: {}",
        describe(&verify)
    );
}

#[test]
fn a_read_only_data_directory_is_refused_at_start_naming_it() {
    let Some(mount) = Tmpfs::mount_or_skip("read-only data directory", "16m") else {
        return;
    };
    let binary = plexus_binary();
    let data_dir = mount.point.join("node");
    let mut node = LocalNode::init(&binary, &data_dir, "storage");
    node.start(&[]);
    let runtime = runtime();
    let id = publish_note(&runtime, &node.client(), 0).expect("publish");
    assert!(node.stop().is_some_and(|status| status.success()));
    mount.remount_read_only();

    let failure = node
        .try_start(&[])
        .expect_err("the node started on a read-only data directory");
    assert!(
        failure.status.is_some(),
        "the node hung instead of refusing"
    );
    let dir = data_dir.display().to_string();
    let said = failure.stderr.to_lowercase();
    assert!(
        failure.stderr.contains(&dir) && said.contains("read-only") && said.contains("--data-dir"),
        "the refusal does not name the read-only directory {dir} and what to do: {}",
        failure.stderr
    );
    // The log itself is intact and auditable in place.
    let verify = node.offline(&["audit", "verify", &dir]);
    assert!(
        verify.status.success(),
        "audit verify: {}",
        describe(&verify)
    );
    let log = node.offline(&["log", "--json"]);
    assert!(
        log.status.success() && String::from_utf8_lossy(&log.stdout).contains(&id),
        "plexus log on the read-only directory: {}",
        describe(&log)
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A publish's answer: `Ok(entry id)` or the refusal.
type PublishAnswer = Result<String, Refusal>;

/// A refused publish: the HTTP status (0: no answer), the error's code and message.
#[derive(Debug, Clone)]
struct Refusal {
    status: u16,
    code: String,
    message: String,
}

/// Publishes note `index` (a few hundred bytes).
fn publish_note(
    runtime: &tokio::runtime::Runtime,
    client: &ApiClient,
    index: u64,
) -> PublishAnswer {
    let body = json!({"kind": "x-note", "body": {"index": index, "text": "n".repeat(300)}});
    let bytes = serde_json::to_vec(&body).unwrap();
    let response = runtime
        .block_on(client.request("POST", "/v1/entries", Some(&bytes)))
        .map_err(|error| Refusal {
            status: 0,
            code: "no-answer".to_owned(),
            message: error.to_string(),
        })?;
    let answer: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    if response.status == 201 {
        Ok(answer["entry"]["entry_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned())
    } else {
        let text = |field: &str| {
            answer["error"][field]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        };
        Err(Refusal {
            status: response.status,
            code: text("code"),
            message: text("message"),
        })
    }
}

/// Every entry id in the node's log.
fn logged_ids(runtime: &tokio::runtime::Runtime, client: &ApiClient) -> Vec<String> {
    let mut ids = Vec::new();
    let mut after: Option<u64> = None;
    loop {
        let path = match after {
            Some(after) => format!("/v1/log?limit=500&after={after}"),
            None => "/v1/log?limit=500".to_owned(),
        };
        let page = runtime.block_on(client.get(&path)).unwrap();
        let entries = page["entries"].as_array().cloned().unwrap_or_default();
        ids.extend(
            entries
                .iter()
                .filter_map(|e| e["entry_id"].as_str().map(str::to_owned)),
        );
        match page["last_arrival"].as_u64() {
            Some(last) if !entries.is_empty() => after = Some(last),
            _ => return ids,
        }
    }
}

/// Flips 8 bytes inside the first data block of the largest SST file of column family
/// `family`; returns the file.
fn flip_bytes_in_first_data_block(data_dir: &Path, family: &str) -> PathBuf {
    let db_dir = data_dir.join("log");
    let files = {
        let families = rocksdb::DB::list_cf(&rocksdb::Options::default(), &db_dir).unwrap();
        let db = rocksdb::DB::open_cf_for_read_only(
            &rocksdb::Options::default(),
            &db_dir,
            &families,
            false,
        )
        .unwrap();
        db.live_files().unwrap()
    };
    let file = files
        .iter()
        .filter(|file| file.column_family_name == family)
        .max_by_key(|file| file.size)
        .unwrap_or_else(|| panic!("no SST file of {family} in {}", db_dir.display()));
    let path = db_dir.join(file.name.trim_start_matches('/'));
    let mut bytes = std::fs::read(&path).unwrap();
    // Data blocks come first in an SST file, and the first one is at least hundreds of bytes
    // long here (entries of ~400 bytes, 4 KiB blocks), so bytes 100..108 are inside it.
    for byte in &mut bytes[100..108] {
        *byte ^= 0xff;
    }
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Writes zeros into `path` until the file system is full.
fn fill(path: &Path) {
    use std::io::Write as _;
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    loop {
        if let Err(error) = file.write_all(&chunk).and_then(|()| file.sync_all()) {
            assert_eq!(error.raw_os_error(), Some(libc::ENOSPC), "filling: {error}");
            return;
        }
    }
}

/// A tmpfs mounted on a fresh directory, unmounted on drop; a watchdog shell unmounts it if
/// the test process is killed before the drop runs.
struct Tmpfs {
    point: PathBuf,
    _root: tempfile::TempDir,
    watchdog: Option<Child>,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`mount -o size=`), or says loudly why it cannot and returns
    /// `None` (failing the test unless [`ALLOW_NO_MOUNT`]`=1`).
    fn mount_or_skip(test: &str, size: &str) -> Option<Tmpfs> {
        let root = tempfile::tempdir().unwrap();
        let point = root.path().join("mnt");
        std::fs::create_dir(&point).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&point)
            .stderr(Stdio::piped())
            .output();
        match mounted {
            Ok(output) if output.status.success() => {}
            other => {
                let reason = match other {
                    Ok(output) => String::from_utf8_lossy(&output.stderr).trim().to_owned(),
                    Err(error) => error.to_string(),
                };
                eprintln!(
                    "\n!!! SKIPPED: storage-fault test ({test}) cannot mount a tmpfs ({reason}); \
                     it needs root; nothing was tested !!!\n"
                );
                assert!(
                    std::env::var(ALLOW_NO_MOUNT).as_deref() == Ok("1"),
                    "storage-fault test ({test}) could not mount a tmpfs: {reason}. Run it as \
                     root, or set {ALLOW_NO_MOUNT}=1 to skip it knowingly"
                );
                return None;
            }
        }
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; umount -l '{point}' 2>/dev/null; true",
            pid = std::process::id(),
            point = point.display()
        );
        let watchdog = Command::new("setsid")
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok();
        Some(Tmpfs {
            point,
            _root: root,
            watchdog,
        })
    }

    fn remount_read_only(&self) {
        let status = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.point)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "remounting {} read-only failed",
            self.point.display()
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.point)
            .stderr(Stdio::null())
            .status();
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }
}
