//! The gossip network: a libp2p swarm owned by one task, driven through a [`NetworkHandle`].
//!
//! - [`behaviour`]: the combined libp2p behaviour (gossipsub, sync, Kademlia, identify, mDNS,
//!   ping answers ([`pong`]), block list) and its configuration.
//! - [`task`]: the event loop that owns the `Swarm`. Nothing else touches it: other tasks send
//!   [`Command`]s over a bounded channel, each with a `oneshot` for its reply, and receive
//!   [`NetEvent`]s (gossip to validate, sync traffic) over another bounded channel.
//! - [`topics`]: topic naming. [`sync`]: the backfill protocol and its planning.
//! - [`limits`]: connection limits, with a grace period that lets a full node introduce a
//!   newcomer to others. [`peer_manager`]: keeps the degree between the watermarks and rejoins
//!   a node left with no peer, deciding with the pure [`peers`] and remembering peers across
//!   restarts in the [`peer_store`].
//!
//! The network layer does not know the log. Validation and storage belong to the node
//! (`crate::node`): the swarm task hands every gossip message to the node's ingest worker as
//! a [`NetEvent::Gossip`] and never looks inside it; the verdicts come back in batches as
//! [`Command::Validate`], and gossipsub forwards what was accepted.

pub mod behaviour;
pub(crate) mod latency;
pub mod limits;
pub(crate) mod peer_manager;
pub mod peer_store;
pub mod peers;
pub mod pong;
pub mod reconcile;
pub mod sync;
pub(crate) mod task;
pub mod topics;
pub(crate) mod wire;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p::gossipsub::{IdentTopic, MessageAcceptance, MessageId};
use libp2p::request_response::{InboundRequestId, ResponseChannel};
use libp2p::{Multiaddr, PeerId};
use plexus_crypto::AgentId;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

pub use latency::LatencySummary;
pub use sync::{FetchedRange, RangeRequest, SyncRequest, SyncResponse, WireHead};

/// Commands waiting for the swarm task. Commands are small and handled in microseconds; the
/// bound only matters if the task is stuck, and then callers wait rather than pile up memory.
pub const COMMAND_QUEUE: usize = 1024;

/// Network events waiting for the ingest worker. When it is full, gossip is answered `Ignore`
/// (no penalty, the message is simply not forwarded by us) and sync traffic is dropped to be
/// retried at the next anti-entropy round.
pub const EVENT_QUEUE: usize = 4096;

/// How the network is set up.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Addresses to listen on (TCP and/or QUIC).
    pub listen: Vec<Multiaddr>,
    /// Addresses to announce as reachable (for example behind port forwarding).
    pub external: Vec<Multiaddr>,
    /// Peers to dial at start; each should end in `/p2p/<peer id>`.
    pub bootstrap: Vec<Multiaddr>,
    /// Whether to discover peers with mDNS on the local network.
    pub mdns: bool,
    /// How often to run anti-entropy (heads exchange) with every connected peer.
    pub backfill_interval: Duration,
    /// How long an idle connection is kept.
    pub idle_timeout: Duration,
    /// Gossipsub heartbeat interval.
    pub heartbeat: Duration,
    /// Most connections established at once, both directions together; see
    /// [`limits::ConnectionBudget`].
    pub max_connections: u32,
    /// The low and high watermarks of connected peers (see [`peer_manager`]).
    pub degree: peers::DegreeTarget,
    /// The peer store file (peers from earlier runs); `None` keeps nothing across restarts.
    pub peer_store: Option<PathBuf>,
}

/// Default for [`NetConfig::max_connections`]: room for several gossipsub meshes (up to 12
/// peers each) and Kademlia's lookups, far below what a host's file descriptors allow.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 128;

/// Where a node listens by default: this host only. A node is a sidecar for one agent, and in
/// an open namespace anyone who reaches it can post (a `notBefore` constraint on `*` blocks
/// every lease for up to 30 days), so reaching other hosts is something to ask for
/// (`--listen`, or a bootstrap peer on another host: see [`default_listen`]).
pub const LOOPBACK_LISTEN: [&str; 2] =
    ["/ip4/127.0.0.1/tcp/7400", "/ip4/127.0.0.1/udp/7400/quic-v1"];

