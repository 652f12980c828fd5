//! Forgetting history no answer at or after a horizon can need, so a node's view holds what
//! may still be live rather than everything ever seen.
//!
//! [`View::forget_before`] drops, for a horizon `H`:
//! - claims whose running bound is at or before `H` (never live at a time ≥ `H`, whatever their
//!   renewals known now say), with their renewals, releases and late marks;
//! - renewals of claims not held whose timestamp is before `H` (a renewal counts only if made
//!   at or after its claim, so that claim would be made before `H`: see below); releases of
//!   claims not held are kept, since a release counts whatever its timestamp;
//! - constraints whose end is at or before `H`;
//! - card events other than each author's latest by (seq, id) among those made by `H` (the card
//!   at a time `T ≥ H` is the latest event made by `T`, which is that one or a later one);
//! - rate-limit keys (an author's claims on a resource, in lease order) older than every window
//!   a kept rate-limit constraint could look back from a kept claim;
//! - the updates of tasks whose accepted history ends in a terminal state made before `H`,
//!   keeping each one's id, final state and end time (`tasks.rs`): such a task is not listed
//!   at any time, and nothing after its end can change it.
//!
//! Patterns are kept: they have no end.
//!
//! **Answers at any time `T ≥ H` stay exactly those of a view that forgot nothing**, for the
//! entries applied so far (neither lists a task that ended before `H`). An entry applied later could need what was dropped only if it is
//! history from before `H`: a claim made before `H` (renewals of it may have been dropped as
//! orphans, and its rate-limit window reaches back past the kept keys), a renewal
//! or release made before `H` of a claim not held (the claim may have been dropped), an
//! update of a dropped task made no later than its end (it may sort before the end), or a
//! rate-limit constraint in force after `H` whose window is wider than any kept when
//! rate-limit keys were dropped. Applying such an entry marks the view stale
//! ([`View::needs_rebuild`]): its owner folds the log again into a new view and forgets the
//! same horizon. Live entries (timestamps near the clock) do so only in that last case: a new
//! rate-limit rule looking further back than any before it.
//! Answers before `H` are not kept: [`View::kept_from_ms`] says from when they are exact.

use std::collections::BTreeMap;

use plexus_crypto::Hash256;

use super::tasks::TaskUpdates;
use super::{Space, View};
use crate::body::ConstraintRule;

/// What one [`View::forget_before`] dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Forgotten {
    pub claims: usize,
    /// Renewals and releases.
    pub claim_updates: usize,
    pub constraints: usize,
    pub card_events: usize,
    /// Rate-limit keys of claims no longer held.
    pub order_keys: usize,
    /// Tasks that ended before the horizon, and their updates.
    pub tasks: usize,
    pub task_updates: usize,
}

/// How much history the view holds, summed over namespaces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Held {
    pub claims: usize,
    /// Renewals and releases, orphans included.
    pub claim_updates: usize,
    pub constraints: usize,
    pub card_events: usize,
    pub task_updates: usize,
    /// Tasks that ended before the horizon: each one's id, final state and end time.
    pub finished_tasks: usize,
    pub patterns: usize,
    /// Rate-limit keys, those of claims still held included.
    pub order_keys: usize,
}

/// The bookkeeping of forgetting: from when answers are exact, and whether an entry applied
/// since needs what was dropped.
#[derive(Debug, Default, Clone)]
pub(super) struct Horizon {
    /// Answers at or after this time are exact; 0 while nothing was forgotten.
    pub(super) kept_from_ms: u64,
    /// The widest `windowMs` of the rate-limit constraints kept by the last forget: rate-limit
    /// keys reaching that far back from every kept claim were kept.
    pub(super) widest_rate_window_ms: u64,
    /// Some rate-limit key was dropped: a rate-limit constraint wider than
    /// `widest_rate_window_ms` may need it.
    pub(super) order_keys_dropped: bool,
    /// An entry applied since the last forget may need what it dropped.
    pub(super) stale: bool,
}

