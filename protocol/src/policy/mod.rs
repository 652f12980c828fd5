//! Governance: signed policy entries and the pure decision every node and auditor makes with
//! them.
//!
//! A namespace is **open** (anyone may post, the default) or **governed**: it has a trust root,
//! a set of admin keys every node of the deployment is configured with. In a governed
//! namespace the admins publish `policy` entries, each a complete, versioned rule set
//! ([`PolicyBody`], parsed and checked in [`crate::body`] with the other bodies): the roles and which kinds each may post, the members and their roles,
//! revocations, and limits (body size, per-author rate, lease and TTL caps, most concurrent
//! claims, the clock-skew window). Normative text: `docs/PROTOCOL.md` §10.
//!
//! The decision ([`PolicyBook::decide`]) is a pure function of the entry, the policy entries
//! known, and the author's earlier entries in the same feed ([`FeedState`]). Every node and an
//! auditor holding the same entries reach the same verdicts:
//! - **Which policy applies.** The one in force at the entry's timestamp: the highest version
//!   whose `effectiveFrom` is at or before it (ties between two policies of one version go to
//!   the smaller entry id). A policy may not take effect before its own timestamp.
//! - **Revocations are by position, not time.** `revoked: [{agent, afterSeq}]` refuses every
//!   entry of that agent past `afterSeq` as soon as any known policy says so, whatever the
//!   entry's timestamp: a removed member cannot backdate its way back in, and the entries it
//!   published before removal stay valid.
//! - **Admins** (the trust root) are not subject to the rules; only they may publish `policy`.
//! - **Stateful rules use the author's own feed**, which is a hash chain every node holds
//!   complete: timestamps may not go backwards within a feed, the rate limit counts the
//!   author's previous entries in the window, and concurrent claims are the author's claims
//!   whose leases are still running at the entry's timestamp.

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use plexus_crypto::{AgentId, Hash256};

use crate::body::{Body, BodyError, Checker};
use crate::entry::Entry;
use crate::kind::{Kind, APPLICATION_KIND_PREFIX};

pub use crate::body::policy::{
    Limits, Member, PolicyBody, RateLimit, Revocation, MAX_CLAIMS_LIMIT, MAX_CLOCK_SKEW_MS,
    MAX_MEMBERS, MAX_RATE_ENTRIES, MAX_REVOKED, MAX_ROLES, MAX_ROLE_KINDS,
};

/// Claims tracked per feed for the concurrent-claims rule. Only claims whose leases still run
/// are kept, and [`MAX_CLAIMS_LIMIT`] is lower, so this bound is reached only in a namespace with
/// no claim limit; the oldest-ending claims are forgotten first.
pub const MAX_TRACKED_CLAIMS: usize = 4_096;
/// A policy as the decision uses it: the body with agent ids parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub body: PolicyBody,
    members: BTreeMap<AgentId, BTreeSet<String>>,
    revoked: BTreeMap<AgentId, u64>,
}

/// A policy entry the book knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRecord {
    pub version: u64,
    pub entry_id: Hash256,
    pub author: AgentId,
    pub timestamp_ms: u64,
    pub effective_from: u64,
    pub policy: Arc<Policy>,
}

/// Which rule an entry broke. The code is stable: it appears in the rejection journal, the
/// API, metrics and audit reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    /// A `policy` entry by a key outside the trust root.
    NotAdmin,
    /// A policy whose `effectiveFrom` lies before its own timestamp.
    Retroactive,
    /// An entry without its body: in a governed namespace the body rules must be checkable
    /// (and a policy without its body would be stored yet never learnt).
    MissingBody,
    /// No policy is in force at the entry's timestamp, and the author is not an admin.
    NoPolicy,
    /// The author was revoked at a seq before this entry's.
    Revoked,
    NotMember,
    KindNotAllowed,
    BodyTooLarge,
    /// The entry's timestamp is earlier than the previous entry of its feed.
    TimestampRegressed,
    RateLimited,
    LeaseTooLong,
    TtlTooLong,
    TooManyClaims,
}

