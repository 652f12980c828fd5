//! The log's decisions about one arriving entry, as pure functions of plain values.
//!
//! A node's log reads its state (the feed's head, the id stored at a seq, what the write being
//! built already did, how full `pending` is), asks these functions what to do, and applies the
//! answer; it decides nothing itself. In order:
//!
//! 1. [`decide`]: against the write being built ([`BatchState`]), then against the stored feed
//!    ([`place`](super::place), reading through [`FeedLookup`] only what it needs), one
//!    [`Decision`]: a duplicate, a refusal that follows from one made in this write, "commit
//!    first", the next entry, an entry already stored, a fork rival, or one to hold.
//! 2. For [`Decision::Next`], the policy decides; an entry it refuses takes with it everything
//!    held in `pending` that descends from it ([`refusal_of_successor`]), since none of it can
//!    ever chain.
//! 3. For [`Decision::Stored`], [`completes`] says whether this copy completes a stored copy
//!    that was pruned of its body.
//! 4. For [`Decision::Rival`], [`keep_fork_proof`] says whether a proof is stored: one per
//!    position, and a bounded number in all.
//! 5. For [`Decision::Hold`], [`hold`] applies the bounds of `pending`: quotas per author and
//!    per sending peer, the capacity, and, when full, eviction of the oldest entry of a feed
//!    the node does not hold in favour of one of a feed it does.

use plexus_crypto::Hash256;

use super::{place, FeedHead, Placement};
use crate::entry::Entry;
use crate::policy::Violation;

/// What the write being built (not yet committed) already did that bears on one entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchState {
    /// The same entry was accepted or held earlier in this write.
    pub entry_written: bool,
    /// The policy refused the same entry earlier in this write.
    pub entry_refused: bool,
    /// The policy refused, earlier in this write, the entry this one names as `prev`, and that
    /// entry was the next of its feed: this one can never chain.
    pub prev_refused: bool,
    /// An entry of the same feed is held in `pending` in this write: the reads of `pending`
    /// cannot see it yet.
    pub feed_held: bool,
    /// The newest entry of the feed accepted in this write: the feed's head for this entry.
    pub feed_tip: Option<FeedHead>,
}

/// The log's reads of one feed's committed state, which [`decide`] makes only when needed.
pub trait FeedLookup {
    type Error;
    /// The feed's stored head.
    fn stored_head(&mut self) -> Result<Option<FeedHead>, Self::Error>;
    /// The id of the entry stored at `seq` (at or below the head).
    fn stored_id_at(&mut self, seq: u64) -> Result<Option<Hash256>, Self::Error>;
}

/// What to do with one arriving entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Accepted or held earlier in this write: nothing to do.
    Duplicate,
    /// The policy refused this very entry earlier in this write: refused again, not re-judged.
    RefusedAgain,
    /// Its predecessor was refused in this write: refused too ([`refusal_of_successor`]).
    FollowsRefused,
    /// Its placement depends on entries of this write that are not committed (a replay or a
    /// rival of one accepted in it, or a feed with one held in it): commit, then decide again.
    AfterCommit,
    /// It extends its feed: the policy decides, then it is accepted and what waits for it in
    /// `pending` is released.
    Next,
    /// The same entry is stored: a duplicate, unless it completes a pruned copy ([`completes`]).
    Stored,
    /// Another entry is stored at its position: a fork ([`keep_fork_proof`]).
    Rival { stored: Hash256 },
    /// Its predecessors from `missing_from` are missing (it is ahead of the head, or names a
    /// predecessor other than the head, whose rival fetching seq `missing_from` brings): the
    /// policy's history-free part decides, then it waits in `pending` ([`hold`]).
    Hold { missing_from: u64 },
}

