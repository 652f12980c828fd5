//! Network benchmarks for `scripts/bench.sh` (not a test: it prints figures, it asserts nothing).
//!
//! - `propagation --nodes N --messages M --rounds R` starts N Plexus nodes and N plain libp2p
//!   gossipsub swarms on loopback, in one process, with the same topology, transport and
//!   gossipsub parameters, and publishes the same kind of payload on both, alternating rounds of
//!   M messages. Each message is published once the previous one has reached every node; its
//!   latency runs from the publish call to its arrival on the last node: for Plexus when the
//!   entry is validated and stored (the node's change watch, then its feed head), for plain
//!   gossipsub when the swarm emits the `Message` event. For Plexus the figures are also given
//!   from the moment `Node::publish` returned (the publisher's own signing and synced write
//!   excluded). Prints one JSON object.
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
use libp2p::futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity};
use libp2p::swarm::SwarmEvent;
use libp2p::{noise, tcp, yamux, Multiaddr, PeerId, Swarm, SwarmBuilder};
use plexus_crypto::{AgentId, Keypair};
use plexus_node::net::behaviour::{gossipsub_config, peer_score_params, topic_score_params};
use plexus_node::net::{topics, NetConfig};
use plexus_node::store::Log;
use plexus_protocol::value::json_text_to_canonical;
use plexus_protocol::{Draft, Entry};
use plexus_tests::cluster::{connect, shutdown, spawn_node, TestNode, NAMESPACE};
use plexus_tests::fixtures::signed_chain;
use plexus_tests::flag;
use rayon::prelude::*;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

/// Kind of every benchmark message (an application kind).
const KIND: &str = "x-note";

/// Longest wait for one message to reach every node before it counts as lost.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Messages published on each side before measuring, so meshes are built and caches warm.
const WARMUP_MESSAGES: u64 = 20;

