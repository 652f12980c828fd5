//! The node's local HTTP API (served by `plexus run`): what agents use to publish and query.
//!
//! Bound to 127.0.0.1 by default. Every route but `GET /v1/health`, the web page's static
//! files under `/ui/` and A2A's public `GET /.well-known/agent-card.json` (see [`a2a`])
//! needs `Authorization: Bearer <token>`, the content of `api.token` in the data directory
//! (mode 0600), compared in constant time. Request bodies are capped at [`MAX_REQUEST_BYTES`].
//! Routes that concern one coordination space take `?namespace=` (default: the node's
//! configured namespace). The full contract is the OpenAPI document at `GET /v1/openapi.json`
//! (`api/openapi.json`); [`ROUTES`] lists the same routes, and a test keeps the two equal.
//!
//! Errors are JSON, `{"error": {"code", "message", "field"}}`, with 400 for unreadable JSON or
//! query strings, 401 without the token, 404 for unknown claims and tasks, 409 when the current
//! state forbids the request (an illegal task transition, someone else's claim), 413 for an
//! oversized body, 422 for a body its kind does not allow (the field is named) and 507 when the
//! disk holding the log is full. A refused request writes nothing. Publishing routes (every `POST`) take an `Idempotency-Key` header
//! ([`idempotency`]): a retry of the same request returns the first answer.

pub(crate) mod a2a;
mod events;
mod governance;
mod idempotency;
mod late;
mod routes;
mod timeline;
mod ui;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use plexus_protocol::coord::BodyError;
use plexus_protocol::policy::{Rule, Violation};
use plexus_protocol::{EntryError, MAX_BODY_LEN};
use serde_json::json;
use tokio::sync::watch;

use crate::node::{NodeError, SharedNode};

/// Largest request body: an entry body is at most 64,000 bytes of canonical CBOR, and its JSON
/// form can be about twice that.
pub const MAX_REQUEST_BYTES: usize = 160 * 1024;

/// Every route, as `(method, path)`; the OpenAPI document describes exactly these.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/v1/health"),
    ("get", "/v1/status"),
    ("get", "/v1/node"),
    ("get", "/v1/peers"),
    ("get", "/v1/openapi.json"),
    ("post", "/v1/capability"),
    ("post", "/v1/capability/revoke"),
    ("get", "/v1/agents"),
    ("post", "/v1/claims"),
    ("get", "/v1/claims/{claim_id}"),
    ("post", "/v1/claims/{claim_id}/renew"),
    ("post", "/v1/claims/{claim_id}/release"),
    ("get", "/v1/leases"),
    ("get", "/v1/timeline"),
    ("post", "/v1/tasks"),
    ("get", "/v1/tasks"),
    ("get", "/v1/tasks/{task_id}"),
    ("post", "/v1/constraints"),
    ("get", "/v1/constraints"),
    ("post", "/v1/patterns"),
    ("get", "/v1/patterns"),
    ("post", "/v1/entries"),
    ("get", "/v1/log"),
    ("get", "/v1/rejections"),
    ("get", "/v1/events"),
    ("get", "/v1/policy"),
    ("post", "/v1/policy"),
    ("get", "/v1/members"),
    ("get", "/v1/metrics"),
    ("get", "/ui/"),
    ("get", "/ui/{path}"),
    ("get", "/.well-known/agent-card.json"),
    ("get", "/v1/a2a/cards"),
    ("post", "/mcp"),
    ("get", "/mcp"),
    ("delete", "/mcp"),
];

/// The OpenAPI 3.1 document served at `/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Shared state of the API handlers.
#[derive(Debug, Clone)]
pub struct ApiState {
    pub node: SharedNode,
    pub token: Arc<str>,
    /// The namespace used when a request names none.
    pub namespace: Arc<str>,
    /// Turns true when the server shuts down, which ends open event streams.
    pub shutdown: watch::Receiver<bool>,
}

/// The API's routes, with MCP's Streamable HTTP endpoint at `/mcp` behind the same token.
pub fn router(state: ApiState) -> Router {
    let routes = routes(state.clone());
    let mcp = crate::mcp::http_service(state.clone(), routes.clone());
    Router::new()
        .nest_service("/mcp", mcp)
        .layer(middleware::from_fn_with_state(state, authorize))
        .merge(routes)
}

