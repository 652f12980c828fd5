//! The bodies of the coordination kinds: their fields, their limits, and their canonical form.
//!
//! A body is a JSON object stored as canonical CBOR ([`crate::value`]), so equal data always
//! hashes equal. Field names are camelCase, as in A2A. Unknown fields are refused, so a
//! misspelt optional field is an error instead of being ignored. Every string and list has a
//! cap, checked here, so one entry cannot make every node's view grow without bound.

use plexus_crypto::Hash256;
use serde::{Deserialize, Serialize};

use super::{APPLICATION_KIND_PREFIX, KINDS, MAX_LEASE_MS, MAX_TTL_MS};
use crate::policy::{PolicyBody, GOVERNANCE_KINDS};
use crate::value::{self, ValueError};

/// Longest short text field (names, ids, versions, actions, topics), in bytes.
pub const MAX_SHORT_TEXT: usize = 256;
/// Longest long text field (descriptions, notes, messages, summaries), in bytes.
pub const MAX_LONG_TEXT: usize = 4096;
/// Most skills on one card, tags on one skill, and references in one entry.
pub const MAX_LIST: usize = 64;

/// Why an entry's body is not acceptable for its kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The kind is neither a coordination kind nor an `x-` application kind.
    #[error(
        "unknown kind {kind:?}: use one of {known}, policy, or an application kind starting with \"x-\"",
        known = KINDS.join(", ")
    )]
    UnknownKind { kind: String },
    /// The body bytes are not a canonical JSON-like value.
    #[error("body of {kind} is not canonical JSON-like data: {source}")]
    NotCanonical {
        kind: String,
        #[source]
        source: ValueError,
    },
    /// The body does not have the shape its kind requires (missing, unknown or mistyped field).
    #[error("body of {kind}: {problem}")]
    Shape { kind: String, problem: String },
    /// One field breaks a rule.
    #[error("body of {kind}: field `{field}` {problem}")]
    Field {
        kind: String,
        field: String,
        problem: String,
    },
    /// A claim whose timestamp is too far from the receiving node's clock.
    #[error(
        "entry timestamp is {distance_ms} ms {direction} this node's clock, outside the \
         {window_ms} ms skew window: check the author's clock (NTP)"
    )]
    ClockSkew {
        distance_ms: u64,
        direction: &'static str,
        window_ms: u64,
    },
}

impl BodyError {
    /// A stable short code, used in API errors and the rejection journal.
    pub fn code(&self) -> &'static str {
        match self {
            BodyError::UnknownKind { .. } => "unknown_kind",
            BodyError::NotCanonical { .. } => "body_not_canonical",
            BodyError::Shape { .. } => "bad_body",
            BodyError::Field { .. } => "bad_field",
            BodyError::ClockSkew { .. } => "clock_skew",
        }
    }

    /// The offending field, when one is known.
    pub fn field(&self) -> Option<&str> {
        match self {
            BodyError::Field { field, .. } => Some(field),
            BodyError::NotCanonical { source, .. } => source.field(),
            // serde names fields in backticks: "missing field `leaseMs`".
            BodyError::Shape { problem, .. } => problem.split('`').nth(1),
            _ => None,
        }
    }
}

/// A parsed body of any kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Capability(Capability),
    CapabilityRevoke(CapabilityRevoke),
    Intent(Intent),
    IntentRenew(IntentRenew),
    IntentRelease(IntentRelease),
    Task(TaskUpdate),
    Constraint(Constraint),
    Pattern(Pattern),
    /// `policy`: a governed namespace's rules, signed by an admin (see [`crate::policy`]).
    Policy(PolicyBody),
    /// An `x-` kind: any canonical JSON-like value, not interpreted.
    Application(serde_json::Value),
}

/// `capability`: the author's card, close to A2A's Agent Card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Capability {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// How to reach the agent (an A2A endpoint, a queue name, ...); not interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skills: Vec<Skill>,
    /// How long the card stays live after its timestamp.
    pub ttl_ms: u64,
}