/// An entry the policy refuses: the rule, the policy version used, and a message that says
/// what was wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Violation {
    pub rule: Rule,
    pub policy_version: Option<u64>,
    pub message: String,
    /// For [`Rule::RateLimited`]: how long until the author may post again.
    pub retry_after_ms: Option<u64>,
}

/// An accepted entry's verdict: which policy version allowed it (`None` for an admin's entry
/// before any policy, or a policy entry itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowed {
    pub policy_version: Option<u64>,
}

/// What the stateful rules need to know about an author's feed: folded from the feed's
/// entries in seq order ([`FeedState::observe`]), independent of any policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedState {
    pub last_seq: u64,
    pub last_timestamp_ms: u64,
    /// Timestamps of the latest entries, oldest first, at most [`MAX_RATE_ENTRIES`].
    recent: VecDeque<u64>,
    /// Claims whose leases were still running at the latest entry: (claim id, lease end).
    claims: Vec<(Hash256, u64)>,
}

/// The trust root and the known policies of one governed namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyBook {
    namespace: String,
    admins: BTreeSet<AgentId>,
    /// Known policies, ordered by (version, entry id).
    records: Vec<PolicyRecord>,
    /// Every revocation any known policy carries: agent to the lowest `afterSeq`.
    revoked: BTreeMap<AgentId, u64>,
}

impl Rule {
    /// The stable code of the rule.
    pub fn code(self) -> &'static str {
        match self {
            Rule::NotAdmin => "not-admin",
            Rule::Retroactive => "retroactive-policy",
            Rule::MissingBody => "missing-body",
            Rule::NoPolicy => "no-policy",
            Rule::Revoked => "revoked",
            Rule::NotMember => "not-member",
            Rule::KindNotAllowed => "kind-not-allowed",
            Rule::BodyTooLarge => "body-too-large",
            Rule::TimestampRegressed => "timestamp-regressed",
            Rule::RateLimited => "rate-limited",
            Rule::LeaseTooLong => "lease-too-long",
            Rule::TtlTooLong => "ttl-too-long",
            Rule::TooManyClaims => "too-many-claims",
        }
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

impl Policy {
    /// Parses a policy body as the decision uses it.
    pub fn from_body(body: &PolicyBody) -> Result<Policy, BodyError> {
        let compiled = body.compile(&Checker {
            kind: Kind::Policy.as_str(),
        })?;
        Ok(Policy {
            body: body.clone(),
            members: compiled.members,
            revoked: compiled.revoked,
        })
    }

    /// The roles of `agent`, if it is a member.
    pub fn roles_of(&self, agent: &AgentId) -> Option<&BTreeSet<String>> {
        self.members.get(agent)
    }

    /// Members and their roles, in agent order.
    pub fn members(&self) -> impl Iterator<Item = (&AgentId, &BTreeSet<String>)> {
        self.members.iter()
    }

    /// Whether any of `roles` allows `kind`.
    pub fn allows_kind(&self, roles: &BTreeSet<String>, kind: &str) -> bool {
        roles.iter().any(|role| {
            self.body
                .roles
                .get(role)
                .is_some_and(|patterns| patterns.iter().any(|pattern| kind_matches(pattern, kind)))
        })
    }
}

impl FeedState {
    /// Folds the next accepted entry of the feed (in seq order). `body` is its parsed body,
    /// when present.
    pub fn observe(&mut self, entry: &Entry, body: Option<&Body>) {
        let header = entry.header();
        let now = header.timestamp_ms;
        self.last_seq = header.seq;
        self.last_timestamp_ms = self.last_timestamp_ms.max(now);
        if self.recent.len() == MAX_RATE_ENTRIES as usize {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
        self.claims.retain(|(_, end)| *end > now);
        match body {
            Some(Body::Intent(intent)) => {
                if self.claims.len() == MAX_TRACKED_CLAIMS {
                    if let Some(first_ending) = self
                        .claims
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, (_, end))| *end)
                        .map(|(index, _)| index)
                    {
                        self.claims.swap_remove(first_ending);
                    }
                }
                self.claims
                    .push((entry.id(), now.saturating_add(intent.lease_ms)));
            }
            Some(Body::IntentRenew(renew)) => {
                if let Some(id) = crate::body::parse_entry_id(&renew.claim) {
                    if let Some((_, end)) = self.claims.iter_mut().find(|(claim, _)| *claim == id) {
                        *end = now.saturating_add(renew.lease_ms);
                    }
                }
            }
            Some(Body::IntentRelease(release)) => {
                if let Some(id) = crate::body::parse_entry_id(&release.claim) {
                    self.claims.retain(|(claim, _)| *claim != id);
                }
            }
            _ => {}
        }
    }

