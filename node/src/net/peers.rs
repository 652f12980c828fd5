//! Degree maintenance as pure decisions: which discovered peers to dial, which connected peers
//! to let go, and how long to wait before trying to rejoin an empty neighbourhood.
//!
//! A node keeps its connections between two watermarks ([`DegreeTarget`]). Below the low
//! watermark it dials peers from its Kademlia routing table, one per free place, choosing
//! peers unlike those it already has: first another network group (an IPv4 /24 or IPv6 /48,
//! see [`NetGroup`]), then another Kademlia bucket (another region of the id space), so that
//! one operator or one region cannot fill its neighbourhood. Above the high watermark it
//! disconnects the surplus on its peer heartbeat, never leaving one of its gossipsub meshes
//! (which carry its messages) at or below the mesh's floor, preferring peers from crowded
//! groups, then peers in few meshes, then inbound peers (outbound ones were chosen by this node
//! and are harder for an attacker to place), then crowded buckets, then the lowest gossipsub
//! score. Between the watermarks it does nothing, so connections
//! are not churned.
//!
//! Nothing here touches the network or the clock: the swarm task gathers the facts, asks, and
//! acts (see `net::peer_manager`).

use std::collections::HashMap;
use std::time::Duration;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

/// Default low watermark: the gossipsub mesh of a topic holds up to 12 peers (`mesh_n_high`)
/// and gossip goes to 6 more (`gossip_lazy`), so with 20 peers a full mesh still leaves room
/// for gossip and for a couple of peers to leave without dropping below it.
pub const DEFAULT_PEERS_LOW: u32 = 20;

/// Default high watermark: twice the low one, so that peers arriving between heartbeats and
/// newcomers bootstrapping from this node fit without a trim each time (hysteresis); 40 idle
/// connections cost a few MiB and a few pings a second, whatever the network's size.
pub const DEFAULT_PEERS_HIGH: u32 = 40;

/// The range of connected peers a node keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DegreeTarget {
    low: u32,
    high: u32,
}

/// Watermarks that cannot work together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DegreeError {
    #[error("the low watermark is 0: a node needs at least 1 peer to hear of anything")]
    LowIsZero,
    #[error(
        "the high watermark ({high}) is below the low watermark ({low}): set it at least as high"
    )]
    HighBelowLow { low: u32, high: u32 },
}

/// Where a group of peers probably sits: peers of one group likely share an operator or a
/// link, so a diverse neighbourhood spans many groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NetGroup {
    /// The first three bytes of an IPv4 address (a /24).
    Ipv4([u8; 3]),
    /// The first six bytes of an IPv6 address (a /48).
    Ipv6([u8; 6]),
    /// No IP address in the multiaddr (a DNS name, a relay): one group for all.
    Unknown,
}

/// A peer the routing table knows and this node is neither connected to nor dialling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialCandidate {
    pub peer: PeerId,
    pub group: NetGroup,
    /// Its Kademlia bucket (log2 of the XOR distance to this node).
    pub bucket: u32,
}

/// A connected peer, as the trim sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectedPeer {
    pub peer: PeerId,
    pub group: NetGroup,
    pub bucket: u32,
    /// Whether this node dialled it.
    pub outbound: bool,
    /// The gossipsub meshes it is in, as indices into the mesh sizes given to
    /// [`choose_trims`].
    pub meshes: Vec<usize>,
    /// Its gossipsub score (0 when unknown).
    pub score: f64,
}

/// Exponential backoff for rejoining when a node has no peer at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl DegreeTarget {
    /// Checks that `low` is at least 1 and `high` at least `low`.
    pub fn new(low: u32, high: u32) -> Result<DegreeTarget, DegreeError> {
        if low == 0 {
            return Err(DegreeError::LowIsZero);
        }
        if high < low {
            return Err(DegreeError::HighBelowLow { low, high });
        }
        Ok(DegreeTarget { low, high })
    }

    pub fn low(self) -> u32 {
        self.low
    }

    pub fn high(self) -> u32 {
        self.high
    }
}

impl Default for DegreeTarget {
    fn default() -> Self {
        DegreeTarget {
            low: DEFAULT_PEERS_LOW,
            high: DEFAULT_PEERS_HIGH,
        }
    }
}

/// The network group of the first IP address in `addr`.
pub fn net_group(addr: &Multiaddr) -> NetGroup {
    for protocol in addr.iter() {
        match protocol {
            Protocol::Ip4(ip) => {
                let [a, b, c, _] = ip.octets();
                return NetGroup::Ipv4([a, b, c]);
            }
            Protocol::Ip6(ip) => {
                let octets = ip.octets();
                let mut prefix = [0u8; 6];
                for (slot, byte) in prefix.iter_mut().zip(octets) {
                    *slot = byte;
                }
                return NetGroup::Ipv6(prefix);
            }
            _ => {}
        }
    }
    NetGroup::Unknown
}

