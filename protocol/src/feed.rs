//! Feeds: per-author, per-namespace hash chains, and fork detection, as pure logic.
//!
//! A feed is the sequence of one author's entries in one namespace: seq 1, 2, 3, ... with no
//! gaps, each entry naming the id of its predecessor in `prev`. Two validly signed entries with
//! the same author, namespace and seq but different ids are a *fork*: the author equivocated.
//! A [`ForkProof`] holds both entries (bodies stripped) and convinces anyone who checks the two
//! signatures; it is never resolved by dropping or overwriting either side.
//!
//! Two consumers use this module:
//! - the node's log decides where an incoming entry goes relative to its stored head
//!   ([`place`]) and what to do with it ([`decide`] and the decisions after it, in
//!   `feed/decide.rs`: duplicate, next, completion, fork rival, held in `pending` within its
//!   bounds, or refused behind an entry the policy refused), reading state and applying the
//!   answer but deciding nothing itself;
//! - the auditor streams entries in export order through one [`ChainTracker`] per feed, which
//!   keeps O(1) state per feed: the last seq and the ids seen at it (more than one only when
//!   forked). Memory therefore grows with the number of feeds, never with their length. The
//!   ids at the last seq are a set, so a crafted file with thousands of rivals at one position
//!   costs O(1) per entry, and an event lists at most [`MAX_LISTED_IDS`] of them.

use std::collections::HashSet;

use ciborium::Value;
use plexus_crypto::{AgentId, Hash256};

use crate::cbor::{self, CborError};
use crate::entry::{Entry, EntryError};

mod decide;

pub use decide::{
    completes, decide, hold, keep_fork_proof, refusal_of_successor, BatchState, Decision,
    FeedLookup, HoldDecision, PendingLimits, PendingLoad, PendingRefusal,
};

/// Identifies a feed: the namespace and the author.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FeedKey {
    pub namespace: String,
    pub author: AgentId,
}

/// The newest entry of a feed as a node knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedHead {
    pub seq: u64,
    pub id: Hash256,
}

/// Where an incoming entry fits relative to a stored feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// It extends the head (or starts the feed at seq 1): append it.
    Next,
    /// The very same entry is already stored.
    Duplicate,
    /// Another entry with the same seq is stored: a fork, provable with both entries.
    Fork { stored: Hash256 },
    /// It is ahead of the head: the entries from `missing_from` up to its seq - 1 are missing.
    Ahead { missing_from: u64 },
    /// It has the next seq but names a different predecessor than the stored head: the author
    /// forked at the head's seq, but the other branch's entry is not here to prove it.
    BrokenLink { head: FeedHead },
}

/// What the auditor's chain tracker concluded about one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainEvent {
    /// The entry continues the chain.
    Extends,
    /// The same entry (same id) appeared again.
    Duplicate,
    /// Another entry with the same seq was seen before: `other` is its id.
    Fork { other: Hash256 },
    /// Entries `missing_from..=missing_to` never appeared before this one.
    Gap { missing_from: u64, missing_to: u64 },
    /// The entry's `prev` is none of the `expected_total` ids seen at the previous seq;
    /// `expected` lists the first of them, at most [`MAX_LISTED_IDS`].
    BrokenLink {
        expected: Vec<Hash256>,
        expected_total: usize,
    },
    /// The entry's seq is lower than one already seen in this feed.
    OutOfOrder { after_seq: u64 },
}

/// Most ids a [`ChainEvent::BrokenLink`] lists: enough to name both sides of any honest fork,
/// few enough that a crafted file with thousands of rivals at one seq cannot make each finding
/// carry them all.
pub const MAX_LISTED_IDS: usize = 4;

/// Streaming chain state for one feed in an audit.
#[derive(Debug, Clone, Default)]
pub struct ChainTracker {
    last_seq: u64,
    /// Every id seen at `last_seq` (more than one only when forked), for O(1) look-ups.
    ids_at_last_seq: HashSet<Hash256>,
    /// The first of them in file order, at most [`MAX_LISTED_IDS`]: what events name.
    first_ids_at_last_seq: Vec<Hash256>,
    /// Set after an entry that failed verification: the next entry's `prev` cannot be checked
    /// against it, so the link is not judged (the bad entry is already reported).
    link_unverifiable: bool,
}

