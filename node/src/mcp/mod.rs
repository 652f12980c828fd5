//! Plexus as MCP tools, for LLM hosts: `plexus mcp` serves them over stdio, and the node's API
//! listener serves them over Streamable HTTP at `/mcp` (behind the API's bearer token).
//!
//! Each tool is one or two calls of the node's HTTP API (see [`backend`]), so a tool does
//! exactly what the matching route does and is refused for the same reasons. A refusal comes
//! back as a tool error (`isError: true`) whose text carries the node's status, code, message
//! and field, and for policy refusals the rule, policy version and retry delay: the model reads
//! why and can act on it, and the server never fails the call at the protocol level for it.
//!
//! The board views (leases, tasks, agents) are also MCP resources, with change notifications
//! for subscribed clients (see [`resources`]). Waiting is bounded: a tool that waits
//! (`wait_for_claim`, `recent_events`) gives up after its timeout and says so.

pub mod backend;
mod events;
mod params;
mod resources;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, ContentBlock, Implementation, ListResourcesResult, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Resource,
    ResourceContents, ServerCapabilities, ServerConfig, SubscribeRequestParams, SubscriptionFilter,
    UnsubscribeRequestParams,
};
use rmcp::service::{RequestContext, SubscriptionContext};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{tool, tool_handler, tool_router, ErrorData, RoleServer, ServerHandler, ServiceExt};
use serde_json::{json, Value};

use backend::{encode_query, encode_segment, Backend, CallError, NextEvent};
use events::EventBuffer;
use params::*;
use resources::{BoardView, SessionSubscriptions, SubscribeError, MAX_OPEN_LISTENS};

use crate::api::{ApiState, MAX_REQUEST_BYTES};
use crate::client::ApiClient;

/// Longest a `wait_for_claim` call waits; MCP hosts time tool calls out after a few minutes.
pub const MAX_CLAIM_WAIT: Duration = Duration::from_secs(300);
/// Longest a `recent_events` call waits for a new event.
pub const MAX_EVENTS_WAIT: Duration = Duration::from_secs(60);
/// Most events one `recent_events` call returns.
pub const MAX_EVENTS_PER_CALL: usize = 100;

const DEFAULT_LEASE_MS: u64 = 60_000;
const DEFAULT_CARD_TTL_MS: u64 = 3_600_000;

/// The MCP server: the tools, over one [`Backend`].
#[derive(Debug, Clone)]
pub struct PlexusMcp {
    backend: Backend,
    shared: Arc<SharedByNode>,
    /// This session's `resources/subscribe` subscriptions.
    subscriptions: Arc<SessionSubscriptions>,
}

/// What every session of one node shares.
#[derive(Debug)]
pub struct SharedByNode {
    /// The node's change events for `recent_events`.
    events: Arc<EventBuffer>,
    /// Permits for open `subscriptions/listen` requests.
    open_listens: Arc<tokio::sync::Semaphore>,
}

impl Default for SharedByNode {
    fn default() -> SharedByNode {
        SharedByNode {
            events: Arc::default(),
            open_listens: Arc::new(tokio::sync::Semaphore::new(MAX_OPEN_LISTENS)),
        }
    }
}

#[tool_router]
impl PlexusMcp {
    /// A server (one per session) whose tools call `backend`, with what the node's sessions
    /// share.
    pub fn new(backend: Backend, shared: Arc<SharedByNode>) -> PlexusMcp {
        PlexusMcp {
            backend,
            shared,
            subscriptions: Arc::default(),
        }
    }