/// One skill on a card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Skill {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// `capability.revoke`: the author's card stops being live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CapabilityRevoke {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// `intent`: a claim on a resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Intent {
    /// What is claimed: any name the agents agree on (`repo/plexus`, `slot/2026-12-01T10`).
    pub resource: String,
    /// What the author is about to do with it (`write`, `book`, `call`).
    pub action: String,
    /// How long the claim lasts after its timestamp unless renewed or released.
    pub lease_ms: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
    /// Breaks ties between claims with the same timestamp (higher first); never preempts.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority: u8,
}

/// `intent.renew`: extends one of the author's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IntentRenew {
    /// The entry id of the claim (64 hex digits).
    pub claim: String,
    /// The new lease, counted from the renewal's timestamp.
    pub lease_ms: u64,
}

/// `intent.release`: ends one of the author's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IntentRelease {
    /// The entry id of the claim (64 hex digits).
    pub claim: String,
}

/// `task`: a task-state update, shaped like A2A's `TaskStatusUpdateEvent`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskUpdate {
    pub task_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub context_id: String,
    pub status: TaskStatus,
    /// Entry ids (64 hex digits) this update depends on or refers to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<String>,
}

/// The status part of a task update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskStatus {
    pub state: TaskState,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// A2A's task states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TaskState {
    #[serde(rename = "TASK_STATE_SUBMITTED")]
    Submitted,
    #[serde(rename = "TASK_STATE_WORKING")]
    Working,
    #[serde(rename = "TASK_STATE_INPUT_REQUIRED")]
    InputRequired,
    #[serde(rename = "TASK_STATE_AUTH_REQUIRED")]
    AuthRequired,
    #[serde(rename = "TASK_STATE_COMPLETED")]
    Completed,
    #[serde(rename = "TASK_STATE_FAILED")]
    Failed,
    #[serde(rename = "TASK_STATE_CANCELED")]
    Canceled,
    #[serde(rename = "TASK_STATE_REJECTED")]
    Rejected,
}

/// `constraint`: a rule on every resource its pattern matches, for a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Constraint {
    /// A resource name, or a prefix ending in `*` (`repo/*` matches `repo/plexus`).
    pub resource: String,
    pub rule: ConstraintRule,
    /// How long the constraint is in force after its timestamp.
    pub ttl_ms: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// The rules a constraint can state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum ConstraintRule {
    /// At most one holder at a time.
    Exclusive,
    /// At most `limit` holders at a time.
    #[serde(rename_all = "camelCase")]
    MaxHolders { limit: u32 },
    /// Nobody holds the resource before `at` (milliseconds since the Unix epoch).
    #[serde(rename_all = "camelCase")]
    NotBefore { at: u64 },
    /// Each agent's claims count only while it made fewer than `claims` in the last `window_ms`.
    #[serde(rename_all = "camelCase")]
    RateLimit { claims: u32, window_ms: u64 },
}

/// `pattern`: learned knowledge shared with others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pattern {
    pub topic: String,
    pub summary: String,
    /// Structured data, any JSON value.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub data: serde_json::Value,
    /// How sure the author is, from 0 to 1.
    pub confidence: f64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<String>,
}

fn is_zero(value: &u8) -> bool {
    *value == 0
}

impl TaskState {
    /// Completed, failed, canceled and rejected end a task: nothing may follow them.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Completed | TaskState::Failed | TaskState::Canceled | TaskState::Rejected
        )
    }

    /// The state's wire name, `TASK_STATE_...`.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Submitted => "TASK_STATE_SUBMITTED",
            TaskState::Working => "TASK_STATE_WORKING",
            TaskState::InputRequired => "TASK_STATE_INPUT_REQUIRED",
            TaskState::AuthRequired => "TASK_STATE_AUTH_REQUIRED",
            TaskState::Completed => "TASK_STATE_COMPLETED",
            TaskState::Failed => "TASK_STATE_FAILED",
            TaskState::Canceled => "TASK_STATE_CANCELED",
            TaskState::Rejected => "TASK_STATE_REJECTED",
        }
    }

    /// Checks the move from `from` (`None` for a task's first update) to `self`; the error
    /// says why it is illegal.
    pub fn check_transition(self, from: Option<TaskState>) -> Result<(), String> {
        match from {
            None if matches!(self, TaskState::Submitted | TaskState::Working) => Ok(()),
            None => Err(format!(
                "a task starts as TASK_STATE_SUBMITTED or TASK_STATE_WORKING, not {}",
                self.as_str()
            )),
            Some(from) if from.is_terminal() => Err(format!(
                "the task already ended in {}; nothing may follow a terminal state",
                from.as_str()
            )),
            Some(_) if self == TaskState::Submitted => {
                Err("a task cannot go back to TASK_STATE_SUBMITTED once it has started".to_owned())
            }
            Some(from) if self == TaskState::Rejected && from != TaskState::Submitted => {
                Err(format!(
                    "only a submitted task can be rejected; this one is {}",
                    from.as_str()
                ))
            }
            Some(_) => Ok(()),
        }
    }
}

