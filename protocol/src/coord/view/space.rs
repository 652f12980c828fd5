//! The view's per-namespace store and its indexes: how claims are filed by the latest time
//! they could still run, and the rules the queries of [`super::View`] apply to what is filed
//! (lease ends, constraints in force, the rate limit).

use std::collections::BTreeSet;

use plexus_crypto::Hash256;

use super::{order_key, resource_matches, Space, Stamped};
use crate::body::{Constraint, ConstraintRule, Intent};

/// What live constraints say about one resource.
pub(super) struct Rules {
    pub(super) max_holders: u32,
    pub(super) not_before: Option<u64>,
    pub(super) rate_limits: Vec<(u32, u64)>,
}

impl Space {
    /// Files a new claim under its running bound (applying it again changes nothing).
    pub(super) fn file_claim(&mut self, claim: Stamped<Intent>) {
        let id = claim.id;
        if self.claims.contains_key(&id) {
            return;
        }
        self.claims_in_order
            .entry((claim.value.resource.clone(), claim.author))
            .or_default()
            .insert(order_key(&claim));
        self.claims.insert(id, claim);
        self.raise_bound(&id);
    }

    /// Recomputes a claim's running bound (after it or a renewal of it arrived) and refiles
    /// the claim under it. The bound is the claim's own end or the end an in-time renewal by
    /// its author gives, whichever is latest: the end [`Space::claim_end`] finds at any `now`
    /// is one of these, so it never lies past the bound.
    pub(super) fn raise_bound(&mut self, id: &Hash256) {
        let Some(claim) = self.claims.get(id) else {
            // A renewal of a claim not seen yet: the claim computes its bound when it comes.
            return;
        };
        let own_end = claim.timestamp_ms.saturating_add(claim.value.lease_ms);
        let bound = self
            .renewals
            .get(id)
            .into_iter()
            .flat_map(|renewals| renewals.values())
            .filter(|renewal| {
                renewal.author == claim.author && renewal.timestamp_ms >= claim.timestamp_ms
            })
            .map(|renewal| renewal.timestamp_ms.saturating_add(renewal.value))
            .fold(own_end, u64::max);
        let (resource, author) = (claim.value.resource.clone(), claim.author);
        let previous = self.claim_bounds.insert(*id, bound);
        if previous == Some(bound) {
            return;
        }
        let by_resource = self.claims_by_resource.entry(resource).or_default();
        let by_author = self.claims_by_author.entry(author).or_default();
        if let Some(previous) = previous {
            by_resource.remove(&(previous, *id));
            by_author.remove(&(previous, *id));
            self.claims_by_bound.remove(&(previous, *id));
        }
        by_resource.insert((bound, *id));
        by_author.insert((bound, *id));
        self.claims_by_bound.insert((bound, *id));
    }

    /// Resources with a claim made by `now_ms` whose running bound lies after it, by name.
    pub(super) fn resources_running(&self, now_ms: u64) -> BTreeSet<&String> {
        self.claims_by_bound
            .range((now_ms.saturating_add(1), Hash256([0; 32]))..)
            .filter_map(|(_, id)| self.claims.get(id))
            .filter(|claim| claim.timestamp_ms <= now_ms)
            .map(|claim| &claim.value.resource)
            .collect()
    }

    /// Constraints live at `now_ms`: those whose end lies after it, made by then.
    pub(super) fn live_constraints(
        &self,
        now_ms: u64,
    ) -> impl Iterator<Item = &Stamped<Constraint>> {
        self.constraints_by_end
            .range((now_ms.saturating_add(1), Hash256([0; 32]))..)
            .filter_map(|(_, id)| self.constraints.get(id))
            .filter(move |c| c.timestamp_ms <= now_ms)
    }

    pub(super) fn rules_for(&self, resource: &str, now_ms: u64) -> Rules {
        let mut rules = Rules {
            max_holders: 1,
            not_before: None,
            rate_limits: Vec::new(),
        };
        let mut limit: Option<u32> = None;
        for constraint in self.live_constraints(now_ms) {
            if !resource_matches(&constraint.value.resource, resource) {
                continue;
            }
            match constraint.value.rule {
                ConstraintRule::Exclusive => limit = Some(1),
                ConstraintRule::MaxHolders { limit: n } => {
                    limit = Some(limit.map_or(n, |current| current.min(n)));
                }
                ConstraintRule::NotBefore { at } => {
                    rules.not_before = Some(rules.not_before.map_or(at, |current| current.max(at)));
                }
                ConstraintRule::RateLimit { claims, window_ms } => {
                    rules.rate_limits.push((claims, window_ms));
                }
            }
        }
        rules.max_holders = limit.unwrap_or(1);
        rules
    }