    #[tool(
        description = "Who am I: this agent's id (its public key, 64 hex digits), its node's \
                       peer id, the default namespace and the namespaces it follows."
    )]
    async fn whoami(&self) -> Result<CallToolResult, ErrorData> {
        self.answer("GET", "/v1/node", None).await
    }

    #[tool(
        description = "Find other agents by their live capability cards: filter by skill, by \
                       tag, or by free text. Returns each agent's id, name, description and \
                       skills. Use it to decide whom to hand work to."
    )]
    async fn find_agents(
        &self,
        Parameters(find): Parameters<FindAgents>,
    ) -> Result<CallToolResult, ErrorData> {
        let query = query_string(&[
            ("skill", find.skill.as_deref()),
            ("tag", find.tag.as_deref()),
            ("q", find.text.as_deref()),
        ]);
        self.answer("GET", &format!("/v1/agents{query}"), None)
            .await
    }

    #[tool(
        description = "Announce (or replace) this agent's capability card so other agents can \
                       find it: name, description, skills with tags. It stays live for ttl_ms \
                       (default one hour); announce again to extend it."
    )]
    async fn announce_card(
        &self,
        Parameters(card): Parameters<AnnounceCard>,
    ) -> Result<CallToolResult, ErrorData> {
        let skills: Vec<Value> = card
            .skills
            .unwrap_or_default()
            .into_iter()
            .map(|skill| {
                without_nulls(json!({
                    "id": skill.id, "name": skill.name,
                    "description": skill.description, "tags": skill.tags,
                }))
            })
            .collect();
        let body = without_nulls(json!({
            "name": card.name,
            "description": card.description,
            "version": card.version,
            "url": card.url,
            "skills": skills,
            "ttlMs": card.ttl_ms.unwrap_or(DEFAULT_CARD_TTL_MS),
        }));
        self.answer("POST", "/v1/capability", Some(&body)).await
    }

    #[tool(description = "Withdraw this agent's capability card: others no longer find it.")]
    async fn revoke_card(
        &self,
        Parameters(revoke): Parameters<RevokeCard>,
    ) -> Result<CallToolResult, ErrorData> {
        let body = without_nulls(json!({ "reason": revoke.reason }));
        self.answer("POST", "/v1/capability/revoke", Some(&body))
            .await
    }

    #[tool(
        description = "Claim a resource before touching it (a file, a repo, a deployment) so \
                       that no two agents work on it at once. Answers at once whether you \
                       HOLD it or WAIT (and your place in the queue), and who holds it now. \
                       Exactly one claimant holds an exclusive resource; every node agrees \
                       who. If you wait, call wait_for_claim. Renew before the lease runs out; \
                       release when done."
    )]
    async fn claim(
        &self,
        Parameters(claim): Parameters<Claim>,
    ) -> Result<CallToolResult, ErrorData> {
        let body = without_nulls(json!({
            "resource": claim.resource,
            "action": claim.action.unwrap_or_else(|| "write".to_owned()),
            "leaseMs": claim.lease_ms.unwrap_or(DEFAULT_LEASE_MS),
            "priority": claim.priority,
            "note": claim.note,
        }));
        let claimed = match self.backend.call("POST", "/v1/claims", Some(&body)).await {
            Ok(claimed) => claimed,
            Err(error) => return refused(error),
        };
        let route = format!("/v1/leases?resource={}", encode_query(&claim.resource));
        let lease = match self.backend.call("GET", &route, None).await {
            Ok(answer) => answer["leases"][0].clone(),
            Err(error) => return refused(error),
        };
        let standing = claimed["claim"]["standing"].clone();
        let holders: Vec<Value> = lease["holders"]
            .as_array()
            .map(|holders| holders.iter().map(holder_summary).collect())
            .unwrap_or_default();
        let mut answer = json!({
            "claim_id": claimed["claim"]["claim_id"],
            "you_hold_it": standing == "holding",
            "standing": standing,
            "holders": holders,
            "expires_ms": claimed["claim"]["expires_ms"],
        });
        if let Some(position) = claimed["claim"].get("position") {
            answer["position"] = position.clone();
            answer["next_step"] =
                json!("call wait_for_claim with this claim_id to wait until you hold it");
        }
        ok(answer)
    }

    #[tool(
        description = "Extend one of your claims: its lease runs lease_ms from now. Renew well \
                       before it expires (every third of the lease is safe)."
    )]
    async fn renew_claim(
        &self,
        Parameters(renew): Parameters<Renew>,
    ) -> Result<CallToolResult, ErrorData> {
        let route = format!("/v1/claims/{}/renew", encode_segment(&renew.claim_id));
        let body = json!({ "leaseMs": renew.lease_ms.unwrap_or(DEFAULT_LEASE_MS) });
        self.answer("POST", &route, Some(&body)).await
    }

    #[tool(
        description = "Release one of your claims when done, so the next agent in line gets \
                       the resource at once."
    )]
    async fn release_claim(
        &self,
        Parameters(release): Parameters<ClaimId>,
    ) -> Result<CallToolResult, ErrorData> {
        let route = format!("/v1/claims/{}/release", encode_segment(&release.claim_id));
        self.answer("POST", &route, None).await
    }

    #[tool(
        description = "Wait until one of your claims holds its resource, or ends (expired or \
                       released), for at most timeout_seconds (default 30, at most 300). \
                       Returns outcome \"holding\", \"ended\" or \"still_waiting\", the claim, \
                       and the node's event that decided it."
    )]
    async fn wait_for_claim(
        &self,
        Parameters(wait): Parameters<WaitForClaim>,
    ) -> Result<CallToolResult, ErrorData> {
        let timeout = Duration::from_secs(wait.timeout_seconds.unwrap_or(30).clamp(1, 300))
            .min(MAX_CLAIM_WAIT);
        match self.wait_until_decided(&wait.claim_id, timeout).await {
            Ok(answer) => ok(answer),
            Err(error) => refused(error),
        }
    }

    #[tool(
        description = "The lease table: for each resource, who holds it (and until when) and \
                       who waits in which order. Filter by resource or by holder agent id."
    )]
    async fn list_leases(
        &self,
        Parameters(list): Parameters<ListLeases>,
    ) -> Result<CallToolResult, ErrorData> {
        let query = query_string(&[
            ("resource", list.resource.as_deref()),
            ("holder", list.holder.as_deref()),
        ]);
        self.answer("GET", &format!("/v1/leases{query}"), None)
            .await
    }

    #[tool(description = "Report a task's state (A2A task states): create it as \
                       TASK_STATE_SUBMITTED, take it with TASK_STATE_WORKING, finish it with \
                       TASK_STATE_COMPLETED (or FAILED, CANCELED, REJECTED). Illegal moves, \
                       such as leaving a finished task, are refused with the reason.")]
    async fn update_task(
        &self,
        Parameters(update): Parameters<UpdateTask>,
    ) -> Result<CallToolResult, ErrorData> {
        let body = without_nulls(json!({
            "taskId": update.task_id,
            "contextId": update.context_id,
            "status": without_nulls(json!({ "state": update.state.as_str(), "message": update.message })),
            "references": update.references,
        }));
        self.answer("POST", "/v1/tasks", Some(&body)).await
    }

    #[tool(description = "One task: its state, who created and updated it, and its full history.")]
    async fn get_task(
        &self,
        Parameters(task): Parameters<TaskId>,
    ) -> Result<CallToolResult, ErrorData> {
        let route = format!("/v1/tasks/{}", encode_segment(&task.task_id));
        self.answer("GET", &route, None).await
    }

    #[tool(
        description = "The task board: every task with its state; filter by state (for \
                       example TASK_STATE_SUBMITTED to find work) or by context."
    )]
    async fn list_tasks(
        &self,
        Parameters(list): Parameters<ListTasks>,
    ) -> Result<CallToolResult, ErrorData> {
        let query = query_string(&[
            ("state", list.state.map(TaskStateParam::as_str)),
            ("context", list.context_id.as_deref()),
        ]);
        self.answer("GET", &format!("/v1/tasks{query}"), None).await
    }

    #[tool(
        description = "Add a constraint on resources that every node enforces on claims: \
                       exclusive, at most N holders, not before a time, or at most N claims \
                       per window."
    )]
    async fn add_constraint(
        &self,
        Parameters(constraint): Parameters<AddConstraint>,
    ) -> Result<CallToolResult, ErrorData> {
        let body = without_nulls(json!({
            "resource": constraint.resource,
            "rule": constraint.rule,
            "ttlMs": constraint.ttl_ms,
            "note": constraint.note,
        }));
        self.answer("POST", "/v1/constraints", Some(&body)).await
    }

    #[tool(
        description = "Share a pattern you learned (a lesson, a fix, a pitfall) with every \
                       agent of the namespace, with your confidence from 0 to 1."
    )]
    async fn share_pattern(
        &self,
        Parameters(pattern): Parameters<SharePattern>,
    ) -> Result<CallToolResult, ErrorData> {
        let body = without_nulls(json!({
            "topic": pattern.topic,
            "summary": pattern.summary,
            "confidence": pattern.confidence,
            "data": pattern.data,
            "references": pattern.references,
        }));
        self.answer("POST", "/v1/patterns", Some(&body)).await
    }

    #[tool(
        description = "Search the patterns other agents shared: by topic, and by text in the \
                       topic or summary. Check before solving a problem someone already solved."
    )]
    async fn search_patterns(
        &self,
        Parameters(search): Parameters<SearchPatterns>,
    ) -> Result<CallToolResult, ErrorData> {
        let query = query_string(&[("topic", search.topic.as_deref())]);
        let mut answer = match self
            .backend
            .call("GET", &format!("/v1/patterns{query}"), None)
            .await
        {
            Ok(answer) => answer,
            Err(error) => return refused(error),
        };
        if let (Some(text), Some(patterns)) = (search.text, answer["patterns"].as_array_mut()) {
            let text = text.to_lowercase();
            patterns.retain(|pattern| {
                ["topic", "summary"].iter().any(|key| {
                    pattern[*key]
                        .as_str()
                        .is_some_and(|value| value.to_lowercase().contains(&text))
                })
            });
        }
        ok(answer)
    }

    #[tool(
        description = "Publish an application entry (kind starting with \"x-\", any JSON body) \
                       into this agent's signed log; every node of the namespace gets it."
    )]
    async fn publish_entry(
        &self,
        Parameters(entry): Parameters<PublishEntry>,
    ) -> Result<CallToolResult, ErrorData> {
        let body = json!({ "kind": entry.kind, "body": entry.body });
        self.answer("POST", "/v1/entries", Some(&body)).await
    }

    #[tool(
        description = "The node's recent change events (claims won, lost or ended; lease and \
                       task changes; new entries), newest last, each with an id. Pass after_id \
                       to get only newer ones, and wait_seconds to wait for the next one."
    )]
    async fn recent_events(
        &self,
        Parameters(recent): Parameters<RecentEvents>,
    ) -> Result<CallToolResult, ErrorData> {
        if let Err(error) = self.shared.events.start(&self.backend).await {
            return refused(error);
        }
        let wait = Duration::from_secs(recent.wait_seconds.unwrap_or(0)).min(MAX_EVENTS_WAIT);
        let limit = recent.limit.unwrap_or(20).clamp(1, MAX_EVENTS_PER_CALL);
        let kinds = recent.kinds.unwrap_or_default();
        let events = self
            .shared
            .events
            .select(&kinds, recent.after_id, limit, wait)
            .await;
        ok(json!({ "events": events }))
    }
}