/// Why a fork proof does not prove anything. The variants are listed in the order a decoder
/// checks them (docs/PROTOCOL.md §5); [`ForkProofError::code`] names them in test vectors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForkProofError {
    #[error("fork proof is {len} bytes, over the {MAX_FORK_PROOF_LEN}-byte limit")]
    TooLarge { len: usize },
    #[error("fork proof is not canonical CBOR: {0}")]
    Cbor(CborError),
    #[error("fork proof is malformed: {0}")]
    Malformed(&'static str),
    #[error("fork proof entry is malformed: {0}")]
    Entry(#[from] EntryError),
    #[error("a fork proof entry carries its body; proofs hold both entries with body null")]
    BodyPresent,
    #[error("the two entries are not in the same feed at the same seq")]
    NotSamePosition,
    #[error("the two entries are identical")]
    Identical,
    #[error("the two entries are not in ascending id order")]
    Unordered,
    #[error("a fork proof entry has a bad signature")]
    BadSignature,
}

impl ForkProofError {
    /// A stable code for test vectors: `entry:<code>` carries the entry's own error code.
    pub fn code(&self) -> String {
        match self {
            ForkProofError::TooLarge { .. } => "too-large".into(),
            ForkProofError::Cbor(_) | ForkProofError::Malformed(_) => "malformed-proof".into(),
            ForkProofError::Entry(error) => format!("entry:{}", error.code()),
            ForkProofError::BodyPresent => "body-present".into(),
            ForkProofError::NotSamePosition => "not-same-position".into(),
            ForkProofError::Identical => "identical".into(),
            ForkProofError::Unordered => "unordered".into(),
            ForkProofError::BadSignature => "bad-signature".into(),
        }
    }
}

/// Two validly signed entries at the same feed position: proof that their author equivocated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForkProof {
    first: Entry,
    second: Entry,
}

/// Decides where `entry` goes given the feed's stored `head` and, when the entry's seq is at or
/// below the head, the id stored at that seq (`stored_at_seq`).
pub fn place(head: Option<FeedHead>, stored_at_seq: Option<Hash256>, entry: &Entry) -> Placement {
    let header = entry.header();
    let head_seq = head.map_or(0, |head| head.seq);
    if header.seq <= head_seq {
        return match stored_at_seq {
            Some(stored) if stored == entry.id() => Placement::Duplicate,
            Some(stored) => Placement::Fork { stored },
            // The store always has every seq up to its head; treat a hole as a missing entry.
            None => Placement::Ahead {
                missing_from: header.seq,
            },
        };
    }
    if header.seq > head_seq + 1 {
        return Placement::Ahead {
            missing_from: head_seq + 1,
        };
    }
    match head {
        Some(head) if header.prev != Some(head.id) => Placement::BrokenLink { head },
        _ => Placement::Next,
    }
}

impl ChainTracker {
    /// Observes a verified entry (signature and encoding good) in export order.
    pub fn observe(&mut self, seq: u64, prev: Option<Hash256>, id: Hash256) -> ChainEvent {
        let event = if self.last_seq == 0 {
            if seq == 1 {
                ChainEvent::Extends
            } else {
                ChainEvent::Gap {
                    missing_from: 1,
                    missing_to: seq - 1,
                }
            }
        } else if seq == self.last_seq {
            if self.ids_at_last_seq.contains(&id) {
                return ChainEvent::Duplicate;
            }
            let first = self.first_ids_at_last_seq.first().copied();
            self.remember_at_last_seq(id);
            return match first {
                Some(other) => ChainEvent::Fork { other },
                // Only an unverifiable entry was seen at this seq.
                None => ChainEvent::Extends,
            };
        } else if seq < self.last_seq {
            return ChainEvent::OutOfOrder {
                after_seq: self.last_seq,
            };
        } else if seq > self.last_seq + 1 {
            ChainEvent::Gap {
                missing_from: self.last_seq + 1,
                missing_to: seq - 1,
            }
        } else if self.link_unverifiable
            || prev.is_some_and(|prev| self.ids_at_last_seq.contains(&prev))
        {
            ChainEvent::Extends
        } else {
            ChainEvent::BrokenLink {
                expected: self.first_ids_at_last_seq.clone(),
                expected_total: self.ids_at_last_seq.len(),
            }
        };
        self.last_seq = seq;
        self.clear_last_seq_ids();
        self.remember_at_last_seq(id);
        self.link_unverifiable = false;
        event
    }

    /// Notes an entry that claims `seq` but failed verification: it occupies its position, and
    /// the next entry's link is not judged against it.
    pub fn observe_unverified(&mut self, seq: u64) {
        // Only a bad entry in the expected position takes it: one whose seq was itself damaged
        // must not move the feed, or every later entry would look out of order. Checked: a
        // feed that reached seq u64::MAX has no next position.
        if self.last_seq.checked_add(1) == Some(seq) {
            self.last_seq = seq;
            self.clear_last_seq_ids();
            self.link_unverifiable = true;
        }
    }

