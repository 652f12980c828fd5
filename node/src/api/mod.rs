//! The node's local HTTP API (served by `plexus run`): what agents use to publish and query.
//!
//! Bound to 127.0.0.1 by default. Every route but `GET /v1/health` needs
//! `Authorization: Bearer <token>`, the content of `api.token` in the data directory (mode
//! 0600), compared in constant time. Request bodies are capped at [`MAX_REQUEST_BYTES`].
//! Routes that concern one coordination space take `?namespace=` (default: the node's
//! configured namespace). The full contract is the OpenAPI document at `GET /v1/openapi.json`
//! (`api/openapi.json`); [`ROUTES`] lists the same routes, and a test keeps the two equal.
//!
//! Errors are JSON, `{"error": {"code", "message", "field"}}`, with 400 for unreadable JSON or
//! query strings, 401 without the token, 404 for unknown claims and tasks, 409 when the current
//! state forbids the request (an illegal task transition, someone else's claim), 413 for an
//! oversized body and 422 for a body its kind does not allow (the field is named). A refused
//! request writes nothing.

mod events;
mod governance;
mod routes;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use plexus_protocol::coord::BodyError;
use plexus_protocol::policy::{Rule, Violation};
use serde_json::json;
use tokio::sync::watch;

use crate::node::{Node, NodeError};

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
];

/// The OpenAPI 3.1 document served at `/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Shared state of the API handlers.
#[derive(Debug, Clone)]
pub struct ApiState {
    pub node: Arc<Node>,
    pub token: Arc<str>,
    /// The namespace used when a request names none.
    pub namespace: Arc<str>,
    /// Turns true when the server shuts down, which ends open event streams.
    pub shutdown: watch::Receiver<bool>,
}

/// The API's routes.
pub fn router(state: ApiState) -> Router {
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
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize));
    Router::new()
        .route("/v1/health", get(routes::health))
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
            NodeError::Store(crate::store::StoreError::Policy(violation)) => violation.into(),
            other => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                other.to_string(),
            ),
        }
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
        .and_then(|value| value.strip_prefix("Bearer "))
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

    use super::{constant_time_eq, OPENAPI, ROUTES};

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
