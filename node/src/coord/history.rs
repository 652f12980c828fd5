//! How much history the view keeps: what may still be live, and the last
//! [`DEFAULT_VIEW_HISTORY_MS`] (configurable) of changes, rather than everything ever stored.
//!
//! Every [`FORGET_EVERY_MS`] the coordinator has the view drop what no answer from
//! `now − history` on can need ([`View::forget_before`]: ended claims with their renewals and
//! releases, ended constraints, superseded card events, rate-limit keys no window reaches, the
//! updates of tasks that ended, keeping each one's final state).
//! The log keeps everything; the API refuses a query for a moment before the horizon and
//! points to `plexus audit replay --at`, which answers it from an export.
//!
//! An entry that is itself history from before the horizon (a claim backfilled after a long
//! partition) may need what was dropped: the view then says it needs a rebuild, and
//! [`Coordinator::rebuild`] folds the journal again into a fresh view outside the lock, forgets
//! the same horizon, catches up with the live view and swaps it in. Rebuilds are spaced at
//! least ten times their own duration apart, and at least [`MIN_REBUILD_GAP_MS`], so a peer
//! feeding old entries cannot keep the node folding its log.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use plexus_protocol::coord::Forgotten;

use super::{Coordinator, State};
use crate::store::{Log, StoreError};

/// History the view keeps by default: a day.
pub const DEFAULT_VIEW_HISTORY_MS: u64 = 24 * 60 * 60 * 1000;

/// The shortest history a node may keep: five minutes, ten times the default clock-skew
/// window (30 s) and many gossip rounds, so that live entries never reach behind the horizon.
pub const MIN_VIEW_HISTORY_MS: u64 = 5 * 60 * 1000;

/// How often the view forgets what fell behind the horizon.
const FORGET_EVERY_MS: u64 = 60_000;

/// The least time between two rebuilds.
const MIN_REBUILD_GAP_MS: u64 = 10_000;

/// Journal entries read between two looks at the stop flag during a rebuild.
const STOP_CHECK_EVERY: u64 = 4096;

/// The bookkeeping of forgetting and rebuilding.
#[derive(Debug, Default)]
pub(super) struct Upkeep {
    last_forget_ms: Option<u64>,
    rebuild_not_before_ms: u64,
}

impl Coordinator {
    /// Drops the view's history from before `now_ms − history`, if the last time was at least
    /// [`FORGET_EVERY_MS`] ago (or never). Returns what was dropped, `None` if not due.
    pub fn forget_expired(&self, now_ms: u64) -> Option<Forgotten> {
        let mut state = self.lock();
        let due = state
            .upkeep
            .last_forget_ms
            .is_none_or(|last| now_ms >= last.saturating_add(FORGET_EVERY_MS));
        if !due {
            return None;
        }
        state.upkeep.last_forget_ms = Some(now_ms);
        let forgotten = state
            .view
            .forget_before(now_ms.saturating_sub(self.history_ms));
        forget_late_marks(&mut state);
        Some(forgotten)
    }

    /// Whether an entry applied since the last forget needs history the view dropped, and
    /// the last rebuild was long enough ago to start another.
    pub fn rebuild_due(&self, now_ms: u64) -> bool {
        let state = self.lock();
        state.view.needs_rebuild() && now_ms >= state.upkeep.rebuild_not_before_ms
    }

    /// Folds the whole journal again into a fresh view, forgets the live view's horizon, and
    /// swaps it in; the lock is held only to catch up with what the live view applied since
    /// the fold started. Stops early, changing nothing, when `stop` is set. Returns whether
    /// the view was replaced.
    pub fn rebuild(&self, log: &Log, now_ms: u64, stop: &AtomicBool) -> Result<bool, StoreError> {
        let started = Instant::now();
        let (cursor, horizon) = {
            let mut state = self.lock();
            // Should this one fail, the next waits all the same.
            state.upkeep.rebuild_not_before_ms = now_ms.saturating_add(MIN_REBUILD_GAP_MS);
            (state.next_arrival, state.view.kept_from_ms())
        };
        let mut fresh = State::default();
        if !self.fold_into(&mut fresh, log, 0, cursor, stop)? {
            return Ok(false);
        }
        fresh.view.forget_before(horizon);
        // Catch up without the lock first, then hold it for the last few entries and the swap.
        let caught_up = self.lock().next_arrival;
        if !self.fold_into(&mut fresh, log, cursor, caught_up, stop)? {
            return Ok(false);
        }
        let mut state = self.lock();
        let live = state.next_arrival;
        self.fold_into(&mut fresh, log, caught_up, live, &AtomicBool::new(false))?;
        fresh.view.forget_before(state.view.kept_from_ms());
        state.view = fresh.view;
        state.late_after_ms = fresh.late_after_ms;
        forget_late_marks(&mut state);
        let took_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        state.upkeep.rebuild_not_before_ms =
            now_ms.saturating_add(took_ms.saturating_mul(10).max(MIN_REBUILD_GAP_MS));
        tracing::info!(
            entries = live,
            took_ms,
            "rebuilt the coordination view: an entry from before its horizon needed what it had \
             forgotten"
        );
        Ok(true)
    }

    /// Applies journal entries `[from, to)` to `state`'s view (late marks included, no
    /// events: the live view sent them). `false` if `stop` was set on the way.
    fn fold_into(
        &self,
        state: &mut State,
        log: &Log,
        from: u64,
        to: u64,
        stop: &AtomicBool,
    ) -> Result<bool, StoreError> {
        for (read, item) in (0u64..).zip(log.journal(from)) {
            let item = item?;
            if item.arrival >= to {
                break;
            }
            if read % STOP_CHECK_EVERY == 0 && stop.load(Ordering::Relaxed) {
                return Ok(false);
            }
            self.file_record(state, log, &item);
        }
        Ok(true)
    }
}