/// Decides what to do with `entry` given what this write did (`batch`) and the committed feed
/// (`lookup`, read only when the batch does not decide: the head unless the write has its own,
/// the id at the entry's seq only when that seq is at or below the head).
pub fn decide<L: FeedLookup>(
    batch: &BatchState,
    entry: &Entry,
    lookup: &mut L,
) -> Result<Decision, L::Error> {
    if batch.entry_written {
        return Ok(Decision::Duplicate);
    }
    if batch.entry_refused {
        return Ok(Decision::RefusedAgain);
    }
    if batch.prev_refused {
        return Ok(Decision::FollowsRefused);
    }
    if batch.feed_held {
        return Ok(Decision::AfterCommit);
    }
    let seq = entry.header().seq;
    let head = match batch.feed_tip {
        Some(tip) if seq <= tip.seq => return Ok(Decision::AfterCommit),
        Some(tip) => Some(tip),
        None => lookup.stored_head()?,
    };
    let stored_at_seq = match head {
        Some(head) if seq <= head.seq => lookup.stored_id_at(seq)?,
        _ => None,
    };
    Ok(match place(head, stored_at_seq, entry) {
        Placement::Next => Decision::Next,
        Placement::Duplicate => Decision::Stored,
        Placement::Fork { stored } => Decision::Rival { stored },
        Placement::Ahead { missing_from } => Decision::Hold { missing_from },
        Placement::BrokenLink { head } => Decision::Hold {
            missing_from: head.seq,
        },
    })
}

/// Whether an arriving copy of a stored entry completes it: the stored copy was pruned of its
/// body and this one carries it (signed ids cover the body's hash, so it is the same body).
pub fn completes(arriving_has_body: bool, stored_has_body: bool) -> bool {
    arriving_has_body && !stored_has_body
}

/// Whether the proof of a fork found at one position is stored: not when one is already stored
/// for that position (one proves the fork), nor when `proofs_held` reached `max_proofs`.
pub fn keep_fork_proof(position_proven: bool, proofs_held: usize, max_proofs: usize) -> bool {
    !position_proven && proofs_held < max_proofs
}

/// The refusal of an entry that descends from one the policy refused (`refused`), so it can
/// never chain on this node: the same rule and policy version, a message naming both.
pub fn refusal_of_successor(entry: &Entry, refused: &Violation) -> Violation {
    let header = entry.header();
    Violation {
        message: format!(
            "entry seq {} of author {} follows an entry the policy refused, so it can never \
             chain on this node (that entry: {})",
            header.seq, header.author, refused.message
        ),
        ..refused.clone()
    }
}

/// The bounds of `pending`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingLimits {
    /// Entries `pending` holds at most.
    pub capacity: usize,
    /// Entries one author may have waiting.
    pub per_author: usize,
    /// Entries one sending peer may have put there.
    pub per_peer: usize,
}

/// How full `pending` is, as it bears on one more entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingLoad {
    /// Entries waiting now.
    pub occupied: usize,
    /// Entries of the arriving entry's author waiting now.
    pub by_author: usize,
    /// Entries its sending peer put there, when the peer is known.
    pub by_peer: Option<usize>,
    /// Whether the node holds entries of the arriving entry's feed.
    pub feed_held: bool,
}

/// Why an entry was not held in `pending`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingRefusal {
    /// `pending` is full of entries that may not be evicted for this one.
    Full,
    /// Its author already has the most entries waiting.
    AuthorQuota,
    /// The peer it came from already has the most entries waiting.
    PeerQuota,
}

/// Whether one more entry is held in `pending`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldDecision<Victim> {
    Hold,
    /// Hold it after evicting `Victim` (the oldest entry of a feed the node does not hold).
    HoldEvicting(Victim),
    Refuse(PendingRefusal),
}

/// Decides whether an entry is held in `pending`: within its author's and its peer's quota,
/// and within the capacity, or, when full and the node holds its feed, by evicting the oldest
/// entry of a feed the node does not hold (`oldest_unheld`, asked only then). An orphan costs
/// its sender only a fresh key, so the quotas stop one author or peer taking every slot, and
/// an entry of a feed the node follows outranks one of a feed it has never seen.
pub fn hold<Victim>(
    load: &PendingLoad,
    limits: &PendingLimits,
    oldest_unheld: impl FnOnce() -> Option<Victim>,
) -> HoldDecision<Victim> {
    if load.by_author >= limits.per_author {
        return HoldDecision::Refuse(PendingRefusal::AuthorQuota);
    }
    if load
        .by_peer
        .is_some_and(|by_peer| by_peer >= limits.per_peer)
    {
        return HoldDecision::Refuse(PendingRefusal::PeerQuota);
    }
    if load.occupied < limits.capacity {
        return HoldDecision::Hold;
    }
    if !load.feed_held {
        return HoldDecision::Refuse(PendingRefusal::Full);
    }
    match oldest_unheld() {
        Some(victim) => HoldDecision::HoldEvicting(victim),
        None => HoldDecision::Refuse(PendingRefusal::Full),
    }
}
