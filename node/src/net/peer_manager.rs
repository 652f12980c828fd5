//! The peer manager: keeps the node's degree between its watermarks and never leaves it alone.
//!
//! It runs on the swarm task, on a heartbeat every [`PEER_HEARTBEAT`]:
//! - grace connections (see `net::limits`) whose time is up are closed;
//! - **alone** (no peer at all): rejoin from every address known (the bootstrap list, the peer
//!   store read at start, the Kademlia routing table) and run a Kademlia bootstrap, then wait
//!   with exponential backoff ([`REJOIN_BACKOFF_INITIAL`] doubling to [`REJOIN_BACKOFF_MAX`])
//!   before the next attempt;
//! - **below the low watermark**: dial peers from the routing table as `net::peers` chooses
//!   (diverse groups and buckets); when the table has none left, look for more with a Kademlia
//!   bootstrap at most every [`DISCOVERY_INTERVAL`];
//! - **above the high watermark**: disconnect the surplus as `net::peers` chooses (never
//!   thinning a gossipsub mesh to [`MESH_FLOOR`] peers or fewer);
//! - a Kademlia bootstrap every [`KAD_BOOTSTRAP_INTERVAL`] keeps the routing table fresh (the
//!   library's own timer is off: it warns on a node that knows no peer yet, such as the first
//!   node of a network);
//! - the peer store is written at the first heartbeat that finds a neighbour (a node killed
//!   seconds after joining still knows where the network is when it restarts), then rewritten
//!   every [`PEER_STORE_INTERVAL`] when the neighbourhood changed, and at shutdown.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{kad, Multiaddr, PeerId, Swarm};
use tracing::{debug, info, warn};

use super::behaviour::Behaviour;
use super::peer_store::{self, StoredPeer, MAX_ADDRS_PER_PEER, MAX_STORED_PEERS};
use super::peers::{self, Backoff, ConnectedPeer, DegreeTarget, DialCandidate, NetGroup};
use super::NetConfig;

/// How often the peer manager looks at the node's degree. Cheap (a pass over the connected
/// peers and the routing table), and short enough that a newcomer fills its neighbourhood
/// within seconds of learning peers.
pub const PEER_HEARTBEAT: Duration = Duration::from_secs(1);

/// First wait between rejoin attempts of a node with no peer.
pub const REJOIN_BACKOFF_INITIAL: Duration = Duration::from_secs(1);

/// Longest wait between rejoin attempts: a node cut off for a long time still tries every
/// minute, and a restarted bootstrap node is not hit by all its former peers at once (each
/// wait is spread randomly over its second half).
pub const REJOIN_BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Shortest time between Kademlia lookups for more peers while below the low watermark.
pub const DISCOVERY_INTERVAL: Duration = Duration::from_secs(10);

/// Time between routine Kademlia bootstraps (the library's default period).
pub const KAD_BOOTSTRAP_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// Shortest time between two writes of the peer store.
pub const PEER_STORE_INTERVAL: Duration = Duration::from_secs(30);

/// A trim leaves every gossipsub mesh with more peers than this: gossipsub's `mesh_n_low`
/// default (5), below which it grafts again at once.
pub const MESH_FLOOR: usize = 5;

/// Most peers dialled in one rejoin attempt (bootstrap addresses always are).
pub const MAX_REJOIN_DIALS: usize = 32;

/// Degree maintenance state of the swarm task.
#[derive(Debug)]
pub struct PeerManager {
    target: DegreeTarget,
    bootstrap: Vec<Multiaddr>,
    store_path: Option<PathBuf>,
    /// Peers read from the store at start, dialled when the node is alone.
    stored: Vec<StoredPeer>,
    /// The address each connected peer was first seen at (as many as connected peers).
    addresses: HashMap<PeerId, Multiaddr>,
    rejoin_backoff: Backoff,
    next_rejoin: Instant,
    next_discovery: Instant,
    next_kad_bootstrap: Instant,
    next_store_write: Instant,
    /// The peers in the last peer store written, to skip rewriting an unchanged list.
    last_stored: Vec<PeerId>,
}