impl std::fmt::Display for TaskState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TaskState {
    type Err = String;

    fn from_str(text: &str) -> Result<TaskState, String> {
        let upper = text.to_ascii_uppercase();
        let name = if upper.starts_with("TASK_STATE_") {
            upper
        } else {
            format!("TASK_STATE_{upper}")
        };
        serde_json::from_value(serde_json::Value::String(name)).map_err(|_| {
            format!(
                "unknown task state {text:?}: use submitted, working, input_required, \
                 auth_required, completed, failed, canceled or rejected"
            )
        })
    }
}

impl Body {
    /// Checks that `kind` is a coordination kind or an application kind.
    pub fn check_kind(kind: &str) -> Result<(), BodyError> {
        if KINDS.contains(&kind)
            || GOVERNANCE_KINDS.contains(&kind)
            || kind.starts_with(APPLICATION_KIND_PREFIX)
        {
            Ok(())
        } else {
            Err(BodyError::UnknownKind {
                kind: kind.to_owned(),
            })
        }
    }

    /// Parses and checks the canonical body bytes of an entry of `kind`.
    pub fn parse(kind: &str, bytes: &[u8]) -> Result<Body, BodyError> {
        Body::check_kind(kind)?;
        let json = value::canonical_to_json(bytes).map_err(|source| BodyError::NotCanonical {
            kind: kind.to_owned(),
            source,
        })?;
        Body::from_json(kind, json)
    }

    /// Builds and checks a body of `kind` from JSON (as an agent sends it to the API).
    pub fn from_json(kind: &str, json: serde_json::Value) -> Result<Body, BodyError> {
        Body::check_kind(kind)?;
        let body = match kind {
            "capability" => Body::Capability(typed(kind, json)?),
            "capability.revoke" => Body::CapabilityRevoke(typed(kind, json)?),
            "intent" => Body::Intent(typed(kind, json)?),
            "intent.renew" => Body::IntentRenew(typed(kind, json)?),
            "intent.release" => Body::IntentRelease(typed(kind, json)?),
            "task" => Body::Task(typed(kind, json)?),
            "constraint" => Body::Constraint(typed(kind, json)?),
            "pattern" => Body::Pattern(typed(kind, json)?),
            "policy" => Body::Policy(typed(kind, json)?),
            _ => Body::Application(json),
        };
        body.validate(kind)?;
        Ok(body)
    }

    /// The canonical body bytes.
    pub fn encode(&self) -> Result<Vec<u8>, BodyError> {
        let json = match self {
            Body::Capability(body) => serde_json::to_value(body),
            Body::CapabilityRevoke(body) => serde_json::to_value(body),
            Body::Intent(body) => serde_json::to_value(body),
            Body::IntentRenew(body) => serde_json::to_value(body),
            Body::IntentRelease(body) => serde_json::to_value(body),
            Body::Task(body) => serde_json::to_value(body),
            Body::Constraint(body) => serde_json::to_value(body),
            Body::Pattern(body) => serde_json::to_value(body),
            Body::Policy(body) => serde_json::to_value(body),
            Body::Application(json) => Ok(json.clone()),
        }
        .map_err(|error| BodyError::Shape {
            kind: self.kind().to_owned(),
            problem: error.to_string(),
        })?;
        value::json_to_canonical(&json).map_err(|source| BodyError::NotCanonical {
            kind: self.kind().to_owned(),
            source,
        })
    }