#[tool_handler]
impl ServerHandler for PlexusMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_resources_subscribe()
                .build(),
        )
        .with_server_info(Implementation::from_build_env())
        .with_instructions(
            "Plexus coordinates agents without a central server: every action is a signed \
             entry that all nodes of the namespace see and fold the same way. Before touching \
             a shared resource, `claim` it; if you wait, `wait_for_claim`; `renew_claim` while \
             working and `release_claim` when done. Report work with `update_task`; find \
             others with `find_agents`. A refused call is a tool error naming the rule and \
             what to change."
                .to_owned(),
        )
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let resources = BoardView::ALL
            .into_iter()
            .map(|view| {
                Resource::new(view.uri(), view.name())
                    .with_description(view.description())
                    .with_mime_type("application/json")
            })
            .collect();
        Ok(ListResourcesResult::with_all_items(resources))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let view = board_view(&request.uri)?;
        let answer = self
            .backend
            .call("GET", view.route(), None)
            .await
            .map_err(|error| ErrorData::internal_error(error.to_string(), None))?;
        let contents = ResourceContents::text(answer.to_string(), view.uri());
        Ok(ReadResourceResult::new(vec![contents]).into())
    }

    // `resources/subscribe` is how hosts on protocol versions up to 2025-11-25 subscribe
    // (most of them today); `subscriptions/listen` below is the 2026-07-28 way.
    #[allow(deprecated)]
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let view = board_view(&request.uri)?;
        if matches!(self.backend, Backend::InProcess { .. }) {
            return Err(subscribe_refused(SubscribeError::Sessionless));
        }
        self.subscriptions
            .subscribe(view, &self.backend, context.peer)
            .await
            .map_err(subscribe_refused)
    }

    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.subscriptions
            .unsubscribe(board_view(&request.uri)?)
            .await;
        Ok(())
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        // The board views named, each once: other URIs are not ours to notify.
        let views: std::collections::BTreeSet<BoardView> = requested
            .resource_subscriptions
            .iter()
            .flatten()
            .filter_map(|uri| BoardView::from_uri(uri))
            .collect();
        let mut accepted = SubscriptionFilter::new();
        accepted.resource_subscriptions = Some(
            views
                .into_iter()
                .map(|view| view.uri().to_owned())
                .collect(),
        );
        Some(accepted)
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        let views = context
            .accepted()
            .resource_subscriptions
            .iter()
            .flatten()
            .filter_map(|uri| BoardView::from_uri(uri))
            .collect();
        let sink = context.sink().clone();
        resources::listen(
            views,
            &self.backend,
            sink,
            context.cancelled(),
            &self.shared.open_listens,
        )
        .await
        .map_err(subscribe_refused)
    }
}

