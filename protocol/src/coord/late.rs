//! Late claims: claims that reached a node as history long after their own timestamp
//! (`docs/PROTOCOL.md` §9.4).
//!
//! A node refuses a claim whose timestamp is outside its clock-skew window when the claim
//! arrives live (gossip, submit), but history (a backfill, an imported file) is not checked
//! against the clock, or a claim made honestly on the far side of a partition could never
//! count. So an author can back-date a claim and serve it only as history. No rule on the
//! entries alone can tell that claim from an honest one made across a partition: the two can
//! be the same bytes. What tells them apart is when a node first received the claim, which
//! only that node knows, so the answer is a per-node annotation, never part of the lease
//! order every node agrees on:
//!
//! - every stored entry has a [`Reception`]: how it arrived ([`Arrival`]) and the receiving
//!   node's clock at the write that stored it (the node's journal records both);
//! - a claim (`intent`, `intent.renew`, `intent.release`) is **late** on a node when it
//!   arrived as [`Arrival::History`] and `received_ms > timestamp_ms + window_ms`, the window
//!   being the one the live check would have used ([`is_late`]).
//!
//! Late claims still count in the lease order (so every node's lease table stays the same
//! function of the same entries, and an honest claim across a long partition still wins);
//! the views, the API, the events and `audit replay` flag them, so an agent that loses a lease
//! to a late claim, and an auditor, can see that it did.

use crate::kind::Kind;

/// How a stored entry reached this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arrival {
    /// Signed by this node for its own agent.
    Own,
    /// Live: gossip, or submitted to the node's API; claims passed the clock-skew check.
    Live,
    /// History: a backfill (sync response) or an entry read from a file; never checked
    /// against the clock.
    History,
}

/// How and when a node received a stored entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Reception {
    pub arrival: Arrival,
    /// The receiving node's clock when it stored the entry, Unix milliseconds.
    pub received_ms: u64,
}

impl Arrival {
    /// The byte a node's journal records for this arrival.
    pub fn code(self) -> u8 {
        match self {
            Arrival::Own => 0,
            Arrival::Live => 1,
            Arrival::History => 2,
        }
    }

    /// The arrival a journal byte stands for (`None`: not one of [`Arrival::code`]'s).
    pub fn from_code(code: u8) -> Option<Arrival> {
        match code {
            0 => Some(Arrival::Own),
            1 => Some(Arrival::Live),
            2 => Some(Arrival::History),
            _ => None,
        }
    }

    /// The name shown in the API and by `audit replay`.
    pub fn as_str(self) -> &'static str {
        match self {
            Arrival::Own => "own",
            Arrival::Live => "live",
            Arrival::History => "history",
        }
    }
}

/// Whether an entry of `kind` with timestamp `timestamp_ms`, received as `reception`, is a late
/// claim under a clock-skew window of `window_ms`: a claim kind, arrived as history, stored
/// more than the window after its timestamp. Exactly the claims the live check would have
/// refused for being behind the clock, had they arrived live.
pub fn is_late(kind: &str, timestamp_ms: u64, reception: Reception, window_ms: u64) -> bool {
    reception.arrival == Arrival::History
        && Kind::parse(kind).is_ok_and(Kind::is_claim)
        && reception.received_ms.saturating_sub(timestamp_ms) > window_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: u64 = 30_000;
    const T: u64 = 1_767_225_600_000;

    fn history(received_ms: u64) -> Reception {
        Reception {
            arrival: Arrival::History,
            received_ms,
        }
    }

    #[test]
    fn a_claim_backfilled_beyond_the_window_is_late_and_one_at_its_edge_is_not() {
        for kind in ["intent", "intent.renew", "intent.release"] {
            assert!(is_late(kind, T, history(T + WINDOW + 1), WINDOW), "{kind}");
            assert!(!is_late(kind, T, history(T + WINDOW), WINDOW), "{kind}");
            assert!(!is_late(kind, T, history(T), WINDOW), "{kind}");
        }
    }

    #[test]
    fn live_and_own_entries_are_never_late_whatever_their_age() {
        for arrival in [Arrival::Own, Arrival::Live] {
            let reception = Reception {
                arrival,
                received_ms: T + 10 * WINDOW,
            };
            assert!(!is_late("intent", T, reception, WINDOW));
        }
    }

    #[test]
    fn only_claims_are_late() {
        for kind in [
            "task",
            "capability",
            "constraint",
            "pattern",
            "x-note",
            "policy",
        ] {
            assert!(
                !is_late(kind, T, history(T + 10 * WINDOW), WINDOW),
                "{kind}"
            );
        }
    }

    #[test]
    fn a_claim_dated_after_its_reception_is_not_late() {
        // Ahead of the clock is not back-dating: the view ignores it until its time comes.
        assert!(!is_late("intent", T + 10 * WINDOW, history(T), WINDOW));
    }

    #[test]
    fn arrival_codes_round_trip_and_others_are_refused() {
        for arrival in [Arrival::Own, Arrival::Live, Arrival::History] {
            assert_eq!(Arrival::from_code(arrival.code()), Some(arrival));
        }
        assert_eq!(Arrival::from_code(3), None);
        assert_eq!(Arrival::from_code(0xff), None);
    }
}
