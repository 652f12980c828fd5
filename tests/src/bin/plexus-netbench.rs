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
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use libp2p::futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::SwarmEvent;
use libp2p::{
    identify, kad, noise, ping, tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm, SwarmBuilder,
};
use plexus_crypto::{AgentId, Keypair};
use plexus_node::net::behaviour::{
    gossipsub_config, peer_score_params, topic_score_params, IDENTIFY_PROTOCOL, KAD_PROTOCOL,
};
use plexus_node::net::{topics, NetConfig};
use plexus_node::store::Log;
use plexus_protocol::value::json_text_to_canonical;
use plexus_protocol::{Draft, Entry, FeedKey};
use plexus_tests::cluster::{connect, shutdown, spawn_node, TestNode, NAMESPACE};
use plexus_tests::fixtures::signed_chain;
use rayon::prelude::*;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

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

// ---------------------------------------------------------------------------------------------
// Plexus side

/// A Plexus cluster and the arrival watchers of its nodes.
struct PlexusSide {
    nodes: Vec<TestNode>,
    arrivals: Arc<Arrivals<(AgentId, u64)>>,
    /// The feed of the message being published, which the watchers look at.
    in_flight: watch::Sender<Option<FeedKey>>,
    watchers: Vec<tokio::task::JoinHandle<()>>,
    published: u64,
}

impl PlexusSide {
    async fn start(count: usize, net: &NetConfig) -> PlexusSide {
        let mut nodes = Vec::with_capacity(count);
        for _ in 0..count {
            nodes.push(spawn_node(net.clone()).await);
        }
        for (from, to) in ring_edges(count) {
            connect(&nodes[from], &nodes[to]).await;
        }
        let arrivals = Arrivals::new();
        let (in_flight, watching) = watch::channel(None);
        let watchers = nodes
            .iter()
            .enumerate()
            .map(|(index, node)| {
                tokio::spawn(watch_log(
                    index,
                    node.node.changes(),
                    Arc::clone(node.node.log()),
                    watching.clone(),
                    Arc::clone(&arrivals),
                ))
            })
            .collect();
        PlexusSide {
            nodes,
            arrivals,
            in_flight,
            watchers,
            published: 0,
        }
    }

    /// Publishes the next message from the next node in turn; returns its latency and the part
    /// of it spent in `Node::publish` (signing and the publisher's own synced write).
    async fn publish_one(&mut self) -> anyhow::Result<Option<(Duration, Duration)>> {
        let publisher = (self.published % self.nodes.len() as u64) as usize;
        let node = &self.nodes[publisher];
        self.in_flight.send_replace(Some(FeedKey {
            namespace: NAMESPACE.into(),
            author: node.node.agent_id(),
        }));
        let started = Instant::now();
        let entry = node
            .node
            .publish(NAMESPACE, KIND, body(self.published))
            .await?;
        let publishing = started.elapsed();
        self.published += 1;
        let key = (entry.header().author, entry.header().seq);
        Ok(self
            .arrivals
            .wait(&key, publisher, self.nodes.len() - 1, started)
            .await
            .map(|latency| (latency, publishing)))
    }

    /// The median over the nodes that forwarded anything of their own receipt-to-forward
    /// p50 and p99, in milliseconds: the time a message waits in one node on one hop.
    async fn forward_latency(&self) -> anyhow::Result<(f64, f64)> {
        let mut p50s = Vec::new();
        let mut p99s = Vec::new();
        for node in &self.nodes {
            let latency = node.node.net().status().await?.gossip_forward_latency;
            if latency.count > 0 {
                p50s.push(latency.p50_us);
                p99s.push(latency.p99_us);
            }
        }
        let median = |mut values: Vec<u64>| {
            values.sort_unstable();
            values
                .get(values.len() / 2)
                .map_or(0.0, |&us| us as f64 / 1000.0)
        };
        Ok((median(p50s), median(p99s)))
    }

