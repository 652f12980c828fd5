//! The coordination layer: the entry kinds agents publish, and the one view every node folds
//! from them.
//!
//! Kinds ([`crate::kind::Kind`]; bodies in [`crate::body`], byte-level rules in
//! `docs/PROTOCOL.md` §9):
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
//! Kinds starting with `x-` are application kinds: stored and gossiped, never interpreted;
//! `policy` is governance's ([`crate::policy`]). Any other kind is refused, so a typo
//! (`intnet`) is an error rather than silent data.
//!
//! [`check_body`] is the part of admission that depends on the entry alone: it is pure and
//! deterministic, so every node accepts or refuses the same entries. The fold in [`view`]
//! never refuses an entry; it only decides what the entries mean at a given time.

pub mod late;
pub mod view;

#[cfg(test)]
mod tests;

use crate::entry::Entry;
use crate::kind::Kind;

// The bodies the view folds, re-exported beside it for the node's convenience.
pub use crate::body::{
    parse_entry_id, Body, BodyError, Capability, CapabilityRevoke, Constraint, ConstraintRule,
    Intent, IntentRelease, IntentRenew, Pattern, Skill, TaskState, TaskStatus, TaskUpdate,
    MAX_LEASE_MS, MAX_TTL_MS,
};
pub use late::{is_late, Arrival, Reception};
pub use view::{
    CardView, ClaimStanding, ClaimView, ConstraintView, Forgotten, Held, LeaseView, PatternView,
    Snapshot, TaskHistoryItem, TaskView, View,
};

/// Default clock-skew window: a claim whose timestamp is further than this from the receiving
/// node's clock is refused when it arrives live (see `docs/PROTOCOL.md` §9.4).
pub const DEFAULT_CLOCK_SKEW_MS: u64 = 30_000;

/// Checks that `entry`'s kind is known and its body is well formed for that kind. An entry
/// whose body was pruned passes: its signature still covers the body hash, and the view
/// simply cannot interpret it.
pub fn check_body(entry: &Entry) -> Result<(), BodyError> {
    Body::of_entry(entry).map(|_| ())
}

/// The body [`View::apply`] needs for an entry read back from a log or a file, parsed: `None`
/// for an entry the view does not interpret (an application kind or `policy`, whose body is
/// not parsed at all), a pruned body, or a body that does not parse.
pub fn body_for_view(entry: &Entry) -> Option<Body> {
    if !entry.kind().is_ok_and(Kind::is_coordination) {
        return None;
    }
    Body::parse(&entry.header().kind, entry.body()?).ok()
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
    if !(governed || Kind::parse(&header.kind).is_ok_and(Kind::is_claim)) {
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
