//! The ring of recent change events, bounded in bytes: entry events carry bodies of up to
//! 64 KiB, so a ring bounded in events would hold anything from a few hundred KiB to hundreds
//! of MiB. Each subscriber keeps its own cursor; one that falls behind the oldest event kept
//! is told how many it missed (as with tokio's broadcast channel, whose error type it reuses).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::watch;

use super::Event;

/// Bytes of events kept for slow subscribers (estimated from their JSON). Thousands of
/// ordinary events (a few hundred bytes each) or a few hundred with maximal bodies, so a
/// subscriber that pauses for a moment misses nothing, and memory stays at 16 MiB however
/// large the events are.
pub const EVENT_BUFFER_BYTES: usize = 16 << 20;

/// The ring, shared by the coordinator (which sends) and every subscriber.
#[derive(Debug)]
pub struct EventRing {
    state: Mutex<RingState>,
    /// The next event number; subscribers wait on it for new events.
    next: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct RingState {
    events: VecDeque<(Arc<Event>, usize)>,
    bytes: usize,
    /// Number of the oldest event kept (when `events` is empty: of the next one).
    first: u64,
    /// Events before this number were dropped for room; those between it and `first` were
    /// never kept because nobody listened, and nobody missed them.
    evicted_until: u64,
}

/// One subscriber's view of the ring.
#[derive(Debug)]
pub struct EventReceiver {
    ring: Arc<EventRing>,
    next_wanted: u64,
    updates: watch::Receiver<u64>,
}

impl EventRing {
    pub fn new() -> EventRing {
        EventRing {
            state: Mutex::new(RingState::default()),
            next: watch::channel(0).0,
        }
    }

    /// Subscribers listening now.
    pub fn receiver_count(&self) -> usize {
        self.next.receiver_count()
    }

    /// A subscriber of every event from now on.
    pub fn subscribe(self: &Arc<Self>) -> EventReceiver {
        let updates = self.next.subscribe();
        let next_wanted = *updates.borrow();
        EventReceiver {
            ring: Arc::clone(self),
            next_wanted,
            updates,
        }
    }

    /// Keeps `event` (numbered `event.id`, one past the last) and drops the oldest events past
    /// [`EVENT_BUFFER_BYTES`]; with no subscriber nothing is kept, only the number moves on.
    pub fn send(&self, event: Event) {
        let id = event.id;
        if self.receiver_count() > 0 {
            let size = event_size(&event);
            let mut state = self.lock();
            if state.events.is_empty() {
                state.first = id;
            }
            state.events.push_back((Arc::new(event), size));
            state.bytes += size;
            while state.bytes > EVENT_BUFFER_BYTES && state.events.len() > 1 {
                if let Some((_, dropped)) = state.events.pop_front() {
                    state.bytes -= dropped;
                    state.first += 1;
                    state.evicted_until = state.first;
                }
            }
            drop(state);
            self.next.send_replace(id + 1);
        } else {
            self.skip_to(id + 1);
        }
    }

    /// Moves on to event number `next` without keeping anything before it (nobody listens).
    pub fn skip_to(&self, next: u64) {
        let mut state = self.lock();
        state.events.clear();
        state.bytes = 0;
        state.first = next;
        drop(state);
        self.next.send_replace(next);
    }

    fn lock(&self) -> MutexGuard<'_, RingState> {
        // Only plain data inside: a poisoned lock is still consistent enough to read.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for EventRing {
    fn default() -> Self {
        EventRing::new()
    }
}

impl EventReceiver {
    /// The next event, waiting for one; `Lagged(n)` when `n` events were dropped before this
    /// subscriber read them (it then continues with the oldest kept), `Closed` once the
    /// coordinator is gone.
    pub async fn recv(&mut self) -> Result<Arc<Event>, RecvError> {
        loop {
            match self.try_recv() {
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Lagged(missed)) => return Err(RecvError::Lagged(missed)),
                Err(TryRecvError::Closed) => return Err(RecvError::Closed),
                Ok(event) => return Ok(event),
            }
            if self.updates.changed().await.is_err() {
                return self.try_recv().map_err(|_| RecvError::Closed);
            }
        }
    }

    /// The next event if one is kept now.
    pub fn try_recv(&mut self) -> Result<Arc<Event>, TryRecvError> {
        let state = self.ring.lock();
        if self.next_wanted < state.first {
            let missed = state.evicted_until.saturating_sub(self.next_wanted);
            self.next_wanted = state.first;
            if missed > 0 {
                return Err(TryRecvError::Lagged(missed));
            }
        }
        let index = usize::try_from(self.next_wanted - state.first).unwrap_or(usize::MAX);
        match state.events.get(index) {
            Some((event, _)) => {
                self.next_wanted += 1;
                Ok(Arc::clone(event))
            }
            None => Err(TryRecvError::Empty),
        }
    }
}

/// About how many bytes an event takes: its JSON text, estimated without rendering it.
fn event_size(event: &Event) -> usize {
    const FIXED: usize = std::mem::size_of::<Event>() + 64;
    FIXED
        + event.namespace.len()
        + event.kind.as_ref().map_or(0, String::len)
        + event.resource.as_ref().map_or(0, String::len)
        + event.task_id.as_ref().map_or(0, String::len)
        + json_size(&event.data)
}

fn json_size(value: &serde_json::Value) -> usize {
    use serde_json::Value;
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => 8,
        Value::String(text) => text.len() + 2,
        Value::Array(items) => 2 + items.iter().map(|item| json_size(item) + 1).sum::<usize>(),
        Value::Object(fields) => {
            2 + fields
                .iter()
                .map(|(key, value)| key.len() + 4 + json_size(value))
                .sum::<usize>()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: u64, body_bytes: usize) -> Event {
        Event {
            id,
            event_type: "entry",
            namespace: "ns".into(),
            kind: Some("x-note".into()),
            resource: None,
            task_id: None,
            time_ms: 0,
            data: serde_json::json!({ "body": "x".repeat(body_bytes) }),
        }
    }

    #[test]
    fn the_ring_holds_a_bounded_number_of_bytes_and_says_what_was_missed() {
        let ring = Arc::new(EventRing::new());
        let mut slow = ring.subscribe();
        // 600 events with 64 KiB bodies: 38 MiB sent, at most 16 MiB kept.
        let sent = 600;
        for id in 0..sent {
            ring.send(event(id, 64 * 1024));
        }
        let kept = ring.lock().events.len() as u64;
        assert!(ring.lock().bytes <= EVENT_BUFFER_BYTES);
        assert!(kept < sent && kept > 200, "{kept} kept");
        assert_eq!(
            slow.try_recv().unwrap_err(),
            TryRecvError::Lagged(sent - kept)
        );
        // Then every kept event, in order.
        for id in sent - kept..sent {
            assert_eq!(slow.try_recv().unwrap().id, id);
        }
        assert_eq!(slow.try_recv().unwrap_err(), TryRecvError::Empty);
        // Small events are all kept for a subscriber that keeps up.
        let mut fast = ring.subscribe();
        ring.send(event(sent, 10));
        assert_eq!(fast.try_recv().unwrap().id, sent);
        assert_eq!(slow.try_recv().unwrap().id, sent);
    }

    #[test]
    fn without_subscribers_nothing_is_kept() {
        let ring = Arc::new(EventRing::new());
        ring.send(event(0, 64 * 1024));
        assert_eq!(ring.lock().bytes, 0);
        let mut late = ring.subscribe();
        assert_eq!(late.try_recv().unwrap_err(), TryRecvError::Empty);
        ring.send(event(1, 1));
        assert_eq!(late.try_recv().unwrap().id, 1);
    }
}