fn board_view(uri: &str) -> Result<BoardView, ErrorData> {
    BoardView::from_uri(uri).ok_or_else(|| {
        ErrorData::resource_not_found(
            SubscribeError::UnknownResource(uri.to_owned()).to_string(),
            None,
        )
    })
}

fn subscribe_refused(error: SubscribeError) -> ErrorData {
    match error {
        SubscribeError::UnknownResource(_) => {
            ErrorData::resource_not_found(error.to_string(), None)
        }
        SubscribeError::Sessionless | SubscribeError::TooManyListens => {
            ErrorData::invalid_request(error.to_string(), None)
        }
        SubscribeError::Events(_) => ErrorData::internal_error(error.to_string(), None),
    }
}

impl PlexusMcp {
    async fn answer(
        &self,
        method: &str,
        route: &str,
        body: Option<&Value>,
    ) -> Result<CallToolResult, ErrorData> {
        match self.backend.call(method, route, body).await {
            Ok(answer) => ok(answer),
            Err(error) => refused(error),
        }
    }

    /// Subscribes first, then reads the claim, so the event that decides it cannot be missed.
    async fn wait_until_decided(
        &self,
        claim_id: &str,
        timeout: Duration,
    ) -> Result<Value, CallError> {
        let route = format!("/v1/claims/{}", encode_segment(claim_id));
        let claim = self.backend.call("GET", &route, None).await?;
        let resource = claim["resource"].as_str().unwrap_or_default().to_owned();
        let mut events = self
            .backend
            .events("claim.won,claim.ended", Some(&resource))
            .await?;
        let deadline = Instant::now() + timeout;
        let mut claim = self.backend.call("GET", &route, None).await?;
        let mut deciding_event = Value::Null;
        while claim["standing"] == "waiting"
            || claim["standing"] == "blocked"
            || claim["standing"] == "rate_limited"
        {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            let NextEvent::Event(event_type, event) = events.next_within(remaining).await else {
                break;
            };
            let ours = event["data"]["claim"]["claim_id"] == claim_id;
            if ours && (event_type == "claim.won" || event_type == "claim.ended") {
                deciding_event = event;
                claim = self.backend.call("GET", &route, None).await?;
            }
        }
        let outcome = match claim["standing"].as_str() {
            Some("holding") => "holding",
            Some("expired" | "released") => "ended",
            _ => "still_waiting",
        };
        Ok(json!({ "outcome": outcome, "claim": claim, "event": deciding_event }))
    }
}

