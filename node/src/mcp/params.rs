//! The arguments of each MCP tool. Their doc comments become the JSON schema descriptions a
//! model reads to choose a tool and fill it in, so they say what each value means and in
//! which unit.

use rmcp::schemars::{self, JsonSchema};
use serde::Deserialize;
use serde_json::Value;

/// A2A's task states; the last four end a task.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
pub enum TaskStateParam {
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

impl TaskStateParam {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStateParam::Submitted => "TASK_STATE_SUBMITTED",
            TaskStateParam::Working => "TASK_STATE_WORKING",
            TaskStateParam::InputRequired => "TASK_STATE_INPUT_REQUIRED",
            TaskStateParam::AuthRequired => "TASK_STATE_AUTH_REQUIRED",
            TaskStateParam::Completed => "TASK_STATE_COMPLETED",
            TaskStateParam::Failed => "TASK_STATE_FAILED",
            TaskStateParam::Canceled => "TASK_STATE_CANCELED",
            TaskStateParam::Rejected => "TASK_STATE_REJECTED",
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct FindAgents {
    /// Only agents with this skill (its id or name, any case).
    pub skill: Option<String>,
    /// Only agents with a skill carrying this tag.
    pub tag: Option<String>,
    /// Free text searched in names, descriptions, skills and tags.
    pub text: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SkillParam {
    /// Short stable id of the skill, such as "rust-review".
    pub id: String,
    /// Human-readable name of the skill.
    pub name: String,
    /// What the skill does, for other agents deciding whom to ask.
    pub description: Option<String>,
    /// Keywords others search by, such as ["code", "rust"].
    pub tags: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct AnnounceCard {
    /// Your agent's name as others will see it.
    pub name: String,
    /// What you do, in a sentence or two.
    pub description: Option<String>,
    /// Your version, such as "1.2".
    pub version: Option<String>,
    /// Where other agents can reach you directly (an A2A endpoint), if anywhere.
    pub url: Option<String>,
    /// What you can do; others find you by these.
    pub skills: Option<Vec<SkillParam>>,
    /// How long the card stays live, in milliseconds (at most 30 days). Announce again
    /// before it runs out to stay listed. Default: one hour.
    pub ttl_ms: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RevokeCard {
    /// Why you withdraw your card (shown to others).
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct Claim {
    /// The resource to claim: any name without whitespace or "*", such as "repo/plexus" or
    /// "file:src/main.rs". Everyone claiming the same name competes for it.
    pub resource: String,
    /// What you will do with it, such as "write" or "deploy". Default "write".
    pub action: Option<String>,
    /// How long the claim lasts unless renewed, in milliseconds (at most one day).
    /// Default 60000 (one minute).
    pub lease_ms: Option<u64>,
    /// 0-255; only breaks ties between claims made in the same millisecond, never preempts.
    pub priority: Option<u8>,
    /// Why you claim it (shown to others).
    pub note: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct Renew {
    /// The claim id returned by `claim`.
    pub claim_id: String,
    /// New lease from now, in milliseconds (at most one day). Default 60000.
    pub lease_ms: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ClaimId {
    /// The claim id returned by `claim` (64 hex digits).
    pub claim_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct WaitForClaim {
    /// The claim id returned by `claim` (64 hex digits).
    pub claim_id: String,
    /// How long to wait at most, in seconds (1 to 300). Default 30. If the claim still waits
    /// then, the answer says so and you can call again.
    pub timeout_seconds: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListLeases {
    /// Only this resource.
    pub resource: Option<String>,
    /// Only resources this agent (its 64-hex-digit id) holds.
    pub holder: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct UpdateTask {
    /// The task's id; the first update with a new id creates the task.
    pub task_id: String,
    /// The new state. A new task starts SUBMITTED; then WORKING, INPUT_REQUIRED or
    /// AUTH_REQUIRED; it ends COMPLETED, FAILED, CANCELED or REJECTED. Illegal moves are
    /// refused with the reason.
    pub state: TaskStateParam,
    /// A short message about this update, such as the result or what is missing.
    pub message: Option<String>,
    /// Groups related tasks, such as a conversation or a project.
    pub context_id: Option<String>,
    /// Ids of entries this update refers to (64 hex digits each).
    pub references: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct TaskId {
    /// The task's id.
    pub task_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListTasks {
    /// Only tasks in this state.
    pub state: Option<TaskStateParam>,
    /// Only tasks in this context.
    pub context_id: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct AddConstraint {
    /// A resource, or a prefix ending in "*" (such as "deploy/*").
    pub resource: String,
    /// The rule, one of: {"type": "exclusive"}, {"type": "maxHolders", "limit": 2},
    /// {"type": "notBefore", "at": <unix milliseconds>},
    /// {"type": "rateLimit", "claims": 3, "windowMs": 60000}.
    pub rule: Value,
    /// How long the constraint stays in force, in milliseconds (at most 30 days).
    pub ttl_ms: u64,
    /// Why (shown to others).
    pub note: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SharePattern {
    /// What the pattern is about, such as "ci" or "flaky-tests".
    pub topic: String,
    /// The lesson, in a sentence.
    pub summary: String,
    /// How sure you are, from 0 to 1.
    pub confidence: f64,
    /// Any JSON with details.
    pub data: Option<Value>,
    /// Ids of entries this pattern was learned from.
    pub references: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SearchPatterns {
    /// Only patterns on this topic (exact).
    pub topic: Option<String>,
    /// Only patterns whose topic or summary contains this text (any case).
    pub text: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct PublishEntry {
    /// An application kind starting with "x-", such as "x-note".
    pub kind: String,
    /// The entry's body: any JSON value.
    pub body: Value,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RecentEvents {
    /// Only events of these types: "claim.won", "claim.lost", "claim.ended", "lease",
    /// "task", "entry" (or an entry kind such as "x-note").
    pub kinds: Option<Vec<String>>,
    /// Only events numbered above this (pass the last id you saw to get only newer ones).
    pub after_id: Option<u64>,
    /// If no such event is buffered yet, wait up to this many seconds for one (0 to 60).
    /// Default 0.
    pub wait_seconds: Option<u64>,
    /// At most this many events, the newest (1 to 100). Default 20.
    pub limit: Option<usize>,
}
