//! The API's request handlers: publishing each kind, and querying the view and the log.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use plexus_crypto::AgentId;
use plexus_protocol::coord::view::{CardQuery, ClaimStanding};
use plexus_protocol::coord::{parse_entry_id, Body, IntentRelease, IntentRenew, TaskState};
use plexus_protocol::entry::check_name;
use plexus_protocol::value::ValueError;
use plexus_protocol::{Entry, Kind};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiError, ApiState, OPENAPI};
use crate::clock::now_ms;
use crate::coord::ViewGuard;

/// Most items one list request returns.
const MAX_PAGE: usize = 1000;
/// Items a list request returns when it names no limit.
const DEFAULT_PAGE: usize = 100;

/// Query parameters every namespaced route accepts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NamespaceQuery {
    pub(super) namespace: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AgentsQuery {
    namespace: Option<String>,
    skill: Option<String>,
    tag: Option<String>,
    q: Option<String>,
    /// The view at this moment (Unix milliseconds) instead of now.
    at: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LeasesQuery {
    namespace: Option<String>,
    resource: Option<String>,
    holder: Option<String>,
    at: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TasksQuery {
    namespace: Option<String>,
    state: Option<String>,
    context: Option<String>,
    at: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TaskQuery {
    namespace: Option<String>,
    at: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PatternsQuery {
    namespace: Option<String>,
    topic: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LogQuery {
    namespace: Option<String>,
    author: Option<String>,
    kind: Option<String>,
    after: Option<u64>,
    limit: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LimitQuery {
    limit: Option<usize>,
}

/// `POST /v1/entries`: any kind, the body given as JSON.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryRequest {
    kind: String,
    body: Value,
}

type Reply = Result<Response, ApiError>;

pub(super) async fn health(State(state): State<ApiState>) -> Json<Value> {
    Json(json!({ "status": "ok", "agent_id": state.node.agent_id().to_string() }))
}

pub(super) async fn status(State(state): State<ApiState>) -> Reply {
    Ok(Json(state.node.status().await?).into_response())
}

pub(super) async fn node_info(State(state): State<ApiState>) -> Reply {
    let network = state
        .node
        .net()
        .status()
        .await
        .map_err(crate::node::NodeError::from)?;
    Ok(Json(json!({
        "agent_id": state.node.agent_id().to_string(),
        "peer_id": network.peer_id,
        "version": env!("CARGO_PKG_VERSION"),
        "namespace": &*state.namespace,
        "namespaces": network.namespaces,
        "listen_addrs": network.listen_addrs,
        "entries_in_view": state.node.coord().applied(),
    }))
    .into_response())
}

pub(super) async fn peers(State(state): State<ApiState>) -> Reply {
    let network = state
        .node
        .net()
        .status()
        .await
        .map_err(crate::node::NodeError::from)?;
    Ok(Json(json!({ "peers": network.peers })).into_response())
}

pub(super) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

pub(super) async fn post_capability(
    State(state): State<ApiState>,
    query: Result<Query<NamespaceQuery>, QueryRejection>,
    body: Bytes,
) -> Reply {
    publish_kind(&state, query, Kind::Capability, &body).await
}

pub(super) async fn post_capability_revoke(
    State(state): State<ApiState>,
    query: Result<Query<NamespaceQuery>, QueryRejection>,
    body: Bytes,
) -> Reply {
    let body = if body.is_empty() {
        Bytes::from_static(b"{}")
    } else {
        body
    };
    publish_kind(&state, query, Kind::CapabilityRevoke, &body).await
}

pub(super) async fn post_constraint(
    State(state): State<ApiState>,
    query: Result<Query<NamespaceQuery>, QueryRejection>,
    body: Bytes,
) -> Reply {
    publish_kind(&state, query, Kind::Constraint, &body).await
}

pub(super) async fn post_pattern(
    State(state): State<ApiState>,
    query: Result<Query<NamespaceQuery>, QueryRejection>,
    body: Bytes,
) -> Reply {
    publish_kind(&state, query, Kind::Pattern, &body).await
}

pub(super) async fn post_entry(
    State(state): State<ApiState>,
    query: Result<Query<NamespaceQuery>, QueryRejection>,
    body: Bytes,
) -> Reply {
    let namespace = namespace(&state, query?.0.namespace)?;
    let request: EntryRequest = parse_as(&body)?;
    check_name("kind", &request.kind).map_err(|error| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_field",
            error.to_string(),
        )
        .with_field("kind")
    })?;
    if let Ok(Kind::Intent | Kind::IntentRenew | Kind::IntentRelease | Kind::Task | Kind::Policy) =
        Kind::parse(&request.kind)
    {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "use_specific_route",
            format!(
                "publish {} through its own route (/v1/claims, /v1/tasks or /v1/policy), \
                 which checks the claim's owner, the task's transition or the trust root \
                 first",
                request.kind
            ),
        )
        .with_field("kind"));
    }
    let body = Body::from_json(&request.kind, request.body).map_err(with_body_prefix)?;
    let entry = state
        .node
        .publish_parsed(&namespace, &request.kind, body)
        .await?;
    created(json!({ "entry": entry_json(&entry) }))
}

pub(super) async fn agents(
    State(state): State<ApiState>,
    query: Result<Query<AgentsQuery>, QueryRejection>,
) -> Reply {
    let query = query?.0;
    let namespace = namespace(&state, query.namespace)?;
    let filter = CardQuery {
        skill: query.skill,
        tag: query.tag,
        text: query.q,
    };
    let at = query.at.unwrap_or_else(now_ms);
    let view = state.node.coord().view();
    within_history(&view, at)?;
    let cards = view.cards(&namespace, &filter, at);
    drop(view);
    Ok(Json(json!({ "namespace": namespace, "at_ms": at, "agents": cards })).into_response())
}

pub(super) async fn post_claim(
    State(state): State<ApiState>,
    query: Result<Query<NamespaceQuery>, QueryRejection>,
    body: Bytes,
) -> Reply {
    let namespace = namespace(&state, query?.0.namespace)?;
    let Body::Intent(intent) = Body::from_json(Kind::Intent.as_str(), parse_json(&body)?)? else {
        unreachable_kind()?
    };
    let (entry, claim) = state.node.claim(&namespace, intent).await?;
    created(json!({ "entry": entry_json(&entry), "claim": claim }))
}

pub(super) async fn get_claim(
    State(state): State<ApiState>,
    Path(claim_id): Path<String>,
    query: Result<Query<NamespaceQuery>, QueryRejection>,
) -> Reply {
    let namespace = namespace(&state, query?.0.namespace)?;
    let id = claim_id_of(&claim_id)?;
    let view = state.node.coord().view();
    let claim = view
        .claim(&namespace, &id, now_ms())
        .ok_or_else(|| no_claim(&claim_id, &namespace, view.kept_from_ms()))?;
    let mut claim = serde_json::to_value(&claim).unwrap_or_default();
    super::late::annotate(&mut claim, &view);
    Ok(Json(claim).into_response())
}

pub(super) async fn post_renew(
    State(state): State<ApiState>,
    Path(claim_id): Path<String>,
    query: Result<Query<NamespaceQuery>, QueryRejection>,
    body: Bytes,
) -> Reply {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct RenewRequest {
        lease_ms: u64,
    }
    let namespace = namespace(&state, query?.0.namespace)?;
    let id = claim_id_of(&claim_id)?;
    let request: RenewRequest = parse_as(&body)?;
    let renew = IntentRenew {
        claim: claim_id,
        lease_ms: request.lease_ms,
    };
    // Check the body before looking the claim up, so a bad lease is a 422 either way.
    Body::from_json(
        Kind::IntentRenew.as_str(),
        serde_json::to_value(&renew).unwrap_or_default(),
    )?;
    refuse_if_released(&state, &namespace, &id, "renewed")?;
    let (entry, claim) = state.node.renew(&namespace, renew).await?;
    created(json!({ "entry": entry_json(&entry), "claim": claim }))
}

pub(super) async fn post_release(
    State(state): State<ApiState>,
    Path(claim_id): Path<String>,
    query: Result<Query<NamespaceQuery>, QueryRejection>,
) -> Reply {
    let namespace = namespace(&state, query?.0.namespace)?;
    let id = claim_id_of(&claim_id)?;
    refuse_if_released(&state, &namespace, &id, "released again")?;
    let entry = state
        .node
        .release(&namespace, IntentRelease { claim: claim_id })
        .await?;
    created(json!({ "entry": entry_json(&entry) }))
}

pub(super) async fn leases(
    State(state): State<ApiState>,
    query: Result<Query<LeasesQuery>, QueryRejection>,
) -> Reply {
    let query = query?.0;
    let namespace = namespace(&state, query.namespace)?;
    let holder = match &query.holder {
        Some(holder) => Some(holder.parse::<AgentId>().map_err(|error| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_query",
                format!("holder: {error}"),
            )
            .with_field("holder")
        })?),
        None => None,
    };
    let now = query.at.unwrap_or_else(now_ms);
    let view = state.node.coord().view();
    within_history(&view, now)?;
    let mut leases = match &query.resource {
        Some(resource) => vec![view.lease(&namespace, resource, now)],
        None => view.leases(&namespace, now),
    };
    if let Some(holder) = holder {
        let holder = holder.to_string();
        leases.retain(|lease| lease.holders.iter().any(|claim| claim.author == holder));
    }
    let mut answer = json!({ "namespace": namespace, "at_ms": now, "leases": leases });
    super::late::annotate(&mut answer["leases"], &view);
    drop(view);
    Ok(Json(answer).into_response())
}