    /// Claims on `resource` made by `now_ms` that may still run then (running bound after
    /// it): every live claim, without the expired ones.
    pub(super) fn claims_on<'a>(
        &'a self,
        resource: &str,
        now_ms: u64,
    ) -> impl Iterator<Item = &'a Stamped<Intent>> + 'a {
        self.claims_by_resource
            .get(resource)
            .into_iter()
            .flat_map(move |claims| claims.range((now_ms.saturating_add(1), Hash256([0; 32]))..))
            .filter_map(|(_, id)| self.claims.get(id))
            .filter(move |claim| claim.timestamp_ms <= now_ms)
    }

    /// Whether this node received the claim, or a renewal or release of it by its author,
    /// late ([`super::View::mark_late`]). Others' renewals and releases do not touch the claim,
    /// so their marks do not show on it.
    pub(super) fn claim_is_late(&self, claim: &Stamped<Intent>) -> bool {
        if self.late.is_empty() {
            return false;
        }
        let late_by_owner =
            |id: &Hash256, author: super::Author| author == claim.author && self.late.contains(id);
        self.late.contains(&claim.id)
            || self
                .renewals
                .get(&claim.id)
                .is_some_and(|renewals| renewals.values().any(|r| late_by_owner(&r.id, r.author)))
            || self
                .releases
                .get(&claim.id)
                .is_some_and(|releases| releases.values().any(|r| late_by_owner(&r.id, r.author)))
    }

    /// When the claim's lease ends given renewals up to `now_ms`, and when it was released.
    pub(super) fn claim_end(&self, claim: &Stamped<Intent>, now_ms: u64) -> (u64, Option<u64>) {
        let mut expires_ms = claim.timestamp_ms.saturating_add(claim.value.lease_ms);
        for renewal in self
            .renewals
            .get(&claim.id)
            .into_iter()
            .flat_map(|r| r.values())
        {
            let by_owner = renewal.author == claim.author;
            let in_time = renewal.timestamp_ms <= now_ms
                && renewal.timestamp_ms >= claim.timestamp_ms
                && renewal.timestamp_ms < expires_ms;
            if by_owner && in_time {
                expires_ms = renewal.timestamp_ms.saturating_add(renewal.value);
            }
        }
        let released = self
            .releases
            .get(&claim.id)
            .into_iter()
            .flat_map(|r| r.values())
            .find(|release| release.author == claim.author && release.timestamp_ms <= now_ms)
            .map(|release| release.timestamp_ms.max(claim.timestamp_ms));
        (expires_ms, released)
    }

    /// Whether the claim's author had already made `claims` claims on this resource within
    /// `window_ms` before it, for any live rate-limit rule.
    /// Counts, in the author's claims on the resource in lease order, those between the
    /// window's start and the claim, stopping at the limit: O(log n + claims).
    pub(super) fn rate_limited(&self, claim: &Stamped<Intent>, limits: &[(u32, u64)]) -> bool {
        let Some(in_order) = self
            .claims_in_order
            .get(&(claim.value.resource.clone(), claim.author))
        else {
            return false;
        };
        let key = order_key(claim);
        limits.iter().any(|&(claims, window_ms)| {
            let window_start = claim.timestamp_ms.saturating_sub(window_ms);
            // Every claim sorting before this one was made at or before it, so by `now`.
            let first = (
                window_start.saturating_add(1),
                std::cmp::Reverse(u8::MAX),
                Hash256([0; 32]),
            );
            let limit = usize::try_from(claims).unwrap_or(usize::MAX);
            // An empty window (`windowMs` 0) holds nothing; a reversed range would panic.
            let earlier = if first < key {
                in_order.range(first..key).take(limit).count()
            } else {
                0
            };
            earlier >= limit
        })
    }
}
