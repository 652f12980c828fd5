//! `plexus` nodes as separate processes on loopback (`127.0.0.1`, ports chosen by the kernel),
//! driven through the real binary and its HTTP API: for experiments that need real processes
//! (kills, restarts, storage faults) but no network faults, so no root and no namespaces.
//!
//! Each node is started under `setpriv --pdeathsig KILL` where `setpriv` exists, so a test that
//! dies leaves no node running; dropping a [`LocalNode`] kills its process.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use plexus_node::client::ApiClient;

pub use crate::netnode::describe;
use crate::netnode::{line_channel, START_TIMEOUT};

/// Most bytes of a node's stderr kept for the report of a failed start.
const STDERR_KEPT: usize = 64 * 1024;

/// A node's data directory and config file; running or not.
#[derive(Debug)]
pub struct LocalNode {
    pub data_dir: PathBuf,
    pub config: PathBuf,
    pub binary: PathBuf,
    /// `/ip4/127.0.0.1/tcp/<port>/p2p/<peer id>` of the running node (empty before a start).
    pub p2p_address: String,
    child: Option<Child>,
    stderr: Arc<Mutex<Vec<u8>>>,
    /// Disconnects when the stderr reader has taken the last bytes (the stream ended).
    stderr_done: Option<mpsc::Receiver<()>>,
}

/// Why `plexus run` did not come up: it exited (with what it printed) or took too long.
#[derive(Debug)]
pub struct StartFailure {
    pub status: Option<ExitStatus>,
    pub stderr: String,
}

impl LocalNode {
    /// A node on `data_dir` (config file beside it), initialised with `plexus init`.
    pub fn init(binary: &Path, data_dir: &Path, namespace: &str) -> LocalNode {
        let node = LocalNode::on(binary, data_dir);
        let output = node.offline(&["init", "--namespace", namespace]);
        assert!(output.status.success(), "init: {}", describe(&output));
        node
    }

    /// A node on an existing (or not yet initialised) `data_dir`.
    pub fn on(binary: &Path, data_dir: &Path) -> LocalNode {
        let config = data_dir.with_extension("toml");
        LocalNode {
            data_dir: data_dir.to_path_buf(),
            config,
            binary: binary.to_path_buf(),
            p2p_address: String::new(),
            child: None,
            stderr: Arc::default(),
            stderr_done: None,
        }
    }

    /// Starts `plexus run` on loopback with `extra` arguments; waits until it serves, or
    /// returns what it said if it exits first.
    pub fn try_start(&mut self, extra: &[String]) -> Result<(), StartFailure> {
        assert!(
            self.child.is_none(),
            "{} is already running",
            self.data_dir.display()
        );
        let mut command = self.command();
        command
            .args(["run", "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns"])
            .args(["--api-listen", "127.0.0.1:0", "--backfill-interval", "1"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("start plexus run: {error}"));
        self.stderr = Arc::default();
        self.stderr_done = keep_tail(child.stderr.take(), Arc::clone(&self.stderr));
        let lines = line_channel(child.stdout.take());
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match lines.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    if let Some(address) = line.trim().strip_prefix("listening on ") {
                        if address.starts_with("/ip4/127.0.0.1/tcp/") {
                            address.clone_into(&mut self.p2p_address);
                        }
                    }
                    if line.contains("running; HTTP API on") {
                        self.child = Some(child);
                        return Ok(());
                    }
                }
                Err(_) => {
                    if let Some(status) = child.try_wait().ok().flatten() {
                        return Err(self.failure(Some(status)));
                    }
                    if Instant::now() > deadline {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(self.failure(None));
                    }
                }
            }
        }
    }

    /// [`LocalNode::try_start`] that must succeed.
    pub fn start(&mut self, extra: &[String]) {
        if let Err(failure) = self.try_start(extra) {
            panic!(
                "node on {} did not start ({:?}): {}",
                self.data_dir.display(),
                failure.status,
                failure.stderr
            );
        }
    }

    /// Stops the node with SIGTERM and waits for it; returns how it exited.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        child.wait().ok()
    }

    /// Kills the node with SIGKILL (a crash of the process) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The running node's process id (of `plexus run` itself, not of `setpriv`, which execs it).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the node's process has exited (it crashed, or was stopped).
    pub fn has_exited(&mut self) -> bool {
        match &mut self.child {
            Some(child) => child.try_wait().ok().flatten().is_some(),
            None => true,
        }
    }

    /// What the node printed on stderr so far (its last [`STDERR_KEPT`] bytes).
    pub fn stderr_text(&self) -> String {
        let kept = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&kept).into_owned()
    }

    /// A client of the running node's API (its address file and token).
    pub fn client(&self) -> ApiClient {
        ApiClient::for_data_dir(&self.data_dir)
            .unwrap_or_else(|error| panic!("no API for {}: {error}", self.data_dir.display()))
    }

    /// Runs a `plexus` command on this node's data directory and config (offline commands, or
    /// commands that talk to the running node).
    pub fn offline(&self, arguments: &[&str]) -> Output {
        self.command()
            .args(arguments)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap_or_else(|error| panic!("plexus {arguments:?}: {error}"))
    }

    /// `plexus` on the node's data directory and config, killed if the spawning thread ends.
    fn command(&self) -> Command {
        let mut command = if has_setpriv() {
            let mut command = Command::new("setpriv");
            command.args(["--pdeathsig", "KILL"]).arg(&self.binary);
            command
        } else {
            Command::new(&self.binary)
        };
        command
            .env("PLEXUS_DATA_DIR", &self.data_dir)
            .env("PLEXUS_CONFIG", &self.config)
            .env_remove("PLEXUS_LOG")
            .stdin(Stdio::null());
        command
    }

    fn failure(&self, status: Option<ExitStatus>) -> StartFailure {
        // The stderr reader ends with the process; give it a moment to take the last bytes.
        if let Some(done) = &self.stderr_done {
            let _ = done.recv_timeout(Duration::from_secs(2));
        }
        StartFailure {
            status,
            stderr: self.stderr_text(),
        }
    }
}

impl Drop for LocalNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `setpriv` (util-linux) is there to make children die with the test.
fn has_setpriv() -> bool {
    Command::new("setpriv")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Keeps the last [`STDERR_KEPT`] bytes a child prints on stderr; the receiver returned
/// disconnects once the stream has ended and everything read is in `kept`.
fn keep_tail(
    stderr: Option<std::process::ChildStderr>,
    kept: Arc<Mutex<Vec<u8>>>,
) -> Option<mpsc::Receiver<()>> {
    let mut stderr = stderr?;
    let (done, finished) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        let _done = done;
        let mut buffer = [0u8; 4096];
        while let Ok(read) = stderr.read(&mut buffer) {
            if read == 0 {
                break;
            }
            let mut kept = kept.lock().unwrap_or_else(|e| e.into_inner());
            kept.extend_from_slice(&buffer[..read]);
            let excess = kept.len().saturating_sub(STDERR_KEPT);
            kept.drain(..excess);
        }
    });
    Some(finished)
}

/// The value of `name` in a `/v1/metrics` answer (Prometheus text: `NAME VALUE` lines), if it
/// is there and a whole number.
pub fn metric_value(metrics: &str, name: &str) -> Option<u64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))?
        .trim()
        .parse()
        .ok()
}