pub(super) async fn post_task(
    State(state): State<ApiState>,
    query: Result<Query<NamespaceQuery>, QueryRejection>,
    body: Bytes,
) -> Reply {
    let namespace = namespace(&state, query?.0.namespace)?;
    let Body::Task(update) = Body::from_json(Kind::Task.as_str(), parse_json(&body)?)? else {
        unreachable_kind()?
    };
    let task_id = update.task_id.clone();
    let entry = state.node.update_task(&namespace, update).await?;
    let task = state.node.coord().view().task(
        &namespace,
        &task_id,
        now_ms().max(entry.header().timestamp_ms),
    );
    created(json!({ "entry": entry_json(&entry), "task": task }))
}

pub(super) async fn tasks(
    State(state): State<ApiState>,
    query: Result<Query<TasksQuery>, QueryRejection>,
) -> Reply {
    let query = query?.0;
    let namespace = namespace(&state, query.namespace)?;
    let wanted_state = match &query.state {
        Some(text) => Some(text.parse::<TaskState>().map_err(|problem| {
            ApiError::new(StatusCode::BAD_REQUEST, "bad_query", problem).with_field("state")
        })?),
        None => None,
    };
    let at = query.at.unwrap_or_else(now_ms);
    let view = state.node.coord().view();
    within_history(&view, at)?;
    let mut tasks = view.tasks(&namespace, at);
    drop(view);
    tasks.retain(|task| {
        wanted_state.is_none_or(|wanted| task.state == wanted)
            && query
                .context
                .as_ref()
                .is_none_or(|context| &task.context_id == context)
    });
    Ok(Json(json!({ "namespace": namespace, "at_ms": at, "tasks": tasks })).into_response())
}

