//! The bodies of the coordination kinds (`docs/PROTOCOL.md` §9.1): their fields and limits.
//!
//! Each body type checks its own fields ([`Checker`] holds the checks they share); the kind to
//! type mapping is [`super::Body`]'s.

use serde::{Deserialize, Serialize};

use super::{BodyError, Checker, MAX_LEASE_MS, MAX_LONG_TEXT, MAX_SHORT_TEXT, MAX_TTL_MS};

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

impl Capability {
    pub(crate) fn validate(&self, check: &Checker<'_>) -> Result<(), BodyError> {
        check.text("name", &self.name, 1, MAX_SHORT_TEXT)?;
        check.text("description", &self.description, 0, MAX_LONG_TEXT)?;
        check.text("version", &self.version, 0, MAX_SHORT_TEXT)?;
        if let Some(url) = &self.url {
            check.text("url", url, 1, MAX_LONG_TEXT)?;
        }
        check.list("skills", self.skills.len())?;
        for (index, skill) in self.skills.iter().enumerate() {
            let at = |field: &str| format!("skills[{index}].{field}");
            check.text(&at("id"), &skill.id, 1, MAX_SHORT_TEXT)?;
            check.text(&at("name"), &skill.name, 1, MAX_SHORT_TEXT)?;
            check.text(&at("description"), &skill.description, 0, MAX_LONG_TEXT)?;
            check.list(&at("tags"), skill.tags.len())?;
            for (tag_index, tag) in skill.tags.iter().enumerate() {
                check.text(&at(&format!("tags[{tag_index}]")), tag, 1, MAX_SHORT_TEXT)?;
            }
        }
        check.duration("ttlMs", self.ttl_ms, MAX_TTL_MS)
    }
}

impl Intent {
    pub(crate) fn validate(&self, check: &Checker<'_>) -> Result<(), BodyError> {
        check.resource("resource", &self.resource, false)?;
        check.text("action", &self.action, 1, MAX_SHORT_TEXT)?;
        check.text("note", &self.note, 0, MAX_LONG_TEXT)?;
        check.duration("leaseMs", self.lease_ms, MAX_LEASE_MS)
    }
}

impl TaskUpdate {
    pub(crate) fn validate(&self, check: &Checker<'_>) -> Result<(), BodyError> {
        check.text("taskId", &self.task_id, 1, MAX_SHORT_TEXT)?;
        check.text("contextId", &self.context_id, 0, MAX_SHORT_TEXT)?;
        check.text("status.message", &self.status.message, 0, MAX_LONG_TEXT)?;
        check.references(&self.references)
    }
}

impl Constraint {
    pub(crate) fn validate(&self, check: &Checker<'_>) -> Result<(), BodyError> {
        check.resource("resource", &self.resource, true)?;
        check.text("note", &self.note, 0, MAX_LONG_TEXT)?;
        check.duration("ttlMs", self.ttl_ms, MAX_TTL_MS)?;
        match self.rule {
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
}

impl Pattern {
    pub(crate) fn validate(&self, check: &Checker<'_>) -> Result<(), BodyError> {
        check.text("topic", &self.topic, 1, MAX_SHORT_TEXT)?;
        check.text("summary", &self.summary, 1, MAX_LONG_TEXT)?;
        if !(0.0..=1.0).contains(&self.confidence) {
            return Err(check.field("confidence", "must be a number from 0 to 1"));
        }
        check.references(&self.references)
    }
}
