//! The coordination layer: the entry kinds agents publish, and the one view every node folds
//! from them.
//!
//! Kinds (bodies in [`bodies`], byte-level rules in `docs/PROTOCOL.md` §9):
//!
//! | kind                | what it says                                                  |
//! |---------------------|---------------------------------------------------------------|
//! | `capability`        | the author's card (A2A-style: name, skills, url), with a TTL  |
//! | `capability.revoke` | the author withdraws its card                                 |
//! | `intent`            | a claim on a named resource for a lease duration              |
//! | `intent.renew`      | extends one of the author's live claims                       |
//! | `intent.release`    | ends one of the author's claims                               |
//! | `task`              | a task-state update with A2A's states                         |
//! | `constraint`        | a scoped rule on resources (exclusive, max holders, ...)      |
//! | `pattern`           | learned knowledge shared with others                          |
//!
//! Kinds starting with `x-` are application kinds: stored and gossiped, never interpreted.
//! Any other kind is refused, so a typo (`intnet`) is an error rather than silent data.
//!
//! [`check_body`] is the part of admission that depends on the entry alone: it is pure and
//! deterministic, so every node accepts or refuses the same entries. The fold in [`view`]
//! never refuses an entry; it only decides what the entries mean at a given time.

pub mod bodies;
pub mod view;

#[cfg(test)]
mod tests;

use crate::entry::Entry;

pub use bodies::{
    parse_entry_id, Body, BodyError, Capability, CapabilityRevoke, Constraint, ConstraintRule,
    Intent, IntentRelease, IntentRenew, Pattern, Skill, TaskState, TaskStatus, TaskUpdate,
};
pub use view::{
    CardView, ClaimStanding, ClaimView, ConstraintView, LeaseView, PatternView, Snapshot,
    TaskHistoryItem, TaskView, View,
};

/// The coordination kinds, in the order of the table above.
pub const KINDS: [&str; 8] = [
    "capability",
    "capability.revoke",
    "intent",
    "intent.renew",
    "intent.release",
    "task",
    "constraint",
    "pattern",
];

/// Kinds with a gossip topic of their own besides the coordination kinds ([`KINDS`]).
pub const GOVERNANCE_KINDS: [&str; 1] = [crate::policy::POLICY_KIND];

/// The last segment of the gossip topic that carries entries of `kind` (`docs/PROTOCOL.md`
/// §8.1): the kind itself for the coordination and governance kinds, `other` for the rest.
pub fn topic_suffix(kind: &str) -> &str {
    if KINDS.contains(&kind) || GOVERNANCE_KINDS.contains(&kind) {
        kind
    } else {
        OTHER_KINDS_TOPIC
    }
}

/// The topic suffix of every kind without a topic of its own (see [`topic_suffix`]).
pub const OTHER_KINDS_TOPIC: &str = "other";

/// The prefix of application kinds, which Plexus stores and gossips but does not interpret.
pub const APPLICATION_KIND_PREFIX: &str = "x-";

/// Longest lease a claim or renewal may ask for: one day. Governance can lower it.
pub const MAX_LEASE_MS: u64 = 24 * 60 * 60 * 1000;

/// Longest time-to-live of a card or constraint: thirty days. Governance can lower it.
pub const MAX_TTL_MS: u64 = 30 * 24 * 60 * 60 * 1000;

/// Default clock-skew window: a claim whose timestamp is further than this from the receiving
/// node's clock is refused when it arrives live (see `docs/PROTOCOL.md` §9.4).
pub const DEFAULT_CLOCK_SKEW_MS: u64 = 30_000;

/// Checks that `entry`'s kind is known and its body is well formed for that kind. An entry
/// whose body was pruned passes: its signature still covers the body hash, and the view
/// simply cannot interpret it.
pub fn check_body(entry: &Entry) -> Result<(), BodyError> {
    let kind = entry.header().kind.as_str();
    match entry.body() {
        Some(body) => Body::parse(kind, body).map(|_| ()),
        None => Body::check_kind(kind),
    }
}

/// Whether `kind` is one of the claim kinds that the clock-skew window applies to.
pub fn is_claim_kind(kind: &str) -> bool {
    matches!(kind, "intent" | "intent.renew" | "intent.release")
}

/// Checks a live entry's timestamp against the receiving node's clock: claims always, and
/// every kind when the namespace is `governed` (where the timestamp decides which policy
/// applies).
pub fn check_clock_skew(
    entry: &Entry,
    now_ms: u64,
    window_ms: u64,
    governed: bool,
) -> Result<(), BodyError> {
    let header = entry.header();
    if !crate::policy::skew_checked(&header.kind, governed) {
        return Ok(());
    }
    let distance = header.timestamp_ms.abs_diff(now_ms);
    if distance > window_ms {
        let direction = if header.timestamp_ms > now_ms {
            "ahead of"
        } else {
            "behind"
        };
        return Err(BodyError::ClockSkew {
            distance_ms: distance,
            direction,
            window_ms,
        });
    }
    Ok(())
}
