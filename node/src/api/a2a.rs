//! Capability cards as A2A 1.0 AgentCards: this node's agent's card at A2A's well-known path,
//! and the namespace's live cards, each carrying the signed Plexus entry it came from.
//!
//! `GET /.well-known/agent-card.json` needs no token: A2A clients discover agents by fetching
//! that path without credentials, the card is already public to every peer of the namespace
//! (it is gossiped), and the API listens on 127.0.0.1 unless configured otherwise.
//! `GET /v1/a2a/cards` lists the whole namespace and, like every other `/v1/` route, needs it.
//!
//! The mapping (docs/PROTOCOL.md §9.5) fills every field A2A requires. The Plexus entry goes
//! into an A2A extension (`capabilities.extensions`, [`SIGNED_ENTRY_EXTENSION`]) with the
//! complete envelope, so a reader verifies the author's signature over the card's own bytes
//! without trusting the node that served it. A2A's `signatures` field is left out: it holds
//! JWS signatures over the card JSON, which a Plexus entry signature is not.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use plexus_protocol::coord::view::CardQuery;
use plexus_protocol::coord::{parse_entry_id, CardView};
use plexus_protocol::Entry;
use serde::Deserialize;
use serde_json::{json, Value};

use super::routes::namespace;
use super::{ApiError, ApiState};
use crate::clock::now_ms;
use crate::store::Log;

/// The URI of the A2A extension that carries a card's signed Plexus entry.
pub const SIGNED_ENTRY_EXTENSION: &str = "urn:plexus:a2a:signed-entry:v1";

/// The `protocolBinding` of the interface through which an agent is reached on Plexus.
pub const PLEXUS_BINDING: &str = "PLEXUS";

/// The id and only tag of the one skill given to a card that lists none (A2A requires one).
pub const UNNAMED_SKILL: &str = "plexus-agent";

/// The A2A protocol version the cards follow.
pub const A2A_VERSION: &str = "1.0";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CardsQuery {
    namespace: Option<String>,
    skill: Option<String>,
    tag: Option<String>,
    q: Option<String>,
}

/// `GET /.well-known/agent-card.json`: this node's agent's live card as an A2A AgentCard.
pub(super) async fn own_card(
    State(state): State<ApiState>,
    query: Result<Query<super::routes::NamespaceQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let namespace = namespace(&state, query?.0.namespace)?;
    let agent = state.node.agent_id().to_string();
    let card = state
        .node
        .coord()
        .view()
        .cards(&namespace, &CardQuery::default(), now_ms())
        .into_iter()
        .find(|card| card.author == agent)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no_card",
                format!(
                    "agent {agent} has no live capability card in namespace {namespace}: \
                     announce one with `plexus announce` or POST /v1/capability"
                ),
            )
        })?;
    let mut cards = signed_cards(&state, &namespace, vec![card]).await?;
    let card = cards.pop().unwrap_or(Value::Null);
    Ok(Json(card).into_response())
}

/// `GET /v1/a2a/cards`: the namespace's live cards as A2A AgentCards, filtered like
/// `GET /v1/agents`.
pub(super) async fn cards(
    State(state): State<ApiState>,
    query: Result<Query<CardsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let query = query?.0;
    let namespace = namespace(&state, query.namespace)?;
    let filter = CardQuery {
        skill: query.skill,
        tag: query.tag,
        text: query.q,
    };
    let views = state
        .node
        .coord()
        .view()
        .cards(&namespace, &filter, now_ms());
    let cards = signed_cards(&state, &namespace, views).await?;
    Ok(Json(json!({ "namespace": namespace, "cards": cards })).into_response())
}

/// The A2A form of each card, with its entry read from the log (a point lookup per card).
async fn signed_cards(
    state: &ApiState,
    namespace: &str,
    views: Vec<CardView>,
) -> Result<Vec<Value>, ApiError> {
    let log: Arc<Log> = Arc::clone(state.node.log());
    let namespace = namespace.to_owned();
    tokio::task::spawn_blocking(move || {
        views
            .iter()
            .map(|view| {
                let entry = parse_entry_id(&view.entry_id)
                    .and_then(|id| log.entry_by_id(&id).ok().flatten())
                    .ok_or_else(|| {
                        unavailable(format!("card entry {} is not in the log", view.entry_id))
                    })?;
                Ok(agent_card(&namespace, view, &entry))
            })
            .collect()
    })
    .await
    .map_err(|error| unavailable(error.to_string()))?
}

/// One card as an A2A 1.0 AgentCard (docs/PROTOCOL.md §9.5).
pub fn agent_card(namespace: &str, view: &CardView, entry: &Entry) -> Value {
    let mut interfaces = Vec::new();
    if let Some(url) = view.url.as_deref().filter(|url| !url.is_empty()) {
        interfaces.push(json!({
            "url": url,
            "protocolBinding": "JSONRPC",
            "protocolVersion": A2A_VERSION,
        }));
    }
    interfaces.push(json!({
        "url": format!("plexus://{namespace}/{}", view.author),
        "protocolBinding": PLEXUS_BINDING,
        "protocolVersion": "1",
    }));
    let description = if view.description.is_empty() {
        format!("{}, an agent on Plexus", view.name)
    } else {
        view.description.clone()
    };
    let version = if view.version.is_empty() {
        "unversioned"
    } else {
        view.version.as_str()
    };
    // A2A requires at least one skill, and at least one tag on each.
    let mut skills: Vec<Value> = view
        .skills
        .iter()
        .map(|skill| {
            let description = if skill.description.is_empty() {
                &skill.name
            } else {
                &skill.description
            };
            let tags = if skill.tags.is_empty() {
                vec![skill.id.clone()]
            } else {
                skill.tags.clone()
            };
            json!({ "id": skill.id, "name": skill.name, "description": description, "tags": tags })
        })
        .collect();
    if skills.is_empty() {
        skills.push(json!({
            "id": UNNAMED_SKILL,
            "name": view.name,
            "description": description,
            "tags": [UNNAMED_SKILL],
        }));
    }
    json!({
        "name": view.name,
        "description": description,
        "version": version,
        "supportedInterfaces": interfaces,
        "capabilities": {
            "streaming": false,
            "pushNotifications": false,
            "extensions": [{
                "uri": SIGNED_ENTRY_EXTENSION,
                "description": "The signed Plexus capability entry this card was made from: \
                                verify `envelope` as docs/PROTOCOL.md §3 says, and check that \
                                its id is `entryId` and its author `author`",
                "required": false,
                "params": {
                    "namespace": namespace,
                    "author": view.author,
                    "entryId": view.entry_id,
                    "seq": entry.header().seq,
                    "publishedMs": view.published_ms,
                    "expiresMs": view.expires_ms,
                    "signature": to_hex(&entry.signature().0),
                    "envelope": to_hex(&entry.encode()),
                },
            }],
        },
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "skills": skills,
    })
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn unavailable(message: String) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
}