/// Where a node listens when it joins other hosts without a `--listen`: every interface.
pub const ALL_INTERFACES_LISTEN: [&str; 2] =
    ["/ip4/0.0.0.0/tcp/7400", "/ip4/0.0.0.0/udp/7400/quic-v1"];

/// The listen addresses of a node given no `--listen`: this host only, unless a bootstrap peer
/// is on another host, which says the node is meant to be reached from the network.
pub fn default_listen(bootstrap: &[Multiaddr]) -> Vec<Multiaddr> {
    let addrs = if bootstrap.iter().all(is_loopback) {
        LOOPBACK_LISTEN
    } else {
        ALL_INTERFACES_LISTEN
    };
    addrs.into_iter().map(default_addr).collect()
}

/// Whether an address reaches this host only (127.0.0.0/8, ::1, `localhost`).
pub fn is_loopback(addr: &Multiaddr) -> bool {
    use libp2p::multiaddr::Protocol;
    match addr.iter().next() {
        Some(Protocol::Ip4(ip)) => ip.is_loopback(),
        Some(Protocol::Ip6(ip)) => ip.is_loopback(),
        Some(Protocol::Dns(name) | Protocol::Dns4(name) | Protocol::Dns6(name)) => {
            name == "localhost"
        }
        _ => false,
    }
}

/// The loud warning for each open namespace (one without a trust root) that a node
/// listening on `listen` exposes beyond this host: anyone who reaches it may post there.
pub fn exposure_warnings(
    listen: &[Multiaddr],
    namespaces: &[String],
    is_governed: impl Fn(&str) -> bool,
) -> Vec<String> {
    let Some(exposed) = listen.iter().find(|addr| !is_loopback(addr)) else {
        return Vec::new();
    };
    namespaces
        .iter()
        .filter(|namespace| !is_governed(namespace))
        .map(|namespace| {
            format!(
                "namespace {namespace:?} is open and this node listens on {exposed}: any host \
                 that reaches it can post there (claims, constraints that block every lease). \
                 Give it a trust root (--trust-root {namespace}=<admin id>) or listen on \
                 127.0.0.1 only"
            )
        })
        .collect()
}

impl Default for NetConfig {
    /// Listens on this host only, mDNS off (see [`LOOPBACK_LISTEN`]).
    fn default() -> Self {
        NetConfig {
            listen: LOOPBACK_LISTEN.into_iter().map(default_addr).collect(),
            external: Vec::new(),
            bootstrap: Vec::new(),
            mdns: false,
            backfill_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(300),
            heartbeat: Duration::from_millis(700),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            degree: peers::DegreeTarget::default(),
            peer_store: None,
        }
    }
}

impl NetConfig {
    /// Settings for nodes that share one machine (the demo, tests, benchmarks): TCP on an
    /// ephemeral 127.0.0.1 port, no mDNS, a quick heartbeat and anti-entropy round.
    pub fn loopback() -> NetConfig {
        NetConfig {
            listen: vec![default_addr("/ip4/127.0.0.1/tcp/0")],
            external: Vec::new(),
            bootstrap: Vec::new(),
            mdns: false,
            backfill_interval: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(120),
            heartbeat: Duration::from_millis(200),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            degree: peers::DegreeTarget::default(),
            peer_store: None,
        }
    }
}

fn default_addr(text: &str) -> Multiaddr {
    // The literals above are valid multiaddrs; an empty address would only mean "listen on
    // nothing", never a crash.
    text.parse().unwrap_or_else(|_| Multiaddr::empty())
}

