//! The in-memory index of `pending`: who filled it, from where and when, so that orphans
//! (entries whose predecessors are missing) cannot take every slot for good.
//!
//! An orphan costs its sender one signature with a fresh key, so `pending` must not be a
//! first-come store. Each entry is charged to its author and to the peer it came from, each
//! within a quota; entries expire after [`PENDING_TTL_MS`]; and when `pending` is full, an
//! entry of a feed the node already holds evicts the oldest entry of a feed it does not hold.
//! The index is rebuilt from RocksDB on open (each entry counted as arriving then, from an
//! unknown peer), so a `pending` filled before a restart still expires and is still evicted.
//! An entry that finds no room is not lost to an honest node: the gap it revealed is fetched
//! from its sender and arrives in order, which needs no `pending` slot.

use std::collections::{BTreeMap, HashMap};

use plexus_crypto::AgentId;
use plexus_protocol::coord::{Arrival, Reception};
pub use plexus_protocol::feed::PendingRefusal;
use plexus_protocol::feed::{self, HoldDecision, PendingLimits, PendingLoad};

use super::MAX_PENDING;

/// Entries one author may have in `pending`. A pipelined backfill of one feed can hold up to
/// four ranges of 512 entries past its head while earlier ranges arrive, so a quarter of
/// [`MAX_PENDING`] leaves that room with margin, and four authors cannot fill `pending`.
pub const MAX_PENDING_PER_AUTHOR: usize = MAX_PENDING / 4;

/// Entries one peer may have put in `pending`. A peer has at most four sync requests in
/// flight to this node's requests, so honest out-of-order responses from one peer hold at
/// most 2,048 entries; a quarter of [`MAX_PENDING`] covers that, and a peer flooding orphans
/// with fresh keys is stopped there.
pub const MAX_PENDING_PER_PEER: usize = MAX_PENDING / 4;

/// How long an entry may wait in `pending`. An honest gap is filled by the fetch it triggers
/// within seconds, or by the next anti-entropy round (30 s by default); ten minutes covers a
/// slow peer many times over, and then the slot goes back to others.
pub const PENDING_TTL_MS: u64 = 10 * 60 * 1000;

/// Most expired entries dropped per hold, so that one write's work stays bounded.
const MAX_EXPIRED_PER_HOLD: usize = 64;

/// What the index says about holding one more entry: hold it, hold it after deleting the
/// given key (the oldest entry of a feed the node does not hold), or refuse it.
pub(super) type Admission = HoldDecision<Box<[u8]>>;

/// One entry of `pending`, as the index knows it.
#[derive(Debug, Clone)]
pub(super) struct PendingMeta {
    pub author: AgentId,
    /// The peer it came from (the source without its `gossip:`/`sync:` prefix); `None` after
    /// a restart.
    pub peer: Option<String>,
    pub arrival_ms: u64,
    /// How it arrived (live or history), for the journal record once it leaves `pending`
    /// (history after a restart, when the index no longer knows).
    pub arrival: Arrival,
    /// Whether the node held entries of its feed when it arrived.
    pub feed_held: bool,
}

impl PendingMeta {
    /// How and when the entry arrived.
    pub fn reception(&self) -> Reception {
        Reception {
            arrival: self.arrival,
            received_ms: self.arrival_ms,
        }
    }
}

/// The index: every key of `pending`, ordered by arrival, with counts per author and peer.
#[derive(Debug, Default)]
pub(super) struct PendingIndex {
    entries: HashMap<Box<[u8]>, (u64, PendingMeta)>,
    /// Arrival order (arrival ms, insertion number) of entries of feeds held on arrival.
    held: BTreeMap<(u64, u64), Box<[u8]>>,
    /// The same for feeds not held on arrival: the first to be evicted.
    unheld: BTreeMap<(u64, u64), Box<[u8]>>,
    per_author: HashMap<AgentId, usize>,
    per_peer: HashMap<String, usize>,
    inserted: u64,
}

/// The peer named by a source such as `gossip:<peer id>` or `sync:<peer id>`.
pub(super) fn peer_of_source(source: &str) -> Option<String> {
    let (kind, peer) = source.split_once(':')?;
    matches!(kind, "gossip" | "sync").then(|| peer.to_owned())
}

impl PendingIndex {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// How and when the entry held under `key` arrived.
    pub fn reception(&self, key: &[u8]) -> Option<Reception> {
        self.entries.get(key).map(|(_, meta)| meta.reception())
    }

    /// Whether one more entry like `meta` may be held while `pending` counts `occupied`
    /// entries (`capacity` at most), and what must go for it, as [`feed::hold`] decides.
    /// `extra_author` and `extra_peer` are the entries of this author and peer already held
    /// by the write being built. `is_deleted` says which keys that write already deletes.
    pub fn admit(
        &self,
        meta: &PendingMeta,
        (occupied, capacity): (usize, usize),
        (extra_author, extra_peer): (usize, usize),
        is_deleted: impl Fn(&[u8]) -> bool,
    ) -> Admission {
        let load = PendingLoad {
            occupied,
            by_author: self.per_author.get(&meta.author).copied().unwrap_or(0) + extra_author,
            by_peer: meta
                .peer
                .as_ref()
                .map(|peer| self.per_peer.get(peer).copied().unwrap_or(0) + extra_peer),
            feed_held: meta.feed_held,
        };
        let limits = PendingLimits {
            capacity,
            per_author: MAX_PENDING_PER_AUTHOR,
            per_peer: MAX_PENDING_PER_PEER,
        };
        feed::hold(&load, &limits, || {
            self.unheld.values().find(|key| !is_deleted(key)).cloned()
        })
    }

