//! The soak experiment: `plexus run` processes on loopback with one agent each claiming,
//! renewing and releasing a few shared resources and updating tasks at a steady rate, while one
//! node is killed (SIGKILL) and restarted at a fixed interval. It samples each node's resident
//! memory, open files and data directory size, and at the end checks the promises of the log
//! and the lease rule from the nodes' exports alone:
//!
//! - every node reaches the same feed heads, and every node's export verifies;
//! - no agent was told it held a lease that, by the exported log, another agent held, later
//!   than the clock-skew window after that agent's claim (checked in process with the view's
//!   fold at every moment an agent was told "holding", and with `plexus audit replay --at` at
//!   a sample of those moments, which must agree with the fold and name at most one holder).
//!
//! `tests/tests/soak.rs` runs a short version in the suite; `scripts/faults.sh soak` the long one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use plexus_node::client::ApiClient;
use plexus_protocol::coord::{body_for_view, View, DEFAULT_CLOCK_SKEW_MS};
use plexus_protocol::export::{classify, ItemKind};
use plexus_protocol::Entry;
use rand::Rng;
use serde_json::{json, Value};

use crate::fixtures::item_ranges;
use crate::localnode::{describe, metric_value, LocalNode};

/// The namespace every agent works in.
pub const NAMESPACE: &str = "soak";
/// Resources the agents contend for.
const RESOURCES: [&str; 4] = ["soak/r0", "soak/r1", "soak/r2", "soak/r3"];
/// Lease asked for by every claim and renewal: short, so leases end and change hands often.
const LEASE_MS: u64 = 4_000;
/// Renewals of a held lease before its agent releases it.
const RENEWALS: u32 = 2;
/// Polls of a waiting claim before its agent releases it.
const WAIT_POLLS: u32 = 3;
/// How long the nodes may take to reach the same heads once the agents stop.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(120);
/// Moments checked with `plexus audit replay --at` (the fold checks every one).
const REPLAY_SAMPLES: usize = 24;

/// What to run.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    pub nodes: usize,
    pub duration: Duration,
    pub restart_every: Duration,
    /// Samples taken this long after a process starts are left out of the slopes.
    pub warm_up: Duration,
    /// `--view-history-minutes` of every node; the node's default (a day) when `None`.
    pub view_history_minutes: Option<u64>,
    /// Samples taken before the soak, and the process sampled, have run this long are left
    /// out of the slopes too: a process's view grows until it holds the whole history window,
    /// and a restarted process, although it loads the window from its log, was measured
    /// growing for as long as a first one (`docs/reliability.md`, Soak).
    pub settle: Duration,
    pub sample_every: Duration,
    /// Pause between two steps of each agent (a step is a lease request and a task update).
    pub step_every: Duration,
}

impl SoakConfig {
    /// The configuration from `PLEXUS_SOAK_SECONDS`, `PLEXUS_SOAK_NODES` and
    /// `PLEXUS_SOAK_RESTART_SECONDS`, each defaulting to the given value,
    /// `PLEXUS_SOAK_VIEW_HISTORY_MINUTES` (the node's default when unset),
    /// `PLEXUS_SOAK_SETTLE_SECONDS` (by default the view's window and a minute) and
    /// `PLEXUS_SOAK_STEP_MS` (500: each agent's pause between two steps).
    pub fn from_env(seconds: u64, nodes: usize, restart_seconds: u64) -> SoakConfig {
        let read = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|value| value.parse().ok())
                .unwrap_or(default)
        };
        let seconds = read("PLEXUS_SOAK_SECONDS", seconds);
        let view_history_minutes = std::env::var("PLEXUS_SOAK_VIEW_HISTORY_MINUTES")
            .ok()
            .and_then(|value| value.parse().ok());
        SoakConfig {
            nodes: read("PLEXUS_SOAK_NODES", nodes as u64).max(2) as usize,
            duration: Duration::from_secs(seconds),
            restart_every: Duration::from_secs(read(
                "PLEXUS_SOAK_RESTART_SECONDS",
                restart_seconds,
            )),
            warm_up: Duration::from_secs((seconds / 5).clamp(10, 60)),
            view_history_minutes,
            // The window, and the minute after it in which the view next forgets.
            settle: Duration::from_secs(read(
                "PLEXUS_SOAK_SETTLE_SECONDS",
                view_history_minutes.map_or(0, |minutes| 60 * minutes + 60),
            )),
            sample_every: Duration::from_secs(if seconds > 120 { 5 } else { 2 }),
            step_every: Duration::from_millis(read("PLEXUS_SOAK_STEP_MS", 500).max(1)),
        }
    }
}

