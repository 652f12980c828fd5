//! The node's local HTTP API (served by `plexus run`), bound to 127.0.0.1 by default.
//!
//! Routes (all JSON; every route but `/v1/health` needs `Authorization: Bearer <token>`, where
//! the token is the content of `api.token` in the data directory, mode 0600):
//!
//! | route            | answer                                                     |
//! |------------------|------------------------------------------------------------|
//! | `GET /v1/health` | `{"status": "ok", "agent_id": ...}`                        |
//! | `GET /v1/status` | peers, topics, feed heads, pending and backfill progress   |
//!
//! The coordination routes (publishing kinds, queries, the change stream) build on this.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::node::Node;

/// Shared state of the API handlers.
#[derive(Debug, Clone)]
pub struct ApiState {
    pub node: Arc<Node>,
    pub token: Arc<str>,
}

/// The API's routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/status", get(status))
        .with_state(state)
}

async fn health(State(state): State<ApiState>) -> Json<serde_json::Value> {
    Json(json!({ "status": "ok", "agent_id": state.node.agent_id().to_string() }))
}

async fn status(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    if let Err(response) = authorize(&state, &headers) {
        return response;
    }
    match state.node.status().await {
        Ok(status) => Json(status).into_response(),
        Err(error) => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            &error.to_string(),
        ),
    }
}

/// Checks the bearer token in constant time.
#[allow(clippy::result_large_err)]
fn authorize(state: &ApiState, headers: &HeaderMap) -> Result<(), Response> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default();
    if constant_time_eq(presented.as_bytes(), state.token.as_bytes()) {
        Ok(())
    } else {
        Err(error_response(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token: send `Authorization: Bearer <token>` with the token \
             from api.token in the node's data directory",
        ))
    }
}

/// Compares two byte strings without an early exit on the first difference.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({ "error": { "code": code, "message": message } })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn tokens_compare_exactly() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