impl PeerManager {
    /// Reads the peer store (a damaged one is reported and ignored: it is only a shortcut).
    pub fn new(config: &NetConfig) -> PeerManager {
        let now = Instant::now();
        let stored = match &config.peer_store {
            None => Vec::new(),
            Some(path) => match peer_store::load(path) {
                Ok(loaded) => {
                    if loaded.skipped > 0 {
                        warn!(path = %path.display(), skipped = loaded.skipped, "peer store entries left out");
                    }
                    if !loaded.peers.is_empty() {
                        info!(peers = loaded.peers.len(), "peers from earlier runs known");
                    }
                    loaded.peers
                }
                Err(error) => {
                    warn!(%error, "starting without the peer store");
                    Vec::new()
                }
            },
        };
        PeerManager {
            target: config.degree,
            bootstrap: config.bootstrap.clone(),
            store_path: config.peer_store.clone(),
            stored,
            addresses: HashMap::new(),
            rejoin_backoff: Backoff::new(REJOIN_BACKOFF_INITIAL, REJOIN_BACKOFF_MAX),
            next_rejoin: now,
            next_discovery: now,
            next_kad_bootstrap: now + KAD_BOOTSTRAP_INTERVAL,
            next_store_write: now + PEER_STORE_INTERVAL,
            last_stored: Vec::new(),
        }
    }

    /// Puts the stored peers into the routing table, so Kademlia can start from them.
    pub fn seed_routing_table(&self, swarm: &mut Swarm<Behaviour>) {
        for stored in &self.stored {
            for addr in &stored.addrs {
                swarm
                    .behaviour_mut()
                    .kad
                    .add_address(&stored.peer, addr.clone());
            }
        }
    }

    /// A peer's first connection is up, at `address`.
    pub fn on_connected(&mut self, peer: PeerId, address: Multiaddr) {
        self.addresses.entry(peer).or_insert(address);
    }

    /// A peer's last connection closed.
    pub fn on_disconnected(&mut self, peer: &PeerId) {
        self.addresses.remove(peer);
    }

    /// Whether discovery may dial another peer: the degree, counting dials in progress, is
    /// below the low watermark.
    pub fn wants_more(&self, swarm: &Swarm<Behaviour>) -> bool {
        let limits = &swarm.behaviour().limits;
        let degree = neighbours(swarm).len() + limits.dials_in_progress();
        degree < self.target.low() as usize
    }

    /// One heartbeat: see the module documentation.
    pub fn heartbeat(&mut self, swarm: &mut Swarm<Behaviour>, dialed: &HashSet<PeerId>) {
        let now = Instant::now();
        for (peer, connection) in swarm.behaviour().limits.expired_grace(now) {
            debug!(%peer, "closing a grace connection");
            swarm.close_connection(connection);
        }
        let connected = self.connected_peers(swarm, dialed);
        if connected.is_empty() {
            if now >= self.next_rejoin {
                self.rejoin(swarm);
                let spread = 0.5 + rand::random::<f64>() / 2.0;
                self.next_rejoin = now + self.rejoin_backoff.next_delay(spread);
            }
            return;
        }
        self.rejoin_backoff.reset();
        self.next_rejoin = now;
        if connected.len() < self.target.low() as usize {
            self.dial_more(swarm, &connected, now);
        } else if connected.len() > self.target.high() as usize {
            let gossipsub = &swarm.behaviour().gossipsub;
            let mesh_sizes: Vec<usize> = gossipsub
                .topics()
                .map(|topic| gossipsub.mesh_peers(topic).count())
                .collect();
            for peer in peers::choose_trims(self.target, &connected, &mesh_sizes, MESH_FLOOR) {
                debug!(%peer, "disconnecting a peer above the high watermark");
                let _ = swarm.disconnect_peer_id(peer);
            }
        }
        if now >= self.next_kad_bootstrap {
            self.next_kad_bootstrap = now + KAD_BOOTSTRAP_INTERVAL;
            let _ = swarm.behaviour_mut().kad.bootstrap();
        }
        // Nothing stored yet this run: write as soon as there is a neighbour to remember.
        if self.last_stored.is_empty() || now >= self.next_store_write {
            self.next_store_write = now + PEER_STORE_INTERVAL;
            if let Some((path, peers)) = self.store_snapshot(swarm, dialed) {
                tokio::task::spawn_blocking(move || {
                    if let Err(error) = peer_store::save(&path, &peers) {
                        warn!(%error, "peer store not updated");
                    }
                });
            }
        }
    }