/// One resource sample of one node process.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub node: usize,
    /// Counts the node's processes: a restart starts a new one.
    pub life: u32,
    pub seconds: f64,
    pub seconds_since_start: f64,
    pub rss_kib: u64,
    pub open_files: u64,
    pub disk_bytes: u64,
    /// RocksDB's memtables and block cache, as the node's `/v1/metrics` reports them (both
    /// bounded, at 32 MiB each); `None` when the node did not answer.
    pub rocksdb_kib: Option<u64>,
    /// Bytes allocated and not freed (KiB), the node's `plexus_heap_allocated_bytes`: live
    /// data, without what the allocator keeps; `None` when the node did not answer.
    pub heap_kib: Option<u64>,
}

impl Sample {
    /// RSS less RocksDB's memtables and block cache: what is left once the two bounded caches
    /// are set aside, `None` when they were not reported.
    pub fn rss_less_rocksdb_kib(&self) -> Option<u64> {
        Some(self.rss_kib.saturating_sub(self.rocksdb_kib?))
    }
}

/// `samples` as CSV, one line each after a header: node, process (counting restarts),
/// seconds since the soak started and since the process started, RSS (KiB), open files, the
/// data directory's size (bytes), RocksDB's memtables and block cache and the allocated heap
/// (KiB, empty when not reported).
pub fn samples_csv(samples: &[Sample]) -> String {
    let mut csv = String::from(
        "node,life,seconds,seconds_since_start,rss_kib,open_files,disk_bytes,rocksdb_kib,heap_kib\n",
    );
    for sample in samples {
        csv.push_str(&format!(
            "{},{},{:.1},{:.1},{},{},{},{},{}\n",
            sample.node,
            sample.life,
            sample.seconds,
            sample.seconds_since_start,
            sample.rss_kib,
            sample.open_files,
            sample.disk_bytes,
            optional(sample.rocksdb_kib),
            optional(sample.heap_kib),
        ));
    }
    csv
}

fn optional(kib: Option<u64>) -> String {
    kib.map_or(String::new(), |kib| kib.to_string())
}

/// A moment at which an agent's node answered that its claim held the lease.
#[derive(Debug, Clone)]
struct Belief {
    agent: String,
    resource: String,
    claim_id: String,
    at_ms: u64,
}

/// What the soak found.
#[derive(Debug)]
pub struct SoakReport {
    pub samples: Vec<Sample>,
    pub restarts: u32,
    pub steps_answered: u64,
    pub steps_refused: u64,
    pub holding_answers: usize,
    /// Answers "holding" while, by the exported log, another agent held the lease, with how
    /// long after that agent's claim (ms); allowed up to the clock-skew window.
    pub conflicts: Vec<u64>,
    pub replays_checked: usize,
    pub entries: usize,
    pub exports_verified: usize,
}