    /// Claims still running at `at_ms`.
    pub fn running_claims(&self, at_ms: u64) -> usize {
        self.claims.iter().filter(|(_, end)| *end > at_ms).count()
    }
}

impl PolicyBook {
    /// An empty book for a governed namespace with these admins.
    pub fn new(namespace: impl Into<String>, admins: BTreeSet<AgentId>) -> PolicyBook {
        PolicyBook {
            namespace: namespace.into(),
            admins,
            records: Vec::new(),
            revoked: BTreeMap::new(),
        }
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn admins(&self) -> &BTreeSet<AgentId> {
        &self.admins
    }

    pub fn is_admin(&self, agent: &AgentId) -> bool {
        self.admins.contains(agent)
    }

    /// Known policies, by (version, entry id).
    pub fn records(&self) -> &[PolicyRecord] {
        &self.records
    }

    /// The newest known policy, whether or not it is in force yet.
    pub fn latest(&self) -> Option<&PolicyRecord> {
        self.records.last()
    }

    /// The policy in force at `at_ms`.
    pub fn in_force(&self, at_ms: u64) -> Option<&PolicyRecord> {
        // Records are sorted by (version, id): the last one in effect has the highest version,
        // and among equal versions the smallest id comes first.
        let mut best: Option<&PolicyRecord> = None;
        for record in self.records.iter().filter(|r| r.effective_from <= at_ms) {
            match best {
                Some(current) if current.version == record.version => {}
                _ => best = Some(record),
            }
        }
        best
    }

    /// The revocation that applies to `agent`, if any: its entries after this seq are refused.
    pub fn revoked_after(&self, agent: &AgentId) -> Option<u64> {
        self.revoked.get(agent).copied()
    }

    /// Every revocation any known policy carries (agent, after seq), in agent order.
    pub fn revocations(&self) -> impl Iterator<Item = (&AgentId, u64)> {
        self.revoked.iter().map(|(agent, after)| (agent, *after))
    }

    /// The clock-skew window the policy in force at `at_ms` sets.
    pub fn clock_skew_ms(&self, at_ms: u64) -> Option<u64> {
        self.in_force(at_ms)
            .and_then(|record| record.policy.body.limits.clock_skew_ms)
    }

    /// Adds an accepted policy entry. Idempotent; ignores entries that are not policies.
    pub fn learn(&mut self, entry: &Entry, body: &PolicyBody) -> Result<(), BodyError> {
        let header = entry.header();
        let id = entry.id();
        if self.records.iter().any(|record| record.entry_id == id) {
            return Ok(());
        }
        let policy = Policy::from_body(body)?;
        for (agent, after) in &policy.revoked {
            let known = self.revoked.entry(*agent).or_insert(*after);
            *known = (*known).min(*after);
        }
        let record = PolicyRecord {
            version: body.version,
            entry_id: id,
            author: header.author,
            timestamp_ms: header.timestamp_ms,
            effective_from: body.effective_from.unwrap_or(header.timestamp_ms),
            policy: Arc::new(policy),
        };
        let at = self
            .records
            .partition_point(|known| (known.version, known.entry_id) < (record.version, id));
        self.records.insert(at, record);
        Ok(())
    }

    /// Decides whether `entry` (of this book's namespace) may be accepted.
    ///
    /// `body` is the entry's parsed body. An entry whose body was pruned is refused
    /// ([`Rule::MissingBody`]): the body rules could not be checked, and a policy would be
    /// stored without being learnt. `feed` is the state of the entry's feed up to its predecessor;
    /// with `None` only the rules that need no history run (used to turn away entries held
    /// while their predecessors are missing); the full decision runs once they chain.
    pub fn decide(
        &self,
        entry: &Entry,
        body: Option<&Body>,
        feed: Option<&FeedState>,
    ) -> Result<Allowed, Violation> {
        let header = entry.header();
        let author = header.author;
        let at = header.timestamp_ms;
        if entry.body().is_none() {
            return Err(self.violation(
                Rule::MissingBody,
                self.in_force(at).map(|record| record.version),
                format!(
                    "entry seq {} of author {author} comes without its body; namespace {} is \
                     governed, so bodies are required: fetch the entry from a peer that holds \
                     it whole",
                    header.seq, self.namespace
                ),
            ));
        }
        if Kind::parse(&header.kind) == Ok(Kind::Policy) {
            return self.decide_policy(entry, body);
        }
        if self.is_admin(&author) {
            return Ok(Allowed {
                policy_version: self.in_force(at).map(|record| record.version),
            });
        }
        if let Some(after) = self.revoked_after(&author) {
            if header.seq > after {
                return Err(self.violation(
                    Rule::Revoked,
                    self.in_force(at).map(|record| record.version),
                    format!(
                        "author {author} was revoked in namespace {} after its entry seq \
                         {after}; entry seq {} is refused. Only an admin can re-admit it, with \
                         a new key",
                        self.namespace, header.seq
                    ),
                ));
            }
        }
        let Some(record) = self.in_force(at) else {
            return Err(self.violation(
                Rule::NoPolicy,
                None,
                format!(
                    "namespace {} is governed and no policy is in force at {at} ms; only its \
                     admins may post until one is published (plexus policy propose)",
                    self.namespace
                ),
            ));
        };
        let version = Some(record.version);
        let policy = &record.policy;
        let Some(roles) = policy.roles_of(&author) else {
            return Err(self.violation(
                Rule::NotMember,
                version,
                format!(
                    "author {author} is not a member of governed namespace {} under policy \
                     v{}: ask an admin to add it (plexus policy propose --add-member)",
                    self.namespace, record.version
                ),
            ));
        };
        if !policy.allows_kind(roles, &header.kind) {
            let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
            return Err(self.violation(
                Rule::KindNotAllowed,
                version,
                format!(
                    "author {author} may not post {} in namespace {}: its roles ({}) under \
                     policy v{} do not allow that kind",
                    header.kind,
                    self.namespace,
                    if roles.is_empty() {
                        "none".to_owned()
                    } else {
                        roles.join(", ")
                    },
                    record.version
                ),
            ));
        }
        let limits = &policy.body.limits;
        if let Some(max) = limits.max_body_bytes {
            if header.body_len > max {
                return Err(self.violation(
                    Rule::BodyTooLarge,
                    version,
                    format!(
                        "body is {} bytes; policy v{} of {} allows at most {max}",
                        header.body_len, record.version, self.namespace
                    ),
                ));
            }
        }
        self.check_body_limits(body, limits, record.version)?;
        let Some(feed) = feed else {
            return Ok(Allowed {
                policy_version: version,
            });
        };
        if at < feed.last_timestamp_ms {
            return Err(self.violation(
                Rule::TimestampRegressed,
                version,
                format!(
                    "entry seq {} of author {author} has timestamp {at}, earlier than its \
                     predecessor's {}; in a governed namespace a feed's timestamps never go \
                     backwards: check the author's clock",
                    header.seq, feed.last_timestamp_ms
                ),
            ));
        }
        if let Some(rate) = limits.rate {
            let count = rate.entries as usize;
            if feed.recent.len() >= count {
                let oldest_in_window = feed
                    .recent
                    .get(feed.recent.len() - count)
                    .copied()
                    .unwrap_or_default();
                let window_end = oldest_in_window.saturating_add(rate.window_ms);
                if at < window_end {
                    let mut violation = self.violation(
                        Rule::RateLimited,
                        version,
                        format!(
                            "author {author} already posted {} entries in the last {} ms; \
                             policy v{} of {} allows {} per {} ms: retry in {} ms",
                            count,
                            rate.window_ms,
                            record.version,
                            self.namespace,
                            rate.entries,
                            rate.window_ms,
                            window_end - at
                        ),
                    );
                    violation.retry_after_ms = Some(window_end - at);
                    return Err(violation);
                }
            }
        }
        if let (Some(max), Some(Body::Intent(_))) = (limits.max_claims, body) {
            let running = feed.running_claims(at);
            if running >= max as usize {
                return Err(self.violation(
                    Rule::TooManyClaims,
                    version,
                    format!(
                        "author {author} already has {running} claims running; policy v{} of \
                         {} allows {max}: release one first",
                        record.version, self.namespace
                    ),
                ));
            }
        }
        Ok(Allowed {
            policy_version: version,
        })
    }

    fn decide_policy(&self, entry: &Entry, body: Option<&Body>) -> Result<Allowed, Violation> {
        let header = entry.header();
        if !self.is_admin(&header.author) {
            return Err(self.violation(
                Rule::NotAdmin,
                self.in_force(header.timestamp_ms)
                    .map(|record| record.version),
                format!(
                    "policy entry by {} refused: only the trust root's admins of namespace {} \
                     may publish policy",
                    header.author, self.namespace
                ),
            ));
        }
        if let Some(Body::Policy(policy)) = body {
            if let Some(from) = policy.effective_from {
                if from < header.timestamp_ms {
                    return Err(self.violation(
                        Rule::Retroactive,
                        Some(policy.version),
                        format!(
                            "policy v{} takes effect at {from} ms, before its own timestamp \
                             {} ms: a policy cannot apply to the past",
                            policy.version, header.timestamp_ms
                        ),
                    ));
                }
            }
        }
        Ok(Allowed {
            policy_version: None,
        })
    }

    fn check_body_limits(
        &self,
        body: Option<&Body>,
        limits: &Limits,
        version: u64,
    ) -> Result<(), Violation> {
        let (lease, ttl) = match body {
            Some(Body::Intent(intent)) => (Some(intent.lease_ms), None),
            Some(Body::IntentRenew(renew)) => (Some(renew.lease_ms), None),
            Some(Body::Capability(card)) => (None, Some(card.ttl_ms)),
            Some(Body::Constraint(constraint)) => (None, Some(constraint.ttl_ms)),
            _ => (None, None),
        };
        if let (Some(lease), Some(max)) = (lease, limits.max_lease_ms) {
            if lease > max {
                return Err(self.violation(
                    Rule::LeaseTooLong,
                    Some(version),
                    format!(
                        "leaseMs {lease} is over the {max} ms that policy v{version} of {} \
                         allows: ask for a shorter lease and renew it",
                        self.namespace
                    ),
                ));
            }
        }
        if let (Some(ttl), Some(max)) = (ttl, limits.max_ttl_ms) {
            if ttl > max {
                return Err(self.violation(
                    Rule::TtlTooLong,
                    Some(version),
                    format!(
                        "ttlMs {ttl} is over the {max} ms that policy v{version} of {} allows",
                        self.namespace
                    ),
                ));
            }
        }
        Ok(())
    }

    fn violation(&self, rule: Rule, policy_version: Option<u64>, message: String) -> Violation {
        Violation {
            rule,
            policy_version,
            message,
            retry_after_ms: None,
        }
    }
}

/// Whether `kind` may be posted under a role listing `pattern`.
pub fn kind_matches(pattern: &str, kind: &str) -> bool {
    match pattern {
        "*" => !Kind::parse(kind).is_ok_and(Kind::is_governance),
        "x-*" => kind.starts_with(APPLICATION_KIND_PREFIX),
        _ => pattern == kind,
    }
}
