//! The other queries of [`View`]: the capability registry (cards), tasks through their
//! state machine, live constraints and shared patterns.

use serde::Serialize;

use super::{Stamped, View};
use crate::body::{Capability, Constraint, ConstraintRule, Skill, TaskState};

/// A card as the registry shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CardView {
    pub author: String,
    pub name: String,
    pub description: String,
    pub version: String,
    pub url: Option<String>,
    pub skills: Vec<Skill>,
    pub published_ms: u64,
    pub expires_ms: u64,
    pub entry_id: String,
}

/// A task with its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskView {
    pub task_id: String,
    pub context_id: String,
    pub state: TaskState,
    pub message: String,
    /// The author of the task's first accepted update.
    pub created_by: String,
    pub updated_by: String,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub history: Vec<TaskHistoryItem>,
}

/// One update in a task's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskHistoryItem {
    pub entry_id: String,
    pub author: String,
    pub timestamp_ms: u64,
    pub state: TaskState,
    pub message: String,
    pub references: Vec<String>,
    /// Why the state machine refused this update; `None` when it was applied.
    pub rejected: Option<String>,
}

/// A live constraint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConstraintView {
    pub entry_id: String,
    pub author: String,
    pub resource: String,
    pub rule: ConstraintRule,
    pub note: String,
    pub published_ms: u64,
    pub expires_ms: u64,
}

/// A shared pattern.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PatternView {
    pub entry_id: String,
    pub author: String,
    pub topic: String,
    pub summary: String,
    pub data: serde_json::Value,
    pub confidence: f64,
    pub references: Vec<String>,
    pub published_ms: u64,
}

/// Filters for the capability registry; each given filter must match (case-insensitively).
#[derive(Debug, Clone, Default)]
pub struct CardQuery {
    /// A skill id or name.
    pub skill: Option<String>,
    /// A tag of any skill.
    pub tag: Option<String>,
    /// Text found in the name, description, or any skill's name, description or tags.
    pub text: Option<String>,
}

impl View {
    /// Live cards matching `query`, by author.
    pub fn cards(&self, namespace: &str, query: &CardQuery, now_ms: u64) -> Vec<CardView> {
        let Some(space) = self.spaces.get(namespace) else {
            return Vec::new();
        };
        space
            .cards
            .iter()
            .filter_map(|(author, events)| {
                let latest = events
                    .values()
                    .rev()
                    .find(|event| event.timestamp_ms <= now_ms)?;
                let card = latest.value.as_ref()?;
                let expires_ms = latest.timestamp_ms.saturating_add(card.ttl_ms);
                (now_ms < expires_ms && query.matches(card)).then(|| CardView {
                    author: author.to_string(),
                    name: card.name.clone(),
                    description: card.description.clone(),
                    version: card.version.clone(),
                    url: card.url.clone(),
                    skills: card.skills.clone(),
                    published_ms: latest.timestamp_ms,
                    expires_ms,
                    entry_id: latest.id.to_string(),
                })
            })
            .collect()
    }

    /// Every task, by task id.
    pub fn tasks(&self, namespace: &str, now_ms: u64) -> Vec<TaskView> {
        let Some(space) = self.spaces.get(namespace) else {
            return Vec::new();
        };
        space
            .tasks
            .keys()
            .filter_map(|task_id| self.task(namespace, task_id, now_ms))
            .collect()
    }