fn ok(answer: Value) -> Result<CallToolResult, ErrorData> {
    Ok(CallToolResult::structured(answer))
}

/// A refusal or an unreachable node is the tool's error, for the model to read.
fn refused(error: CallError) -> Result<CallToolResult, ErrorData> {
    Ok(CallToolResult::error(vec![ContentBlock::text(
        error.to_string(),
    )]))
}

fn holder_summary(claim: &Value) -> Value {
    json!({
        "agent": claim["author"],
        "claim_id": claim["claim_id"],
        "action": claim["action"],
        "expires_ms": claim["expires_ms"],
    })
}

/// Drops the `null` members of an object: the API refuses explicit nulls for absent fields.
fn without_nulls(mut value: Value) -> Value {
    if let Some(object) = value.as_object_mut() {
        object.retain(|_, member| !member.is_null());
    }
    value
}

fn query_string(pairs: &[(&str, Option<&str>)]) -> String {
    let present: Vec<String> = pairs
        .iter()
        .filter_map(|(key, value)| value.map(|value| format!("{key}={}", encode_query(value))))
        .collect();
    if present.is_empty() {
        String::new()
    } else {
        format!("?{}", present.join("&"))
    }
}

/// The Streamable HTTP endpoint mounted at `/mcp` on the API listener. Its tools run `routes`
/// (the API without `/mcp`) in process. Sessionless: every request stands alone, so a host
/// that reconnects loses nothing, and nothing outlives the API's shutdown. Only loopback
/// `Host` headers are accepted (rmcp's default, against DNS rebinding).
pub fn http_service(
    state: ApiState,
    routes: Router,
) -> StreamableHttpService<PlexusMcp, LocalSessionManager> {
    let backend = Backend::InProcess {
        router: routes,
        state,
    };
    let shared = Arc::new(SharedByNode::default());
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_max_request_body_bytes(MAX_REQUEST_BYTES);
    StreamableHttpService::new(
        move || Ok(PlexusMcp::new(backend.clone(), Arc::clone(&shared))),
        LocalSessionManager::default().into(),
        config,
    )
}

/// `plexus mcp`: serves the tools over stdio to the host that started this process, talking
/// to the node running on the same data directory.
pub async fn serve_stdio(client: ApiClient) -> Result<(), McpError> {
    let server = PlexusMcp::new(Backend::Http(client), Arc::new(SharedByNode::default()));
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|error| McpError::Start(error.to_string()))?;
    running
        .waiting()
        .await
        .map_err(|error| McpError::Stopped(error.to_string()))?;
    Ok(())
}

/// Errors of the stdio server itself (tool refusals are tool results, not these).
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    #[error("the MCP session could not start: {0}")]
    Start(String),
    #[error("the MCP session ended abnormally: {0}")]
    Stopped(String),
}
