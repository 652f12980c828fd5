//! The plain gossipsub sides of the propagation benchmark: swarms with the same transport
//! and gossipsub parameters as a Plexus node, alone or with the rest of its libp2p stack.

use std::collections::BTreeSet;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use libp2p::futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::SwarmEvent;
use libp2p::{
    identify, kad, noise, ping, tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm, SwarmBuilder,
};
use plexus_crypto::Keypair;
use plexus_node::net::behaviour::{
    gossipsub_config, peer_score_params, topic_score_params, IDENTIFY_PROTOCOL, KAD_PROTOCOL,
};
use plexus_node::net::{topics, NetConfig};
use plexus_protocol::{Draft, Entry};
use plexus_tests::cluster::NAMESPACE;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::{body, Arrivals, KIND};

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
pub(crate) struct PlainSide {
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
    pub(crate) async fn start(
        count: usize,
        net: &NetConfig,
        stack: Stack,
    ) -> anyhow::Result<PlainSide> {
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
    pub(crate) async fn connect(&mut self, edges: &BTreeSet<(usize, usize)>) -> anyhow::Result<()> {
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

    pub(crate) async fn publish_one(&mut self) -> anyhow::Result<Option<Duration>> {
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
        // Arrivals are recorded under the gossipsub message id, which is the SHA-256 of the
        // whole payload (docs/PROTOCOL.md §8.1), not the entry id.
        let data = entry.encode();
        let key = plexus_crypto::sha256(&data).as_bytes().to_vec();
        let started = Instant::now();
        self.nodes[publisher]
            .commands
            .send(PlainCommand::Publish(data))
            .await
            .context("plain swarm stopped")?;
        Ok(self
            .arrivals
            .wait(&key, publisher, self.nodes.len() - 1, started)
            .await)
    }

    /// The mean number of mesh peers per node on the benchmark's topic.
    pub(crate) async fn mean_mesh_size(&self) -> anyhow::Result<f64> {
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

    pub(crate) async fn stop(self) {
        for node in self.nodes {
            drop(node.commands);
            let _ = node.task.await;
        }
    }
}

/// Which libp2p protocols a plain swarm runs besides gossipsub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stack {
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