    /// Writes the peer store now (at shutdown), unless the node has no peer to remember.
    pub async fn save_now(&mut self, swarm: &mut Swarm<Behaviour>, dialed: &HashSet<PeerId>) {
        let Some((path, peers)) = self.store_snapshot(swarm, dialed) else {
            return;
        };
        let saved = tokio::task::spawn_blocking(move || peer_store::save(&path, &peers)).await;
        if let Ok(Err(error)) = saved {
            warn!(%error, "peer store not updated");
        }
    }

    /// Dials every address the node knows, a node with no peer.
    fn rejoin(&mut self, swarm: &mut Swarm<Behaviour>) {
        let mut dialled = 0usize;
        for addr in &self.bootstrap {
            // With its peer id, a bootstrap peer still being dialled is not dialled twice.
            let opts = match super::task::peer_of(addr) {
                Some(peer) => DialOpts::peer_id(peer)
                    .addresses(vec![addr.clone()])
                    .condition(PeerCondition::DisconnectedAndNotDialing)
                    .build(),
                None => DialOpts::from(addr.clone()),
            };
            if swarm.dial(opts).is_ok() {
                dialled += 1;
            }
        }
        let blocked = swarm.behaviour().blocked.blocked_peers().clone();
        let mut known: Vec<(PeerId, Vec<Multiaddr>)> = self
            .stored
            .iter()
            .map(|stored| (stored.peer, stored.addrs.clone()))
            .collect();
        known.extend(routing_table(swarm));
        let mut seen = HashSet::new();
        for (peer, addrs) in known {
            if dialled >= MAX_REJOIN_DIALS + self.bootstrap.len() {
                break;
            }
            if blocked.contains(&peer) || !seen.insert(peer) {
                continue;
            }
            let opts = DialOpts::peer_id(peer)
                .addresses(addrs)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            if swarm.dial(opts).is_ok() {
                dialled += 1;
            }
        }
        let has_routes = swarm.behaviour_mut().kad.kbuckets().next().is_some();
        if has_routes {
            let _ = swarm.behaviour_mut().kad.bootstrap();
        }
        if dialled > 0 {
            info!(dialled, "no peers: rejoining from every known address");
        } else {
            debug!("no peers and no address known yet");
        }
    }

    /// Dials chosen routing-table peers while below the low watermark.
    fn dial_more(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        connected: &[ConnectedPeer],
        now: Instant,
    ) {
        let local = kad::KBucketKey::from(*swarm.local_peer_id());
        let blocked = swarm.behaviour().blocked.blocked_peers().clone();
        let candidates: Vec<DialCandidate> = routing_table(swarm)
            .into_iter()
            .filter(|(peer, _)| !swarm.is_connected(peer) && !blocked.contains(peer))
            .map(|(peer, addrs)| DialCandidate {
                peer,
                group: addrs.first().map_or(NetGroup::Unknown, peers::net_group),
                bucket: bucket_of(&local, &peer),
            })
            .collect();
        let dialling = swarm.behaviour().limits.dials_in_progress();
        let chosen = peers::choose_dials(self.target, connected, dialling, &candidates);
        for peer in &chosen {
            if !swarm.behaviour().limits.wants_outbound() {
                break;
            }
            let opts = DialOpts::peer_id(*peer)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            let _ = swarm.dial(opts);
        }
        if candidates.is_empty() && now >= self.next_discovery {
            self.next_discovery = now + DISCOVERY_INTERVAL;
            let _ = swarm.behaviour_mut().kad.bootstrap();
        }
    }

