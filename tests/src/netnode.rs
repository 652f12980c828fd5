//! `plexus` nodes as separate processes, each in a host namespace of a [`Lab`], driven only
//! through the `plexus` binary (its `run` command and the CLI mirror of the HTTP API, run
//! inside the node's namespace where its API listens on 127.0.0.1).
//!
//! Waiting is on conditions with a deadline ([`wait_until`]); nothing sleeps as
//! synchronisation.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::netns::Lab;

/// The TCP port every node listens on, each on its own address.
pub const P2P_PORT: u16 = 7400;

/// How long a node may take to start serving.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How often [`wait_until`] re-checks its condition.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// The `plexus` binary the tests run: `PLEXUS_BIN`, or built now by the cargo running the
/// tests (so it is never older than the sources), or the one beside the test binary.
pub fn plexus_binary() -> PathBuf {
    if let Ok(path) = std::env::var("PLEXUS_BIN") {
        return PathBuf::from(path);
    }
    if let Ok(cargo) = std::env::var("CARGO") {
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "plexus-node", "--bin", "plexus"])
            .status()
            .unwrap_or_else(|error| panic!("cannot run cargo to build plexus: {error}"));
        assert!(status.success(), "building the plexus binary failed");
    }
    let test_binary = std::env::current_exe().unwrap_or_else(|error| panic!("{error}"));
    let beside = test_binary
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("plexus"))
        .unwrap_or_default();
    assert!(
        beside.exists(),
        "no plexus binary at {}: build it (cargo build -p plexus-node --bin plexus) or set \
         PLEXUS_BIN",
        beside.display()
    );
    beside
}

/// A node's data directory, config file and place in the lab; running or not.
#[derive(Debug)]
pub struct NetNode {
    pub host: usize,
    pub data_dir: PathBuf,
    pub config: PathBuf,
    pub binary: PathBuf,
    /// The node's dialable address, `/ip4/<lab address>/tcp/7400/p2p/<peer id>`, once started.
    pub p2p_address: String,
    child: Option<Child>,
}

impl NetNode {
    /// Initialises a node for lab host `host` in `root` (`plexus init --namespace namespace`).
    pub fn init(binary: &Path, root: &Path, host: usize, namespace: &str) -> NetNode {
        let node = NetNode {
            host,
            data_dir: root.join(format!("node{host}")),
            config: root.join(format!("node{host}.toml")),
            binary: binary.to_path_buf(),
            p2p_address: String::new(),
            child: None,
        };
        let output = node.offline(&["init", "--namespace", namespace]);
        assert!(output.status.success(), "init: {}", describe(&output));
        node
    }

    /// This node's agent id (`plexus id`).
    pub fn agent_id(&self) -> String {
        let output = self.offline(&["id", "--json"]);
        assert!(output.status.success(), "id: {}", describe(&output));
        let answer: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        answer["agent_id"]
            .as_str()
            .unwrap_or_else(|| panic!("id --json gave no agent_id: {}", describe(&output)))
            .to_owned()
    }