    /// The mean number of mesh peers per node on the benchmark's topic.
    async fn mean_mesh_size(&self) -> anyhow::Result<f64> {
        let topic = topics::entry_topic(NAMESPACE, KIND).to_string();
        let mut total = 0;
        for node in &self.nodes {
            let status = node.node.net().status().await?;
            total += status
                .peers
                .iter()
                .filter(|peer| peer.mesh.contains(&topic))
                .count();
        }
        Ok(total as f64 / self.nodes.len() as f64)
    }

    /// Connections between the nodes now, as (dialer, listener); a pair connected both ways
    /// appears once, dialled by the lower index.
    async fn edges(&self) -> anyhow::Result<BTreeSet<(usize, usize)>> {
        let index: HashMap<String, usize> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| (node.node.net().peer_id().to_string(), i))
            .collect();
        let mut edges = BTreeSet::new();
        for (from, node) in self.nodes.iter().enumerate() {
            for peer in node.node.net().status().await?.peers {
                if let Some(&to) = index.get(&peer.peer_id).filter(|_| peer.dialed) {
                    if !edges.contains(&(to, from)) {
                        edges.insert((from, to));
                    }
                }
            }
        }
        Ok(edges)
    }

    async fn stop(self) {
        for watcher in self.watchers {
            watcher.abort();
        }
        shutdown(self.nodes).await;
    }
}

/// Records when the feed of the message in flight (`in_flight`) moves in `log`: an entry
/// counts as arrived once it is stored. One point lookup per change, so the watcher's own cost
/// stays small next to the node's.
async fn watch_log(
    node: usize,
    mut changes: watch::Receiver<u64>,
    log: Arc<Log>,
    in_flight: watch::Receiver<Option<FeedKey>>,
    arrivals: Arc<Arrivals<(AgentId, u64)>>,
) {
    let mut known: HashMap<AgentId, u64> = HashMap::new();
    while changes.changed().await.is_ok() {
        let at = Instant::now();
        let Some(feed) = in_flight.borrow().clone() else {
            continue;
        };
        let Ok(Some(head)) = log.head(&feed) else {
            continue;
        };
        let seen = known.entry(feed.author).or_insert(0);
        for seq in *seen + 1..=head.seq {
            arrivals.record((feed.author, seq), node, at);
        }
        *seen = (*seen).max(head.seq);
    }
}

// ---------------------------------------------------------------------------------------------
// Plain gossipsub side

enum PlainCommand {
    Publish(Vec<u8>),
    Dial(Multiaddr),
    MeshSize(oneshot::Sender<usize>),
}

/// One plain gossipsub swarm, driven by its own task.
struct PlainNode {
    commands: mpsc::Sender<PlainCommand>,
    peer_id: PeerId,
    addr: Multiaddr,
    connected: watch::Receiver<usize>,
    task: tokio::task::JoinHandle<()>,
}

/// A cluster of plain gossipsub swarms.
struct PlainSide {
    nodes: Vec<PlainNode>,
    arrivals: Arc<Arrivals<Vec<u8>>>,
    /// Per publisher: its key and the id of its last entry (payloads are real signed entries,
    /// so they have the size and the message ids of Plexus traffic).
    publishers: Vec<(Keypair, Option<plexus_crypto::Hash256>)>,
    /// Connections dialled so far, per node.
    degree: Vec<usize>,
    published: u64,
}

impl PlainSide {
    async fn start(count: usize, net: &NetConfig, stack: Stack) -> anyhow::Result<PlainSide> {
        let arrivals = Arrivals::new();
        let mut nodes = Vec::with_capacity(count);
        for index in 0..count {
            nodes.push(start_plain(index, net, stack, Arc::clone(&arrivals)).await?);
        }
        let publishers = (0..count).map(|_| (Keypair::generate(), None)).collect();
        Ok(PlainSide {
            nodes,
            arrivals,
            publishers,
            degree: vec![0; count],
            published: 0,
        })
    }

