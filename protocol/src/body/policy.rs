//! The body of a `policy` entry (`docs/PROTOCOL.md` §10.1): one complete version of a governed
//! namespace's rules, and the checks on its fields.
//!
//! What the rules mean, and the decision made with them, is [`crate::policy`]'s.

use std::collections::{BTreeMap, BTreeSet};

use plexus_crypto::AgentId;
use serde::{Deserialize, Serialize};

use super::{BodyError, Checker, MAX_LEASE_MS, MAX_LONG_TEXT, MAX_SHORT_TEXT, MAX_TTL_MS};
use crate::kind::Kind;

/// Most members one policy lists. A policy is one entry (at most 64 kB), and a member costs
/// about 100 bytes, so this leaves room for roles and revocations.
pub const MAX_MEMBERS: usize = 512;
/// Most roles one policy defines.
pub const MAX_ROLES: usize = 32;
/// Most kind patterns one role lists.
pub const MAX_ROLE_KINDS: usize = 32;
/// Most revocations one policy carries (they are carried forward from version to version).
pub const MAX_REVOKED: usize = 512;
/// Highest per-author rate limit count: a node keeps this many timestamps per governed feed.
pub const MAX_RATE_ENTRIES: u32 = 1_000;
/// Highest limit on concurrent claims per agent.
pub const MAX_CLAIMS_LIMIT: u32 = 1_024;
/// Widest clock-skew window a policy may set: one hour.
pub const MAX_CLOCK_SKEW_MS: u64 = 60 * 60 * 1000;

/// The body of a `policy` entry: one complete version of a governed namespace's rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyBody {
    /// 1 for the first policy, higher for each replacement.
    pub version: u64,
    /// When the policy takes effect (ms since the Unix epoch); the entry's own timestamp when
    /// absent. It may not be earlier than the entry's timestamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_from: Option<u64>,
    /// Role name to the kinds it may post: a kind name, `x-*` for every application kind, or
    /// `*` for every kind but `policy`.
    #[serde(default)]
    pub roles: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub members: Vec<Member>,
    #[serde(default)]
    pub revoked: Vec<Revocation>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// One member: an agent id (64 hex digits) and its roles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Member {
    pub agent: String,
    pub roles: Vec<String>,
}

/// A revocation: the agent's entries after `afterSeq` (in this namespace) are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Revocation {
    pub agent: String,
    pub after_seq: u64,
}

/// Limits on members' entries. Every field is optional; an absent one does not limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Limits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<u64>,
    /// At most `entries` entries per author in any window of `windowMs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<RateLimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lease_ms: Option<u64>,
    /// Most claims one agent may have running at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_claims: Option<u32>,
    /// Longest `ttlMs` of a card or constraint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ttl_ms: Option<u64>,
    /// How far a live entry's timestamp may be from the receiving node's clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_skew_ms: Option<u64>,
}

/// The per-author rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimit {
    pub entries: u32,
    pub window_ms: u64,
}

/// A checked policy body's agent ids, parsed: what [`crate::policy::Policy`] is built from.
pub(crate) struct CompiledPolicy {
    /// Each member and its roles.
    pub(crate) members: BTreeMap<AgentId, BTreeSet<String>>,
    /// Each revoked agent and the lowest `afterSeq` the body gives it.
    pub(crate) revoked: BTreeMap<AgentId, u64>,
}

impl PolicyBody {
    /// Checks every field's range and references; `kind` names the entry kind in errors.
    pub(crate) fn validate(&self, check: &Checker<'_>) -> Result<(), BodyError> {
        self.compile(check).map(|_| ())
    }