impl View {
    /// Drops what no answer at a time at or after `horizon_ms` can need (see the module
    /// documentation). A horizon earlier than the current one changes nothing.
    pub fn forget_before(&mut self, horizon_ms: u64) -> Forgotten {
        let horizon = horizon_ms.max(self.horizon.kept_from_ms);
        self.horizon.kept_from_ms = horizon;
        let widest = self
            .spaces
            .values()
            .flat_map(|space| space.constraints_ending_after(horizon))
            .filter_map(|constraint| match constraint.value.rule {
                ConstraintRule::RateLimit { window_ms, .. } => Some(window_ms),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        self.horizon.widest_rate_window_ms = widest;
        let mut forgotten = Forgotten::default();
        for space in self.spaces.values_mut() {
            space.forget_claims(horizon, widest, &mut forgotten);
            space.forget_constraints(horizon, &mut forgotten);
            space.forget_card_events(horizon, &mut forgotten);
            space.forget_tasks(horizon, &mut forgotten);
        }
        self.horizon.order_keys_dropped |= forgotten.order_keys > 0;
        forgotten
    }

    /// From when answers are exact: 0 unless [`View::forget_before`] dropped history.
    pub fn kept_from_ms(&self) -> u64 {
        self.horizon.kept_from_ms
    }

    /// Whether an entry applied since the last [`View::forget_before`] may need history it
    /// dropped: answers may then differ from a full fold until the view is rebuilt.
    pub fn needs_rebuild(&self) -> bool {
        self.horizon.stale
    }

    /// How much history the view holds.
    pub fn held(&self) -> Held {
        let mut held = Held::default();
        for space in self.spaces.values() {
            held.claims += space.claims.len();
            held.claim_updates += space.renewals.values().map(BTreeMap::len).sum::<usize>()
                + space.releases.values().map(BTreeMap::len).sum::<usize>();
            held.constraints += space.constraints.len();
            held.card_events += space.cards.values().map(BTreeMap::len).sum::<usize>();
            held.task_updates += space.tasks.values().map(TaskUpdates::len).sum::<usize>();
            held.finished_tasks += space.finished.len();
            held.patterns += space.patterns.len();
            held.order_keys += space
                .claims_in_order
                .values()
                .map(std::collections::BTreeSet::len)
                .sum::<usize>();
        }
        held
    }

    /// Whether applying an entry of this kind and time, naming `claim` (for a renewal or
    /// release), may need history the view dropped.
    pub(super) fn needs_forgotten(
        &self,
        space: Option<&Space>,
        body: &crate::body::Body,
        timestamp_ms: u64,
    ) -> bool {
        use crate::body::Body;
        let horizon = self.horizon.kept_from_ms;
        if horizon == 0 {
            return false;
        }
        let claim_held = |claim: &str| {
            crate::body::parse_entry_id(claim)
                .is_some_and(|id| space.is_some_and(|space| space.claims.contains_key(&id)))
        };
        match body {
            Body::Intent(_) => timestamp_ms < horizon,
            Body::IntentRenew(renew) => timestamp_ms < horizon && !claim_held(&renew.claim),
            Body::IntentRelease(release) => timestamp_ms < horizon && !claim_held(&release.claim),
            Body::Constraint(constraint) => match constraint.rule {
                ConstraintRule::RateLimit { window_ms, .. } => {
                    self.horizon.order_keys_dropped
                        && timestamp_ms.saturating_add(constraint.ttl_ms) > horizon
                        && window_ms > self.horizon.widest_rate_window_ms
                }
                _ => false,
            },
            Body::Task(update) => space
                .is_some_and(|space| space.precedes_a_finished_task(&update.task_id, timestamp_ms)),
            _ => false,
        }
    }
}

impl Space {
    /// Constraints whose end lies after `time`, made at any time.
    fn constraints_ending_after(
        &self,
        time: u64,
    ) -> impl Iterator<Item = &super::Stamped<crate::body::Constraint>> {
        self.constraints_by_end
            .range((time.saturating_add(1), Hash256([0; 32]))..)
            .filter_map(|(_, id)| self.constraints.get(id))
    }

    fn forget_claims(&mut self, horizon: u64, widest: u64, forgotten: &mut Forgotten) {
        let ended: Vec<(u64, Hash256)> = self
            .claims_by_bound
            .range(..=(horizon, Hash256([u8::MAX; 32])))
            .copied()
            .collect();
        for (bound, id) in ended {
            self.claims_by_bound.remove(&(bound, id));
            self.claim_bounds.remove(&id);
            let Some(claim) = self.claims.remove(&id) else {
                continue;
            };
            forgotten.claims += 1;
            remove_from(
                &mut self.claims_by_resource,
                &claim.value.resource,
                &(bound, id),
            );
            remove_from(&mut self.claims_by_author, &claim.author, &(bound, id));
            self.late.remove(&id);
            let renewals = self
                .renewals
                .remove(&id)
                .into_iter()
                .flat_map(|r| r.into_keys());
            let releases = self
                .releases
                .remove(&id)
                .into_iter()
                .flat_map(|r| r.into_keys());
            for (_, update) in renewals.chain(releases) {
                forgotten.claim_updates += 1;
                self.late.remove(&update);
            }
        }
        // Renewals of claims not held, made before the horizon: a renewal counts only if made
        // at or after its claim, so the claim would be made before the horizon too, and
        // applying it marks the view stale. (Releases are kept: one counts whatever its time.)
        let claims = &self.claims;
        let late = &mut self.late;
        self.renewals.retain(|claim, renewals| {
            if claims.contains_key(claim) {
                return true;
            }
            renewals.retain(|(timestamp, id), _| {
                let keep = *timestamp >= horizon;
                if !keep {
                    late.remove(id);
                    forgotten.claim_updates += 1;
                }
                keep
            });
            !renewals.is_empty()
        });
        // Rate-limit keys: a kept claim made at `t` looks back to `t - window`; no kept claim of
        // the pair, or one arriving later (made at or after the horizon, else the view goes
        // stale), looks back past `min(earliest kept claim, horizon) - widest`.
        let claims = &self.claims;
        self.claims_in_order.retain(|(_, _), keys| {
            let earliest_kept = keys
                .iter()
                .find(|(_, _, id)| claims.contains_key(id))
                .map_or(horizon, |(timestamp, _, _)| (*timestamp).min(horizon));
            let floor = earliest_kept.saturating_sub(widest);
            let before = keys.len();
            keys.retain(|(timestamp, _, id)| *timestamp >= floor || claims.contains_key(id));
            forgotten.order_keys += before - keys.len();
            !keys.is_empty()
        });
    }

    fn forget_constraints(&mut self, horizon: u64, forgotten: &mut Forgotten) {
        let ended: Vec<(u64, Hash256)> = self
            .constraints_by_end
            .range(..=(horizon, Hash256([u8::MAX; 32])))
            .copied()
            .collect();
        for key in ended {
            self.constraints_by_end.remove(&key);
            if self.constraints.remove(&key.1).is_some() {
                forgotten.constraints += 1;
            }
        }
    }

    fn forget_card_events(&mut self, horizon: u64, forgotten: &mut Forgotten) {
        for events in self.cards.values_mut() {
            let latest_by_horizon = events
                .iter()
                .rev()
                .find(|(_, event)| event.timestamp_ms <= horizon)
                .map(|(key, _)| *key);
            let before = events.len();
            events.retain(|key, event| {
                event.timestamp_ms > horizon || Some(*key) == latest_by_horizon
            });
            forgotten.card_events += before - events.len();
        }
    }
}

/// Removes `value` from the set filed under `key`, and the set once empty.
fn remove_from<K: Ord, V: Ord>(
    map: &mut BTreeMap<K, std::collections::BTreeSet<V>>,
    key: &K,
    value: &V,
) {
    if let Some(set) = map.get_mut(key) {
        set.remove(value);
        if set.is_empty() {
            map.remove(key);
        }
    }
}