/// Each node dials the nodes this many places further round the ring: six neighbours per node
/// (the gossipsub mesh degree D), a diameter of three hops at 20 nodes.
const RING_OFFSETS: [usize; 3] = [1, 4, 9];

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("propagation") => propagation(&args[1..]),
        Some("fill-log") => fill_log(&args[1..]),
        _ => bail!(
            "usage: plexus-netbench propagation --nodes N --messages M --rounds R \
             | fill-log --data-dir DIR --entries N --authors A"
        ),
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
        let watchers = nodes
            .iter()
            .enumerate()
            .map(|(index, node)| {
                tokio::spawn(watch_log(
                    index,
                    node.node.changes(),
                    Arc::clone(node.node.log()),
                    Arc::clone(&arrivals),
                ))
            })
            .collect();
        PlexusSide {
            nodes,
            arrivals,
            watchers,
            published: 0,
        }
    }

    /// Publishes the next message from the next node in turn; returns its latency and the part
    /// of it spent in `Node::publish` (signing and the publisher's own synced write).
    async fn publish_one(&mut self) -> anyhow::Result<Option<(Duration, Duration)>> {
        let publisher = (self.published % self.nodes.len() as u64) as usize;
        let node = &self.nodes[publisher];
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

    /// Undirected connections between the nodes now.
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
                if let Some(&to) = index.get(&peer.peer_id) {
                    edges.insert((from.min(to), from.max(to)));
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

/// Records when each feed head of `log` moves: an entry counts as arrived once it is stored.
async fn watch_log(
    node: usize,
    mut changes: watch::Receiver<u64>,
    log: Arc<Log>,
    arrivals: Arc<Arrivals<(AgentId, u64)>>,
) {
    let mut known: HashMap<AgentId, u64> = HashMap::new();
    while changes.changed().await.is_ok() {
        let at = Instant::now();
        let Ok(heads) = log.heads() else {
            continue;
        };
        for (feed, head) in heads {
            let seen = known.entry(feed.author).or_insert(0);
            for seq in *seen + 1..=head.seq {
                arrivals.record((feed.author, seq), node, at);
            }
            *seen = (*seen).max(head.seq);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Plain gossipsub side

enum PlainCommand {
    Publish(Vec<u8>),
    Dial(Multiaddr),
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
    published: u64,
}

impl PlainSide {
    async fn start(
        count: usize,
        net: &NetConfig,
        edges: &BTreeSet<(usize, usize)>,
    ) -> anyhow::Result<PlainSide> {
        let arrivals = Arrivals::new();
        let mut nodes = Vec::with_capacity(count);
        for index in 0..count {
            nodes.push(start_plain(index, net, Arc::clone(&arrivals)).await?);
        }
        let mut degree = vec![0usize; count];
        for &(from, to) in edges {
            let addr = nodes[to]
                .addr
                .clone()
                .with(libp2p::multiaddr::Protocol::P2p(nodes[to].peer_id));
            nodes[from]
                .commands
                .send(PlainCommand::Dial(addr))
                .await
                .context("plain swarm stopped")?;
            degree[from] += 1;
            degree[to] += 1;
        }
        for (node, wanted) in nodes.iter_mut().zip(degree) {
            tokio::time::timeout(
                Duration::from_secs(30),
                node.connected.wait_for(|connected| *connected >= wanted),
            )
            .await
            .context("plain swarms did not connect")??;
        }
        let publishers = (0..count).map(|_| (Keypair::generate(), None)).collect();
        Ok(PlainSide {
            nodes,
            arrivals,
            publishers,
            published: 0,
        })
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

    async fn stop(self) {
        for node in self.nodes {
            drop(node.commands);
            let _ = node.task.await;
        }
    }
}

fn build_plain_swarm(
    net: &NetConfig,
) -> Result<Swarm<gossipsub::Behaviour>, Box<dyn std::error::Error + Send + Sync>> {
    let heartbeat = net.heartbeat;
    let swarm = SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_behaviour(
            |_| -> Result<gossipsub::Behaviour, Box<dyn std::error::Error + Send + Sync>> {
                let config = gossipsub_config(heartbeat).build()?;
                let mut behaviour =
                    gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, config)?;
                behaviour.with_peer_score(
                    peer_score_params(),
                    gossipsub::PeerScoreThresholds::default(),
                )?;
                Ok(behaviour)
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
    arrivals: Arc<Arrivals<Vec<u8>>>,
) -> anyhow::Result<PlainNode> {
    let mut swarm = build_plain_swarm(net).map_err(|error| anyhow::anyhow!("{error}"))?;
    // The same topics a Plexus node subscribes to for its namespace.
    for topic in topics::namespace_topics(NAMESPACE) {
        swarm.behaviour_mut().subscribe(&topic)?;
        let _ = swarm
            .behaviour_mut()
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
    mut swarm: Swarm<gossipsub::Behaviour>,
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
                    let _ = swarm.behaviour_mut().publish(topic.clone(), data);
                }
                Some(PlainCommand::Dial(to)) => {
                    let _ = swarm.dial(to);
                }
            },
            event = swarm.select_next_some() => match event {
                SwarmEvent::Behaviour(gossipsub::Event::Message { message_id, .. }) => {
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

fn propagation(args: &[String]) -> anyhow::Result<()> {
    let nodes: usize = flag(args, "--nodes")?.parse()?;
    let messages: u64 = flag(args, "--messages")?.parse()?;
    let rounds: u64 = flag(args, "--rounds")?.parse()?;
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
        let mut plexus = PlexusSide::start(nodes, &net).await;
        for _ in 0..WARMUP_MESSAGES {
            plexus.publish_one().await?;
        }
        // Kademlia may have added connections to the ring: the plain swarms copy what is there.
        let edges = plexus.edges().await?;
        let mut plain = PlainSide::start(nodes, &net, &edges).await?;
        for _ in 0..WARMUP_MESSAGES {
            plain.publish_one().await?;
        }
        let (mut ours, mut ours_after_publish, mut theirs) = (Vec::new(), Vec::new(), Vec::new());
        let (mut ours_lost, mut theirs_lost) = (0u64, 0u64);
        for round in 1..=rounds {
            for _ in 0..messages {
                match plexus.publish_one().await? {
                    Some((latency, publishing)) => {
                        ours.push(latency.as_secs_f64() * 1000.0);
                        ours_after_publish.push((latency - publishing).as_secs_f64() * 1000.0);
                    }
                    None => ours_lost += 1,
                }
            }
            for _ in 0..messages {
                match plain.publish_one().await? {
                    Some(latency) => theirs.push(latency.as_secs_f64() * 1000.0),
                    None => theirs_lost += 1,
                }
            }
            eprintln!("propagation round {round}/{rounds} done");
        }
        let edges_after = plexus.edges().await?;
        plain.stop().await;
        plexus.stop().await;
        ours.sort_by(f64::total_cmp);
        ours_after_publish.sort_by(f64::total_cmp);
        theirs.sort_by(f64::total_cmp);
        let summary = |sorted: &[f64], lost: u64| {
            serde_json::json!({
                "samples": sorted.len(),
                "lost": lost,
                "p50_ms": percentile(sorted, 0.50),
                "p95_ms": percentile(sorted, 0.95),
                "p99_ms": percentile(sorted, 0.99),
                "max_ms": sorted.last().copied().unwrap_or(f64::NAN),
            })
        };
        let report = serde_json::json!({
            "nodes": nodes,
            "edges": edges.len(),
            "edges_after": edges_after.len(),
            "messages_per_round": messages,
            "rounds": rounds,
            "payload_bytes": plexus_payload_len(),
            "plexus": summary(&ours, ours_lost),
            "plexus_after_publish": summary(&ours_after_publish, ours_lost),
            "gossipsub": summary(&theirs, theirs_lost),
            "p99_ratio": percentile(&ours, 0.99) / percentile(&theirs, 0.99),
            "p99_ratio_after_publish":
                percentile(&ours_after_publish, 0.99) / percentile(&theirs, 0.99),
        });
        println!("{report}");
        anyhow::Ok(())
    })
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

fn fill_log(args: &[String]) -> anyhow::Result<()> {
    let data_dir = PathBuf::from(flag(args, "--data-dir")?);
    let entries: u64 = flag(args, "--entries")?.parse()?;
    let authors: u64 = flag(args, "--authors")?.parse()?;
    let log = Log::open(&data_dir)?;
    let per_author = entries / authors;
    let started = std::time::Instant::now();
    let chains: Vec<Vec<Entry>> = (0..authors)
        .into_par_iter()
        .map(|_| signed_chain(&Keypair::generate(), NAMESPACE, per_author))
        .collect();
    for chain in chains {
        for batch in chain.chunks(10_000) {
            log.ingest_verified_batch(batch.to_vec(), "bench", 0)?;
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
