//! The other queries of [`View`]: the capability registry (cards), live constraints and
//! shared patterns.

use serde::Serialize;

use super::{Stamped, View};
use crate::body::{Capability, Constraint, ConstraintRule, Skill};

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
