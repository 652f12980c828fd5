//! How the MCP tools reach the node: over its HTTP API (`plexus mcp`, a separate process on
//! the same data directory), or in process (Streamable HTTP served on the API listener itself,
//! where a tool call runs the API's own routes without a network round trip).
//!
//! Either way a call returns the API's JSON answer, or a [`Refusal`] with everything the node
//! said: status, code, message, field, and for policy refusals rule, policy version and retry
//! delay. That is what a model needs to decide what to do next.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request};
use axum::Router;
use serde_json::Value;
use tokio::sync::{broadcast, watch};
use tower::ServiceExt;

use crate::api::ApiState;
use crate::client::{ApiClient, ClientError, EventStream, MAX_RESPONSE_BYTES};

/// Where the tools send their requests.
#[derive(Debug, Clone)]
pub enum Backend {
    /// The node's HTTP API, with its token.
    Http(ApiClient),
    /// The API's routes (without MCP), called in process with the node's own token.
    InProcess { router: Router, state: ApiState },
}

/// What went wrong with a call, as the model will read it.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The node refused the request.
    #[error("{0}")]
    Refused(Refusal),
    /// The node could not be reached or answered nonsense.
    #[error("the node could not be reached: {0}")]
    Unreachable(String),
}

/// The node's refusal, with all it said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub field: Option<String>,
    pub rule: Option<String>,
    pub policy_version: Option<u64>,
    pub retry_after_ms: Option<u64>,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the node refused ({} {}): {}",
            self.status, self.code, self.message
        )?;
        if let Some(field) = &self.field {
            write!(f, "; field: {field}")?;
        }
        if let Some(rule) = &self.rule {
            write!(f, "; rule: {rule}")?;
        }
        if let Some(version) = self.policy_version {
            write!(f, "; policy version: {version}")?;
        }
        if let Some(ms) = self.retry_after_ms {
            write!(f, "; retry after {ms} ms")?;
        }
        Ok(())
    }
}

impl Refusal {
    /// Reads the API's error body `{"error": {...}}`; anything else is kept as the message.
    fn from_answer(status: u16, body: &[u8]) -> Refusal {
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        let error = parsed.as_ref().and_then(|value| value.get("error"));
        let text = |key: &str| {
            error
                .and_then(|error| error.get(key))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let number = |key: &str| {
            error
                .and_then(|error| error.get(key))
                .and_then(Value::as_u64)
        };
        Refusal {
            status,
            code: text("code").unwrap_or_else(|| "unknown".to_owned()),
            message: text("message").unwrap_or_else(|| String::from_utf8_lossy(body).into_owned()),
            field: text("field"),
            rule: text("rule"),
            policy_version: number("policyVersion"),
            retry_after_ms: number("retryAfterMs"),
        }
    }
}

/// A subscription to the node's change events.
#[derive(Debug)]
pub enum Events {
    Http(EventStream),
    /// The coordinator's events of the API's default namespace (as `GET /v1/events` sends
    /// them), until the API shuts down.
    InProcess {
        receiver: crate::coord::EventReceiver,
        namespace: std::sync::Arc<str>,
        shutdown: watch::Receiver<bool>,
    },
}

/// What waiting for the next event gave.
#[derive(Debug)]
pub enum NextEvent {
    /// An event: its type and the JSON of the whole event (as `GET /v1/events` sends it).
    Event(String, Value),
    /// Nothing within the time.
    Quiet,
    /// The stream ended: the node or its API stopped.
    Ended,
}

impl Events {
    /// The next event, waiting at most `timeout`.
    pub async fn next_within(&mut self, timeout: Duration) -> NextEvent {
        let next = async {
            match self {
                Events::Http(stream) => match stream.next().await {
                    Ok(Some(message)) => {
                        let data = serde_json::from_str(&message.data).unwrap_or(Value::Null);
                        NextEvent::Event(message.event, data)
                    }
                    Ok(None) | Err(_) => NextEvent::Ended,
                },
                Events::InProcess {
                    receiver,
                    namespace,
                    shutdown,
                } => loop {
                    if *shutdown.borrow() {
                        return NextEvent::Ended;
                    }
                    let received = tokio::select! {
                        received = receiver.recv() => received,
                        _ = shutdown.changed() => return NextEvent::Ended,
                    };
                    match received {
                        Ok(event) if *event.namespace == **namespace => {
                            let data = serde_json::to_value(&*event).unwrap_or(Value::Null);
                            return NextEvent::Event(event.event_type.to_owned(), data);
                        }
                        Ok(_) => continue,
                        // As over SSE: whoever follows changes learns that some were missed.
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            let data = serde_json::json!({ "missed": missed });
                            return NextEvent::Event("lagged".to_owned(), data);
                        }
                        Err(broadcast::error::RecvError::Closed) => return NextEvent::Ended,
                    }
                },
            }
        };
        tokio::time::timeout(timeout, next)
            .await
            .unwrap_or(NextEvent::Quiet)
    }
}