    /// Dials `edges` (pairs of node indexes) and waits until every node has its connections.
    async fn connect(&mut self, edges: &BTreeSet<(usize, usize)>) -> anyhow::Result<()> {
        for &(from, to) in edges {
            let addr = self.nodes[to]
                .addr
                .clone()
                .with(libp2p::multiaddr::Protocol::P2p(self.nodes[to].peer_id));
            self.nodes[from]
                .commands
                .send(PlainCommand::Dial(addr))
                .await
                .context("plain swarm stopped")?;
            self.degree[from] += 1;
            self.degree[to] += 1;
        }
        for (node, &wanted) in self.nodes.iter_mut().zip(&self.degree) {
            tokio::time::timeout(
                Duration::from_secs(30),
                node.connected.wait_for(|connected| *connected >= wanted),
            )
            .await
            .context("plain swarms did not connect")??;
        }
        Ok(())
    }

    async fn publish_one(&mut self) -> anyhow::Result<Option<Duration>> {
        let publisher = (self.published % self.nodes.len() as u64) as usize;
        let (keypair, prev) = &mut self.publishers[publisher];
        let seq = self.published / self.nodes.len() as u64 + 1;
        let entry = Entry::sign(
            keypair,
            Draft {
                namespace: NAMESPACE.into(),
                seq,
                prev: *prev,
                timestamp_ms: 1_767_225_600_000 + self.published,
                kind: KIND.into(),
                body: body(self.published),
            },
        )?;
        *prev = Some(entry.id());
        self.published += 1;
        let key = entry.id().as_bytes().to_vec();
        let started = Instant::now();
        self.nodes[publisher]
            .commands
            .send(PlainCommand::Publish(entry.encode()))
            .await
            .context("plain swarm stopped")?;
        Ok(self
            .arrivals
            .wait(&key, publisher, self.nodes.len() - 1, started)
            .await)
    }

    /// The mean number of mesh peers per node on the benchmark's topic.
    async fn mean_mesh_size(&self) -> anyhow::Result<f64> {
        let mut total = 0;
        for node in &self.nodes {
            let (reply, answer) = oneshot::channel();
            node.commands
                .send(PlainCommand::MeshSize(reply))
                .await
                .context("plain swarm stopped")?;
            total += answer.await.context("plain swarm stopped")?;
        }
        Ok(total as f64 / self.nodes.len() as f64)
    }

    async fn stop(self) {
        for node in self.nodes {
            drop(node.commands);
            let _ = node.task.await;
        }
    }
}

/// Which libp2p protocols a plain swarm runs besides gossipsub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stack {
    /// Gossipsub alone.
    Gossipsub,
    /// Gossipsub with the rest of a Plexus node's libp2p stack (Kademlia, identify, ping),
    /// configured as a Plexus node configures them: everything but Plexus's validation,
    /// storage and sync protocol.
    Full,
}

#[derive(NetworkBehaviour)]
struct PlainBehaviour {
    gossipsub: gossipsub::Behaviour,
    kad: Toggle<kad::Behaviour<kad::store::MemoryStore>>,
    identify: Toggle<identify::Behaviour>,
    ping: Toggle<ping::Behaviour>,
}

