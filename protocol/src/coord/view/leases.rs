//! The lease queries of [`View`]: who holds each resource at a time, who waits and who is
//! excluded, by the rules of the view's documentation (lease order, ends, constraints), read
//! through the claim indexes of `space.rs`.

use std::collections::BTreeSet;

use plexus_crypto::{AgentId, Hash256};
use serde::Serialize;

use super::{OrderKey, Space, Stamped, View};
use crate::body::Intent;

/// Where a claim stands at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "standing")]
pub enum ClaimStanding {
    /// The claim holds the lease.
    Holding,
    /// The claim is live and waits; `position` 1 is next.
    Waiting { position: usize },
    /// The claim is live, but a `notBefore` constraint keeps everyone out until `until_ms`.
    Blocked { until_ms: u64 },
    /// A rate-limit constraint excludes the claim.
    RateLimited,
    /// The lease ran out.
    Expired,
    /// Its author released it.
    Released,
}

/// A claim as the lease table shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClaimView {
    pub claim_id: String,
    pub author: String,
    pub resource: String,
    pub action: String,
    pub note: String,
    pub priority: u8,
    pub claimed_ms: u64,
    /// When the lease ends unless renewed (or ended, for a released claim: the release time).
    pub expires_ms: u64,
    #[serde(flatten)]
    pub standing: ClaimStanding,
    /// Whether this node received the claim, or a renewal or release of it by its author, as
    /// history long after its timestamp (`docs/PROTOCOL.md` §9.4): a per-node annotation that
    /// never changes the lease order. Serialised only when true.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub late: bool,
}

/// One resource's lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseView {
    pub resource: String,
    pub max_holders: u32,
    pub holders: Vec<ClaimView>,
    pub waiting: Vec<ClaimView>,
    /// Live claims that do not count: rate-limited, or blocked by `notBefore`.
    pub excluded: Vec<ClaimView>,
}

impl View {
    /// The lease on one resource.
    pub fn lease(&self, namespace: &str, resource: &str, now_ms: u64) -> LeaseView {
        let mut lease = LeaseView {
            resource: resource.to_owned(),
            max_holders: 1,
            holders: Vec::new(),
            waiting: Vec::new(),
            excluded: Vec::new(),
        };
        let Some(space) = self.spaces.get(namespace) else {
            return lease;
        };
        let rules = space.rules_for(resource, now_ms);
        lease.max_holders = rules.max_holders;
        let mut live = Vec::new();
        for claim in space.claims_on(resource, now_ms) {
            let (expires_ms, ended) = space.claim_end(claim, now_ms);
            if ended.is_none() && now_ms < expires_ms {
                live.push((claim, expires_ms));
            }
        }
        live.sort_by_key(|(claim, _)| order_key(claim));
        let mut contenders = Vec::new();
        for (claim, expires_ms) in live {
            if space.rate_limited(claim, &rules.rate_limits) {
                lease.excluded.push(claim_view(
                    space,
                    claim,
                    expires_ms,
                    ClaimStanding::RateLimited,
                ));
            } else if let Some(until_ms) = rules.not_before.filter(|at| now_ms < *at) {
                let standing = ClaimStanding::Blocked { until_ms };
                lease
                    .excluded
                    .push(claim_view(space, claim, expires_ms, standing));
            } else {
                contenders.push((claim, expires_ms));
            }
        }
        let max_holders = usize::try_from(rules.max_holders).unwrap_or(usize::MAX);
        for (index, (claim, expires_ms)) in contenders.into_iter().enumerate() {
            if index < max_holders {
                lease
                    .holders
                    .push(claim_view(space, claim, expires_ms, ClaimStanding::Holding));
            } else {
                let position = index - max_holders + 1;
                let standing = ClaimStanding::Waiting { position };
                lease
                    .waiting
                    .push(claim_view(space, claim, expires_ms, standing));
            }
        }
        lease
    }