/// Runs the soak with `binary` in `root`.
pub fn run(binary: &Path, root: &Path, config: &SoakConfig) -> SoakReport {
    let mut nodes: Vec<LocalNode> = (0..config.nodes)
        .map(|index| LocalNode::init(binary, &root.join(format!("node{index}")), NAMESPACE))
        .collect();
    let mut lives = vec![0u32; nodes.len()];
    let mut started_at = vec![Instant::now(); nodes.len()];
    for index in 0..nodes.len() {
        let arguments = node_args(&nodes, index, config);
        nodes[index].start(&arguments);
        started_at[index] = Instant::now();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let beliefs: Arc<Mutex<Vec<Belief>>> = Arc::default();
    let counts = Arc::new(Mutex::new((0u64, 0u64)));
    let agents: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(index, node)| {
            let agent = Agent {
                index,
                data_dir: node.data_dir.clone(),
                agent_id: agent_id(node),
                step_every: config.step_every,
            };
            let (stop, beliefs, counts) =
                (Arc::clone(&stop), Arc::clone(&beliefs), Arc::clone(&counts));
            std::thread::spawn(move || agent.run(&stop, &beliefs, &counts))
        })
        .collect();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|error| panic!("runtime: {error}"));
    let begin = Instant::now();
    let mut samples = Vec::new();
    let mut restarts = 0u32;
    let mut next_restart = begin + config.restart_every;
    while begin.elapsed() < config.duration {
        for (index, node) in nodes.iter().enumerate() {
            let life = (index, lives[index], started_at[index]);
            if let Some(sample) = sample(node, life, begin, &runtime) {
                samples.push(sample);
            }
        }
        if Instant::now() >= next_restart && !config.restart_every.is_zero() {
            let index = restarts as usize % nodes.len();
            nodes[index].kill();
            let arguments = node_args(&nodes, index, config);
            nodes[index].start(&arguments);
            lives[index] += 1;
            started_at[index] = Instant::now();
            restarts += 1;
            next_restart += config.restart_every;
        }
        // Pacing of the sampler, not synchronisation: nothing waits on what it measures.
        std::thread::sleep(config.sample_every);
    }
    stop.store(true, Ordering::Relaxed);
    for agent in agents {
        let _ = agent.join();
    }

    wait_same_heads(&nodes);
    let mut exports = Vec::new();
    for (index, node) in nodes.iter_mut().enumerate() {
        let status = node.stop();
        assert!(
            status.is_some_and(|status| status.success()),
            "node {index} did not stop cleanly ({status:?}): {}",
            node.stderr_text()
        );
        let export = root.join(format!("node{index}.plexus"));
        let output = node.offline(&["audit", "export", "--out", &export.to_string_lossy()]);
        assert!(
            output.status.success(),
            "export node {index}: {}",
            describe(&output)
        );
        exports.push(export);
    }
    let mut exports_verified = 0;
    for (index, export) in exports.iter().enumerate() {
        let output = nodes[index].offline(&["audit", "verify", &export.to_string_lossy()]);
        assert!(
            output.status.success(),
            "node {index}'s export does not verify: {}",
            describe(&output)
        );
        exports_verified += 1;
    }

    let beliefs = std::mem::take(&mut *beliefs.lock().unwrap_or_else(|e| e.into_inner()));
    let (view, entries) = fold(&exports[0]);
    let conflicts = conflicts(&view, &beliefs);
    let replays_checked = check_replays(&nodes[0], &exports, &view, &beliefs);
    let (steps_answered, steps_refused) = *counts.lock().unwrap_or_else(|e| e.into_inner());
    SoakReport {
        samples,
        restarts,
        steps_answered,
        steps_refused,
        holding_answers: beliefs.len(),
        conflicts,
        replays_checked,
        entries,
        exports_verified,
    }
}

/// `--bootstrap` to every other node that is running, and the view's history.
fn node_args(nodes: &[LocalNode], index: usize, config: &SoakConfig) -> Vec<String> {
    let mut arguments: Vec<String> = nodes
        .iter()
        .enumerate()
        .filter(|(other, node)| *other != index && !node.p2p_address.is_empty())
        .flat_map(|(_, node)| ["--bootstrap".to_owned(), node.p2p_address.clone()])
        .collect();
    if let Some(minutes) = config.view_history_minutes {
        arguments.extend(["--view-history-minutes".to_owned(), minutes.to_string()]);
    }
    arguments
}

fn agent_id(node: &LocalNode) -> String {
    let output = node.offline(&["id", "--json"]);
    let answer: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    answer["agent_id"].as_str().unwrap_or_default().to_owned()
}

/// One request to the agent's node: method, path and JSON body in, the JSON answer out (`None`
/// when the node refused it or did not answer).
type ApiCall<'a> = dyn Fn(&str, String, Option<Value>) -> Option<Value> + 'a;

/// One agent, driving its node through the HTTP API.
struct Agent {
    index: usize,
    data_dir: PathBuf,
    agent_id: String,
    step_every: Duration,
}

enum Lease {
    Idle,
    Holding {
        claim_id: String,
        resource: String,
        renewals: u32,
    },
    Waiting {
        claim_id: String,
        resource: String,
        polls: u32,
    },
}