pub(super) async fn get_task(
    State(state): State<ApiState>,
    Path(task_id): Path<String>,
    query: Result<Query<TaskQuery>, QueryRejection>,
) -> Reply {
    let query = query?.0;
    let namespace = namespace(&state, query.namespace)?;
    let at = query.at.unwrap_or_else(now_ms);
    let view = state.node.coord().view();
    within_history(&view, at)?;
    let task = view.task(&namespace, &task_id, at);
    let Some(task) = task else {
        return Err(no_task(&task_id, &namespace, &view));
    };
    drop(view);
    Ok(Json(task).into_response())
}

pub(super) async fn constraints(
    State(state): State<ApiState>,
    query: Result<Query<NamespaceQuery>, QueryRejection>,
) -> Reply {
    let namespace = namespace(&state, query?.0.namespace)?;
    let constraints = state.node.coord().view().constraints(&namespace, now_ms());
    Ok(Json(json!({ "namespace": namespace, "constraints": constraints })).into_response())
}

pub(super) async fn patterns(
    State(state): State<ApiState>,
    query: Result<Query<PatternsQuery>, QueryRejection>,
) -> Reply {
    let query = query?.0;
    let namespace = namespace(&state, query.namespace)?;
    let patterns = state
        .node
        .coord()
        .view()
        .patterns(&namespace, query.topic.as_deref(), now_ms());
    Ok(Json(json!({ "namespace": namespace, "patterns": patterns })).into_response())
}