    /// The kind this body belongs to (`x-` for application bodies).
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Capability(_) => "capability",
            Body::CapabilityRevoke(_) => "capability.revoke",
            Body::Intent(_) => "intent",
            Body::IntentRenew(_) => "intent.renew",
            Body::IntentRelease(_) => "intent.release",
            Body::Task(_) => "task",
            Body::Constraint(_) => "constraint",
            Body::Pattern(_) => "pattern",
            Body::Policy(_) => "policy",
            Body::Application(_) => APPLICATION_KIND_PREFIX,
        }
    }

    fn validate(&self, kind: &str) -> Result<(), BodyError> {
        let check = Checker { kind };
        match self {
            Body::Capability(card) => {
                check.text("name", &card.name, 1, MAX_SHORT_TEXT)?;
                check.text("description", &card.description, 0, MAX_LONG_TEXT)?;
                check.text("version", &card.version, 0, MAX_SHORT_TEXT)?;
                if let Some(url) = &card.url {
                    check.text("url", url, 1, MAX_LONG_TEXT)?;
                }
                check.list("skills", card.skills.len())?;
                for (index, skill) in card.skills.iter().enumerate() {
                    let at = |field: &str| format!("skills[{index}].{field}");
                    check.text(&at("id"), &skill.id, 1, MAX_SHORT_TEXT)?;
                    check.text(&at("name"), &skill.name, 1, MAX_SHORT_TEXT)?;
                    check.text(&at("description"), &skill.description, 0, MAX_LONG_TEXT)?;
                    check.list(&at("tags"), skill.tags.len())?;
                    for (tag_index, tag) in skill.tags.iter().enumerate() {
                        check.text(&at(&format!("tags[{tag_index}]")), tag, 1, MAX_SHORT_TEXT)?;
                    }
                }
                check.duration("ttlMs", card.ttl_ms, MAX_TTL_MS)
            }
            Body::CapabilityRevoke(revoke) => {
                check.text("reason", &revoke.reason, 0, MAX_LONG_TEXT)
            }
            Body::Intent(intent) => {
                check.resource("resource", &intent.resource, false)?;
                check.text("action", &intent.action, 1, MAX_SHORT_TEXT)?;
                check.text("note", &intent.note, 0, MAX_LONG_TEXT)?;
                check.duration("leaseMs", intent.lease_ms, MAX_LEASE_MS)
            }
            Body::IntentRenew(renew) => {
                check.entry_id("claim", &renew.claim)?;
                check.duration("leaseMs", renew.lease_ms, MAX_LEASE_MS)
            }
            Body::IntentRelease(release) => check.entry_id("claim", &release.claim),
            Body::Task(update) => {
                check.text("taskId", &update.task_id, 1, MAX_SHORT_TEXT)?;
                check.text("contextId", &update.context_id, 0, MAX_SHORT_TEXT)?;
                check.text("status.message", &update.status.message, 0, MAX_LONG_TEXT)?;
                check.references(&update.references)
            }
            Body::Constraint(constraint) => {
                check.resource("resource", &constraint.resource, true)?;
                check.text("note", &constraint.note, 0, MAX_LONG_TEXT)?;
                check.duration("ttlMs", constraint.ttl_ms, MAX_TTL_MS)?;
                match constraint.rule {
                    ConstraintRule::MaxHolders { limit: 0 } => {
                        Err(check.field("rule.limit", "must be at least 1"))
                    }
                    ConstraintRule::RateLimit { claims: 0, .. } => {
                        Err(check.field("rule.claims", "must be at least 1"))
                    }
                    ConstraintRule::RateLimit { window_ms, .. } => {
                        check.duration("rule.windowMs", window_ms, MAX_TTL_MS)
                    }
                    _ => Ok(()),
                }
            }
            Body::Pattern(pattern) => {
                check.text("topic", &pattern.topic, 1, MAX_SHORT_TEXT)?;
                check.text("summary", &pattern.summary, 1, MAX_LONG_TEXT)?;
                if !(0.0..=1.0).contains(&pattern.confidence) {
                    return Err(check.field("confidence", "must be a number from 0 to 1"));
                }
                check.references(&pattern.references)
            }
            Body::Policy(policy) => policy.validate(&check),
            Body::Application(_) => Ok(()),
        }
    }
}

