//! Limits at the gossip edge: per-peer and per-author message rates, and a strike count that
//! disconnects peers which keep sending invalid data.
//!
//! These are this node's self-protection, not part of the agreed policy: they depend on
//! arrival times, so they never decide whether an entry is valid. A throttled entry is not
//! stored and not forwarded (gossipsub is told `Ignore`, which costs the sender no score);
//! if it is valid, backfill brings it later at the pace this node sets.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use plexus_crypto::AgentId;

/// Most peers or authors tracked at once. When full, idle buckets (refilled to their burst)
/// are dropped first; if none is idle the oldest is, so a flood of fresh identities cannot
/// grow memory.
pub const MAX_TRACKED: usize = 4_096;

/// Undeniably invalid messages (malformed, oversized, a bad signature, the wrong topic, a bad
/// fork proof) a peer may send within [`STRIKE_WINDOW`] before it is disconnected and
/// blocked. Honest nodes validate before forwarding and never send these, and gossipsub
/// graylists a peer after three invalid messages on one topic (its traffic is then dropped
/// unread), so the block has to come at the same count to happen at all. Bad bodies and policy
/// refusals, which an honest node on another version or with older policy knowledge may
/// forward, lower the peer score but do not count.
pub const DEFAULT_STRIKES: u32 = 3;
/// Window over which strikes are counted.
pub const STRIKE_WINDOW: Duration = Duration::from_secs(60);

/// Fork proofs per second accepted from one peer (the burst is [`FORK_PROOF_BURST`]). A fork
/// is rare misbehaviour and a node forwards one proof per forked feed it holds, so an honest
/// peer sends a handful in a lifetime; a flood of proofs from self-equivocating fresh keys
/// costs a decode and two signature checks each, which this keeps to one every ten seconds
/// per peer once the burst is spent.
pub const FORK_PROOFS_PER_PEER_PER_SEC: f64 = 0.1;
/// Fork proofs one peer may send at once before [`FORK_PROOFS_PER_PEER_PER_SEC`] applies:
/// enough for an honest peer relaying the proofs of a partition that just healed.
pub const FORK_PROOF_BURST: f64 = 16.0;

/// Ingress limits of a node.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IngressLimits {
    /// Gossip messages per second accepted from one peer (burst: twice that).
    pub peer_per_sec: f64,
    /// Gossip entries per second accepted from one author, over all peers (burst: twice).
    pub author_per_sec: f64,
    /// Invalid messages within [`STRIKE_WINDOW`] that get a peer blocked; 0 never blocks.
    pub strikes_before_block: u32,
}

impl Default for IngressLimits {
    /// Far above what the coordination kinds need (an agent posts a few entries a second),
    /// and above the benchmarks' publish rates, so only floods are cut.
    fn default() -> Self {
        IngressLimits {
            peer_per_sec: 5_000.0,
            author_per_sec: 1_000.0,
            strikes_before_block: DEFAULT_STRIKES,
        }
    }
}

/// What the limiter says about one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Pass,
    PeerOverRate,
    AuthorOverRate,
}

/// The limiter's state; owned by the ingest worker.
#[derive(Debug)]
pub struct Ingress {
    limits: IngressLimits,
    peers: Buckets<PeerId>,
    authors: Buckets<AgentId>,
    fork_proofs: Buckets<PeerId>,
    strikes: HashMap<PeerId, (Instant, u32)>,
}

