//! `GET /v1/events`: the node's change events as server-sent events, in the order the node
//! produced them (each SSE `id` is the event's number), filtered by namespace, kind, resource
//! and task.
//!
//! A subscriber that falls behind the oldest event the node keeps
//! ([`crate::coord::EVENT_BUFFER_BYTES`] of them) gets a `lagged` event
//! with the number it missed and carries on; it can re-read state from the query routes. The
//! stream ends when the server shuts down.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream};
use plexus_protocol::Kind;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

use super::routes::namespace;
use super::{ApiError, ApiState};
use crate::coord::Event;

/// Interval of SSE keep-alive comments, so proxies and clients see a live connection.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventsQuery {
    namespace: Option<String>,
    /// Event types or entry kinds, comma-separated (`claim.won,claim.lost`, `task`, `intent`).
    kind: Option<String>,
    /// A resource name, or a prefix ending in `*`.
    resource: Option<String>,
    task: Option<String>,
}

struct Filter {
    namespace: String,
    kinds: Vec<String>,
    resource: Option<String>,
    task: Option<String>,
}

impl Filter {
    fn matches(&self, event: &Event) -> bool {
        if event.namespace != self.namespace {
            return false;
        }
        if !self.kinds.is_empty()
            && !self.kinds.iter().any(|kind| {
                kind == event.event_type || event.kind.as_deref() == Some(kind.as_str())
            })
        {
            return false;
        }
        if let Some(pattern) = &self.resource {
            let Some(resource) = &event.resource else {
                return false;
            };
            if !plexus_protocol::coord::view::resource_matches(pattern, resource) {
                return false;
            }
        }
        if let Some(task) = &self.task {
            if event.task_id.as_deref() != Some(task.as_str()) {
                return false;
            }
        }
        true
    }
}

pub(super) async fn events(
    State(state): State<ApiState>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let query = query?.0;
    let kinds: Vec<String> = query
        .kind
        .map(|kinds| {
            kinds
                .split(',')
                .map(str::trim)
                .filter(|kind| !kind.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    // A misspelt kind would match nothing, and the stream would wait in silence forever.
    if let Some(unknown) = kinds.iter().find(|kind| !is_known_kind(kind)) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "unknown_kind",
            format!(
                "unknown event type or entry kind {unknown:?}: use an event type ({}), an \
                 entry kind ({}), or an application kind starting with `x-`",
                EVENT_TYPES.join(", "),
                Kind::NAMED.map(Kind::as_str).join(", ")
            ),
        )
        .with_field("kind"));
    }
    let filter = Filter {
        namespace: namespace(&state, query.namespace)?,
        kinds,
        resource: query.resource,
        task: query.task,
    };
    let receiver = state.node.coord().subscribe();
    let stream = event_stream(receiver, state.shutdown.clone(), filter);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

/// The event types [`Event::event_type`] takes.
const EVENT_TYPES: &[&str] = &[
    "entry",
    "lease",
    "task",
    "claim.won",
    "claim.lost",
    "claim.ended",
];

fn is_known_kind(kind: &str) -> bool {
    EVENT_TYPES.contains(&kind) || Kind::parse(kind).is_ok()
}

fn event_stream(
    receiver: crate::coord::EventReceiver,
    shutdown: watch::Receiver<bool>,
    filter: Filter,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    stream::unfold(
        (receiver, shutdown, filter),
        |(mut receiver, mut shutdown, filter)| async move {
            loop {
                if *shutdown.borrow() {
                    return None;
                }
                let received = tokio::select! {
                    received = receiver.recv() => received,
                    _ = shutdown.changed() => return None,
                };
                let event = match received {
                    Ok(event) if filter.matches(&event) => to_sse(&event),
                    Ok(_) => continue,
                    Err(RecvError::Lagged(missed)) => SseEvent::default()
                        .event("lagged")
                        .data(format!("{{\"missed\":{missed}}}")),
                    Err(RecvError::Closed) => return None,
                };
                return Some((Ok(event), (receiver, shutdown, filter)));
            }
        },
    )
}

fn to_sse(event: &Event) -> SseEvent {
    let data = serde_json::to_string(event).unwrap_or_default();
    SseEvent::default()
        .id(event.id.to_string())
        .event(event.event_type)
        .data(data)
}