fn build_plain_swarm(
    net: &NetConfig,
    stack: Stack,
) -> Result<Swarm<PlainBehaviour>, Box<dyn std::error::Error + Send + Sync>> {
    let heartbeat = net.heartbeat;
    let full = stack == Stack::Full;
    let swarm = SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_behaviour(
            |key| -> Result<PlainBehaviour, Box<dyn std::error::Error + Send + Sync>> {
                let config = gossipsub_config(heartbeat).build()?;
                let mut gossipsub =
                    gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, config)?;
                gossipsub.with_peer_score(
                    peer_score_params(),
                    gossipsub::PeerScoreThresholds::default(),
                )?;
                let peer_id = key.public().to_peer_id();
                let kad = full.then(|| {
                    let mut kad = kad::Behaviour::with_config(
                        peer_id,
                        kad::store::MemoryStore::new(peer_id),
                        kad::Config::new(StreamProtocol::new(KAD_PROTOCOL)),
                    );
                    kad.set_mode(Some(kad::Mode::Server));
                    kad
                });
                let identify = full.then(|| {
                    identify::Behaviour::new(identify::Config::new(
                        IDENTIFY_PROTOCOL.into(),
                        key.public(),
                    ))
                });
                Ok(PlainBehaviour {
                    gossipsub,
                    kad: kad.into(),
                    identify: identify.into(),
                    ping: full.then(ping::Behaviour::default).into(),
                })
            },
        )?
        .with_swarm_config(|config| {
            config
                .with_idle_connection_timeout(net.idle_timeout)
                .with_notify_handler_buffer_size(NonZeroUsize::MIN.saturating_add(31))
        })
        .build();
    Ok(swarm)
}

async fn start_plain(
    index: usize,
    net: &NetConfig,
    stack: Stack,
    arrivals: Arc<Arrivals<Vec<u8>>>,
) -> anyhow::Result<PlainNode> {
    let mut swarm = build_plain_swarm(net, stack).map_err(|error| anyhow::anyhow!("{error}"))?;
    // The same topics a Plexus node subscribes to for its namespace.
    for topic in topics::namespace_topics(NAMESPACE) {
        swarm.behaviour_mut().gossipsub.subscribe(&topic)?;
        let _ = swarm
            .behaviour_mut()
            .gossipsub
            .set_topic_params(topic, topic_score_params());
    }
    for addr in &net.listen {
        swarm.listen_on(addr.clone())?;
    }
    let peer_id = *swarm.local_peer_id();
    let (commands, receiver) = mpsc::channel(64);
    let (connected_tx, connected) = watch::channel(0);
    let (addr_tx, addr_rx) = oneshot::channel();
    let topic = topics::entry_topic(NAMESPACE, KIND);
    let task = tokio::spawn(drive_plain(
        index,
        swarm,
        receiver,
        topic,
        arrivals,
        connected_tx,
        addr_tx,
    ));
    let addr = tokio::time::timeout(Duration::from_secs(10), addr_rx)
        .await
        .context("plain swarm did not listen")??;
    Ok(PlainNode {
        commands,
        peer_id,
        addr,
        connected,
        task,
    })
}