/// Requests to the swarm task.
#[derive(Debug)]
pub enum Command {
    /// Publish bytes on a topic.
    Publish {
        topic: IdentTopic,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    /// Follow a namespace: subscribe to its topics and include it in heads exchanges; refused
    /// past [`MAX_FOLLOWED_NAMESPACES`].
    Follow {
        namespace: String,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    /// The verdicts on gossip messages handed out as [`NetEvent::Gossip`], in one command
    /// per batch the worker settled.
    Validate(Vec<GossipVerdict>),
    /// Answer a sync request handed out as [`NetEvent::SyncRequest`].
    Respond {
        request_id: InboundRequestId,
        channel: ResponseChannel<SyncResponse>,
        response: SyncResponse,
    },
    /// Fetch a range of a feed from a peer (queued behind the per-peer in-flight limit).
    Fetch {
        peer: PeerId,
        range: Box<RangeRequest>,
    },
    /// Fetch several ranges from a peer: all are queued before any is sent, so they go out
    /// together in `Ranges` requests rather than the first ones alone.
    FetchMany {
        peer: PeerId,
        ranges: Vec<RangeRequest>,
    },
    /// Send one round of a reconciliation session to a peer (from the node's reconciler);
    /// `first` marks a session's first round.
    Reconcile {
        peer: PeerId,
        request: SyncRequest,
        first: bool,
    },
    /// Run an anti-entropy round with every connected peer now.
    SyncNow,
    /// Dial an address.
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    /// Disconnect from a peer and refuse its connections until unblocked.
    Block {
        peer: PeerId,
        reply: oneshot::Sender<()>,
    },
    /// Disconnect from a peer that keeps sending invalid data and refuse it for `duration`.
    BlockFor { peer: PeerId, duration: Duration },
    /// Allow a blocked peer again.
    Unblock {
        peer: PeerId,
        reply: oneshot::Sender<()>,
    },
    /// A snapshot of the network state.
    Status { reply: oneshot::Sender<NetStatus> },
    /// Stop the swarm task.
    Shutdown,
}

/// The verdict on one gossip message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GossipVerdict {
    pub message_id: MessageId,
    pub peer: PeerId,
    pub acceptance: MessageAcceptance,
    /// When the swarm task received the message (from [`NetEvent::Gossip`]).
    pub received: Instant,
}

/// What the swarm task hands to the ingest worker.
#[derive(Debug)]
pub enum NetEvent {
    /// A gossip message to validate; the worker must answer with [`Command::Validate`].
    Gossip {
        message_id: MessageId,
        peer: PeerId,
        topic: String,
        data: Vec<u8>,
        /// When the swarm task received it: the verdict carries it back, so the node can
        /// report how long accepted gossip waits before it is forwarded.
        received: Instant,
    },
    /// A peer's sync request, handed to the node's sync server (never queued behind gossip),
    /// which answers with [`Command::Respond`].
    SyncRequest {
        peer: PeerId,
        request_id: InboundRequestId,
        request: SyncRequest,
        channel: ResponseChannel<SyncResponse>,
    },
    /// A peer's heads, in answer to our `Heads` request.
    Heads { peer: PeerId, heads: Vec<WireHead> },
    /// Entries in answer to our `Range` or `Ranges` request: each range answered, with its
    /// envelopes.
    Entries {
        peer: PeerId,
        answered: Vec<FetchedRange>,
    },
}

/// A snapshot of the network for `plexus status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NetStatus {
    pub peer_id: String,
    pub listen_addrs: Vec<String>,
    pub external_addrs: Vec<String>,
    pub peers: Vec<PeerStatus>,
    pub topics: Vec<String>,
    pub namespaces: Vec<String>,
    pub sync_requests_in_flight: usize,
    pub sync_ranges_queued: usize,
    pub gossip_received: u64,
    pub gossip_dropped_queue_full: u64,
    /// From receipt to forward of accepted gossip (admission, signature check and write).
    #[serde(default)]
    pub gossip_forward_latency: LatencySummary,
    /// Peers' sync requests refused as busy: over their share ([`sync::MAX_SERVED_PER_PEER`],
    /// [`sync::MAX_RESPONSE_BYTES_PER_PEER`]) or the node's ([`sync::SERVE_QUEUE`],
    /// [`sync::MAX_RESPONSE_BYTES_IN_FLIGHT`]).
    #[serde(default)]
    pub sync_requests_refused: u64,
    /// Bytes of sync responses this node holds now, answered but not yet read by their peers.
    #[serde(default)]
    pub sync_response_bytes_held: usize,
    pub entries_fetched: u64,
    /// What reconciling feed heads with peers cost since the node started (see
    /// [`reconcile::ReconcileCost`]).
    #[serde(default)]
    pub reconcile: reconcile::ReconcileCost,
    /// What fetching entries (`Range`, `Ranges`) cost since the node started.
    #[serde(default)]
    pub fetch: sync::FetchCost,
    #[serde(default)]
    pub connections: ConnectionStatus,
}