/// Drops the delays kept for late claims the view no longer holds.
fn forget_late_marks(state: &mut State) {
    let namespaces = state.view.namespaces();
    let view = &state.view;
    state.late_after_ms.retain(|claim, _| {
        namespaces
            .iter()
            .any(|namespace| view.holds_claim(namespace, claim))
    });
}

#[cfg(test)]
mod tests {
    use plexus_crypto::Keypair;
    use plexus_protocol::coord::ClaimStanding;
    use plexus_protocol::value::json_text_to_canonical;
    use plexus_protocol::{Draft, Entry};

    use super::*;
    use crate::store::IngestOutcome;

    const NAMESPACE: &str = "ops";
    const T0: u64 = 1_767_225_600_000;
    const MINUTE: u64 = 60_000;
    const HOUR: u64 = 60 * MINUTE;

    fn claim(author: &Keypair, seq: u64, prev: Option<&Entry>, at: u64, lease_ms: u64) -> Entry {
        let body =
            format!(r#"{{"resource": "printer", "action": "print", "leaseMs": {lease_ms}}}"#);
        Entry::sign(
            author,
            Draft {
                namespace: NAMESPACE.into(),
                seq,
                prev: prev.map(Entry::id),
                timestamp_ms: at,
                kind: "intent".into(),
                body: json_text_to_canonical(&body).unwrap(),
            },
        )
        .unwrap()
    }

    /// A claim backfilled from before the horizon may need what the view forgot (here its
    /// author's earlier claim, which a rate limit counts): the view says so, and the rebuild
    /// answers as a view that forgot nothing does.
    #[test]
    fn a_claim_from_before_the_horizon_gets_the_answer_of_a_full_fold() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path()).unwrap();
        let (me, admin, eager) = (
            Keypair::from_seed(&[1; 32]),
            Keypair::from_seed(&[2; 32]),
            Keypair::from_seed(&[3; 32]),
        );
        // One claim per half hour on the printer, for a month.
        let rule = r#"{"resource": "printer", "rule": {"type": "rateLimit", "claims": 1,
            "windowMs": 1800000}, "ttlMs": 2592000000}"#;
        let rule = json_text_to_canonical(rule).unwrap();
        log.append_own(&admin, NAMESPACE, "constraint", rule, T0)
            .unwrap();
        let first = claim(&eager, 1, None, T0 + MINUTE, 5 * MINUTE);
        let second = claim(&eager, 2, Some(&first), T0 + 20 * MINUTE, 24 * HOUR);
        let received = |entry: &Entry, at: u64| {
            let outcome = log.ingest(&entry.encode(), "sync:peer", at).unwrap();
            assert!(
                matches!(outcome, IngestOutcome::Accepted { .. }),
                "{outcome:?}"
            );
        };
        received(&first, T0 + MINUTE);
        let coord = Coordinator::new(me.agent_id()).with_history_ms(HOUR);
        coord.sync(&log, T0 + MINUTE).unwrap();

        // Two hours on, the view forgets the last hour's past: the first claim ended long ago.
        let now = T0 + 2 * HOUR;
        let forgotten = coord.forget_expired(now).unwrap();
        assert_eq!((forgotten.claims, forgotten.order_keys), (1, 1));
        assert!(
            coord.forget_expired(now + MINUTE / 2).is_none(),
            "once a minute"
        );
        assert_eq!(coord.view().kept_from_ms(), now - HOUR);

        // The second claim, made twenty minutes after the first, arrives only now.
        received(&second, now);
        coord.sync(&log, now).unwrap();
        assert!(coord.rebuild_due(now), "the second claim needs the first");
        assert!(coord.rebuild(&log, now, &AtomicBool::new(false)).unwrap());
        assert!(!coord.rebuild_due(now));

        let full = Coordinator::new(me.agent_id());
        full.sync(&log, now).unwrap();
        let lease = coord.view().lease(NAMESPACE, "printer", now);
        assert_eq!(lease, full.view().lease(NAMESPACE, "printer", now));
        assert_eq!(lease.excluded.len(), 1, "{lease:?}");
        assert_eq!(lease.excluded[0].claim_id, second.id().to_string());
        assert_eq!(lease.excluded[0].standing, ClaimStanding::RateLimited);
        assert!(
            lease.excluded[0].late,
            "received 100 minutes after it was made"
        );
        assert_eq!(
            coord.view().late_after_ms(&second.id()),
            Some(now - (T0 + 20 * MINUTE))
        );
        assert_eq!(coord.view().kept_from_ms(), now - HOUR);
        assert_eq!(coord.view().held().claims, 1);
    }

    /// A rebuild asked to stop leaves the view as it was.
    #[test]
    fn a_rebuild_told_to_stop_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path()).unwrap();
        let me = Keypair::from_seed(&[1; 32]);
        let mine = claim(&me, 1, None, T0, HOUR);
        log.ingest(&mine.encode(), "sync:peer", T0).unwrap();
        let coord = Coordinator::new(me.agent_id());
        coord.sync(&log, T0).unwrap();
        assert!(!coord.rebuild(&log, T0, &AtomicBool::new(true)).unwrap());
        assert_eq!(
            coord.view().lease(NAMESPACE, "printer", T0).holders.len(),
            1
        );
    }
}