/// The task that owns one plain swarm, until its command channel closes.
async fn drive_plain(
    index: usize,
    mut swarm: Swarm<PlainBehaviour>,
    mut commands: mpsc::Receiver<PlainCommand>,
    topic: IdentTopic,
    arrivals: Arc<Arrivals<Vec<u8>>>,
    connected: watch::Sender<usize>,
    addr: oneshot::Sender<Multiaddr>,
) {
    let mut addr = Some(addr);
    loop {
        tokio::select! {
            biased;
            command = commands.recv() => match command {
                None => break,
                Some(PlainCommand::Publish(data)) => {
                    let _ = swarm.behaviour_mut().gossipsub.publish(topic.clone(), data);
                }
                Some(PlainCommand::Dial(to)) => {
                    let _ = swarm.dial(to);
                }
                Some(PlainCommand::MeshSize(reply)) => {
                    let _ = reply.send(swarm.behaviour().gossipsub.mesh_peers(&topic.hash()).count());
                }
            },
            event = swarm.select_next_some() => match event {
                SwarmEvent::Behaviour(PlainBehaviourEvent::Gossipsub(
                    gossipsub::Event::Message { message_id, .. },
                )) => {
                    arrivals.record(message_id.0, index, Instant::now());
                }
                SwarmEvent::NewListenAddr { address, .. } => {
                    if let Some(reply) = addr.take() {
                        let _ = reply.send(address);
                    }
                }
                SwarmEvent::ConnectionEstablished { .. } | SwarmEvent::ConnectionClosed { .. } => {
                    connected.send_replace(swarm.connected_peers().count());
                }
                _ => {}
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The benchmark

/// Latencies (ms) and costs measured on one side.
#[derive(Debug, Default)]
struct Sample {
    latencies: Vec<f64>,
    lost: u64,
    cpu_ms: u64,
    wire_bytes: u64,
    wire_packets: u64,
    /// Wall time spent in this side's rounds.
    wall: Duration,
}

/// The process's CPU time, loopback counters and the time when one side's round began.
struct Meter {
    cpu_ms: u64,
    sent: u64,
    packets: u64,
    wall: Instant,
}

impl Meter {
    fn start() -> Meter {
        let (sent, packets) = loopback();
        Meter {
            cpu_ms: cpu_ms(),
            sent,
            packets,
            wall: Instant::now(),
        }
    }
}

/// What the process spends with every cluster idle: CPU and loopback bytes per second
/// (heartbeats, pings, timers). Every side's rounds carry it, for as long as they last.
#[derive(Debug, Clone, Copy)]
struct Background {
    cpu_ms_per_second: f64,
    bytes_per_second: f64,
}

impl Background {
    /// Measures a quiet stretch of `length`: waiting out the time is the measurement.
    async fn measure(length: Duration) -> Background {
        let (cpu, sent) = (cpu_ms(), loopback_bytes());
        let mut timer = tokio::time::interval(length);
        timer.tick().await;
        let started = Instant::now();
        timer.tick().await;
        let seconds = started.elapsed().as_secs_f64();
        Background {
            cpu_ms_per_second: (cpu_ms() - cpu) as f64 / seconds,
            bytes_per_second: (loopback_bytes() - sent) as f64 / seconds,
        }
    }
}

impl Sample {
    fn add(&mut self, latency: Duration) {
        self.latencies.push(latency.as_secs_f64() * 1000.0);
    }

    /// Publishes `messages` messages on a plain cluster, one at a time.
    async fn measure(&mut self, side: &mut PlainSide, messages: u64) -> anyhow::Result<()> {
        let meter = Meter::start();
        for _ in 0..messages {
            match side.publish_one().await? {
                Some(latency) => self.add(latency),
                None => self.lost += 1,
            }
        }
        self.charge(meter);
        Ok(())
    }

    /// Adds what the process spent since `meter` started to this side's costs.
    fn charge(&mut self, meter: Meter) {
        let (sent, packets) = loopback();
        self.cpu_ms += cpu_ms() - meter.cpu_ms;
        self.wire_bytes += sent - meter.sent;
        self.wire_packets += packets - meter.packets;
        self.wall += meter.wall.elapsed();
    }

    fn percentile(&self, fraction: f64) -> f64 {
        let mut sorted = self.latencies.clone();
        sorted.sort_by(f64::total_cmp);
        percentile(&sorted, fraction)
    }

    fn summary(&self, published: u64, mean_mesh: f64, idle: Background) -> serde_json::Value {
        let published = published.max(1) as f64;
        let seconds = self.wall.as_secs_f64();
        serde_json::json!({
            "samples": self.latencies.len(),
            "lost": self.lost,
            "p50_ms": self.percentile(0.50),
            "p95_ms": self.percentile(0.95),
            "p99_ms": self.percentile(0.99),
            "max_ms": self.percentile(1.0),
            "cpu_ms_per_message": self.cpu_ms as f64 / published,
            "wire_bytes_per_message": (self.wire_bytes as f64 / published).round(),
            "wire_packets_per_message": (self.wire_packets as f64 / published).round(),
            "cpu_ms_per_message_less_idle":
                (self.cpu_ms as f64 - idle.cpu_ms_per_second * seconds) / published,
            "wire_bytes_per_message_less_idle":
                ((self.wire_bytes as f64 - idle.bytes_per_second * seconds) / published).round(),
            "mean_mesh": mean_mesh,
        })
    }
}

/// `only`: for profiling one side, the rounds publish only on it (the others still run, idle).
fn propagation(nodes: usize, messages: u64, rounds: u64, only: Option<&str>) -> anyhow::Result<()> {
    if nodes < 2 {
        bail!("--nodes must be at least 2");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let net = NetConfig {
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse()?],
            mdns: false,
            ..NetConfig::default()
        };
        // The clusters start alike: the same ring, then warm-up traffic. Plexus nodes then add
        // connections as Kademlia tells them of each other, over seconds; once that has
        // settled, the plain swarms dial the same extra connections in the same directions, so
        // all measure on one topology with meshes grown the same way.
        let ring = ring_edges(nodes);
        let mut plexus = PlexusSide::start(nodes, &net).await;
        let mut plain = PlainSide::start(nodes, &net, Stack::Gossipsub).await?;
        let mut stacked = PlainSide::start(nodes, &net, Stack::Full).await?;
        for side in [&mut plain, &mut stacked] {
            side.connect(&ring).await?;
        }
        for _ in 0..WARMUP_MESSAGES {
            plexus.publish_one().await?;
            plain.publish_one().await?;
            stacked.publish_one().await?;
        }
        // No event tells when Kademlia has found everyone: the connections are polled on a
        // timer, and a stretch of checks without a change counts as settled.
        let complete = nodes * (nodes - 1) / 2;
        let mut edges = plexus.edges().await?;
        let mut unchanged = 0;
        let mut checks = tokio::time::interval(TOPOLOGY_CHECK_INTERVAL);
        checks.tick().await;
        for _ in 0..TOPOLOGY_CHECKS {
            if edges.len() == complete || unchanged == STABLE_CHECKS {
                break;
            }
            checks.tick().await;
            let now = plexus.edges().await?;
            unchanged = if now == edges { unchanged + 1 } else { 0 };
            edges = now;
        }
        // Same pairs and same directions: gossipsub keeps outbound peers in its meshes.
        let extra: BTreeSet<(usize, usize)> = edges
            .iter()
            .filter(|&&(from, to)| !ring.contains(&(from.min(to), from.max(to))))
            .copied()
            .collect();
        for side in [&mut plain, &mut stacked] {
            side.connect(&extra).await?;
            for _ in 0..WARMUP_MESSAGES {
                side.publish_one().await?;
            }
        }
        // The new connections keep the swarms busy for a while (identify, Kademlia, mesh
        // upkeep): wait for the background to settle, so neither it nor its transient lands in
        // the first rounds, and keep the settled figure.
        let mut idle = Background::measure(IDLE_SAMPLE).await;
        for _ in 0..IDLE_SAMPLES {
            let next = Background::measure(IDLE_SAMPLE).await;
            let settled = next.cpu_ms_per_second >= idle.cpu_ms_per_second * 0.8;
            idle = next;
            if settled {
                break;
            }
        }
        let (mut ours, mut after_publish) = (Sample::default(), Sample::default());
        let (mut theirs, mut theirs_stacked) = (Sample::default(), Sample::default());
        eprintln!("measuring");
        for round in 1..=rounds {
            let meter = Meter::start();
            let plexus_messages = if only.is_none_or(|side| side == "plexus") {
                messages
            } else {
                0
            };
            for _ in 0..plexus_messages {
                match plexus.publish_one().await? {
                    Some((latency, publishing)) => {
                        ours.add(latency);
                        after_publish.add(latency.saturating_sub(publishing));
                    }
                    None => ours.lost += 1,
                }
            }
            ours.charge(meter);
            if only.is_none_or(|side| side == "gossipsub") {
                theirs.measure(&mut plain, messages).await?;
            }
            if only.is_none_or(|side| side == "stack") {
                theirs_stacked.measure(&mut stacked, messages).await?;
            }
            eprintln!("propagation round {round}/{rounds} done");
        }
        let edges_after = plexus.edges().await?;
        let meshes = [
            plexus.mean_mesh_size().await?,
            plain.mean_mesh_size().await?,
            stacked.mean_mesh_size().await?,
        ];
        let (forward_p50_ms, forward_p99_ms) = plexus.forward_latency().await?;
        plain.stop().await;
        stacked.stop().await;
        plexus.stop().await;
        let total = rounds * messages;
        let report = serde_json::json!({
            "nodes": nodes,
            "edges": edges.len(),
            "edges_after": edges_after.len(),
            "messages_per_round": messages,
            "rounds": rounds,
            "payload_bytes": plexus_payload_len(),
            "idle_cpu_ms_per_second": idle.cpu_ms_per_second,
            "idle_bytes_per_second": idle.bytes_per_second,
            "plexus": ours.summary(total, meshes[0], idle),
            "plexus_after_publish": after_publish.summary(total, meshes[0], idle),
            "gossipsub": theirs.summary(total, meshes[1], idle),
            "libp2p_stack": theirs_stacked.summary(total, meshes[2], idle),
            "p50_ratio": ours.percentile(0.50) / theirs.percentile(0.50),
            "p99_ratio": ours.percentile(0.99) / theirs.percentile(0.99),
            "p99_ratio_after_publish":
                after_publish.percentile(0.99) / theirs.percentile(0.99),
            "p50_ratio_to_stack": ours.percentile(0.50) / theirs_stacked.percentile(0.50),
            "p99_ratio_to_stack": ours.percentile(0.99) / theirs_stacked.percentile(0.99),
            "receipt_to_forward_p50_ms": forward_p50_ms,
            "receipt_to_forward_p99_ms": forward_p99_ms,
        });
        println!("{report}");
        anyhow::Ok(())
    })
}

/// CPU time (user and system) this process has used so far, in milliseconds, from
/// `/proc/self/stat` (Linux; in clock ticks of 10 ms, plenty over a round of messages).
/// Bytes and packets sent over the loopback interface so far (from `/proc/net/dev`; Linux):
/// every byte the benchmark's swarms exchange, framing and encryption included.
fn loopback() -> (u64, u64) {
    let dev = std::fs::read_to_string("/proc/net/dev").unwrap_or_default();
    let counters: Vec<u64> = dev
        .lines()
        .find(|line| line.trim_start().starts_with("lo:"))
        .and_then(|line| line.split(':').nth(1))
        .map(|counters| {
            counters
                .split_whitespace()
                .filter_map(|counter| counter.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    (
        counters.first().copied().unwrap_or(0),
        counters.get(1).copied().unwrap_or(0),
    )
}

fn loopback_bytes() -> u64 {
    loopback().0
}

fn cpu_ms() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&index| {
            fields
                .get(index)
                .and_then(|field| field.parse::<u64>().ok())
        })
        .sum();
    ticks * 10
}

/// The size of a benchmark message on the wire (both sides carry envelopes of this size).
fn plexus_payload_len() -> usize {
    let keypair = Keypair::from_seed(&[7; 32]);
    Entry::sign(
        &keypair,
        Draft {
            namespace: NAMESPACE.into(),
            seq: 1,
            prev: None,
            timestamp_ms: 1_767_225_600_000,
            kind: KIND.into(),
            body: body(0),
        },
    )
    .map(|entry| entry.encode().len())
    .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Filling a log

fn fill_log(data_dir: &std::path::Path, entries: u64, authors: u64) -> anyhow::Result<()> {
    let log = Log::open(data_dir)?;
    let per_author = entries / authors;
    let started = std::time::Instant::now();
    let chains: Vec<Vec<Entry>> = (0..authors)
        .into_par_iter()
        .map(|_| signed_chain(&Keypair::generate(), NAMESPACE, per_author))
        .collect();
    for chain in chains {
        for batch in chain.chunks(10_000) {
            log.ingest_entries(batch.to_vec(), "bench", 0)?;
        }
    }
    log.flush()?;
    eprintln!(
        "filled {} with {} entries by {authors} authors in {:.1} s",
        data_dir.display(),
        per_author * authors,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