/// Established connections against the limits, and what the limits refused since the node
/// started.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConnectionStatus {
    pub incoming: u32,
    pub outgoing: u32,
    pub max_established: u32,
    pub max_incoming: u32,
    pub refused_incoming: u64,
    /// This node's own dials refused (at the total, or to a peer connected twice already).
    pub refused_outgoing: u64,
    /// Inbound connections past the limits, open for a short grace period so that the
    /// newcomer learns other peers (not counted in `incoming`, counted in `refused_incoming`).
    #[serde(default)]
    pub grace: u32,
}

/// One connected peer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerStatus {
    pub peer_id: String,
    /// The peer's agent id, when its peer id carries an Ed25519 key (always, for Plexus nodes).
    pub agent_id: Option<String>,
    pub score: Option<f64>,
    /// Whether this node dialled the peer (an outbound connection; gossipsub keeps a few
    /// outbound peers in each mesh).
    #[serde(default)]
    pub dialed: bool,
    /// Our topics in whose gossipsub mesh the peer is (full messages go to mesh peers; the
    /// others only hear of them through gossip).
    #[serde(default)]
    pub mesh: Vec<String>,
}

/// Errors from the handle.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("the network task has stopped")]
    Stopped,
    /// Gossipsub refused a message (too large for the transmit limit, or no way to send it).
    #[error("gossipsub cannot publish the message: {0}")]
    Publish(#[source] libp2p::gossipsub::PublishError),
    /// A dial the node was asked to make could not start.
    #[error("cannot dial {addr}: {source}")]
    Dial {
        addr: Multiaddr,
        // Boxed (as below): libp2p's errors are large, and `NetError` travels in every reply.
        source: Box<libp2p::swarm::DialError>,
    },
    /// A listen address the node was configured with cannot be used.
    #[error(
        "cannot listen on {addr}: {source}: give --listen a free TCP address \
         (/ip4/0.0.0.0/tcp/PORT) or QUIC one (/ip4/0.0.0.0/udp/PORT/quic-v1)"
    )]
    Listen {
        addr: Multiaddr,
        source: Box<libp2p::TransportError<std::io::Error>>,
    },
    /// Following one more namespace would pass [`MAX_FOLLOWED_NAMESPACES`].
    #[error(
        "cannot follow namespace {namespace:?}: this node already follows {limit} namespaces, \
         the most a heads exchange carries; use an existing namespace or run another node"
    )]
    TooManyNamespaces { namespace: String, limit: usize },
}

/// Most namespaces a node follows: a heads request names them all, and a peer refuses one
/// naming more than [`sync::MAX_NAMESPACES`], which would stop every backfill of this node.
pub const MAX_FOLLOWED_NAMESPACES: usize = sync::MAX_NAMESPACES;

/// A cloneable handle to the swarm task.
#[derive(Debug, Clone)]
pub struct NetworkHandle {
    commands: mpsc::Sender<Command>,
    peer_id: PeerId,
    /// Namespaces the swarm task has confirmed following, so that publishing in one does not
    /// cost a round trip to the task each time (as many as the task follows).
    followed: Arc<std::sync::Mutex<HashSet<String>>>,
}

impl NetworkHandle {
    pub(crate) fn new(commands: mpsc::Sender<Command>, peer_id: PeerId) -> Self {
        NetworkHandle {
            commands,
            peer_id,
            followed: Arc::default(),
        }
    }

