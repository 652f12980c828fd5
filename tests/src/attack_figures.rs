//! What a node spends while a hostile peer attacks it, for the table of `docs/reliability.md`
//! "Hostile peers": disk growth of its data directory, peak resident memory and CPU time during
//! the attack, honest entries' latency and the API's latency while it runs. The attack tests
//! assert counts and sizes (and that every honest entry arrives and every status request is
//! answered); these figures are printed (`figure | ...` lines), never asserted.
//!
//! The test nodes run inside the test process, so memory and CPU are the whole process's
//! (attacked node, honest node and the attacker's swarm); the peak is reset when the attack
//! starts (`/proc/self/clear_refs`), so it is the peak during the attack, with the resident
//! memory before it printed beside it. nextest runs each test in a process of its own; for
//! figures, run the attack tests one at a time (`-j 1`), or two share the cores.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use plexus_node::client::ApiClient;
use plexus_protocol::FeedKey;

use crate::cluster::{publish_note, wait_for, TestNode, NAMESPACE};

/// Honest entries to send beside an attack that stands (a state the attacker left the node
/// in, such as 100,000 fake feeds announced, rather than a flood that ends): a hundred, so that
/// their p99 (and that of the status requests sent beside them) is not just the slowest one.
pub const STANDING_ATTACK_HONEST_ENTRIES: u64 = 100;

/// How long one honest entry may take to reach the attacked node before the test fails.
const HONEST_ENTRY_TIMEOUT: Duration = Duration::from_secs(60);

/// Measures a node under attack, from [`AttackMeter::start`] to [`AttackMeter::finish`], while
/// [`AttackMeter::run`] sends honest traffic beside the attack.
#[derive(Debug)]
pub struct AttackMeter {
    api: ApiClient,
    data_dir: PathBuf,
    disk_before: u64,
    rss_before_kib: u64,
    peak_reset: bool,
    cpu_before: Duration,
    started: Instant,
    honest: Vec<Duration>,
    api_latencies: Vec<Duration>,
    api_failures: Vec<String>,
}

/// What [`AttackMeter`] measured.
#[derive(Debug, Clone, PartialEq)]
pub struct AttackFigures {
    /// Growth of the attacked node's data directory, in bytes.
    pub disk_growth: u64,
    /// Resident memory of the test process when the attack started, in KiB.
    pub rss_before_kib: u64,
    /// Peak resident memory of the test process during the attack (since its start if the
    /// peak could not be reset), in KiB.
    pub peak_rss_kib: u64,
    /// Whether the peak was reset at the attack's start.
    pub peak_reset: bool,
    /// CPU time (user and system, every thread) the test process used from
    /// [`AttackMeter::start`] to [`AttackMeter::finish`].
    pub cpu: Duration,
    /// Wall time from [`AttackMeter::start`] to [`AttackMeter::finish`].
    pub wall: Duration,
    /// Honest entries' latencies, publish to arrival on the attacked node.
    pub honest: Latencies,
    /// Latencies of the status requests to the attacked node's API, one sent with each honest
    /// entry.
    pub api: Latencies,
    /// Status requests that failed or answered without the log's figures: what went wrong.
    pub api_failures: Vec<String>,
}

/// Percentiles of a set of latencies (nearest rank).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Latencies {
    pub samples: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl AttackMeter {
    /// Starts measuring `target` (and serves its API): call just before the attack's first
    /// message.
    pub async fn start(target: &mut TestNode) -> AttackMeter {
        let api = target.api().await;
        AttackMeter {
            api,
            data_dir: target.dir.path().to_path_buf(),
            disk_before: dir_size(target.dir.path()),
            rss_before_kib: status_kib("VmRSS:"),
            // Writing 5 resets VmHWM to the current resident size (Linux 4.0 and later).
            peak_reset: std::fs::write("/proc/self/clear_refs", "5").is_ok(),
            cpu_before: process_cpu(),
            started: Instant::now(),
            honest: Vec::new(),
            api_latencies: Vec::new(),
            api_failures: Vec::new(),
        }
    }

    /// Runs `attack` while `honest` publishes notes one after the other, each awaited on
    /// `target` (the attacked node) with a status request to its API sent beside it, until the
    /// attack has ended and at least `min_entries` (one or more) went through; returns the
    /// attack's output and keeps the latencies. With `min_entries` 1, every sample but the
    /// last was sent while the attack ran (the last, in flight when it ended, too).
    pub async fn run<T>(
        &mut self,
        honest: &TestNode,
        target: &TestNode,
        min_entries: u64,
        attack: impl Future<Output = T>,
    ) -> T {
        let attack_over = AtomicBool::new(false);
        let attack = async {
            let output = attack.await;
            attack_over.store(true, Ordering::Release);
            output
        };
        let feed = FeedKey {
            namespace: NAMESPACE.into(),
            author: honest.keypair.agent_id(),
        };
        let held_seq = || async {
            target
                .node
                .log()
                .head(&feed)
                .unwrap_or_else(|error| panic!("the attacked node's head: {error}"))
                .map_or(0, |head| head.seq)
        };
        let api = self.api.clone();
        let (honest_latencies, api_latencies, api_failures) = (
            &mut self.honest,
            &mut self.api_latencies,
            &mut self.api_failures,
        );
        let traffic = async {
            let start_seq = held_seq().await;
            let mut n = 0;
            while n < min_entries.max(1) || !attack_over.load(Ordering::Acquire) {
                n += 1;
                let entry_arrives = async {
                    let published = Instant::now();
                    publish_note(honest, n).await;
                    wait_for(
                        "an honest entry to reach the attacked node",
                        HONEST_ENTRY_TIMEOUT,
                        &[target],
                        held_seq,
                        |seq| *seq >= start_seq + n,
                    )
                    .await;
                    published.elapsed()
                };
                let (latency, status) = tokio::join!(entry_arrives, timed_status(&api));
                honest_latencies.push(latency);
                match status {
                    Ok(latency) => api_latencies.push(latency),
                    Err(failure) => api_failures.push(failure),
                }
            }
        };
        tokio::join!(attack, traffic).0
    }

    /// Honest entries published (and arrived on the attacked node) so far.
    pub fn honest_entries(&self) -> u64 {
        self.honest.len() as u64
    }

    /// Ends the measurement.
    pub fn finish(self) -> AttackFigures {
        AttackFigures {
            disk_growth: dir_size(&self.data_dir).saturating_sub(self.disk_before),
            rss_before_kib: self.rss_before_kib,
            peak_rss_kib: status_kib("VmHWM:"),
            peak_reset: self.peak_reset,
            cpu: process_cpu().saturating_sub(self.cpu_before),
            wall: self.started.elapsed(),
            honest: Latencies::of(&self.honest),
            api: Latencies::of(&self.api_latencies),
            api_failures: self.api_failures,
        }
    }
}