    /// Every resource with at least one live claim, by resource name.
    pub fn leases(&self, namespace: &str, now_ms: u64) -> Vec<LeaseView> {
        let Some(space) = self.spaces.get(namespace) else {
            return Vec::new();
        };
        space
            .resources_running(now_ms)
            .into_iter()
            .map(|resource| self.lease(namespace, resource, now_ms))
            .filter(|lease| {
                !(lease.holders.is_empty() && lease.waiting.is_empty() && lease.excluded.is_empty())
            })
            .collect()
    }

    /// The resources that may have a live claim at `now_ms` (every resource with one, and
    /// perhaps a few whose claims were released), by name: what has to be re-evaluated as time
    /// passes, found without walking expired claims.
    pub fn live_resources(&self, namespace: &str, now_ms: u64) -> Vec<String> {
        self.spaces
            .get(namespace)
            .map(|space| {
                space
                    .resources_running(now_ms)
                    .into_iter()
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// One claim and where it stands.
    pub fn claim(&self, namespace: &str, claim_id: &Hash256, now_ms: u64) -> Option<ClaimView> {
        let space = self.spaces.get(namespace)?;
        let claim = space.claims.get(claim_id)?;
        if claim.timestamp_ms > now_ms {
            return None;
        }
        let (expires_ms, ended) = space.claim_end(claim, now_ms);
        if let Some(released_ms) = ended {
            return Some(claim_view(
                space,
                claim,
                released_ms,
                ClaimStanding::Released,
            ));
        }
        if now_ms >= expires_ms {
            return Some(claim_view(space, claim, expires_ms, ClaimStanding::Expired));
        }
        let lease = self.lease(namespace, &claim.value.resource, now_ms);
        let id = claim_id.to_string();
        lease
            .holders
            .into_iter()
            .chain(lease.waiting)
            .chain(lease.excluded)
            .find(|view| view.claim_id == id)
    }

    /// The author and resource of a claim, if the claim is known.
    pub fn claim_owner(&self, namespace: &str, claim_id: &Hash256) -> Option<(AgentId, String)> {
        let claim = self.spaces.get(namespace)?.claims.get(claim_id)?;
        Some((claim.author.agent_id()?, claim.value.resource.clone()))
    }

    /// Whether the view holds the claim (live, or ended after what it forgot).
    pub fn holds_claim(&self, namespace: &str, claim_id: &Hash256) -> bool {
        self.spaces
            .get(namespace)
            .is_some_and(|space| space.claims.contains_key(claim_id))
    }

    /// Claims by `author` that are still running (holding, waiting or excluded).
    pub fn live_claims_of(&self, namespace: &str, author: &AgentId, now_ms: u64) -> Vec<ClaimView> {
        let Some(space) = self.spaces.get(namespace) else {
            return Vec::new();
        };
        let resources: BTreeSet<&String> = space
            .claims_by_author
            .get(&super::Author::from(author))
            .into_iter()
            .flat_map(|claims| claims.range((now_ms.saturating_add(1), Hash256([0; 32]))..))
            .filter_map(|(_, id)| space.claims.get(id))
            .filter(|claim| claim.timestamp_ms <= now_ms)
            .map(|claim| &claim.value.resource)
            .collect();
        let author = author.to_string();
        resources
            .into_iter()
            .flat_map(|resource| {
                let lease = self.lease(namespace, resource, now_ms);
                lease
                    .holders
                    .into_iter()
                    .chain(lease.waiting)
                    .chain(lease.excluded)
            })
            .filter(|view| view.author == author)
            .collect()
    }
}

/// The lease order: earlier first, then higher priority, then smaller entry id.
pub(super) fn order_key(claim: &Stamped<Intent>) -> OrderKey {
    (
        claim.timestamp_ms,
        std::cmp::Reverse(claim.value.priority),
        claim.id,
    )
}

fn claim_view(
    space: &Space,
    claim: &Stamped<Intent>,
    expires_ms: u64,
    standing: ClaimStanding,
) -> ClaimView {
    ClaimView {
        late: space.claim_is_late(claim),
        claim_id: claim.id.to_string(),
        author: claim.author.to_string(),
        resource: claim.value.resource.clone(),
        action: claim.value.action.clone(),
        note: claim.value.note.clone(),
        priority: claim.value.priority,
        claimed_ms: claim.timestamp_ms,
        expires_ms,
        standing,
    }
}