    /// The connected peers that count towards the degree, with what the choices weigh.
    fn connected_peers(
        &self,
        swarm: &Swarm<Behaviour>,
        dialed: &HashSet<PeerId>,
    ) -> Vec<ConnectedPeer> {
        let local = kad::KBucketKey::from(*swarm.local_peer_id());
        let gossipsub = &swarm.behaviour().gossipsub;
        let meshes: Vec<HashSet<&PeerId>> = gossipsub
            .topics()
            .map(|topic| gossipsub.mesh_peers(topic).collect())
            .collect();
        neighbours(swarm)
            .into_iter()
            .map(|peer| ConnectedPeer {
                peer,
                group: self
                    .addresses
                    .get(&peer)
                    .map_or(NetGroup::Unknown, peers::net_group),
                bucket: bucket_of(&local, &peer),
                outbound: dialed.contains(&peer),
                meshes: meshes
                    .iter()
                    .enumerate()
                    .filter(|(_, mesh)| mesh.contains(&peer))
                    .map(|(index, _)| index)
                    .collect(),
                score: gossipsub.peer_score(&peer).unwrap_or(0.0),
            })
            .collect()
    }

    /// The peer store to write, when the node has peers and they changed since the last write:
    /// peers it dialled first (reachable at the address it used), each with the addresses the
    /// routing table holds for it.
    fn store_snapshot(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        dialed: &HashSet<PeerId>,
    ) -> Option<(PathBuf, Vec<StoredPeer>)> {
        let path = self.store_path.clone()?;
        let mut routes: HashMap<PeerId, Vec<Multiaddr>> =
            routing_table(swarm).into_iter().collect();
        let mut peers: Vec<StoredPeer> = neighbours(swarm)
            .into_iter()
            .filter_map(|peer| {
                let mut addrs = routes.remove(&peer).unwrap_or_default();
                if dialed.contains(&peer) {
                    if let Some(address) = self.addresses.get(&peer) {
                        if !addrs.contains(address) {
                            addrs.insert(0, address.clone());
                        }
                    }
                }
                addrs.truncate(MAX_ADDRS_PER_PEER);
                (!addrs.is_empty()).then_some(StoredPeer { peer, addrs })
            })
            .collect();
        peers.sort_by_key(|stored| (!dialed.contains(&stored.peer), stored.peer));
        peers.truncate(MAX_STORED_PEERS);
        let listed: Vec<PeerId> = peers.iter().map(|stored| stored.peer).collect();
        if peers.is_empty() || listed == self.last_stored {
            return None;
        }
        self.last_stored = listed;
        Some((path, peers))
    }
}

/// Connected peers other than those held only for a grace period.
fn neighbours(swarm: &Swarm<Behaviour>) -> Vec<PeerId> {
    let limits = &swarm.behaviour().limits;
    swarm
        .connected_peers()
        .filter(|peer| !limits.is_grace_only(peer))
        .copied()
        .collect()
}

/// Every peer in the routing table with its addresses.
fn routing_table(swarm: &mut Swarm<Behaviour>) -> Vec<(PeerId, Vec<Multiaddr>)> {
    let mut peers = Vec::new();
    for bucket in swarm.behaviour_mut().kad.kbuckets() {
        for entry in bucket.iter() {
            let addrs: Vec<Multiaddr> = entry.node.value.iter().cloned().collect();
            peers.push((*entry.node.key.preimage(), addrs));
        }
    }
    peers
}

/// The Kademlia bucket of `peer` seen from `local`: log2 of their XOR distance.
fn bucket_of(local: &kad::KBucketKey<PeerId>, peer: &PeerId) -> u32 {
    local
        .distance(&kad::KBucketKey::from(*peer))
        .ilog2()
        .unwrap_or(0)
}