/// The peers to dial now: as many as bring `connected + dialling` up to the low watermark,
/// each chosen from `candidates` to be unlike the peers already connected or chosen (fewest
/// peers in its network group, then in its bucket; earlier candidates win ties).
pub fn choose_dials(
    target: DegreeTarget,
    connected: &[ConnectedPeer],
    dialling: usize,
    candidates: &[DialCandidate],
) -> Vec<PeerId> {
    let have = connected.len().saturating_add(dialling);
    let wanted = (target.low as usize).saturating_sub(have);
    let mut groups = Crowding::default();
    let mut buckets = Crowding::default();
    for peer in connected {
        groups.add(peer.group);
        buckets.add(peer.bucket);
    }
    let mut remaining: Vec<&DialCandidate> = candidates.iter().collect();
    let mut chosen = Vec::with_capacity(wanted.min(remaining.len()));
    while chosen.len() < wanted {
        let best = remaining
            .iter()
            .enumerate()
            .min_by_key(|(order, candidate)| {
                (
                    groups.count(candidate.group),
                    buckets.count(candidate.bucket),
                    *order,
                )
            })
            .map(|(index, _)| index);
        let Some(index) = best else { break };
        // `remove`, not `swap_remove`: the order decides ties.
        let candidate = remaining.remove(index);
        groups.add(candidate.group);
        buckets.add(candidate.bucket);
        chosen.push(candidate.peer);
    }
    chosen
}

/// The peers to disconnect now: the surplus above the high watermark, taking first from the
/// most crowded group, then peers in the fewest gossipsub meshes, then inbound peers, then the
/// most crowded bucket, then the lowest score. A mesh peer goes only while every mesh it is in
/// keeps more than `mesh_floor` peers (`mesh_sizes[i]` is mesh `i`'s size): a node follows
/// many topics, and their meshes together may hold every peer, but no mesh is left thin.
/// May return fewer than the surplus when the meshes need the rest.
pub fn choose_trims(
    target: DegreeTarget,
    connected: &[ConnectedPeer],
    mesh_sizes: &[usize],
    mesh_floor: usize,
) -> Vec<PeerId> {
    let surplus = connected.len().saturating_sub(target.high as usize);
    let mut groups = Crowding::default();
    let mut buckets = Crowding::default();
    for peer in connected {
        groups.add(peer.group);
        buckets.add(peer.bucket);
    }
    let mut sizes = mesh_sizes.to_vec();
    let mut remaining: Vec<&ConnectedPeer> = connected.iter().collect();
    let mut trimmed = Vec::with_capacity(surplus.min(remaining.len()));
    while trimmed.len() < surplus {
        let spares_every_mesh = |peer: &ConnectedPeer| {
            peer.meshes
                .iter()
                .all(|mesh| sizes.get(*mesh).is_some_and(|size| *size > mesh_floor))
        };
        let worst = remaining
            .iter()
            .enumerate()
            .filter(|(_, peer)| spares_every_mesh(peer))
            .max_by(|(_, a), (_, b)| {
                groups
                    .count(a.group)
                    .cmp(&groups.count(b.group))
                    .then(b.meshes.len().cmp(&a.meshes.len()))
                    .then((!a.outbound).cmp(&!b.outbound))
                    .then(buckets.count(a.bucket).cmp(&buckets.count(b.bucket)))
                    .then(b.score.total_cmp(&a.score))
            })
            .map(|(index, _)| index);
        let Some(index) = worst else { break };
        let peer = remaining.swap_remove(index);
        groups.remove(peer.group);
        buckets.remove(peer.bucket);
        for mesh in &peer.meshes {
            if let Some(size) = sizes.get_mut(*mesh) {
                *size = size.saturating_sub(1);
            }
        }
        trimmed.push(peer.peer);
    }
    trimmed
}

impl Backoff {
    /// A backoff that starts at `initial` and doubles up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            next: initial,
        }
    }

    /// The delay before the next attempt, scaled by `spread` in [0.5, 1] (a random factor, so
    /// that nodes cut off together do not all come back at the same instant); doubles the
    /// delay after it.
    pub fn next_delay(&mut self, spread: f64) -> Duration {
        let delay = self.next.mul_f64(spread.clamp(0.5, 1.0));
        self.next = self.next.saturating_mul(2).min(self.max);
        delay
    }

    /// Back to the initial delay (the node has peers again).
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

/// How many chosen or connected peers share each key.
#[derive(Debug)]
struct Crowding<K>(HashMap<K, usize>);

impl<K> Default for Crowding<K> {
    fn default() -> Self {
        Crowding(HashMap::new())
    }
}

impl<K: std::hash::Hash + Eq> Crowding<K> {
    fn add(&mut self, key: K) {
        *self.0.entry(key).or_default() += 1;
    }

    fn remove(&mut self, key: K) {
        if let Some(count) = self.0.get_mut(&key) {
            *count = count.saturating_sub(1);
        }
    }

    fn count(&self, key: K) -> usize {
        self.0.get(&key).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests;
