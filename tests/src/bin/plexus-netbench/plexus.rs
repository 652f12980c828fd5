//! The Plexus side of the propagation benchmark: a cluster of real nodes and the watchers
//! that record when each message is stored on each of them.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use plexus_crypto::AgentId;
use plexus_node::net::{topics, NetConfig};
use plexus_node::store::Log;
use plexus_protocol::FeedKey;
use plexus_tests::cluster::{connect, shutdown, spawn_node, TestNode, NAMESPACE};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::{body, ring_edges, Arrivals, KIND};

/// A Plexus cluster and the arrival watchers of its nodes.
pub(crate) struct PlexusSide {
    nodes: Vec<TestNode>,
    arrivals: Arc<Arrivals<(AgentId, u64)>>,
    /// The feed of the message being published, which the watchers look at.
    in_flight: watch::Sender<Option<FeedKey>>,
    watchers: Vec<tokio::task::JoinHandle<()>>,
    published: u64,
}

impl PlexusSide {
    pub(crate) async fn start(count: usize, net: &NetConfig) -> PlexusSide {
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
    pub(crate) async fn publish_one(&mut self) -> anyhow::Result<Option<(Duration, Duration)>> {
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
    pub(crate) async fn forward_latency(&self) -> anyhow::Result<(f64, f64)> {
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
    pub(crate) async fn mean_mesh_size(&self) -> anyhow::Result<f64> {
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
    pub(crate) async fn edges(&self) -> anyhow::Result<BTreeSet<(usize, usize)>> {
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

    pub(crate) async fn stop(self) {
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
