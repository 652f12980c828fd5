//! `GET /v1/timeline`: each resource's lease history over a window of time, for the web page's
//! timeline (the fold of [`plexus_protocol::coord::View::timeline`]).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::routes::namespace;
use super::{ApiError, ApiState};
use crate::clock::now_ms;

/// Longest window one request may ask for: 31 days.
pub const MAX_TIMELINE_WINDOW_MS: u64 = 31 * 24 * 60 * 60 * 1000;

/// Window used when the request names none: the last hour.
const DEFAULT_WINDOW_MS: u64 = 60 * 60 * 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TimelineQuery {
    namespace: Option<String>,
    /// Start of the window, Unix milliseconds [default: an hour before `to`].
    from: Option<u64>,
    /// End of the window, Unix milliseconds [default: now].
    to: Option<u64>,
}

pub(super) async fn timeline(
    State(state): State<ApiState>,
    query: Result<Query<TimelineQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let query = query?.0;
    let namespace = namespace(&state, query.namespace)?;
    let to = query.to.unwrap_or_else(now_ms);
    let from = query
        .from
        .unwrap_or_else(|| to.saturating_sub(DEFAULT_WINDOW_MS));
    if from >= to {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_query",
            format!("from ({from}) must be before to ({to}): both are Unix milliseconds"),
        )
        .with_field("from"));
    }
    if to - from > MAX_TIMELINE_WINDOW_MS {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_query",
            format!(
                "the window from {from} to {to} is longer than {MAX_TIMELINE_WINDOW_MS} ms (31 \
                 days): ask for a shorter one"
            ),
        )
        .with_field("from"));
    }
    let view = state.node.coord().view();
    let timeline = view.timeline(&namespace, from, to);
    let mut body = serde_json::to_value(&timeline).unwrap_or_default();
    super::late::annotate(&mut body["resources"], &view);
    drop(view);
    body["namespace"] = json!(namespace);
    Ok(Json(body).into_response())
}