/// `GET /v1/log`: stored entries in this node's arrival order, paged by arrival number.
pub(super) async fn log(
    State(state): State<ApiState>,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> Reply {
    let query = query?.0;
    if let Some(namespace) = &query.namespace {
        check_namespace(namespace)?;
    }
    let author = match &query.author {
        Some(author) => Some(author.parse::<AgentId>().map_err(|error| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_query",
                format!("author: {error}"),
            )
            .with_field("author")
        })?),
        None => None,
    };
    let limit = page_limit(query.limit)?;
    let log = Arc::clone(state.node.log());
    let from = query.after.map_or(0, |after| after.saturating_add(1));
    let page =
        tokio::task::spawn_blocking(move || -> Result<(Vec<Value>, Option<u64>), ApiError> {
            let mut entries = Vec::new();
            let mut last = None;
            for item in log.journal(from) {
                let item = item.map_err(|error| {
                    ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "unavailable",
                        error.to_string(),
                    )
                })?;
                last = Some(item.arrival);
                let header = item.entry.header();
                let wanted = query
                    .namespace
                    .as_ref()
                    .is_none_or(|ns| &header.namespace == ns)
                    && author.is_none_or(|author| header.author == author)
                    && query.kind.as_ref().is_none_or(|kind| &header.kind == kind);
                if wanted {
                    let mut value = entry_json(&item.entry);
                    value["arrival"] = json!(item.arrival);
                    if let Some(reception) = item.reception {
                        value["received_via"] = json!(reception.arrival.as_str());
                        value["received_ms"] = json!(reception.received_ms);
                    }
                    value["body"] = item
                        .entry
                        .body()
                        .and_then(|bytes| plexus_protocol::value::canonical_to_json(bytes).ok())
                        .unwrap_or(Value::Null);
                    entries.push(value);
                    if entries.len() == limit {
                        break;
                    }
                }
            }
            Ok((entries, last))
        })
        .await
        .map_err(|error| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                error.to_string(),
            )
        })??;
    let (entries, last) = page;
    Ok(Json(json!({ "entries": entries, "last_arrival": last })).into_response())
}

/// `GET /v1/rejections`: the newest records of the rejection journal, newest last.
pub(super) async fn rejections(
    State(state): State<ApiState>,
    query: Result<Query<LimitQuery>, QueryRejection>,
) -> Reply {
    let limit = page_limit(query?.0.limit)?;
    let log = Arc::clone(state.node.log());
    let records = tokio::task::spawn_blocking(move || log.rejections())
        .await
        .map_err(|error| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                error.to_string(),
            )
        })?
        .map_err(|error| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                error.to_string(),
            )
        })?;
    let skip = records.len().saturating_sub(limit);
    let records: Vec<Value> = records
        .into_iter()
        .skip(skip)
        .map(|record| {
            json!({
                "counter": record.counter,
                "time_ms": record.time_ms,
                "reason": record.reason,
                "detail": record.detail,
                "input_hash": record.input_hash.to_string(),
                "input_len": record.input_len,
                "source": record.source,
                "rule": record.rule,
                "policy_version": record.policy_version,
            })
        })
        .collect();
    Ok(Json(json!({ "rejections": records })).into_response())
}

/// The JSON summary of a stored entry.
pub(super) fn entry_json(entry: &Entry) -> Value {
    let header = entry.header();
    json!({
        "entry_id": entry.id().to_string(),
        "namespace": header.namespace,
        "author": header.author.to_string(),
        "seq": header.seq,
        "kind": header.kind,
        "timestamp_ms": header.timestamp_ms,
    })
}

pub(super) fn namespace(state: &ApiState, requested: Option<String>) -> Result<String, ApiError> {
    let namespace = requested.unwrap_or_else(|| state.namespace.to_string());
    check_namespace(&namespace)?;
    Ok(namespace)
}

fn check_namespace(namespace: &str) -> Result<(), ApiError> {
    check_name("namespace", namespace).map_err(|error| {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_query", error.to_string())
            .with_field("namespace")
    })
}

fn page_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit.unwrap_or(DEFAULT_PAGE) {
        0 => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_query",
            "limit must be at least 1",
        )
        .with_field("limit")),
        n if n > MAX_PAGE => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_query",
            format!("limit must be at most {MAX_PAGE}; page with `after`"),
        )
        .with_field("limit")),
        n => Ok(n),
    }
}

async fn publish_kind(
    state: &ApiState,
    query: Result<Query<NamespaceQuery>, QueryRejection>,
    kind: Kind,
    body: &[u8],
) -> Reply {
    let namespace = namespace(state, query?.0.namespace)?;
    let body = Body::from_json(kind.as_str(), parse_json(body)?)?;
    let entry = state.node.publish_body(&namespace, body).await?;
    created(json!({ "entry": entry_json(&entry) }))
}

fn created(value: Value) -> Reply {
    Ok((StatusCode::CREATED, Json(value)).into_response())
}

pub(super) fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_json",
            "the request has no body: send a JSON object (Content-Type: application/json)",
        ));
    }
    // The body rules of docs/PROTOCOL.md §4 apply to the whole request: integer syntax stays
    // an integer, floats round correctly, duplicate keys are refused. One level more than a
    // body may nest, for the request object around a body.
    let max_depth = plexus_protocol::value::MAX_VALUE_DEPTH + 1;
    plexus_protocol::value::parse_json_request(body, max_depth).map_err(|error| match error {
        ValueError::Syntax { .. } => ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_json",
            format!("the request body is not valid JSON: {error}"),
        ),
        _ => {
            let field = error.field().map(str::to_owned);
            let api = ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad_value",
                error.to_string(),
            );
            match field {
                Some(field) => api.with_field(field),
                None => api,
            }
        }
    })
}