impl AttackFigures {
    /// Asserts what a user of the attacked node cares about: its API answered every status
    /// request made during the attack, and its data directory grew by less than
    /// `disk_growth_bound` bytes.
    pub fn assert_node_held_up(&self, disk_growth_bound: u64) {
        assert!(
            self.api_failures.is_empty(),
            "the API failed to answer during the attack: {:?}",
            self.api_failures
        );
        assert!(
            self.api.samples > 0,
            "no status request was answered during the attack"
        );
        assert!(
            self.disk_growth < disk_growth_bound,
            "the data directory grew by {} bytes during the attack (bound {disk_growth_bound})",
            self.disk_growth
        );
    }

    /// Prints the `figure | ...` line of `attack`.
    pub fn print(&self, attack: &str) {
        let peak = if self.peak_reset {
            "during the attack"
        } else {
            "since the process started"
        };
        println!(
            "figure | {attack} | disk +{} KiB | RSS (whole test process) {} MiB before, peak {} \
             MiB {peak} | CPU (whole test process) {:.2} s in {:.2} s | honest entries {}: p50 \
             {} ms, p99 {} ms, max {} ms | API status {}: p50 {} ms, p99 {} ms, max {} ms, {} \
             failed",
            self.disk_growth / 1024,
            mib(self.rss_before_kib),
            mib(self.peak_rss_kib),
            self.cpu.as_secs_f64(),
            self.wall.as_secs_f64(),
            self.honest.samples,
            millis(self.honest.p50),
            millis(self.honest.p99),
            millis(self.honest.max),
            self.api.samples,
            millis(self.api.p50),
            millis(self.api.p99),
            millis(self.api.max),
            self.api_failures.len(),
        );
    }
}

impl Latencies {
    /// Nearest-rank percentiles of `samples` (all zero when there are none).
    pub fn of(samples: &[Duration]) -> Latencies {
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let rank = |percent: usize| {
            let index = (sorted.len() * percent).div_ceil(100).saturating_sub(1);
            sorted.get(index).copied().unwrap_or_default()
        };
        Latencies {
            samples: sorted.len(),
            p50: rank(50),
            p99: rank(99),
            max: sorted.last().copied().unwrap_or_default(),
        }
    }
}

/// Total size of the files under `dir`.
pub fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| match entry.metadata() {
            Ok(metadata) if metadata.is_dir() => dir_size(&entry.path()),
            Ok(metadata) => metadata.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Asks the node's API for its status; returns how long the answer took, or what was wrong.
async fn timed_status(api: &ApiClient) -> Result<Duration, String> {
    let asked = Instant::now();
    match api.get("/v1/status").await {
        Ok(status) if status.get("log").is_some() => Ok(asked.elapsed()),
        Ok(status) => Err(format!("status without the log's figures: {status}")),
        Err(error) => Err(error.to_string()),
    }
}

/// A size field of `/proc/self/status` (`VmRSS:`, `VmHWM:`), in KiB; 0 where it is missing.
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with(field))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time (user and system, all threads) of this process, from `/proc/self/stat` (clock
/// ticks of 10 ms on Linux); zero where that file does not exist.
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = after_name
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|field| field.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

fn millis(duration: Duration) -> String {
    format!("{:.1}", duration.as_secs_f64() * 1e3)
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples: Vec<Duration> = (1..=200).rev().map(Duration::from_millis).collect();
        let latencies = Latencies::of(&samples);
        assert_eq!(latencies.samples, 200);
        assert_eq!(latencies.p50, Duration::from_millis(100));
        assert_eq!(latencies.p99, Duration::from_millis(198));
        assert_eq!(latencies.max, Duration::from_millis(200));
        assert_eq!(Latencies::of(&[]), Latencies::default());
    }
}
