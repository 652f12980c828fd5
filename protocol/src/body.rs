//! Entry bodies: the one place where a kind is mapped to the type of its body, parsed, checked
//! and encoded.
//!
//! A body is a JSON object stored as canonical CBOR ([`crate::value`]), so equal data always
//! hashes equal. Field names are camelCase, as in A2A. Unknown fields are refused, so a
//! misspelt optional field is an error instead of being ignored. Every string and list has a
//! cap, checked here, so one entry cannot make every node's view grow without bound.
//!
//! The coordination bodies are in [`coordination`], the `policy` body in [`policy`]; the view
//! ([`crate::coord`]) and the governance decision ([`crate::policy`]) both read them from here,
//! and neither depends on the other.

pub mod coordination;
pub mod policy;

use plexus_crypto::Hash256;

use crate::entry::Entry;
use crate::kind::{Kind, UnknownKind};
use crate::value::{self, ValueError};

pub use coordination::{
    Capability, CapabilityRevoke, Constraint, ConstraintRule, Intent, IntentRelease, IntentRenew,
    Pattern, Skill, TaskState, TaskStatus, TaskUpdate,
};
pub use policy::{Limits, Member, PolicyBody, RateLimit, Revocation};

/// Longest short text field (names, ids, versions, actions, topics), in bytes.
pub const MAX_SHORT_TEXT: usize = 256;
/// Longest long text field (descriptions, notes, messages, summaries), in bytes.
pub const MAX_LONG_TEXT: usize = 4096;
/// Most skills on one card, tags on one skill, and references in one entry.
pub const MAX_LIST: usize = 64;
/// Longest lease a claim or renewal may ask for: one day. Governance can lower it.
pub const MAX_LEASE_MS: u64 = 24 * 60 * 60 * 1000;
/// Longest time-to-live of a card or constraint: thirty days. Governance can lower it.
pub const MAX_TTL_MS: u64 = 30 * 24 * 60 * 60 * 1000;

/// Why an entry's body is not acceptable for its kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The kind is neither a coordination kind, `policy`, nor an `x-` application kind.
    #[error(transparent)]
    UnknownKind(#[from] UnknownKind),
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
            BodyError::UnknownKind(_) => "unknown_kind",
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

impl Body {
    /// Parses and checks the canonical body bytes of an entry whose kind is named `kind`.
    pub fn parse(kind: &str, bytes: &[u8]) -> Result<Body, BodyError> {
        let known = Kind::parse(kind)?;
        let json = value::canonical_to_json(bytes).map_err(|source| BodyError::NotCanonical {
            kind: kind.to_owned(),
            source,
        })?;
        Body::from_json_of(known, kind, json)
    }

    /// Parses and checks the body `entry` carries, for the entry's kind: `Ok(None)` when the
    /// body was pruned (the kind is still checked). This is the one parse an entry's body
    /// gets on its way into a node; what follows (policy, log, view) takes the result.
    pub fn of_entry(entry: &Entry) -> Result<Option<Body>, BodyError> {
        let kind = entry.header().kind.as_str();
        match entry.body() {
            Some(bytes) => Body::parse(kind, bytes).map(Some),
            None => Kind::parse(kind).map(|_| None).map_err(BodyError::from),
        }
    }

    /// Builds and checks a body of the kind named `kind` from JSON (as an agent sends it to
    /// the API).
    pub fn from_json(kind: &str, json: serde_json::Value) -> Result<Body, BodyError> {
        Body::from_json_of(Kind::parse(kind)?, kind, json)
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
            kind: self.kind().to_string(),
            problem: error.to_string(),
        })?;
        value::json_to_canonical(&json).map_err(|source| BodyError::NotCanonical {
            kind: self.kind().to_string(),
            source,
        })
    }

    /// The kind this body belongs to.
    pub fn kind(&self) -> Kind {
        match self {
            Body::Capability(_) => Kind::Capability,
            Body::CapabilityRevoke(_) => Kind::CapabilityRevoke,
            Body::Intent(_) => Kind::Intent,
            Body::IntentRenew(_) => Kind::IntentRenew,
            Body::IntentRelease(_) => Kind::IntentRelease,
            Body::Task(_) => Kind::Task,
            Body::Constraint(_) => Kind::Constraint,
            Body::Pattern(_) => Kind::Pattern,
            Body::Policy(_) => Kind::Policy,
            Body::Application(_) => Kind::Application,
        }
    }

    /// The mapping from kind to body type: `name` is the kind's name as written, for errors
    /// (an application kind's own name, not `x-*`).
    fn from_json_of(kind: Kind, name: &str, json: serde_json::Value) -> Result<Body, BodyError> {
        #[cfg(test)]
        parse_count::PARSES.with(|count| count.set(count.get() + 1));
        let body = match kind {
            Kind::Capability => Body::Capability(typed(name, json)?),
            Kind::CapabilityRevoke => Body::CapabilityRevoke(typed(name, json)?),
            Kind::Intent => Body::Intent(typed(name, json)?),
            Kind::IntentRenew => Body::IntentRenew(typed(name, json)?),
            Kind::IntentRelease => Body::IntentRelease(typed(name, json)?),
            Kind::Task => Body::Task(typed(name, json)?),
            Kind::Constraint => Body::Constraint(typed(name, json)?),
            Kind::Pattern => Body::Pattern(typed(name, json)?),
            Kind::Policy => Body::Policy(typed(name, json)?),
            Kind::Application => Body::Application(json),
        };
        body.validate(name)?;
        Ok(body)
    }

    fn validate(&self, kind: &str) -> Result<(), BodyError> {
        let check = Checker { kind };
        match self {
            Body::Capability(card) => card.validate(&check),
            Body::CapabilityRevoke(revoke) => {
                check.text("reason", &revoke.reason, 0, MAX_LONG_TEXT)
            }
            Body::Intent(intent) => intent.validate(&check),
            Body::IntentRenew(renew) => {
                check.entry_id("claim", &renew.claim)?;
                check.duration("leaseMs", renew.lease_ms, MAX_LEASE_MS)
            }
            Body::IntentRelease(release) => check.entry_id("claim", &release.claim),
            Body::Task(update) => update.validate(&check),
            Body::Constraint(constraint) => constraint.validate(&check),
            Body::Pattern(pattern) => pattern.validate(&check),
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

/// The field checks every body shares; `kind` names the entry kind in errors.
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

/// Bodies parsed (from bytes or JSON) on the current thread, for the tests that count the
/// parses an entry takes on its way in; compiled in the protocol crate's tests only.
#[cfg(test)]
pub(crate) mod parse_count {
    use std::cell::Cell;

    thread_local! {
        pub(crate) static PARSES: Cell<u64> = const { Cell::new(0) };
    }

    /// Bodies parsed on this thread so far.
    pub(crate) fn on_this_thread() -> u64 {
        PARSES.with(Cell::get)
    }
}
