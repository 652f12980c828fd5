//! Network benchmarks for `scripts/bench.sh` (not a test: it prints figures, it asserts nothing).
//!
//! - `propagation --nodes N --messages M --rounds R` starts N Plexus nodes and N plain libp2p
//!   gossipsub swarms on loopback, in one process, with the same transport and gossipsub
//!   parameters, and publishes the same kind of payload on both, alternating rounds of M
//!   messages. Both clusters start on the same ring; once the Plexus nodes' connections (which
//!   Kademlia grows) have settled, the plain swarms dial the same extra ones in the same
//!   directions, so all measure on one topology whose meshes grew the same way. Each message is published once the
//!   previous one has reached every node; its latency runs from the publish call to its
//!   arrival on the last node: for Plexus when the entry is validated and stored (the node's
//!   change watch, then its feed head), for plain gossipsub when the swarm emits the `Message`
//!   event. For Plexus the figures are also given from the moment `Node::publish` returned
//!   (zero when the last node had it by then). A third cluster runs plain gossipsub with the
//!   rest of a Plexus node's libp2p stack (Kademlia, identify, ping), to tell that stack's
//!   cost from Plexus's validation and storage. Also reported per side: the process's CPU
//!   time and loopback bytes (and packets) per message, raw and less the idle background of
//!   all clusters (measured once it has settled after the clusters connected, before the
//!   rounds, and charged to each side for as long as its rounds last: slower rounds carry
//!   more of it), and the mean mesh size per node. Prints one JSON object. `--only SIDE`
//!   publishes on one side only (the others stay connected and idle), for a profiler; it
//!   prints `measuring` on stderr when the rounds start.
//! - `fill-log --data-dir DIR --entries N --authors A` fills the log of an initialised data
//!   directory with N valid entries by A authors (signed on all cores, written in large synced
//!   batches), for measuring the memory of a node that holds them.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use plexus_protocol::value::json_text_to_canonical;
use tokio::sync::watch;
use tokio::time::Instant;

mod fill_log;
mod measure;
mod plain;
mod plexus;
mod propagation;

use fill_log::fill_log;
use propagation::propagation;

/// Kind of every benchmark message (an application kind).
const KIND: &str = "x-note";

/// Longest wait for one message to reach every node before it counts as lost.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Messages published on each side before measuring, so meshes are built and caches warm.
const WARMUP_MESSAGES: u64 = 20;

/// How the benchmark waits for the Plexus cluster's connections to settle: a check every
/// interval, done after `STABLE_CHECKS` checks without a change, at most `TOPOLOGY_CHECKS`.
const TOPOLOGY_CHECK_INTERVAL: Duration = Duration::from_millis(500);
const STABLE_CHECKS: usize = 6;
const TOPOLOGY_CHECKS: usize = 120;

/// How long each sample of the idle background of all clusters lasts, and how many samples
/// at most are taken waiting for it to settle (stop falling) before the rounds.
const IDLE_SAMPLE: Duration = Duration::from_secs(2);
const IDLE_SAMPLES: usize = 15;

/// Each node dials the nodes this many places further round the ring: six neighbours per node
/// (the gossipsub mesh degree D), a diameter of three hops at 20 nodes.
const RING_OFFSETS: [usize; 3] = [1, 4, 9];

/// Network benchmarks for scripts/bench.sh: prints figures as JSON, asserts nothing.
#[derive(Debug, Parser)]
#[command(name = "plexus-netbench")]
enum Benchmark {
    /// Propagation through Plexus nodes against plain gossipsub swarms
    Propagation {
        #[arg(long)]
        nodes: usize,
        #[arg(long)]
        messages: u64,
        #[arg(long)]
        rounds: u64,
        /// Publish on this side only, for a profiler
        #[arg(long, value_parser = ["plexus", "gossipsub", "stack"])]
        only: Option<String>,
    },
    /// Fill an initialised data directory's log with N entries by A authors
    FillLog {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        entries: u64,
        #[arg(long)]
        authors: u64,
    },
}

fn main() -> anyhow::Result<()> {
    match Benchmark::parse() {
        Benchmark::Propagation {
            nodes,
            messages,
            rounds,
            only,
        } => propagation(nodes, messages, rounds, only.as_deref()),
        Benchmark::FillLog {
            data_dir,
            entries,
            authors,
        } => fill_log(&data_dir, entries, authors),
    }
}

/// Arrival times of messages on nodes, keyed by message; a watch counter wakes waiters.
#[derive(Debug)]
struct Arrivals<K> {
    seen: Mutex<HashMap<K, Vec<(usize, Instant)>>>,
    version: watch::Sender<u64>,
}

impl<K: Hash + Eq> Arrivals<K> {
    fn new() -> Arc<Self> {
        Arc::new(Arrivals {
            seen: Mutex::new(HashMap::new()),
            version: watch::channel(0).0,
        })
    }

    fn record(&self, key: K, node: usize, at: Instant) {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(key)
            .or_default()
            .push((node, at));
        self.version.send_modify(|version| *version += 1);
    }

    /// Waits until `expected` nodes other than `publisher` have `key`; returns the time from
    /// `started` to the last of them, or `None` after [`DELIVERY_TIMEOUT`].
    async fn wait(
        &self,
        key: &K,
        publisher: usize,
        expected: usize,
        started: Instant,
    ) -> Option<Duration> {
        let mut changes = self.version.subscribe();
        let deadline = started + DELIVERY_TIMEOUT;
        loop {
            {
                let seen = self
                    .seen
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let others: Vec<Instant> = seen
                    .get(key)
                    .map(|list| {
                        list.iter()
                            .filter(|(node, _)| *node != publisher)
                            .map(|(_, at)| *at)
                            .collect()
                    })
                    .unwrap_or_default();
                if others.len() >= expected {
                    return others.iter().max().map(|last| *last - started);
                }
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                _ => return None,
            }
        }
    }
}

/// Undirected edges of the benchmark topology: a ring with chords at [`RING_OFFSETS`].
fn ring_edges(nodes: usize) -> BTreeSet<(usize, usize)> {
    let mut edges = BTreeSet::new();
    for from in 0..nodes {
        for offset in RING_OFFSETS {
            let to = (from + offset) % nodes;
            if to != from {
                edges.insert((from.min(to), from.max(to)));
            }
        }
    }
    edges
}

/// The body of benchmark message `n` (canonical CBOR of a JSON object of about 200 bytes, a
/// typical small coordination message; the same size for every `n` below 10^9).
fn body(n: u64) -> Vec<u8> {
    let text = format!(
        "{{\"bench\": {}, \"text\": \"{}\"}}",
        1_000_000_000 + n,
        "status update from an agent ".repeat(6)
    );
    json_text_to_canonical(&text).unwrap_or_default()
}

fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (fraction * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
