//! Governance routes: the policy in force and its history, publishing a policy (admins),
//! the member list, and the node's metrics.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use plexus_protocol::coord::Body;
use plexus_protocol::policy::{PolicyBook, PolicyRecord};
use plexus_protocol::Kind;
use serde_json::{json, Value};

use super::routes::{entry_json, namespace, parse_json, with_body_prefix, NamespaceQuery};
use super::{ApiError, ApiState};
use crate::clock::now_ms;

type Reply = Result<Response, ApiError>;

/// `GET /v1/policy`: whether the namespace is governed, its admins, the policy in force now,
/// the newest one, and every version known.
pub(super) async fn policy(
    State(state): State<ApiState>,
    query: Result<Query<NamespaceQuery>, QueryRejection>,
) -> Reply {
    let namespace = namespace(&state, query?.0.namespace)?;
    let Some(book) = policy_book(&state, &namespace).await? else {
        return Ok(Json(open_namespace(&namespace)).into_response());
    };
    let book = &book;
    let now = now_ms();
    Ok(Json(json!({
        "namespace": namespace,
        "governed": true,
        "admins": admins(book),
        "inForce": book.in_force(now).map(record_json),
        "latest": book.latest().map(record_json),
        "history": book.records().iter().map(|record| json!({
            "version": record.version,
            "entryId": record.entry_id.to_string(),
            "author": record.author.to_string(),
            "timestampMs": record.timestamp_ms,
            "effectiveFrom": record.effective_from,
        })).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// `POST /v1/policy`: publishes a policy body, signed with this node's key. Only an admin
/// of the namespace's trust root may; the log refuses anyone else.
pub(super) async fn post_policy(
    State(state): State<ApiState>,
    query: Result<Query<NamespaceQuery>, QueryRejection>,
    body: Bytes,
) -> Reply {
    let namespace = namespace(&state, query?.0.namespace)?;
    if !state.node.log().trust_roots().contains_key(&namespace) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_governed",
            format!(
                "namespace {namespace} is open on this node: start it with --trust-root \
                 {namespace}=<admin id> (or [governance.trust_roots] in the config) first"
            ),
        ));
    }
    let body =
        Body::from_json(Kind::Policy.as_str(), parse_json(&body)?).map_err(with_body_prefix)?;
    if let Body::Policy(policy) = &body {
        let newest = policy_book(&state, &namespace)
            .await?
            .and_then(|book| book.latest().map(|record| record.version))
            .unwrap_or(0);
        check_version_step(policy.version, newest)?;
    }
    let entry = state.node.publish_body(&namespace, body).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "entry": entry_json(&entry) })),
    )
        .into_response())
}

/// How far past the newest known version this node signs a policy (PROTOCOL §10.1): a version
/// near 2^64 would leave the namespace no room to move on.
const MAX_VERSION_STEP: u64 = 1000;

/// Refuses to sign a policy `version` more than [`MAX_VERSION_STEP`] past `newest`, the highest
/// version this node knows for the namespace (0 if none).
fn check_version_step(version: u64, newest: u64) -> Result<(), ApiError> {
    let ceiling = newest.saturating_add(MAX_VERSION_STEP);
    if version <= ceiling {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "version_too_far",
        format!(
            "policy v{version} skips too far ahead (at most v{ceiling}, {MAX_VERSION_STEP} past \
             v{newest}, the newest version this node knows): later versions must stay \
             possible, so use the next version"
        ),
    )
    .with_field("version"))
}