impl Agent {
    fn run(&self, stop: &AtomicBool, beliefs: &Mutex<Vec<Belief>>, counts: &Mutex<(u64, u64)>) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|error| panic!("agent runtime: {error}"));
        let mut rng = rand::thread_rng();
        let mut lease = Lease::Idle;
        let (mut task, mut task_state) = (0u64, 0usize);
        while !stop.load(Ordering::Relaxed) {
            // Pacing: a steady rate of requests, whatever the node answers.
            std::thread::sleep(self.step_every);
            // Re-read each time: a restarted node listens on a new port.
            let Ok(client) = ApiClient::for_data_dir(&self.data_dir) else {
                continue;
            };
            let call = |method: &str, path: String, body: Option<Value>| -> Option<Value> {
                let bytes = body.map(|body| serde_json::to_vec(&body).unwrap_or_default());
                let answer = runtime.block_on(client.request(method, &path, bytes.as_deref()));
                let mut counts = counts.lock().unwrap_or_else(|e| e.into_inner());
                match answer {
                    Ok(response) if response.status < 300 => {
                        counts.0 += 1;
                        serde_json::from_slice(&response.body).ok()
                    }
                    _ => {
                        counts.1 += 1;
                        None
                    }
                }
            };
            let believe = |answer: &Value, resource: &str| {
                let claim = if answer["claim"].is_object() {
                    &answer["claim"]
                } else {
                    answer
                };
                if claim["standing"] == "holding" {
                    beliefs
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(Belief {
                            agent: self.agent_id.clone(),
                            resource: resource.to_owned(),
                            claim_id: claim["claim_id"].as_str().unwrap_or_default().to_owned(),
                            at_ms: now_ms(),
                        });
                    true
                } else {
                    false
                }
            };
            lease = match lease {
                Lease::Idle => {
                    let resource = RESOURCES[rng.gen_range(0..RESOURCES.len())];
                    let body =
                        json!({"resource": resource, "action": "write", "leaseMs": LEASE_MS});
                    match call("POST", "/v1/claims".into(), Some(body)) {
                        Some(answer) => {
                            let claim_id = answer["claim"]["claim_id"]
                                .as_str()
                                .unwrap_or_default()
                                .to_owned();
                            let resource = resource.to_owned();
                            if believe(&answer, &resource) {
                                Lease::Holding {
                                    claim_id,
                                    resource,
                                    renewals: 0,
                                }
                            } else {
                                Lease::Waiting {
                                    claim_id,
                                    resource,
                                    polls: 0,
                                }
                            }
                        }
                        None => Lease::Idle,
                    }
                }
                Lease::Holding {
                    claim_id,
                    resource,
                    renewals,
                } if renewals < RENEWALS => {
                    let path = format!("/v1/claims/{claim_id}/renew");
                    match call("POST", path, Some(json!({"leaseMs": LEASE_MS}))) {
                        Some(answer) if believe(&answer, &resource) => Lease::Holding {
                            claim_id,
                            resource,
                            renewals: renewals + 1,
                        },
                        _ => self.release(&call, &claim_id),
                    }
                }
                Lease::Holding { claim_id, .. } => self.release(&call, &claim_id),
                Lease::Waiting {
                    claim_id,
                    resource,
                    polls,
                } => match call("GET", format!("/v1/claims/{claim_id}"), None) {
                    Some(answer) if believe(&answer, &resource) => Lease::Holding {
                        claim_id,
                        resource,
                        renewals: 0,
                    },
                    _ if polls + 1 >= WAIT_POLLS => self.release(&call, &claim_id),
                    _ => Lease::Waiting {
                        claim_id,
                        resource,
                        polls: polls + 1,
                    },
                },
            };
            const STATES: [&str; 3] = [
                "TASK_STATE_SUBMITTED",
                "TASK_STATE_WORKING",
                "TASK_STATE_COMPLETED",
            ];
            let update = json!({
                "taskId": format!("T-{}-{task}", self.index),
                "status": {"state": STATES[task_state], "message": format!("step {task_state}")}
            });
            if call("POST", "/v1/tasks".into(), Some(update)).is_some() {
                task_state += 1;
                if task_state == STATES.len() {
                    (task, task_state) = (task + 1, 0);
                }
            }
        }
    }

    fn release(&self, call: &ApiCall<'_>, claim_id: &str) -> Lease {
        // A failed release (the node restarting) leaves the lease to expire on its own.
        let _ = call("POST", format!("/v1/claims/{claim_id}/release"), None);
        Lease::Idle
    }
}

/// One resource sample of `node` (its index, process count and start), if it runs.
fn sample(
    node: &LocalNode,
    (index, life, started): (usize, u32, Instant),
    begin: Instant,
    runtime: &tokio::runtime::Runtime,
) -> Option<Sample> {
    let pid = node.pid()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())?;
    let open_files = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    let metrics = metrics(node, runtime);
    let gauge = |name| metric_value(metrics.as_deref()?, name);
    let rocksdb = gauge("plexus_store_memtable_bytes")
        .zip(gauge("plexus_store_block_cache_bytes"))
        .map(|(memtables, cache)| (memtables + cache) / 1024);
    Some(Sample {
        node: index,
        life,
        seconds: begin.elapsed().as_secs_f64(),
        seconds_since_start: started.elapsed().as_secs_f64(),
        rss_kib,
        open_files,
        disk_bytes: directory_size(&node.data_dir),
        rocksdb_kib: rocksdb,
        heap_kib: gauge("plexus_heap_allocated_bytes").map(|bytes| bytes / 1024),
    })
}