/// Parses a 64-hex-digit entry id as written in claim and reference fields.
pub fn parse_entry_id(text: &str) -> Option<Hash256> {
    if text.len() != 64
        || !text
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return None;
    }
    text.parse().ok()
}

fn typed<T: serde::de::DeserializeOwned>(
    kind: &str,
    json: serde_json::Value,
) -> Result<T, BodyError> {
    if !json.is_object() {
        return Err(BodyError::Shape {
            kind: kind.to_owned(),
            problem: "must be a JSON object".to_owned(),
        });
    }
    // The path names a mistyped field ("field `leaseMs`: invalid type: floating point
    // `1000.5`"), so `BodyError::field` finds the field first, not the value serde quotes.
    serde_path_to_error::deserialize(json).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner().to_string();
        let problem = if path == "." || inner.contains(&format!("`{path}`")) {
            inner
        } else {
            format!("field `{path}`: {inner}")
        };
        BodyError::Shape {
            kind: kind.to_owned(),
            problem,
        }
    })
}

pub(crate) struct Checker<'a> {
    pub(crate) kind: &'a str,
}

impl Checker<'_> {
    pub(crate) fn field(&self, field: &str, problem: impl Into<String>) -> BodyError {
        BodyError::Field {
            kind: self.kind.to_owned(),
            field: field.to_owned(),
            problem: problem.into(),
        }
    }

    pub(crate) fn text(
        &self,
        field: &str,
        text: &str,
        min: usize,
        max: usize,
    ) -> Result<(), BodyError> {
        if text.len() < min {
            return Err(self.field(field, "must not be empty"));
        }
        if text.len() > max {
            return Err(self.field(
                field,
                format!("is {} bytes; the limit is {max}", text.len()),
            ));
        }
        if text.chars().any(char::is_control) && !field.ends_with("description") {
            return Err(self.field(field, "must not contain control characters"));
        }
        Ok(())
    }

    pub(crate) fn list(&self, field: &str, len: usize) -> Result<(), BodyError> {
        if len > MAX_LIST {
            return Err(self.field(field, format!("has {len} items; the limit is {MAX_LIST}")));
        }
        Ok(())
    }

    pub(crate) fn duration(&self, field: &str, value: u64, max: u64) -> Result<(), BodyError> {
        if value == 0 || value > max {
            return Err(self.field(
                field,
                format!("must be from 1 to {max} milliseconds, got {value}"),
            ));
        }
        Ok(())
    }

    pub(crate) fn resource(
        &self,
        field: &str,
        resource: &str,
        allow_prefix: bool,
    ) -> Result<(), BodyError> {
        self.text(field, resource, 1, MAX_SHORT_TEXT)?;
        if resource.chars().any(char::is_whitespace) {
            return Err(self.field(field, "must not contain whitespace"));
        }
        let stars = resource.matches('*').count();
        let prefix_form = stars == 1 && resource.ends_with('*');
        if stars > 0 && !(allow_prefix && prefix_form) {
            return Err(self.field(
                field,
                if allow_prefix {
                    "may contain `*` only once, at the end (a prefix such as `repo/*`)"
                } else {
                    "names one resource and must not contain `*`"
                },
            ));
        }
        Ok(())
    }

    pub(crate) fn entry_id(&self, field: &str, text: &str) -> Result<(), BodyError> {
        parse_entry_id(text)
            .map(|_| ())
            .ok_or_else(|| self.field(field, "must be an entry id: 64 lowercase hex digits"))
    }

    pub(crate) fn references(&self, references: &[String]) -> Result<(), BodyError> {
        self.list("references", references.len())?;
        for (index, reference) in references.iter().enumerate() {
            self.entry_id(&format!("references[{index}]"), reference)?;
        }
        Ok(())
    }
}