/// The API's routes without `/mcp`: also what the MCP tools call in process.
fn routes(state: ApiState) -> Router {
    // Kept in the node's database, so a retry across a restart still gets the first answer.
    let idempotency_keys = Arc::new(
        idempotency::IdempotencyKeys::persistent(Arc::clone(state.node.log())).unwrap_or_else(
            |error| {
                tracing::warn!(
                    %error,
                    "cannot read the idempotency keys kept in the data directory; keys are \
                     kept in memory only until the node restarts"
                );
                idempotency::IdempotencyKeys::default()
            },
        ),
    );
    let protected = Router::new()
        .route("/v1/status", get(routes::status))
        .route("/v1/node", get(routes::node_info))
        .route("/v1/peers", get(routes::peers))
        .route("/v1/openapi.json", get(routes::openapi))
        .route("/v1/capability", post(routes::post_capability))
        .route(
            "/v1/capability/revoke",
            post(routes::post_capability_revoke),
        )
        .route("/v1/agents", get(routes::agents))
        .route("/v1/claims", post(routes::post_claim))
        .route("/v1/claims/{claim_id}", get(routes::get_claim))
        .route("/v1/claims/{claim_id}/renew", post(routes::post_renew))
        .route("/v1/claims/{claim_id}/release", post(routes::post_release))
        .route("/v1/leases", get(routes::leases))
        .route("/v1/timeline", get(timeline::timeline))
        .route("/v1/tasks", post(routes::post_task).get(routes::tasks))
        .route("/v1/tasks/{task_id}", get(routes::get_task))
        .route(
            "/v1/constraints",
            post(routes::post_constraint).get(routes::constraints),
        )
        .route(
            "/v1/patterns",
            post(routes::post_pattern).get(routes::patterns),
        )
        .route("/v1/entries", post(routes::post_entry))
        .route("/v1/log", get(routes::log))
        .route("/v1/rejections", get(routes::rejections))
        .route("/v1/events", get(events::events))
        .route(
            "/v1/policy",
            get(governance::policy).post(governance::post_policy),
        )
        .route("/v1/members", get(governance::members))
        .route("/v1/metrics", get(governance::metrics))
        .route("/v1/a2a/cards", get(a2a::cards))
        // Inside the token check: only an authorised request may use (or probe) a key.
        .route_layer(middleware::from_fn_with_state(
            idempotency_keys,
            idempotency::layer,
        ))
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize));
    Router::new()
        .route("/v1/health", get(routes::health))
        .route("/.well-known/agent-card.json", get(a2a::own_card))
        .route("/ui", get(ui::redirect))
        .route("/ui/", get(ui::index))
        .route("/ui/{*path}", get(ui::file))
        .merge(protected)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(state)
}

/// An API error: status, stable code, message, and the offending field when there is one.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    /// For policy refusals: the rule, the policy version used, and when to retry.
    pub policy: Option<Box<Violation>>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            policy: None,
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> ApiError {
        self.field = Some(field.into());
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "error": { "code": self.code, "message": self.message, "field": self.field }
        });
        let mut retry_after = None;
        if let Some(violation) = &self.policy {
            body["error"]["rule"] = json!(violation.rule.code());
            body["error"]["policyVersion"] = json!(violation.policy_version);
            if let Some(ms) = violation.retry_after_ms {
                body["error"]["retryAfterMs"] = json!(ms);
                retry_after = Some(ms.div_ceil(1000).max(1));
            }
        }
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = retry_after {
            if let Ok(value) = header::HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

impl From<BodyError> for ApiError {
    fn from(error: BodyError) -> ApiError {
        let field = error.field().map(str::to_owned);
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: error.code(),
            message: error.to_string(),
            field,
            policy: None,
        }
    }
}

impl From<Violation> for ApiError {
    /// 429 with `Retry-After` for the rate limit, 403 for every other rule.
    fn from(violation: Violation) -> ApiError {
        let status = if violation.rule == Rule::RateLimited {
            StatusCode::TOO_MANY_REQUESTS
        } else {
            StatusCode::FORBIDDEN
        };
        ApiError {
            status,
            code: "policy_violation",
            message: violation.message.clone(),
            field: None,
            policy: Some(Box::new(violation)),
        }
    }
}

impl From<NodeError> for ApiError {
    fn from(error: NodeError) -> ApiError {
        match error {
            NodeError::Body(error) => error.into(),
            NodeError::Invalid(message) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
            }
            NodeError::NotFound(message) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
            }
            NodeError::Conflict(message) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", message)
            }
            NodeError::Net(error @ crate::net::NetError::TooManyNamespaces { .. }) => {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid",
                    error.to_string(),
                )
            }
            NodeError::Store(crate::store::StoreError::Body(error)) => error.into(),
            NodeError::Store(crate::store::StoreError::Entry(error)) => entry_error(&error),
            NodeError::Store(crate::store::StoreError::Policy(violation)) => violation.into(),
            NodeError::Store(error @ crate::store::StoreError::DiskFull { .. }) => ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "disk_full",
                error.to_string(),
            ),
            other => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                other.to_string(),
            ),
        }
    }
}

/// A body that fits the request limit but not an entry is the caller's to fix: 413 when it is
/// too large, 422 for any other field of the entry, never 503.
fn entry_error(error: &EntryError) -> ApiError {
    match error {
        EntryError::TooLarge { .. }
        | EntryError::Field {
            field: "body_len", ..
        } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "the entry is too large: {error}; an entry body holds at most {MAX_BODY_LEN} \
                 bytes in canonical form, so split the data or store it elsewhere and publish \
                 a reference"
            ),
        )
        .with_field("body"),
        other => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_entry",
            format!("the entry cannot be formed: {other}"),
        ),
    }
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_route",
        "no such route: see GET /v1/openapi.json for the API",
    )
}

/// Checks the bearer token in constant time.
async fn authorize(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer_token)
        .unwrap_or_default();
    if constant_time_eq(presented.as_bytes(), state.token.as_bytes()) {
        next.run(request).await
    } else {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token: send `Authorization: Bearer <token>` with the token \
             from api.token in the node's data directory",
        )
        .into_response()
    }
}

/// The token of an `Authorization: Bearer <token>` header value. The scheme name is
/// case-insensitive (RFC 9110 §11.1), so `bearer` and `BEARER` are the same scheme.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start())
}

/// Compares two byte strings without an early exit on the first difference.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::{bearer_token, constant_time_eq, OPENAPI, ROUTES};

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER  abc"), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearerabc"), None);
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    #[test]
    fn the_openapi_document_describes_every_route_and_no_other() {
        let document: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        assert_eq!(document["openapi"], "3.1.0");
        let mut documented = BTreeSet::new();
        for (path, item) in document["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                if method != "parameters" {
                    documented.insert((method.clone(), path.clone()));
                }
            }
        }
        let routes: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
            .collect();
        assert_eq!(documented, routes);
    }
}