/// Parses a request body into `T`. A mistyped value is reported by the path of its field
/// (`leaseMs`), never by the value itself, which serde also quotes in backticks.
fn parse_as<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let value = parse_json(body)?;
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner().to_string();
        // At the top level serde names the field itself: "missing field `leaseMs`".
        let field = if path == "." {
            serde_field_named_in(&inner)
        } else {
            Some(path)
        };
        let message = match &field {
            Some(field) if !inner.contains(&format!("`{field}`")) => {
                format!("field `{field}`: {inner}")
            }
            _ => inner,
        };
        let error = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad_body", message);
        match field {
            Some(field) => error.with_field(field),
            None => error,
        }
    })
}

/// The field serde names in "missing field `x`" and "unknown field `x`, expected ...".
fn serde_field_named_in(message: &str) -> Option<String> {
    ["missing field `", "unknown field `", "duplicate field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next())
        .map(str::to_owned)
}

pub(super) fn with_body_prefix(error: plexus_protocol::coord::BodyError) -> ApiError {
    let mut api: ApiError = error.into();
    api.field = api.field.map(|field| format!("body.{field}"));
    api
}

fn claim_id_of(text: &str) -> Result<plexus_crypto::Hash256, ApiError> {
    parse_entry_id(text).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_claim_id",
            format!("{text:?} is not a claim id: use the 64 lowercase hex digits returned when claiming"),
        )
        .with_field("claim_id")
    })
}

/// A released claim is over: renewing or releasing it again would write an entry that
/// changes nothing, and tell the caller it worked.
fn refuse_if_released(
    state: &ApiState,
    namespace: &str,
    claim_id: &plexus_crypto::Hash256,
    verb: &str,
) -> Result<(), ApiError> {
    let released = state
        .node
        .coord()
        .view()
        .claim(namespace, claim_id, now_ms())
        .is_some_and(|claim| claim.standing == ClaimStanding::Released);
    if released {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "claim_released",
            format!(
                "claim {claim_id} was already released, so it cannot be {verb}: claim the \
                 resource anew with POST /v1/claims"
            ),
        )
        .with_field("claim_id"));
    }
    Ok(())
}

fn no_claim(claim_id: &str, namespace: &str, kept_from_ms: u64) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "no claim {claim_id} in namespace {namespace}: it has not reached this node, or it \
             ended before {kept_from_ms} (Unix ms), the start of the history the node's view \
             keeps (--view-history-minutes); the log keeps every claim: `plexus audit export`, \
             then `plexus audit replay EXPORT --at TIME`"
        ),
    )
}

fn no_task(task_id: &str, namespace: &str, view: &ViewGuard<'_>) -> ApiError {
    let message = match view.task_ended_before_history(namespace, task_id) {
        Some((state, ended_ms)) => format!(
            "task {task_id:?} in namespace {namespace} ended in {} at {ended_ms} (Unix ms), \
             before {} (Unix ms), the start of the history the node's view keeps \
             (--view-history-minutes): the log keeps its every update: `plexus audit export`, \
             then `plexus audit replay EXPORT --at TIME`",
            state.as_str(),
            view.kept_from_ms()
        ),
        None => format!("no task {task_id:?} in namespace {namespace}"),
    };
    ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
}

/// Refuses a moment before the history the view keeps: the view forgot what ended before it,
/// so its answer would be wrong, not merely old.
fn within_history(view: &ViewGuard<'_>, at_ms: u64) -> Result<(), ApiError> {
    let kept_from = view.kept_from_ms();
    if at_ms >= kept_from {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::GONE,
        "before_history",
        format!(
            "at={at_ms} is before {kept_from} (Unix ms), the start of the history this node's \
             view keeps (--view-history-minutes, default a day): ask for a later moment, or for \
             this one from the log, which keeps every entry: `plexus audit export`, then \
             `plexus audit replay EXPORT --at {at_ms}ms`"
        ),
    )
    .with_field("at"))
}

/// `Body::from_json(kind)` returns the variant of `kind`; this arm cannot be reached.
fn unreachable_kind<T>() -> Result<T, ApiError> {
    Err(ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the body parsed as another kind",
    ))
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        let message = rejection.body_text();
        let field = message.split('`').nth(1).map(str::to_owned);
        let error = ApiError::new(StatusCode::BAD_REQUEST, "bad_query", message);
        match field {
            Some(field) => error.with_field(field),
            None => error,
        }
    }
}