impl Backend {
    /// Sends one request; `body` is sent as JSON.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, CallError> {
        let bytes = body.map(|body| serde_json::to_vec(body).unwrap_or_default());
        let (status, answer) = match self {
            Backend::Http(client) => {
                let response = client
                    .request(method, path, bytes.as_deref())
                    .await
                    .map_err(unreachable)?;
                (response.status, response.body)
            }
            Backend::InProcess { router, state } => {
                let request = Request::builder()
                    .method(method)
                    .uri(path)
                    .header(header::AUTHORIZATION, format!("Bearer {}", state.token))
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(bytes.unwrap_or_default()))
                    .map_err(|error| CallError::Unreachable(error.to_string()))?;
                let response = router
                    .clone()
                    .oneshot(request)
                    .await
                    .map_err(|never| CallError::Unreachable(never.to_string()))?;
                let status = response.status().as_u16();
                let body = axum::body::to_bytes(response.into_body(), MAX_RESPONSE_BYTES)
                    .await
                    .map_err(|error| CallError::Unreachable(error.to_string()))?;
                (status, body.to_vec())
            }
        };
        if !(200..300).contains(&status) {
            return Err(CallError::Refused(Refusal::from_answer(status, &answer)));
        }
        serde_json::from_slice(&answer)
            .map_err(|error| CallError::Unreachable(format!("the answer is not JSON: {error}")))
    }

    /// Subscribes to the node's events of the given types (comma-separated; empty for all),
    /// on `resource` when one is given. In process, every event comes and callers filter.
    pub async fn events(&self, kinds: &str, resource: Option<&str>) -> Result<Events, CallError> {
        match self {
            Backend::Http(client) => {
                let mut query = format!("kind={}", encode_query(kinds));
                if let Some(resource) = resource {
                    query.push_str(&format!("&resource={}", encode_query(resource)));
                }
                client
                    .events(&query)
                    .await
                    .map(Events::Http)
                    .map_err(|error| match error {
                        ClientError::Status { status, .. } => CallError::Refused(Refusal {
                            status,
                            code: "events".into(),
                            message: error.to_string(),
                            field: None,
                            rule: None,
                            policy_version: None,
                            retry_after_ms: None,
                        }),
                        other => unreachable(other),
                    })
            }
            Backend::InProcess { state, .. } => Ok(Events::InProcess {
                receiver: state.node.coord().subscribe(),
                namespace: std::sync::Arc::clone(&state.namespace),
                shutdown: state.shutdown.clone(),
            }),
        }
    }
}

fn unreachable(error: ClientError) -> CallError {
    CallError::Unreachable(error.to_string())
}

/// Percent-encodes a query value (resource names are free of whitespace but may hold `&`,
/// `#`, `+` or `%`).
pub fn encode_query(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/*:,".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Percent-encodes one path segment (claim and task ids).
pub fn encode_segment(value: &str) -> String {
    encode_query(value)
        .replace('/', "%2F")
        .replace('*', "%2A")
        .replace(':', "%3A")
        .replace(',', "%2C")
}
