//! `plexus audit export` while other `plexus publish` processes write the same data directory
//! (each takes the directory's lock in turn): every export is one consistent log and passes
//! `plexus audit verify`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Exports taken while the writers run.
const EXPORTS: u32 = 12;

/// Offline writers publishing in turn.
const WRITERS: usize = 2;

/// Longest wait for the writers to publish something new.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

fn plexus(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_plexus"))
        .args(args)
        .env("PLEXUS_DATA_DIR", home.join("data"))
        .env("PLEXUS_CONFIG", home.join("config.toml"))
        .env_remove("PLEXUS_LOG")
        .output()
        .unwrap()
}

fn describe(output: &Output) -> String {
    format!(
        "exit {:?}: {}{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Entries the writers have published so far, with a signal for each new one.
#[derive(Default)]
struct Published {
    count: Mutex<u64>,
    grew: Condvar,
}

impl Published {
    fn add(&self) {
        *self.count.lock().unwrap() += 1;
        self.grew.notify_all();
    }

    /// Waits until more than `seen` entries were published; returns the new count.
    fn wait_beyond(&self, seen: u64) -> u64 {
        let count = self.count.lock().unwrap();
        let (count, timeout) = self
            .grew
            .wait_timeout_while(count, WRITE_TIMEOUT, |count| *count <= seen)
            .unwrap();
        assert!(
            !timeout.timed_out(),
            "the writers published nothing for {WRITE_TIMEOUT:?}"
        );
        *count
    }
}

#[test]
fn every_export_taken_beside_writing_processes_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let home: PathBuf = dir.path().to_path_buf();
    let init = plexus(&home, &["init", "--namespace", "team"]);
    assert!(init.status.success(), "{}", describe(&init));

    let stop = Arc::new(AtomicBool::new(false));
    let published = Arc::new(Published::default());
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let (home, stop, published) = (home.clone(), Arc::clone(&stop), Arc::clone(&published));
            std::thread::spawn(move || {
                let body = format!(r#"{{"writer": {writer}}}"#);
                while !stop.load(Ordering::Relaxed) {
                    // The other writer may hold the lock: that attempt fails, the next one runs.
                    let output = plexus(&home, &["publish", "--kind", "x-note", "--body", &body]);
                    if output.status.success() {
                        published.add();
                    }
                }
            })
        })
        .collect();

    let mut seen = 0;
    let mut failures = Vec::new();
    for round in 0..EXPORTS {
        // Something new was written since the last export.
        seen = published.wait_beyond(seen);
        let file = home.join(format!("export-{round}.plexus"));
        let file_text = file.display().to_string();
        let export = plexus(&home, &["audit", "export", "--out", &file_text]);
        if !export.status.success() {
            failures.push(format!("export {round}: {}", describe(&export)));
            continue;
        }
        let verify = plexus(&home, &["audit", "verify", &file_text]);
        if !verify.status.success() {
            failures.push(format!("verify of export {round}: {}", describe(&verify)));
        }
    }
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.join().unwrap();
    }
    assert!(
        failures.is_empty(),
        "{} of {EXPORTS} exports beside writers failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The writers were really writing throughout.
    assert!(seen >= u64::from(EXPORTS));
}