    /// Keys of entries that arrived [`PENDING_TTL_MS`] or more before `now_ms`, oldest
    /// first, at most a bounded number.
    pub fn expired(&self, now_ms: u64) -> Vec<Box<[u8]>> {
        let Some(deadline) = now_ms.checked_sub(PENDING_TTL_MS) else {
            return Vec::new();
        };
        let mut out: Vec<(ArrivalOrder, Box<[u8]>)> = Vec::new();
        for order in [&self.held, &self.unheld] {
            out.extend(
                order
                    .range(..=(deadline, u64::MAX))
                    .take(MAX_EXPIRED_PER_HOLD)
                    .map(|(at, key)| (*at, key.clone())),
            );
        }
        out.sort();
        out.truncate(MAX_EXPIRED_PER_HOLD);
        out.into_iter().map(|(_, key)| key).collect()
    }

    pub fn insert(&mut self, key: Box<[u8]>, meta: PendingMeta) {
        if self.entries.contains_key(&key) {
            return;
        }
        self.inserted += 1;
        let order = (meta.arrival_ms, self.inserted);
        if meta.feed_held {
            self.held.insert(order, key.clone());
        } else {
            self.unheld.insert(order, key.clone());
        }
        *self.per_author.entry(meta.author).or_insert(0) += 1;
        if let Some(peer) = &meta.peer {
            *self.per_peer.entry(peer.clone()).or_insert(0) += 1;
        }
        self.entries.insert(key, (self.inserted, meta));
    }

    pub fn remove(&mut self, key: &[u8]) {
        let Some((inserted, meta)) = self.entries.remove(key) else {
            return;
        };
        let order = (meta.arrival_ms, inserted);
        if meta.feed_held {
            self.held.remove(&order);
        } else {
            self.unheld.remove(&order);
        }
        decrement(&mut self.per_author, &meta.author);
        if let Some(peer) = &meta.peer {
            decrement(&mut self.per_peer, peer);
        }
    }
}

/// Lowers a count, forgetting its key at zero (so the maps hold only what `pending` holds).
fn decrement<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, usize>, key: &K) {
    if let Some(count) = counts.get_mut(key) {
        *count -= 1;
        if *count == 0 {
            counts.remove(key);
        }
    }
}

/// When a pending entry arrived and its arrival number: the order of expiry and eviction.
type ArrivalOrder = (u64, u64);

#[cfg(test)]
mod tests {
    use plexus_crypto::Keypair;

    use super::*;

    fn meta(author: AgentId, peer: &str, arrival_ms: u64, feed_held: bool) -> PendingMeta {
        PendingMeta {
            author,
            peer: Some(peer.to_owned()),
            arrival_ms,
            arrival: Arrival::Live,
            feed_held,
        }
    }

    #[test]
    fn quotas_eviction_and_expiry() {
        let (alice, bob) = (
            Keypair::generate().agent_id(),
            Keypair::generate().agent_id(),
        );
        let mut index = PendingIndex::default();
        for n in 0..MAX_PENDING_PER_AUTHOR {
            index.insert(
                format!("a{n}").into_bytes().into(),
                meta(alice, "p", 10, false),
            );
        }
        let none_deleted = |_: &[u8]| false;
        assert_eq!(
            index.admit(
                &meta(alice, "q", 11, true),
                (0, MAX_PENDING),
                (0, 0),
                none_deleted
            ),
            Admission::Refuse(PendingRefusal::AuthorQuota)
        );
        assert_eq!(
            index.admit(
                &meta(bob, "p", 11, true),
                (0, MAX_PENDING),
                (0, 0),
                none_deleted
            ),
            Admission::Refuse(PendingRefusal::PeerQuota)
        );
        // Full: a held feed's entry evicts the oldest unheld one, an unheld feed's is refused.
        let full = index.len();
        assert_eq!(
            index.admit(
                &meta(bob, "q", 11, true),
                (full, full),
                (0, 0),
                none_deleted
            ),
            Admission::HoldEvicting(b"a0".to_vec().into())
        );
        assert_eq!(
            index.admit(
                &meta(bob, "q", 11, false),
                (full, full),
                (0, 0),
                none_deleted
            ),
            Admission::Refuse(PendingRefusal::Full)
        );
        assert!(index.expired(9 + PENDING_TTL_MS).is_empty());
        assert_eq!(
            index.expired(10 + PENDING_TTL_MS).len(),
            MAX_EXPIRED_PER_HOLD
        );
        // Counts follow removals, and forget what is gone.
        index.remove(b"a0");
        index.remove(b"a0");
        assert_eq!(index.len(), MAX_PENDING_PER_AUTHOR - 1);
        assert_eq!(
            index.admit(
                &meta(alice, "q", 12, true),
                (0, MAX_PENDING),
                (0, 0),
                none_deleted
            ),
            Admission::Hold
        );
        for n in 1..MAX_PENDING_PER_AUTHOR {
            index.remove(format!("a{n}").as_bytes());
        }
        assert!(index.per_author.is_empty() && index.per_peer.is_empty());
        assert!(index.held.is_empty() && index.unheld.is_empty());
    }
}