    /// This node's libp2p peer id (the same Ed25519 key as its agent id).
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Publishes bytes on a topic. "No peers subscribed" is not an error: backfill delivers
    /// the entry when peers appear.
    pub async fn publish(&self, topic: IdentTopic, data: Vec<u8>) -> Result<(), NetError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Publish { topic, data, reply }).await?;
        answer.await.map_err(|_| NetError::Stopped)?
    }

    /// Follows a namespace (at once if this handle's node already does).
    pub async fn follow(&self, namespace: &str) -> Result<(), NetError> {
        if self.lock_followed().contains(namespace) {
            return Ok(());
        }
        let (reply, answer) = oneshot::channel();
        self.send(Command::Follow {
            namespace: namespace.to_owned(),
            reply,
        })
        .await?;
        answer.await.map_err(|_| NetError::Stopped)??;
        self.lock_followed().insert(namespace.to_owned());
        Ok(())
    }

    fn lock_followed(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.followed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Dials an address.
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), NetError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Dial { addr, reply }).await?;
        answer.await.map_err(|_| NetError::Stopped)?
    }

    /// Disconnects from a peer and refuses it until [`NetworkHandle::unblock`].
    pub async fn block(&self, peer: PeerId) -> Result<(), NetError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Block { peer, reply }).await?;
        answer.await.map_err(|_| NetError::Stopped)
    }

    /// Allows a blocked peer again.
    pub async fn unblock(&self, peer: PeerId) -> Result<(), NetError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Unblock { peer, reply }).await?;
        answer.await.map_err(|_| NetError::Stopped)
    }

    /// Runs an anti-entropy round with every connected peer.
    pub async fn sync_now(&self) -> Result<(), NetError> {
        self.send(Command::SyncNow).await
    }

    /// A snapshot of the network state.
    pub async fn status(&self) -> Result<NetStatus, NetError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Status { reply }).await?;
        answer.await.map_err(|_| NetError::Stopped)
    }

    /// Asks the swarm task to stop.
    pub async fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown).await;
    }

    pub(crate) async fn send(&self, command: Command) -> Result<(), NetError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| NetError::Stopped)
    }

    /// For the ingest worker, which runs on a plain thread.
    pub(crate) fn blocking_send(&self, command: Command) -> Result<(), NetError> {
        self.commands
            .blocking_send(command)
            .map_err(|_| NetError::Stopped)
    }
}

/// The agent id inside an Ed25519 peer id (identity multihash of the protobuf-encoded key).
pub fn agent_id_of(peer: &PeerId) -> Option<AgentId> {
    let multihash = peer.as_ref();
    if multihash.code() != 0x00 {
        return None;
    }
    let key = libp2p::identity::PublicKey::try_decode_protobuf(multihash.digest()).ok()?;
    let bytes = key.try_into_ed25519().ok()?.to_bytes();
    AgentId::from_bytes(&bytes).ok()
}

/// The libp2p peer id of an agent id.
pub fn peer_id_of(agent: &AgentId) -> Option<PeerId> {
    let key = libp2p::identity::ed25519::PublicKey::try_from_bytes(agent.as_bytes()).ok()?;
    Some(libp2p::identity::PublicKey::from(key).to_peer_id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use plexus_crypto::Keypair;

    #[test]
    fn peer_id_and_agent_id_are_one_key() {
        let keypair = Keypair::generate();
        let libp2p_key = behaviour::libp2p_keypair(&keypair).unwrap();
        let peer = libp2p_key.public().to_peer_id();
        assert_eq!(agent_id_of(&peer), Some(keypair.agent_id()));
        assert_eq!(peer_id_of(&keypair.agent_id()), Some(peer));
    }

    fn addrs(texts: &[&str]) -> Vec<Multiaddr> {
        texts.iter().map(|text| text.parse().unwrap()).collect()
    }

    #[test]
    fn a_fresh_node_listens_on_this_host_only_and_stays_quiet_on_the_lan() {
        let config = NetConfig::default();
        assert!(!config.listen.is_empty());
        assert!(config.listen.iter().all(is_loopback), "{:?}", config.listen);
        assert!(!config.mdns);
        // A bootstrap peer on this host keeps it there; one on another host opens it up.
        let local = addrs(&["/ip4/127.0.0.1/tcp/7401"]);
        assert!(default_listen(&local).iter().all(is_loopback));
        let remote = addrs(&["/ip4/10.0.0.5/tcp/7400"]);
        assert_eq!(default_listen(&remote), addrs(&ALL_INTERFACES_LISTEN));
    }

    #[test]
    fn an_open_namespace_exposed_beyond_this_host_is_warned_about() {
        let namespaces = vec!["default".to_owned(), "team".to_owned()];
        let governed = |namespace: &str| namespace == "team";
        let exposed = addrs(&["/ip4/127.0.0.1/tcp/7400", "/ip4/0.0.0.0/tcp/7400"]);
        let warnings = exposure_warnings(&exposed, &namespaces, governed);
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("\"default\" is open")
                && warnings[0].contains("/ip4/0.0.0.0/tcp/7400")
                && warnings[0].contains("--trust-root default="),
            "{}",
            warnings[0]
        );
        let local = addrs(&LOOPBACK_LISTEN);
        assert!(exposure_warnings(&local, &namespaces, governed).is_empty());
    }
}
