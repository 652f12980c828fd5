//! The lease history of a window of time: for each resource, when each claim held the lease,
//! waited for it or was excluded, and which constraints were in force.
//!
//! A lease can only change at a moment some filed entry names: a claim's timestamp or the end
//! of its lease, a renewal's timestamp or new end, a release, a constraint's start or end, or a
//! `notBefore` time. Between two such moments the answer of [`View::lease`] is the same, so
//! asking it once at each change gives the exact history, the same answer `View::lease` (and
//! so `audit replay --at`) gives at every moment of the window.

use plexus_crypto::Hash256;
use serde::Serialize;

use super::{resource_matches, ClaimStanding, ConstraintView, View};
use crate::body::ConstraintRule;

/// Most resources one timeline describes; the rest are left out and `truncated` says so.
pub const MAX_TIMELINE_RESOURCES: usize = 200;

/// Most moments of change evaluated for one resource; past that only the latest are kept and
/// `truncated` says so. Bounds the work of one request whatever the log holds.
pub const MAX_TIMELINE_CHANGES: usize = 500;

/// Every resource's lease history over `[from_ms, to_ms)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Timeline {
    pub from_ms: u64,
    pub to_ms: u64,
    /// Resources with a claim running at some moment of the window, by name.
    pub resources: Vec<ResourceTimeline>,
    /// Whether resources or early moments were left out to keep within the limits above, or
    /// the window began before the history the view keeps ([`View::kept_from_ms`]; `from_ms`
    /// then says where the answer starts).
    pub truncated: bool,
}

/// One resource's row of the timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResourceTimeline {
    pub resource: String,
    pub claims: Vec<ClaimTimeline>,
    /// Constraints on this resource in force at some moment of the window.
    pub constraints: Vec<ConstraintView>,
}

/// One claim's segments, in time order, each a stretch with one standing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClaimTimeline {
    pub claim_id: String,
    pub author: String,
    pub action: String,
    pub priority: u8,
    pub claimed_ms: u64,
    pub segments: Vec<Segment>,
}

/// From `from_ms` (included) to `to_ms` (excluded) the claim stood as `standing`: `holding`,
/// `waiting`, `blocked` (by a `notBefore` constraint) or `rate_limited`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Segment {
    pub from_ms: u64,
    pub to_ms: u64,
    pub standing: &'static str,
}

impl View {
    /// The lease history of every resource of `namespace` over `[from_ms, to_ms)`.
    /// A window starting before [`View::kept_from_ms`] starts there instead, `truncated`.
    pub fn timeline(&self, namespace: &str, from_ms: u64, to_ms: u64) -> Timeline {
        let kept_from = self.kept_from_ms();
        let mut timeline = Timeline {
            from_ms: from_ms.max(kept_from),
            to_ms,
            resources: Vec::new(),
            truncated: from_ms < kept_from,
        };
        let from_ms = timeline.from_ms;
        let Some(space) = self.spaces.get(namespace) else {
            return timeline;
        };
        if to_ms <= from_ms {
            return timeline;
        }
        for resource in space.claims_by_resource.keys() {
            let (changes, cut) = self.changes(namespace, resource, from_ms, to_ms);
            timeline.truncated |= cut;
            let claims = self.segments(namespace, resource, &changes, to_ms);
            if claims.is_empty() {
                continue;
            }
            if timeline.resources.len() == MAX_TIMELINE_RESOURCES {
                timeline.truncated = true;
                break;
            }
            let constraints = space
                .constraints
                .values()
                .filter(|c| resource_matches(&c.value.resource, resource))
                .filter(|c| {
                    c.timestamp_ms < to_ms
                        && c.timestamp_ms.saturating_add(c.value.ttl_ms) > from_ms
                })
                .map(|c| ConstraintView {
                    entry_id: c.id.to_string(),
                    author: c.author.to_string(),
                    resource: c.value.resource.clone(),
                    rule: c.value.rule.clone(),
                    note: c.value.note.clone(),
                    published_ms: c.timestamp_ms,
                    expires_ms: c.timestamp_ms.saturating_add(c.value.ttl_ms),
                })
                .collect();
            timeline.resources.push(ResourceTimeline {
                resource: resource.clone(),
                claims,
                constraints,
            });
        }
        timeline
    }