    /// One task, replayed through the state machine.
    pub fn task(&self, namespace: &str, task_id: &str, now_ms: u64) -> Option<TaskView> {
        let updates = self.spaces.get(namespace)?.tasks.get(task_id)?;
        let mut view: Option<TaskView> = None;
        for update in updates.values().filter(|u| u.timestamp_ms <= now_ms) {
            let state = update.value.status.state;
            let from = view.as_ref().map(|task| task.state);
            let verdict = state.check_transition(from);
            let item = TaskHistoryItem {
                entry_id: update.id.to_string(),
                author: update.author.to_string(),
                timestamp_ms: update.timestamp_ms,
                state,
                message: update.value.status.message.clone(),
                references: update.value.references.clone(),
                rejected: verdict.clone().err(),
            };
            match (&mut view, verdict) {
                (None, Ok(())) => {
                    view = Some(TaskView {
                        task_id: task_id.to_owned(),
                        context_id: update.value.context_id.clone(),
                        state,
                        message: update.value.status.message.clone(),
                        created_by: update.author.to_string(),
                        updated_by: update.author.to_string(),
                        created_ms: update.timestamp_ms,
                        updated_ms: update.timestamp_ms,
                        history: vec![item],
                    });
                }
                (Some(task), Ok(())) => {
                    task.state = state;
                    task.message = update.value.status.message.clone();
                    task.updated_by = update.author.to_string();
                    task.updated_ms = update.timestamp_ms;
                    if task.context_id.is_empty() {
                        task.context_id = update.value.context_id.clone();
                    }
                    task.history.push(item);
                }
                (Some(task), Err(_)) => task.history.push(item),
                // An illegal first update does not create the task; it is not shown until a
                // legal one arrives, and then only the legal history counts.
                (None, Err(_)) => {}
            }
        }
        view
    }

    /// Whether `state` may follow the task's current state at `now_ms`.
    pub fn check_task_update(
        &self,
        namespace: &str,
        task_id: &str,
        state: TaskState,
        now_ms: u64,
    ) -> Result<(), String> {
        let current = self.task(namespace, task_id, now_ms).map(|task| task.state);
        state.check_transition(current)
    }

    /// Live constraints, by entry id.
    pub fn constraints(&self, namespace: &str, now_ms: u64) -> Vec<ConstraintView> {
        let Some(space) = self.spaces.get(namespace) else {
            return Vec::new();
        };
        let mut live: Vec<&Stamped<Constraint>> = space.live_constraints(now_ms).collect();
        live.sort_by_key(|constraint| constraint.id);
        live.into_iter()
            .map(|constraint| ConstraintView {
                entry_id: constraint.id.to_string(),
                author: constraint.author.to_string(),
                resource: constraint.value.resource.clone(),
                rule: constraint.value.rule.clone(),
                note: constraint.value.note.clone(),
                published_ms: constraint.timestamp_ms,
                expires_ms: constraint
                    .timestamp_ms
                    .saturating_add(constraint.value.ttl_ms),
            })
            .collect()
    }

    /// Patterns published up to `now_ms`, optionally only those on `topic`, oldest first.
    pub fn patterns(&self, namespace: &str, topic: Option<&str>, now_ms: u64) -> Vec<PatternView> {
        let Some(space) = self.spaces.get(namespace) else {
            return Vec::new();
        };
        let mut patterns: Vec<PatternView> = space
            .patterns
            .values()
            .filter(|p| p.timestamp_ms <= now_ms)
            .filter(|p| topic.is_none_or(|topic| p.value.topic == topic))
            .map(|p| PatternView {
                entry_id: p.id.to_string(),
                author: p.author.to_string(),
                topic: p.value.topic.clone(),
                summary: p.value.summary.clone(),
                data: p.value.data.clone(),
                confidence: p.value.confidence,
                references: p.value.references.clone(),
                published_ms: p.timestamp_ms,
            })
            .collect();
        patterns.sort_by(|a, b| (a.published_ms, &a.entry_id).cmp(&(b.published_ms, &b.entry_id)));
        patterns
    }
}

impl CardQuery {
    fn matches(&self, card: &Capability) -> bool {
        let has = |haystack: &str, needle: &str| haystack.to_lowercase().contains(needle);
        let equal = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
        if let Some(skill) = &self.skill {
            if !card
                .skills
                .iter()
                .any(|s| equal(&s.id, skill) || equal(&s.name, skill))
            {
                return false;
            }
        }
        if let Some(tag) = &self.tag {
            if !card
                .skills
                .iter()
                .any(|s| s.tags.iter().any(|t| equal(t, tag)))
            {
                return false;
            }
        }
        if let Some(text) = &self.text {
            let needle = text.to_lowercase();
            let found = has(&card.name, &needle)
                || has(&card.description, &needle)
                || card.skills.iter().any(|s| {
                    has(&s.name, &needle)
                        || has(&s.description, &needle)
                        || has(&s.id, &needle)
                        || s.tags.iter().any(|t| has(t, &needle))
                });
            if !found {
                return false;
            }
        }
        true
    }
}