#[derive(Debug)]
struct Buckets<K> {
    rate: f64,
    burst: f64,
    buckets: HashMap<K, Bucket>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Ingress {
    pub fn new(limits: IngressLimits) -> Ingress {
        Ingress {
            limits,
            peers: Buckets::new(limits.peer_per_sec),
            authors: Buckets::new(limits.author_per_sec),
            fork_proofs: Buckets::with_burst(FORK_PROOFS_PER_PEER_PER_SEC, FORK_PROOF_BURST),
            strikes: HashMap::new(),
        }
    }

    /// Admits one gossip message from `peer`; call [`Ingress::admit_author`] once its author
    /// is known.
    pub fn admit_peer(&mut self, peer: PeerId, now: Instant) -> Admission {
        if self.peers.take(peer, now) {
            Admission::Pass
        } else {
            Admission::PeerOverRate
        }
    }

    pub fn admit_author(&mut self, author: AgentId, now: Instant) -> Admission {
        if self.authors.take(author, now) {
            Admission::Pass
        } else {
            Admission::AuthorOverRate
        }
    }

    /// Admits one fork proof from `peer` (see [`FORK_PROOFS_PER_PEER_PER_SEC`]), after
    /// [`Ingress::admit_peer`] admitted the message.
    pub fn admit_fork_proof(&mut self, peer: PeerId, now: Instant) -> Admission {
        if self.fork_proofs.take(peer, now) {
            Admission::Pass
        } else {
            Admission::PeerOverRate
        }
    }

    /// Counts an invalid message from `peer`; true when the peer has now earned a block.
    pub fn strike(&mut self, peer: PeerId, now: Instant) -> bool {
        if self.limits.strikes_before_block == 0 {
            return false;
        }
        if self.strikes.len() >= MAX_TRACKED && !self.strikes.contains_key(&peer) {
            self.strikes
                .retain(|_, (since, _)| now.duration_since(*since) < STRIKE_WINDOW);
            if self.strikes.len() >= MAX_TRACKED {
                return false;
            }
        }
        let (since, count) = self.strikes.entry(peer).or_insert((now, 0));
        if now.duration_since(*since) >= STRIKE_WINDOW {
            *since = now;
            *count = 0;
        }
        *count += 1;
        if *count >= self.limits.strikes_before_block {
            self.strikes.remove(&peer);
            return true;
        }
        false
    }
}

impl<K: Eq + Hash + Copy> Buckets<K> {
    fn new(rate: f64) -> Self {
        Buckets::with_burst(rate, (rate * 2.0).max(1.0))
    }

    fn with_burst(rate: f64, burst: f64) -> Self {
        Buckets {
            rate,
            burst,
            buckets: HashMap::new(),
        }
    }

    fn take(&mut self, key: K, now: Instant) -> bool {
        if !self.buckets.contains_key(&key) && self.buckets.len() >= MAX_TRACKED {
            self.evict(now);
        }
        let (rate, burst) = (self.rate, self.burst);
        let bucket = self.buckets.entry(key).or_insert(Bucket {
            tokens: burst,
            updated: now,
        });
        let elapsed = now.duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn evict(&mut self, now: Instant) {
        let (rate, burst) = (self.rate, self.burst);
        self.buckets.retain(|_, bucket| {
            let refilled = bucket.tokens + now.duration_since(bucket.updated).as_secs_f64() * rate;
            refilled < burst
        });
        if self.buckets.len() >= MAX_TRACKED {
            if let Some(oldest) = self
                .buckets
                .iter()
                .min_by_key(|(_, bucket)| bucket.updated)
                .map(|(key, _)| *key)
            {
                self.buckets.remove(&oldest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_gets_its_burst_then_its_rate() {
        let mut ingress = Ingress::new(IngressLimits {
            peer_per_sec: 10.0,
            author_per_sec: 1_000.0,
            strikes_before_block: 3,
        });
        let peer = PeerId::random();
        let start = Instant::now();
        let passed = (0..30)
            .filter(|_| ingress.admit_peer(peer, start) == Admission::Pass)
            .count();
        assert_eq!(passed, 20, "burst is twice the rate");
        assert_eq!(ingress.admit_peer(peer, start), Admission::PeerOverRate);
        // Half a second later, five more tokens.
        let later = start + Duration::from_millis(500);
        let passed = (0..10)
            .filter(|_| ingress.admit_peer(peer, later) == Admission::Pass)
            .count();
        assert_eq!(passed, 5);
        // Another peer is unaffected.
        assert_eq!(ingress.admit_peer(PeerId::random(), later), Admission::Pass);
    }

    #[test]
    fn strikes_block_only_within_the_window() {
        let mut ingress = Ingress::new(IngressLimits {
            strikes_before_block: 3,
            ..IngressLimits::default()
        });
        let peer = PeerId::random();
        let start = Instant::now();
        assert!(!ingress.strike(peer, start));
        assert!(!ingress.strike(peer, start));
        // The window passes: counting starts over.
        let later = start + STRIKE_WINDOW;
        assert!(!ingress.strike(peer, later));
        assert!(!ingress.strike(peer, later));
        assert!(ingress.strike(peer, later));
    }

    #[test]
    fn tracking_is_bounded() {
        let mut ingress = Ingress::new(IngressLimits::default());
        let now = Instant::now();
        for _ in 0..(MAX_TRACKED + 100) {
            ingress.admit_peer(PeerId::random(), now);
        }
        assert!(ingress.peers.buckets.len() <= MAX_TRACKED);
    }
}