    /// The moments in `[from_ms, to_ms)` at which the resource's lease may change, `from_ms`
    /// first, and whether early ones were dropped to keep [`MAX_TIMELINE_CHANGES`].
    fn changes(
        &self,
        namespace: &str,
        resource: &str,
        from_ms: u64,
        to_ms: u64,
    ) -> (Vec<u64>, bool) {
        let mut moments = vec![from_ms];
        let Some(space) = self.spaces.get(namespace) else {
            return (moments, false);
        };
        let mut add = |moment: u64| {
            if from_ms < moment && moment < to_ms {
                moments.push(moment);
            }
        };
        // Every claim that could run at some moment of the window, not only those live at its end.
        let claims = space
            .claims_by_resource
            .get(resource)
            .into_iter()
            .flat_map(|claims| claims.range((from_ms.saturating_add(1), Hash256([0; 32]))..))
            .filter_map(|(_, id)| space.claims.get(id))
            .filter(|claim| claim.timestamp_ms < to_ms);
        for claim in claims {
            add(claim.timestamp_ms);
            add(claim.timestamp_ms.saturating_add(claim.value.lease_ms));
            for renewal in space
                .renewals
                .get(&claim.id)
                .into_iter()
                .flat_map(|r| r.values())
            {
                add(renewal.timestamp_ms);
                add(renewal.timestamp_ms.saturating_add(renewal.value));
            }
            for release in space
                .releases
                .get(&claim.id)
                .into_iter()
                .flat_map(|r| r.values())
            {
                add(release.timestamp_ms);
            }
        }
        for constraint in space.constraints.values() {
            if !resource_matches(&constraint.value.resource, resource) {
                continue;
            }
            add(constraint.timestamp_ms);
            add(constraint
                .timestamp_ms
                .saturating_add(constraint.value.ttl_ms));
            if let ConstraintRule::NotBefore { at } = constraint.value.rule {
                add(at);
            }
        }
        moments.sort_unstable();
        moments.dedup();
        let excess = moments.len().saturating_sub(MAX_TIMELINE_CHANGES);
        (moments.split_off(excess), excess > 0)
    }

    /// Asks the lease at each change and joins each claim's equal standings into segments.
    fn segments(
        &self,
        namespace: &str,
        resource: &str,
        changes: &[u64],
        to_ms: u64,
    ) -> Vec<ClaimTimeline> {
        let mut claims: Vec<ClaimTimeline> = Vec::new();
        let ends = changes
            .iter()
            .skip(1)
            .copied()
            .chain(std::iter::once(to_ms));
        for (&moment, end) in changes.iter().zip(ends) {
            let lease = self.lease(namespace, resource, moment);
            for claim in lease
                .holders
                .iter()
                .chain(&lease.waiting)
                .chain(&lease.excluded)
            {
                let standing = match claim.standing {
                    ClaimStanding::Holding => "holding",
                    ClaimStanding::Waiting { .. } => "waiting",
                    ClaimStanding::Blocked { .. } => "blocked",
                    ClaimStanding::RateLimited => "rate_limited",
                    ClaimStanding::Expired | ClaimStanding::Released => continue,
                };
                let index = match claims
                    .iter()
                    .position(|known| known.claim_id == claim.claim_id)
                {
                    Some(index) => index,
                    None => {
                        claims.push(ClaimTimeline {
                            claim_id: claim.claim_id.clone(),
                            author: claim.author.clone(),
                            action: claim.action.clone(),
                            priority: claim.priority,
                            claimed_ms: claim.claimed_ms,
                            segments: Vec::new(),
                        });
                        claims.len() - 1
                    }
                };
                let Some(segments) = claims.get_mut(index).map(|c| &mut c.segments) else {
                    continue;
                };
                match segments.last_mut() {
                    Some(last) if last.to_ms == moment && last.standing == standing => {
                        last.to_ms = end
                    }
                    _ => segments.push(Segment {
                        from_ms: moment,
                        to_ms: end,
                        standing,
                    }),
                }
            }
        }
        claims.sort_by(|a, b| (a.claimed_ms, &a.claim_id).cmp(&(b.claimed_ms, &b.claim_id)));
        claims
    }
}
