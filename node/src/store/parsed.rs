//! The hand-off of parsed bodies from the write path to the coordination view.
//!
//! An entry's body is parsed once on its way into the node: by admission for a received or
//! submitted entry, by `Log::append_own` for an own one, on leaving `pending` for an entry
//! that waited there. The write path uses that parse for the policy, and once the entry's
//! journal record is committed, leaves the body here under the record's arrival number. The
//! coordination view follows the journal (so it sees every stored entry once, whichever way
//! it came) and takes the body for each record from here instead of parsing the stored bytes
//! again. Only bodies the view interprets are kept (no application or `policy` bodies).
//!
//! The hand-off is an optimisation, never a source of truth: it is bounded, its oldest
//! bodies make room for new ones, and a record whose body is not here (evicted, or written
//! before the log was opened) is parsed from the stored entry by the reader, which gives the
//! same body.

use std::collections::VecDeque;

use plexus_protocol::coord::{Body, BodyError};
use plexus_protocol::{Entry, Kind};

/// Most bodies held: a view that keeps up takes each within one write of the next, so this
/// only has to cover a view that falls behind for a moment under a burst of writes (about
/// half a second of sustained gossip ingest); beyond it, the view parses for itself.
pub(super) const MAX_PARSED_BODIES: usize = 8192;

/// Most body bytes (as signed, in canonical CBOR) held, so that bodies of up to 64 KiB cannot
/// make the hand-off hold more than a few times this in memory.
pub(super) const MAX_PARSED_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Parsed bodies of committed journal records, oldest first, in increasing arrival order.
#[derive(Debug, Default)]
pub(super) struct ParsedBodies {
    bodies: VecDeque<ParsedBody>,
    bytes: usize,
}

#[derive(Debug)]
struct ParsedBody {
    arrival: u64,
    /// The body's length as signed, what the byte bound counts.
    len: usize,
    body: Body,
}

impl ParsedBodies {
    /// Leaves the body of the journal record `arrival` (newer than every record left
    /// before), making room by dropping the oldest bodies.
    pub(super) fn leave(&mut self, arrival: u64, len: usize, body: Body) {
        if len > MAX_PARSED_BODY_BYTES {
            return;
        }
        while self.bodies.len() >= MAX_PARSED_BODIES || self.bytes + len > MAX_PARSED_BODY_BYTES {
            self.drop_oldest();
        }
        self.bytes += len;
        self.bodies.push_back(ParsedBody { arrival, len, body });
    }

    /// Takes the body of the journal record `arrival`, if it is here. Bodies of older records
    /// are dropped: the reader follows the journal forwards and has passed them.
    pub(super) fn take(&mut self, arrival: u64) -> Option<Body> {
        while self.bodies.front()?.arrival < arrival {
            self.drop_oldest();
        }
        if self.bodies.front()?.arrival != arrival {
            return None;
        }
        let taken = self.bodies.pop_front()?;
        self.bytes -= taken.len;
        Some(taken.body)
    }

    fn drop_oldest(&mut self) {
        if let Some(dropped) = self.bodies.pop_front() {
            self.bytes -= dropped.len;
        }
    }
}

/// Parses the body bytes of an entry of the kind named `kind`. Every parse of a body in the
/// node's write path and view (an own append, an entry leaving `pending`, the fallback for a
/// body no longer handed over, a stored entry read for the policy) goes through here, so the
/// tests can count them; admission's, in the protocol crate, is the only other.
pub(crate) fn parse_body(kind: &str, bytes: &[u8]) -> Result<Body, BodyError> {
    #[cfg(test)]
    parse_count::PARSES.with(|count| count.set(count.get() + 1));
    Body::parse(kind, bytes)
}

/// The parsed body of an entry read back from the log or `pending`, when its kind is one
/// `wanted` (say [`Kind::is_coordination`] for the view, [`Kind::is_read_by_policy`] for the
/// policy); `None` for other kinds (not parsed at all), a pruned body, or one that does not
/// parse (never stored: admission refuses it).
pub fn parse_stored_body(entry: &Entry, wanted: fn(Kind) -> bool) -> Option<Body> {
    if !entry.kind().is_ok_and(wanted) {
        return None;
    }
    parse_body(&entry.header().kind, entry.body()?).ok()
}

/// Bodies [`parse_body`] parsed on the current thread, for the tests that count the parses
/// an entry takes on its way in; compiled in tests only.
#[cfg(test)]
pub(crate) mod parse_count {
    use std::cell::Cell;

    thread_local! {
        pub(super) static PARSES: Cell<u64> = const { Cell::new(0) };
    }

    /// Bodies parsed on this thread so far.
    pub(crate) fn on_this_thread() -> u64 {
        PARSES.with(Cell::get)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plexus_protocol::coord::IntentRelease;

    fn body(n: u64) -> Body {
        Body::IntentRelease(IntentRelease {
            claim: format!("{n:064x}"),
        })
    }

    #[test]
    fn a_body_is_taken_once_by_its_arrival_and_older_ones_are_passed() {
        let mut parsed = ParsedBodies::default();
        for arrival in [3, 5, 6] {
            parsed.leave(arrival, 10, body(arrival));
        }
        assert_eq!(parsed.take(2), None);
        assert_eq!(parsed.take(5), Some(body(5)), "the reader skipped record 3");
        assert_eq!(parsed.take(5), None, "taken already");
        assert_eq!(parsed.take(3), None, "passed");
        assert_eq!(parsed.take(6), Some(body(6)));
        assert_eq!(parsed.bytes, 0);
    }

    #[test]
    fn the_oldest_bodies_make_room_within_both_bounds() {
        let mut parsed = ParsedBodies::default();
        for arrival in 0..(MAX_PARSED_BODIES as u64 + 10) {
            parsed.leave(arrival, 1, body(arrival));
        }
        assert_eq!(parsed.bodies.len(), MAX_PARSED_BODIES);
        assert_eq!(parsed.take(9), None, "evicted for the count");
        assert_eq!(parsed.take(10), Some(body(10)));

        let half = MAX_PARSED_BODY_BYTES / 2;
        let mut parsed = ParsedBodies::default();
        for arrival in 0..3 {
            parsed.leave(arrival, half, body(arrival));
        }
        assert!(parsed.bytes <= MAX_PARSED_BODY_BYTES);
        assert_eq!(parsed.take(0), None, "evicted for the bytes");
        assert_eq!(parsed.take(1), Some(body(1)));
        parsed.leave(3, MAX_PARSED_BODY_BYTES + 1, body(3));
        assert_eq!(
            parsed.take(3),
            None,
            "larger than the whole bound: not kept"
        );
    }
}