/// `GET /v1/members`: the members of the policy in force, their roles, and revocations.
pub(super) async fn members(
    State(state): State<ApiState>,
    query: Result<Query<NamespaceQuery>, QueryRejection>,
) -> Reply {
    let namespace = namespace(&state, query?.0.namespace)?;
    let Some(book) = policy_book(&state, &namespace).await? else {
        return Ok(Json(open_namespace(&namespace)).into_response());
    };
    let book = &book;
    let in_force = book.in_force(now_ms());
    let members: Vec<Value> = in_force
        .map(|record| {
            record
                .policy
                .members()
                .map(|(agent, roles)| {
                    json!({
                        "agent": agent.to_string(),
                        "roles": roles,
                        "revokedAfterSeq": book.revoked_after(agent),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    // Every revocation any known policy carries applies, including one in a signed version
    // not yet in force.
    let revoked: Vec<Value> = book
        .revocations()
        .map(|(agent, after_seq)| json!({ "agent": agent.to_string(), "afterSeq": after_seq }))
        .collect();
    Ok(Json(json!({
        "namespace": namespace,
        "governed": true,
        "policyVersion": in_force.map(|record| record.version),
        "admins": admins(book),
        "members": members,
        "revoked": revoked,
    }))
    .into_response())
}

/// `GET /v1/metrics`: Prometheus text format.
pub(super) async fn metrics(State(state): State<ApiState>) -> Reply {
    let log = Arc::clone(state.node.log());
    // The log's locks are held across synced writes: never wait for them on a runtime thread.
    let (stats, memory, counts, versions) = tokio::task::spawn_blocking(move || {
        let now = now_ms();
        let governor = log.governor_versions(now);
        log.stats()
            .map(|stats| (stats, log.memory(), log.rejection_counts(), governor))
    })
    .await
    .map_err(|error| unavailable(error.to_string()))?
    .map_err(|error| unavailable(error.to_string()))?;
    let net = state.node.net().status().await.unwrap_or_default();
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    };
    gauge(
        "plexus_log_entries",
        "Entries stored in the log.",
        stats.entries,
    );
    gauge("plexus_log_feeds", "Feeds in the log.", stats.feeds);
    gauge("plexus_log_forks", "Fork proofs stored.", stats.forks);
    gauge(
        "plexus_log_pending",
        "Entries waiting for their predecessors.",
        stats.pending,
    );
    gauge(
        "plexus_rejection_journal_records",
        "Records ever written to the rejection journal (it keeps the newest 100000).",
        stats.rejected,
    );
    gauge(
        "plexus_store_memtable_bytes",
        "Bytes RocksDB holds written but not yet flushed, all column families (a 32 MiB budget).",
        memory.memtables,
    );
    gauge(
        "plexus_store_block_cache_bytes",
        "Bytes of blocks in RocksDB's block cache (32 MiB, shared by every column family).",
        memory.block_cache,
    );
    if let Some(heap) = crate::heap::read() {
        gauge(
            "plexus_heap_allocated_bytes",
            "Bytes the process has allocated and not freed (RocksDB's included).",
            heap.allocated,
        );
        gauge(
            "plexus_heap_resident_bytes",
            "Bytes of memory the allocator holds resident: the allocated bytes, its metadata \
             and freed pages not yet returned to the system.",
            heap.resident,
        );
    }
    gauge("plexus_peers", "Connected peers.", net.peers.len() as u64);
    gauge(
        "plexus_connections_inbound",
        "Established inbound connections.",
        net.connections.incoming.into(),
    );
    gauge(
        "plexus_connections_outbound",
        "Established outbound connections.",
        net.connections.outgoing.into(),
    );
    gauge(
        "plexus_connections_limit",
        "The connection limit (--max-connections).",
        net.connections.max_established.into(),
    );
    out.push_str(
        "# HELP plexus_connections_refused_total Connections refused at the connection limits, \
         by direction (outbound: this node's own dials).\n\
         # TYPE plexus_connections_refused_total counter\n",
    );
    for (direction, count) in [
        ("inbound", net.connections.refused_incoming),
        ("outbound", net.connections.refused_outgoing),
    ] {
        let _ = writeln!(
            out,
            "plexus_connections_refused_total{{direction=\"{direction}\"}} {count}"
        );
    }
    out.push_str(
        "# HELP plexus_rejections_total Input refused since the node started, by reason and \
         rule (policy) or limit (throttled).\n# TYPE plexus_rejections_total counter\n",
    );
    for (key, count) in counts {
        let (reason, detail) = key.split_once(':').unwrap_or((key.as_str(), ""));
        let _ = writeln!(
            out,
            "plexus_rejections_total{{reason=\"{reason}\",detail=\"{detail}\"}} {count}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP plexus_gossip_publish_failures_total This agent's stored entries that gossip \
         could not take (peers fetch them by backfill).\n\
         # TYPE plexus_gossip_publish_failures_total counter\n\
         plexus_gossip_publish_failures_total {}",
        state.node.gossip_failures()
    );
    let forward = net.gossip_forward_latency;
    let _ = writeln!(
        out,
        "# HELP plexus_gossip_forward_latency_seconds From receipt to forward of accepted \
         gossip (admission, signature check, write), since the node started.\n\
         # TYPE plexus_gossip_forward_latency_seconds summary\n\
         plexus_gossip_forward_latency_seconds{{quantile=\"0.5\"}} {}\n\
         plexus_gossip_forward_latency_seconds{{quantile=\"0.99\"}} {}\n\
         plexus_gossip_forward_latency_seconds_sum {}\n\
         plexus_gossip_forward_latency_seconds_count {}",
        forward.p50_us as f64 / 1e6,
        forward.p99_us as f64 / 1e6,
        forward.sum_us as f64 / 1e6,
        forward.count
    );
    out.push_str(
        "# HELP plexus_policy_version Version of the policy in force, per governed namespace \
         (0: none yet).\n# TYPE plexus_policy_version gauge\n",
    );
    for (namespace, version) in versions {
        let _ = writeln!(
            out,
            "plexus_policy_version{{namespace=\"{namespace}\"}} {version}"
        );
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}

/// A copy of the namespace's policy book, read off the runtime's threads.
async fn policy_book(state: &ApiState, namespace: &str) -> Result<Option<PolicyBook>, ApiError> {
    let log = Arc::clone(state.node.log());
    let namespace = namespace.to_owned();
    tokio::task::spawn_blocking(move || log.policy_book(&namespace))
        .await
        .map_err(|error| unavailable(error.to_string()))
}

fn open_namespace(namespace: &str) -> Value {
    json!({
        "namespace": namespace,
        "governed": false,
        "note": "this namespace is open on this node: anyone may post",
    })
}

fn admins(book: &PolicyBook) -> Vec<String> {
    book.admins().iter().map(ToString::to_string).collect()
}

fn record_json(record: &PolicyRecord) -> Value {
    json!({
        "version": record.version,
        "entryId": record.entry_id.to_string(),
        "author": record.author.to_string(),
        "timestampMs": record.timestamp_ms,
        "effectiveFrom": record.effective_from,
        "body": record.policy.body,
    })
}

fn unavailable(message: String) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
}