/// The node's `/v1/metrics`, if it answers.
fn metrics(node: &LocalNode, runtime: &tokio::runtime::Runtime) -> Option<String> {
    let client = ApiClient::for_data_dir(&node.data_dir).ok()?;
    let metrics = runtime
        .block_on(client.request("GET", "/v1/metrics", None))
        .ok()?;
    String::from_utf8(metrics.body).ok()
}

fn directory_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => directory_size(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Waits until every node answers with the same feed heads.
fn wait_same_heads(nodes: &[LocalNode]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|error| panic!("runtime: {error}"));
    let heads = |node: &LocalNode| -> Option<Value> {
        let status = runtime.block_on(node.client().get("/v1/status")).ok()?;
        Some(status["feeds"].clone())
    };
    let (_, took) =
        crate::netnode::wait_until("the same heads on every node", CONVERGE_TIMEOUT, || {
            let all: Vec<Option<Value>> = nodes.iter().map(heads).collect();
            let same = all.iter().all(|heads| {
                heads
                    .as_ref()
                    .and_then(Value::as_array)
                    .is_some_and(|h| h.len() == nodes.len())
            }) && all.windows(2).all(|pair| pair[0] == pair[1]);
            same.then_some(())
        });
    eprintln!(
        "soak | converged | {} ms after the agents stopped",
        took.as_millis()
    );
}

/// The view folded from an export's entries, and how many entries it holds.
fn fold(export: &Path) -> (View, usize) {
    let bytes =
        std::fs::read(export).unwrap_or_else(|error| panic!("read {}: {error}", export.display()));
    let mut view = View::new();
    let mut entries = 0;
    for range in item_ranges(&bytes) {
        let item = &bytes[range];
        if classify(item) == ItemKind::Entry {
            let entry = Entry::decode(item).unwrap_or_else(|error| panic!("decode: {error}"));
            if let Some(body) = body_for_view(&entry) {
                view.apply(&entry, body);
            }
            entries += 1;
        }
    }
    (view, entries)
}

/// For each "holding" answer that the exported log contradicts (another agent's claim holds the
/// lease then), how long after that claim the answer came.
fn conflicts(view: &View, beliefs: &[Belief]) -> Vec<u64> {
    let mut found = Vec::new();
    for belief in beliefs {
        let lease = view.lease(NAMESPACE, &belief.resource, belief.at_ms);
        assert!(
            lease.holders.len() <= 1,
            "{} holders of {} at {} ms: {:?}",
            lease.holders.len(),
            belief.resource,
            belief.at_ms,
            lease.holders
        );
        if let Some(holder) = lease.holders.first() {
            if holder.author != belief.agent && holder.claim_id != belief.claim_id {
                found.push(belief.at_ms.saturating_sub(holder.claimed_ms));
            }
        }
    }
    found
}