    /// Checks the body and parses its agent ids into the maps the decision uses.
    pub(crate) fn compile(&self, check: &Checker<'_>) -> Result<CompiledPolicy, BodyError> {
        if self.version == 0 {
            return Err(check.field("version", "must be at least 1"));
        }
        check.text("note", &self.note, 0, MAX_LONG_TEXT)?;
        if self.roles.len() > MAX_ROLES {
            return Err(check.field(
                "roles",
                format!("has {} roles; the limit is {MAX_ROLES}", self.roles.len()),
            ));
        }
        for (role, kinds) in &self.roles {
            check.text(&format!("roles.{role}"), role, 1, MAX_SHORT_TEXT)?;
            if kinds.len() > MAX_ROLE_KINDS {
                return Err(check.field(
                    &format!("roles.{role}"),
                    format!("lists {} kinds; the limit is {MAX_ROLE_KINDS}", kinds.len()),
                ));
            }
            for kind in kinds {
                if !is_kind_pattern(kind) {
                    return Err(check.field(
                        &format!("roles.{role}"),
                        format!(
                            "lists {kind:?}, which is not a kind: use one of {}, an x- kind, \
                             `x-*` or `*`",
                            role_kind_names().join(", ")
                        ),
                    ));
                }
            }
        }
        if self.members.len() > MAX_MEMBERS {
            return Err(check.field(
                "members",
                format!(
                    "has {} members; the limit is {MAX_MEMBERS}",
                    self.members.len()
                ),
            ));
        }
        let mut members = BTreeMap::new();
        for (index, member) in self.members.iter().enumerate() {
            let field = format!("members[{index}]");
            let agent = parse_agent(check, &format!("{field}.agent"), &member.agent)?;
            for role in &member.roles {
                if !self.roles.contains_key(role) {
                    return Err(check.field(
                        &format!("{field}.roles"),
                        format!("names role {role:?}, which `roles` does not define"),
                    ));
                }
            }
            let roles: BTreeSet<String> = member.roles.iter().cloned().collect();
            if members.insert(agent, roles).is_some() {
                return Err(check.field(
                    &format!("{field}.agent"),
                    "lists an agent a second time: give each member once, with all its roles",
                ));
            }
        }
        if self.revoked.len() > MAX_REVOKED {
            return Err(check.field(
                "revoked",
                format!(
                    "has {} revocations; the limit is {MAX_REVOKED}",
                    self.revoked.len()
                ),
            ));
        }
        let mut revoked = BTreeMap::new();
        for (index, revocation) in self.revoked.iter().enumerate() {
            let agent = parse_agent(check, &format!("revoked[{index}].agent"), &revocation.agent)?;
            let after = revoked.entry(agent).or_insert(revocation.after_seq);
            *after = (*after).min(revocation.after_seq);
        }
        let limits = &self.limits;
        if let Some(max) = limits.max_body_bytes {
            if max == 0 || max > crate::MAX_BODY_LEN as u64 {
                return Err(check.field(
                    "limits.maxBodyBytes",
                    format!("must be from 1 to {}", crate::MAX_BODY_LEN),
                ));
            }
        }
        if let Some(rate) = limits.rate {
            if rate.entries == 0 || rate.entries > MAX_RATE_ENTRIES {
                return Err(check.field(
                    "limits.rate.entries",
                    format!("must be from 1 to {MAX_RATE_ENTRIES}"),
                ));
            }
            check.duration("limits.rate.windowMs", rate.window_ms, MAX_TTL_MS)?;
        }
        if let Some(lease) = limits.max_lease_ms {
            check.duration("limits.maxLeaseMs", lease, MAX_LEASE_MS)?;
        }
        if let Some(claims) = limits.max_claims {
            if claims == 0 || claims > MAX_CLAIMS_LIMIT {
                return Err(check.field(
                    "limits.maxClaims",
                    format!("must be from 1 to {MAX_CLAIMS_LIMIT}"),
                ));
            }
        }
        if let Some(ttl) = limits.max_ttl_ms {
            check.duration("limits.maxTtlMs", ttl, MAX_TTL_MS)?;
        }
        if let Some(skew) = limits.clock_skew_ms {
            check.duration("limits.clockSkewMs", skew, MAX_CLOCK_SKEW_MS)?;
        }
        Ok(CompiledPolicy { members, revoked })
    }
}

/// The named kinds a role may list: the coordination kinds (`policy` is for admins only).
fn role_kind_names() -> Vec<&'static str> {
    Kind::NAMED
        .into_iter()
        .filter(|kind| kind.is_coordination())
        .map(Kind::as_str)
        .collect()
}

fn is_kind_pattern(pattern: &str) -> bool {
    pattern == "*"
        || pattern == "x-*"
        || match Kind::parse(pattern) {
            Ok(Kind::Application) => crate::entry::check_name("kind", pattern).is_ok(),
            Ok(kind) => kind.is_coordination(),
            Err(_) => false,
        }
}

fn parse_agent(check: &Checker<'_>, field: &str, text: &str) -> Result<AgentId, BodyError> {
    text.parse().map_err(|error| match error {
        plexus_crypto::IdentityError::BadHex { .. } => {
            check.field(field, "must be an agent id: 64 lowercase hex digits")
        }
        // Well-formed hex that is no usable key: say which, not that the digits are wrong.
        other => check.field(field, format!("is not a usable agent id: {other}")),
    })
}