    fn remember_at_last_seq(&mut self, id: Hash256) {
        self.ids_at_last_seq.insert(id);
        if self.first_ids_at_last_seq.len() < MAX_LISTED_IDS {
            self.first_ids_at_last_seq.push(id);
        }
    }

    fn clear_last_seq_ids(&mut self) {
        // A set grown by a crafted run of rivals is dropped rather than kept at its capacity.
        if self.ids_at_last_seq.len() > MAX_LISTED_IDS {
            self.ids_at_last_seq = HashSet::new();
        } else {
            self.ids_at_last_seq.clear();
        }
        self.first_ids_at_last_seq.clear();
    }

    /// The highest seq seen.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }
}

impl ForkProof {
    /// Builds a proof from two entries, checking that they really prove a fork. Bodies are
    /// stripped: the signatures cover the body hashes, which is all a proof needs.
    pub fn new(a: Entry, b: Entry) -> Result<ForkProof, ForkProofError> {
        check_same_position(&a, &b)?;
        if !a.verify_signature() || !b.verify_signature() {
            return Err(ForkProofError::BadSignature);
        }
        // Order by id so the same fork always yields the same proof bytes.
        let (first, second) = if a.id() < b.id() { (a, b) } else { (b, a) };
        Ok(ForkProof {
            first: first.without_body(),
            second: second.without_body(),
        })
    }

    /// Encodes as a CBOR array `["plexus-fork-proof", envelope, envelope]`.
    pub fn encode(&self) -> Vec<u8> {
        cbor::encode(&Value::Array(vec![
            Value::Text(FORK_PROOF_TAG.into()),
            Value::Bytes(self.first.encode()),
            Value::Bytes(self.second.encode()),
        ]))
    }

    /// Decodes and fully re-checks a proof. Only the canonical form is accepted (bodies null,
    /// ascending ids), so one fork has exactly one proof encoding.
    pub fn decode(bytes: &[u8]) -> Result<ForkProof, ForkProofError> {
        if bytes.len() > MAX_FORK_PROOF_LEN {
            return Err(ForkProofError::TooLarge { len: bytes.len() });
        }
        let malformed = ForkProofError::Malformed("expected [\"plexus-fork-proof\", entry, entry]");
        let value = cbor::decode_canonical(bytes).map_err(ForkProofError::Cbor)?;
        let Value::Array(items) = value else {
            return Err(malformed);
        };
        let [Value::Text(tag), Value::Bytes(first), Value::Bytes(second)]: [Value; 3] =
            items.try_into().map_err(|_| malformed.clone())?
        else {
            return Err(malformed);
        };
        if tag != FORK_PROOF_TAG {
            return Err(malformed);
        }
        let (first, second) = (Entry::decode(&first)?, Entry::decode(&second)?);
        if first.body().is_some() || second.body().is_some() {
            return Err(ForkProofError::BodyPresent);
        }
        check_same_position(&first, &second)?;
        if first.id() > second.id() {
            return Err(ForkProofError::Unordered);
        }
        ForkProof::new(first, second)
    }

    /// The two conflicting entries, ordered by id.
    pub fn entries(&self) -> (&Entry, &Entry) {
        (&self.first, &self.second)
    }

    /// The feed in which the fork happened.
    pub fn feed(&self) -> FeedKey {
        FeedKey {
            namespace: self.first.header().namespace.clone(),
            author: self.first.header().author,
        }
    }

    /// The seq at which the author equivocated.
    pub fn seq(&self) -> u64 {
        self.first.header().seq
    }
}

/// Two different entries at one (namespace, author, seq), or why not.
fn check_same_position(a: &Entry, b: &Entry) -> Result<(), ForkProofError> {
    let (ha, hb) = (a.header(), b.header());
    if ha.namespace != hb.namespace || ha.author != hb.author || ha.seq != hb.seq {
        return Err(ForkProofError::NotSamePosition);
    }
    if a.id() == b.id() {
        return Err(ForkProofError::Identical);
    }
    Ok(())
}

const FORK_PROOF_TAG: &str = "plexus-fork-proof";

/// Largest encoded fork proof: two body-less envelopes (each at most about 340 bytes) and the
/// framing, with room to spare.
pub const MAX_FORK_PROOF_LEN: usize = 2048;

impl FeedKey {
    /// The feed key of an entry.
    pub fn of(entry: &Entry) -> FeedKey {
        FeedKey {
            namespace: entry.header().namespace.clone(),
            author: entry.header().author,
        }
    }
}

#[cfg(test)]
mod tests;