/// Checks `plexus audit replay --at` on every export at a sample of the "holding" moments:
/// at most one holder, and the same holder as the fold. Returns the replays run.
fn check_replays(node: &LocalNode, exports: &[PathBuf], view: &View, beliefs: &[Belief]) -> usize {
    let step = (beliefs.len() / REPLAY_SAMPLES).max(1);
    let mut checked = 0;
    for (sample_index, belief) in beliefs.iter().step_by(step).enumerate() {
        let expected: Vec<String> = view
            .lease(NAMESPACE, &belief.resource, belief.at_ms)
            .holders
            .iter()
            .map(|claim| claim.claim_id.clone())
            .collect();
        // Every export at the first sample; one export a sample after that (they hold the same
        // entries once the heads agree, so they cannot answer differently).
        let chosen: Vec<&PathBuf> = if sample_index == 0 {
            exports.iter().collect()
        } else {
            vec![&exports[sample_index % exports.len()]]
        };
        for export in chosen {
            let at = format!("{}ms", belief.at_ms);
            let output = node.offline(&[
                "audit",
                "replay",
                &export.to_string_lossy(),
                "--at",
                &at,
                "--json",
                "--unverified",
            ]);
            assert!(
                output.status.success(),
                "audit replay: {}",
                describe(&output)
            );
            let snapshot: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
            let leases = snapshot["namespaces"][NAMESPACE]["leases"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let holders: BTreeMap<String, Vec<String>> = leases
                .iter()
                .map(|lease| {
                    let ids = lease["holders"].as_array().cloned().unwrap_or_default();
                    (
                        lease["resource"].as_str().unwrap_or_default().to_owned(),
                        ids.iter()
                            .filter_map(|c| c["claim_id"].as_str().map(str::to_owned))
                            .collect(),
                    )
                })
                .collect();
            for (resource, ids) in &holders {
                assert!(ids.len() <= 1, "replay at {at}: {resource} held by {ids:?}");
            }
            let replayed = holders.get(&belief.resource).cloned().unwrap_or_default();
            assert_eq!(
                replayed,
                expected,
                "replay of {} at {at} disagrees with the fold",
                export.display()
            );
            checked += 1;
        }
    }
    checked
}

/// Least-squares slope of `value` against minutes, over the samples of each process (or each
/// data directory, when not `per_process`) taken once it has run for its warm-up and for the
/// settling time, and after the soak settled, leaving out values that are not finite (not
/// measured); the largest over processes (a process needs at least 3 such samples).
pub fn worst_slope(
    samples: &[Sample],
    config: &SoakConfig,
    per_process: bool,
    value: impl Fn(&Sample) -> f64,
) -> Option<f64> {
    let mut groups: BTreeMap<(usize, u32), Vec<(f64, f64)>> = BTreeMap::new();
    for sample in samples {
        let ran = if per_process {
            sample.seconds_since_start
        } else {
            sample.seconds
        };
        let warm = ran >= config.warm_up.max(config.settle).as_secs_f64();
        let settled = sample.seconds >= config.settle.as_secs_f64();
        if warm && settled && value(sample).is_finite() {
            let life = if per_process { sample.life } else { 0 };
            groups
                .entry((sample.node, life))
                .or_default()
                .push((sample.seconds / 60.0, value(sample)));
        }
    }
    groups
        .values()
        .filter(|points| points.len() >= 3)
        .map(|points| slope(points))
        .reduce(f64::max)
}

fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let covariance: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let variance: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    if variance == 0.0 {
        0.0
    } else {
        covariance / variance
    }
}

/// The clock-skew window the conflicts are held to.
pub const SKEW_WINDOW_MS: u64 = DEFAULT_CLOCK_SKEW_MS;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process sampled every 5 s that grows by 2 MiB a minute for its first `grows` seconds
    /// and is flat after.
    fn process(node: usize, life: u32, born: f64, until: f64, grows: f64) -> Vec<Sample> {
        let mut samples = Vec::new();
        let mut seconds = born;
        while seconds < until {
            let age = seconds - born;
            samples.push(Sample {
                node,
                life,
                seconds,
                seconds_since_start: age,
                rss_kib: (32.0 * 1024.0 + 2.0 * 1024.0 * age.min(grows) / 60.0) as u64,
                open_files: 30,
                disk_bytes: 0,
                rocksdb_kib: None,
                heap_kib: None,
            });
            seconds += 5.0;
        }
        samples
    }

    #[test]
    fn a_process_restarted_late_counts_only_once_it_has_settled() {
        let config = SoakConfig {
            nodes: 2,
            duration: Duration::from_secs(600),
            restart_every: Duration::from_secs(60),
            warm_up: Duration::from_secs(60),
            view_history_minutes: Some(5),
            settle: Duration::from_secs(360),
            sample_every: Duration::from_secs(5),
            step_every: Duration::from_millis(500),
        };
        // Both grow 2 MiB a minute for their first 6 minutes: one lived the whole run, one was
        // restarted at minute 7.
        let mut samples = process(0, 0, 0.0, 600.0, 360.0);
        samples.extend(process(1, 1, 420.0, 600.0, 360.0));
        let rss = |sample: &Sample| sample.rss_kib as f64 / 1024.0;
        let worst = worst_slope(&samples, &config, true, rss).unwrap();
        assert!(worst.abs() < 0.01, "worst slope {worst} MiB/min");
        // Still growing after it settled: measured.
        let grown = process(0, 0, 0.0, 600.0, 600.0);
        let worst = worst_slope(&grown, &config, true, rss).unwrap();
        assert!((worst - 2.0).abs() < 0.01, "worst slope {worst} MiB/min");
    }
}