    /// Starts `plexus run` in the node's namespace with `extra` arguments and waits until it
    /// serves.
    pub fn start(&mut self, lab: &Lab, extra: &[String]) {
        assert!(
            self.child.is_none(),
            "node {} is already running",
            self.host
        );
        let listen = format!("/ip4/{}/tcp/{P2P_PORT}", lab.address(self.host));
        let mut command = self.command(lab);
        command
            .args(["run", "--listen", &listen, "--no-mdns"])
            .args(["--api-listen", "127.0.0.1:7474", "--backfill-interval", "1"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("start node {}: {error}", self.host));
        let lines = line_channel(child.stdout.take());
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let line = match lines.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => line,
                Err(_) => {
                    let _ = child.kill();
                    let exit = child.wait();
                    panic!(
                        "node {} did not start within {START_TIMEOUT:?} ({exit:?})",
                        self.host
                    );
                }
            };
            if let Some(address) = line.trim().strip_prefix("listening on ") {
                self.p2p_address = address.to_owned();
            }
            if line.contains("running; HTTP API on") {
                break;
            }
        }
        // The channel's thread keeps draining stdout, so the node never blocks on a full pipe.
        self.child = Some(child);
    }

    /// Stops the node with SIGTERM and waits for a clean exit.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let exit = child
            .wait()
            .unwrap_or_else(|error| panic!("wait for node {}: {error}", self.host));
        assert!(exit.success(), "node {} exited with {exit}", self.host);
    }

    /// Runs a `plexus` command against the running node, inside its namespace.
    pub fn cli(&self, lab: &Lab, arguments: &[&str]) -> Output {
        self.command(lab)
            .args(arguments)
            .output()
            .unwrap_or_else(|error| panic!("plexus {arguments:?}: {error}"))
    }

    /// Runs a `plexus ... --json` command that must succeed and returns its JSON answer.
    pub fn json(&self, lab: &Lab, arguments: &[&str]) -> Value {
        let mut with_json = arguments.to_vec();
        with_json.push("--json");
        let output = self.cli(lab, &with_json);
        assert!(
            output.status.success(),
            "node {}: plexus {arguments:?}: {}",
            self.host,
            describe(&output)
        );
        serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|error| panic!("plexus {arguments:?} printed no JSON: {error}"))
    }

    /// The node's feed heads (namespace, author, seq, entry id), sorted; `None` while its API
    /// does not answer.
    pub fn heads(&self, lab: &Lab) -> Option<Vec<(String, String, u64, String)>> {
        let output = self.cli(lab, &["status", "--json"]);
        if !output.status.success() {
            return None;
        }
        let status: Value = serde_json::from_slice(&output.stdout).ok()?;
        let mut heads: Vec<_> = status["feeds"]
            .as_array()?
            .iter()
            .map(|feed| {
                (
                    feed["namespace"].as_str().unwrap_or("").to_owned(),
                    feed["author"].as_str().unwrap_or("").to_owned(),
                    feed["seq"].as_u64().unwrap_or(0),
                    feed["id"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        heads.sort();
        Some(heads)
    }

    /// Follows the node's change events of `kinds` on resources matching `resource` (`plexus
    /// events --json`), one JSON event a message.
    pub fn follow_events(&self, lab: &Lab, kinds: &str, resource: &str) -> EventFollower {
        let mut child = self
            .command(lab)
            .args(["events", "--kind", kinds, "--resource", resource, "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("plexus events: {error}"));
        let lines = line_channel(child.stdout.take());
        EventFollower { child, lines }
    }

    /// `plexus` inside the node's namespace, on its data directory and config.
    fn command(&self, lab: &Lab) -> Command {
        let mut command = lab.command_in(self.host, &self.binary);
        command
            .env("PLEXUS_DATA_DIR", &self.data_dir)
            .env("PLEXUS_CONFIG", &self.config)
            .env_remove("PLEXUS_LOG")
            .stdin(Stdio::null());
        command
    }

    fn offline(&self, arguments: &[&str]) -> Output {
        Command::new(&self.binary)
            .args(arguments)
            .env("PLEXUS_DATA_DIR", &self.data_dir)
            .env("PLEXUS_CONFIG", &self.config)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|error| panic!("plexus {arguments:?}: {error}"))
    }
}

impl Drop for NetNode {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A running `plexus events` and the events it printed.
#[derive(Debug)]
pub struct EventFollower {
    child: Child,
    lines: Receiver<String>,
}

impl EventFollower {
    /// The next event that satisfies `wanted`, skipping others; `None` after `timeout`.
    pub fn next_matching(
        &self,
        timeout: Duration,
        mut wanted: impl FnMut(&Value) -> bool,
    ) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => {
                    let event: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
                    if wanted(&event) {
                        return Some(event);
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }
}

impl Drop for EventFollower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `probe` returns `Some`, re-checking every [`POLL_INTERVAL`]; panics naming
/// `what` after `timeout`. Returns the value and how long it took.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    probe: impl FnMut() -> Option<T>,
) -> (T, Duration) {
    poll_until(timeout, probe)
        .unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

/// Waits until `probe` returns `Some`, re-checking every [`POLL_INTERVAL`], for at most
/// `timeout`. Returns the value and how long it took, or `None` at the timeout.
fn poll_until<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<(T, Duration)> {
    let start = Instant::now();
    loop {
        if let Some(value) = probe() {
            return Some((value, start.elapsed()));
        }
        if start.elapsed() >= timeout {
            return None;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Waits until every node answers with the same feed heads, `feeds` of them; returns the time
/// it took.
pub fn wait_same_heads(lab: &Lab, nodes: &[&NetNode], feeds: usize, timeout: Duration) -> Duration {
    let mut last_seen = Vec::new();
    let reached = poll_until(timeout, || {
        last_seen = nodes.iter().map(|node| node.heads(lab)).collect();
        let same = last_seen
            .iter()
            .all(|heads| heads.as_ref().is_some_and(|heads| heads.len() == feeds))
            && last_seen.windows(2).all(|pair| pair[0] == pair[1]);
        same.then_some(())
    });
    match reached {
        Some(((), took)) => took,
        None => panic!(
            "nodes did not reach the same {feeds} feed heads within {timeout:?}; last seen: \
             {last_seen:#?}"
        ),
    }
}

/// The lines a child prints on `stdout`, read by a thread of their own.
pub(crate) fn line_channel(stdout: Option<std::process::ChildStdout>) -> Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    if let Some(stdout) = stdout {
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // Once nobody listens, keep reading so the child never blocks on its pipe.
                let _ = sender.send(line);
            }
        });
    }
    receiver
}

/// A command's stdout and stderr, for failure messages.
pub fn describe(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
