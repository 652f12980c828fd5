//! The node's recent change events for the `recent_events` tool: one subscription per MCP
//! server, started on first use, feeding a buffer of the newest [`EVENT_BUFFER_CAPACITY`].

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Notify;

use super::backend::{Backend, CallError, NextEvent};

/// Events kept for `recent_events`; older ones are dropped (a model reads a few at a time).
pub const EVENT_BUFFER_CAPACITY: usize = 256;

/// How long one wait for the next event lasts before the feeding task checks again that it is
/// still wanted; the node's keep-alives arrive more often than this.
const FEED_WAIT: Duration = Duration::from_secs(3600);

/// A bounded buffer of events, filled by one background task.
#[derive(Debug, Default)]
pub struct EventBuffer {
    state: Mutex<BufferState>,
    arrived: Notify,
}

#[derive(Debug, Default)]
struct BufferState {
    started: bool,
    events: VecDeque<(String, Value)>,
}

impl EventBuffer {
    /// Subscribes to the node's events the first time it is called.
    pub async fn start(self: &std::sync::Arc<Self>, backend: &Backend) -> Result<(), CallError> {
        if self.lock().started {
            return Ok(());
        }
        let mut events = backend.events("", None).await?;
        {
            let mut state = self.lock();
            if state.started {
                return Ok(());
            }
            state.started = true;
        }
        let buffer = std::sync::Arc::clone(self);
        tokio::spawn(async move {
            // Ends when the stream does: the node stopped, or its API shut down.
            loop {
                match events.next_within(FEED_WAIT).await {
                    NextEvent::Event(event_type, event) => buffer.push((event_type, event)),
                    NextEvent::Quiet => continue,
                    NextEvent::Ended => break,
                }
            }
            buffer.lock().started = false;
        });
        Ok(())
    }

    /// The newest `limit` events of the given types numbered above `after_id`, waiting up to
    /// `wait` for one if there is none yet.
    pub async fn select(
        &self,
        kinds: &[String],
        after_id: Option<u64>,
        limit: usize,
        wait: Duration,
    ) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let arrived = self.arrived.notified();
            let found = self.matching(kinds, after_id, limit);
            if !found.is_empty() || tokio::time::Instant::now() >= deadline {
                return found;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return self.matching(kinds, after_id, limit);
            }
        }
    }

    fn matching(&self, kinds: &[String], after_id: Option<u64>, limit: usize) -> Vec<Value> {
        let state = self.lock();
        let mut found: Vec<Value> = state
            .events
            .iter()
            .rev()
            .filter(|(event_type, event)| {
                let kind_matches = kinds.is_empty()
                    || kinds.iter().any(|kind| {
                        kind == event_type || event["kind"].as_str() == Some(kind.as_str())
                    });
                let newer =
                    after_id.is_none_or(|after| event["id"].as_u64().is_some_and(|id| id > after));
                kind_matches && newer
            })
            .take(limit)
            .map(|(_, event)| event.clone())
            .collect();
        found.reverse();
        found
    }

    fn push(&self, event: (String, Value)) {
        let mut state = self.lock();
        if state.events.len() == EVENT_BUFFER_CAPACITY {
            state.events.pop_front();
        }
        state.events.push_back(event);
        drop(state);
        self.arrived.notify_waiters();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BufferState> {
        // A panic elsewhere while holding the lock leaves a buffer that is still consistent.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
