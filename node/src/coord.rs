//! The node's coordination view: the protocol's fold ([`plexus_protocol::coord::View`]) kept
//! current from the log's journal, and the change events the API streams.
//!
//! The journal lists every stored entry once, in local arrival order, so following it with a
//! cursor sees every entry whichever path stored it (own publish, gossip, backfill, release
//! from pending). [`Coordinator::sync`] applies new journal entries; [`Coordinator::tick`]
//! re-evaluates leases as time passes (expiry, `notBefore`). Both compare each touched lease
//! with what it was and emit events:
//!
//! | event          | when                                                              |
//! |----------------|-------------------------------------------------------------------|
//! | `entry`        | an entry was stored (any kind)                                    |
//! | `lease`        | a resource's holders changed                                      |
//! | `task`         | a task entry was stored; carries the task's resulting state       |
//! | `claim.won`    | one of this agent's claims now holds its lease                    |
//! | `claim.lost`   | one of this agent's live claims does not hold: it lost the race,  |
//! |                | or an earlier claim learned late (after a partition) displaced it |
//! | `claim.ended`  | one of this agent's claims expired or was released                |
//!
//! Events are numbered and kept in a ring bounded in bytes ([`ring::EVENT_BUFFER_BYTES`]); a
//! subscriber that falls behind the oldest event kept is told how many it missed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::store::{parse_stored_body, JournalEntry, Log, StoreError};
use plexus_crypto::{AgentId, Hash256};
use plexus_protocol::coord::{
    is_late, view::Touched, Arrival, Body, ClaimStanding, ClaimView, LeaseView, Reception, View,
};
use plexus_protocol::{Entry, Kind};
use serde::Serialize;

mod history;
mod ring;

pub use history::{DEFAULT_VIEW_HISTORY_MS, MIN_VIEW_HISTORY_MS};
pub use ring::{EventReceiver, EVENT_BUFFER_BYTES};

/// Journal entries applied per lock hold, so queries are not starved during a long catch-up.
const SYNC_CHUNK: usize = 1024;

/// One change, as the event stream sends it.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Increases by one per event on this node.
    pub id: u64,
    /// `entry`, `lease`, `task`, `claim.won`, `claim.lost` or `claim.ended`.
    #[serde(rename = "type")]
    pub event_type: &'static str,
    pub namespace: String,
    /// The entry's kind, for `entry` events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    pub time_ms: u64,
    pub data: serde_json::Value,
}

/// The view, its journal cursor and the event sender.
#[derive(Debug)]
pub struct Coordinator {
    agent: AgentId,
    /// The node's clock-skew window outside governed namespaces, which decides whether a
    /// claim received as history is late (`docs/PROTOCOL.md` §9.4).
    clock_skew_ms: u64,
    /// How far back the view's answers stay exact ([`history`]).
    history_ms: u64,
    state: Mutex<State>,
    events: Arc<ring::EventRing>,
}

#[derive(Debug, Default)]
struct State {
    view: View,
    next_arrival: u64,
    next_event: u64,
    /// Holder claim ids per (namespace, resource), as last reported.
    holders: BTreeMap<(String, String), Vec<String>>,
    /// This agent's live claims and their last reported standing, by claim id, per
    /// (namespace, resource): a tick looks at each resource's own claims, not at all of them.
    standings: BTreeMap<(String, String), BTreeMap<String, ClaimStanding>>,
    /// Claims shown late, by claim id: how long after its timestamp the late entry (the claim,
    /// or its author's renewal or release) arrived, the largest if several. One per late
    /// claim, so it grows no faster than the view.
    late_after_ms: HashMap<Hash256, u64>,
    upkeep: history::Upkeep,
}

/// Read access to the view while the lock is held.
#[derive(Debug)]
pub struct ViewGuard<'a>(MutexGuard<'a, State>);

impl ViewGuard<'_> {
    /// For a claim shown late, how long after its timestamp the late entry reached this node.
    pub fn late_after_ms(&self, claim_id: &Hash256) -> Option<u64> {
        self.0.late_after_ms.get(claim_id).copied()
    }
}

impl std::ops::Deref for ViewGuard<'_> {
    type Target = View;

    fn deref(&self) -> &View {
        &self.0.view
    }
}

impl Coordinator {
    /// An empty coordinator for `agent`; call [`Coordinator::sync`] to load the log.
    pub fn new(agent: AgentId) -> Coordinator {
        let events = Arc::new(ring::EventRing::new());
        Coordinator {
            agent,
            clock_skew_ms: plexus_protocol::coord::DEFAULT_CLOCK_SKEW_MS,
            history_ms: DEFAULT_VIEW_HISTORY_MS,
            state: Mutex::new(State::default()),
            events,
        }
    }

    /// The same coordinator with the node's clock-skew window (the default is
    /// [`plexus_protocol::coord::DEFAULT_CLOCK_SKEW_MS`]).
    pub fn with_clock_skew_ms(mut self, clock_skew_ms: u64) -> Coordinator {
        self.clock_skew_ms = clock_skew_ms;
        self
    }

    /// The same coordinator keeping `history_ms` of history in its view (the default is
    /// [`DEFAULT_VIEW_HISTORY_MS`]; at least [`MIN_VIEW_HISTORY_MS`] is kept whatever asked).
    pub fn with_history_ms(mut self, history_ms: u64) -> Coordinator {
        self.history_ms = history_ms.max(MIN_VIEW_HISTORY_MS);
        self
    }

    /// The view, locked for reading. Hold it briefly: ingest waits for it.
    pub fn view(&self) -> ViewGuard<'_> {
        ViewGuard(self.lock())
    }

    /// A receiver of every event from now on.
    pub fn subscribe(&self) -> EventReceiver {
        self.events.subscribe()
    }

    /// Applies journal entries not seen yet, then re-evaluates the leases they touched.
    /// Returns how many entries were applied.
    pub fn sync(&self, log: &Log, now_ms: u64) -> Result<u64, StoreError> {
        let mut applied = 0u64;
        loop {
            let mut state = self.lock();
            let from = state.next_arrival;
            let mut touched = BTreeSet::new();
            let mut count = 0usize;
            for item in log.journal(from).take(SYNC_CHUNK) {
                let item = item?;
                state.next_arrival = item.arrival + 1;
                count += 1;
                let applied = self.file_record(&mut state, log, &item);
                self.after_apply(&mut state, &item.entry, applied, now_ms, &mut touched);
            }
            applied += count as u64;
            self.reevaluate(&mut state, touched, now_ms);
            if count < SYNC_CHUNK {
                return Ok(applied);
            }
        }
    }

    /// Files one journal record in `state`'s view, the one way both [`Coordinator::sync`] and
    /// a rebuild do: marks a claim received late, then applies the entry with its body. The
    /// body is the one the write path parsed when the log still holds it
    /// ([`Log::take_parsed_body`]); otherwise (a record written before this process, one the
    /// hand-off dropped, or one a rebuild folds again) it is parsed from the stored entry.
    fn file_record(&self, state: &mut State, log: &Log, item: &JournalEntry) -> Option<Touched> {
        let body = log
            .take_parsed_body(item.arrival)
            .or_else(|| parse_stored_body(&item.entry, Kind::is_coordination));
        if let Some(reception) = item.reception {
            self.mark_if_late(state, log, &item.entry, body.as_ref(), reception);
        }
        body.and_then(|body| state.view.apply(&item.entry, body))
    }

    /// Marks a claim this node received late in the view, before it is applied, so the
    /// events it causes already carry the mark.
    fn mark_if_late(
        &self,
        state: &mut State,
        log: &Log,
        entry: &Entry,
        body: Option<&Body>,
        reception: Reception,
    ) {
        let header = entry.header();
        let is_claim = plexus_protocol::Kind::parse(&header.kind).is_ok_and(|kind| kind.is_claim());
        if reception.arrival != Arrival::History || !is_claim {
            // Spare the window's lookup: nothing else can be late.
            return;
        }
        let (window_ms, _) = log.clock_skew_for(entry, self.clock_skew_ms);
        if is_late(&header.kind, header.timestamp_ms, reception, window_ms) {
            state.view.mark_late(&header.namespace, entry.id());
            if let Some(claim_id) = late_claim_shown(&state.view, entry, body) {
                let after = reception.received_ms.saturating_sub(header.timestamp_ms);
                let slot = state.late_after_ms.entry(claim_id).or_default();
                *slot = (*slot).max(after);
            }
        }
    }

    /// Re-evaluates every lease at `now_ms`, for changes that come with time alone: those
    /// with holders last reported, those with a claim that may be live now (found through the
    /// view's index, not by walking history), and those of this agent's claims; each is
    /// computed once, so a tick costs O(log n + live claims).
    pub fn tick(&self, now_ms: u64) {
        let mut state = self.lock();
        let mut resources: BTreeSet<(String, String)> = state.holders.keys().cloned().collect();
        for namespace in state.view.namespaces() {
            for resource in state.view.live_resources(&namespace, now_ms) {
                resources.insert((namespace.clone(), resource));
            }
        }
        resources.extend(state.standings.keys().cloned());
        self.reevaluate(&mut state, resources, now_ms);
    }

    /// Entries applied so far (the journal cursor).
    pub fn applied(&self) -> u64 {
        self.lock().next_arrival
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Emits the events of an entry the view has just filed (`applied`: what it touched, if it
    /// interpreted the entry) and notes the leases to re-evaluate.
    fn after_apply(
        &self,
        state: &mut State,
        entry: &Entry,
        applied: Option<Touched>,
        now_ms: u64,
        touched: &mut BTreeSet<(String, String)>,
    ) {
        let header = entry.header();
        let resource = applied.as_ref().and_then(|a| a.resource.clone());
        let task_id = applied.as_ref().and_then(|a| a.task_id.clone());
        if self.events.receiver_count() == 0 {
            // Nobody listens (the usual case during a backfill with no agent attached):
            // number the event, but spare rendering its JSON, which would cost more than
            // storing the entry did.
            state.next_event += 1;
            self.events.skip_to(state.next_event);
        } else {
            self.emit_entry(state, entry, resource.clone(), task_id.clone(), now_ms);
        }
        let Some(applied) = applied else { return };
        if let Some(resource) = resource {
            if header.kind == plexus_protocol::Kind::Constraint.as_str() {
                // A constraint on a prefix touches every resource it covers.
                for live in state.view.live_resources(&header.namespace, now_ms) {
                    if plexus_protocol::coord::view::resource_matches(&resource, &live) {
                        touched.insert((header.namespace.clone(), live));
                    }
                }
            } else {
                touched.insert((header.namespace.clone(), resource));
            }
        }
        if let Some(task_id) = task_id {
            let task = state.view.task(&applied.namespace, &task_id, now_ms);
            self.emit(
                state,
                Event {
                    id: 0,
                    event_type: "task",
                    namespace: applied.namespace.clone(),
                    kind: None,
                    resource: None,
                    task_id: Some(task_id),
                    time_ms: now_ms,
                    data: serde_json::to_value(task).unwrap_or_default(),
                },
            );
        }
    }

    /// Emits the `entry` event of a stored entry.
    fn emit_entry(
        &self,
        state: &mut State,
        entry: &Entry,
        resource: Option<String>,
        task_id: Option<String>,
        now_ms: u64,
    ) {
        let header = entry.header();
        let body = entry
            .body()
            .and_then(|bytes| plexus_protocol::value::canonical_to_json(bytes).ok())
            .unwrap_or(serde_json::Value::Null);
        self.emit(
            state,
            Event {
                id: 0,
                event_type: "entry",
                namespace: header.namespace.clone(),
                kind: Some(header.kind.clone()),
                resource,
                task_id,
                time_ms: now_ms,
                data: serde_json::json!({
                    "entry_id": entry.id().to_string(),
                    "author": header.author.to_string(),
                    "seq": header.seq,
                    "timestamp_ms": header.timestamp_ms,
                    "body": body,
                }),
            },
        );
    }

    /// Compares each resource's lease with what was last reported and emits the differences.
    fn reevaluate(&self, state: &mut State, resources: BTreeSet<(String, String)>, now_ms: u64) {
        let me = self.agent.to_string();
        for (namespace, resource) in resources {
            let lease = state.view.lease(&namespace, &resource, now_ms);
            let holders: Vec<String> = lease.holders.iter().map(|c| c.claim_id.clone()).collect();
            let key = (namespace.clone(), resource.clone());
            let before = state.holders.get(&key).cloned().unwrap_or_default();
            if holders != before {
                self.emit(
                    state,
                    Event {
                        id: 0,
                        event_type: "lease",
                        namespace: namespace.clone(),
                        kind: None,
                        resource: Some(resource.clone()),
                        task_id: None,
                        time_ms: now_ms,
                        data: serde_json::to_value(&lease).unwrap_or_default(),
                    },
                );
                if holders.is_empty() {
                    state.holders.remove(&key);
                } else {
                    state.holders.insert(key.clone(), holders);
                }
            }
            let mine: Vec<&ClaimView> = lease
                .holders
                .iter()
                .chain(&lease.waiting)
                .chain(&lease.excluded)
                .filter(|claim| claim.author == me)
                .collect();
            let mut seen = BTreeSet::new();
            for claim in mine {
                seen.insert(claim.claim_id.clone());
                let before = state
                    .standings
                    .entry(key.clone())
                    .or_default()
                    .insert(claim.claim_id.clone(), claim.standing);
                let holding_now = claim.standing == ClaimStanding::Holding;
                let holding_before = before == Some(ClaimStanding::Holding);
                let event_type = match (before, holding_now) {
                    (_, true) if !holding_before => Some("claim.won"),
                    (None, false) => Some("claim.lost"),
                    (Some(_), false) if holding_before => Some("claim.lost"),
                    _ => None,
                };
                if let Some(event_type) = event_type {
                    self.emit_claim(state, event_type, &namespace, claim, &lease, now_ms);
                }
            }
            // Claims of ours on this resource that are no longer live have ended.
            let mut ended = Vec::new();
            if let Some(standings) = state.standings.get_mut(&key) {
                standings.retain(|claim_id, _| {
                    let live = seen.contains(claim_id);
                    if !live {
                        ended.push(claim_id.clone());
                    }
                    live
                });
                if standings.is_empty() {
                    state.standings.remove(&key);
                }
            }
            for claim_id in ended {
                let Ok(id) = claim_id.parse::<Hash256>() else {
                    continue;
                };
                if let Some(claim) = state.view.claim(&namespace, &id, now_ms) {
                    self.emit_claim(state, "claim.ended", &namespace, &claim, &lease, now_ms);
                }
            }
        }
    }

    fn emit_claim(
        &self,
        state: &mut State,
        event_type: &'static str,
        namespace: &str,
        claim: &ClaimView,
        lease: &LeaseView,
        now_ms: u64,
    ) {
        self.emit(
            state,
            Event {
                id: 0,
                event_type,
                namespace: namespace.to_owned(),
                kind: None,
                resource: Some(claim.resource.clone()),
                task_id: None,
                time_ms: now_ms,
                data: serde_json::json!({ "claim": claim, "holders": lease.holders }),
            },
        );
    }

    fn emit(&self, state: &mut State, mut event: Event) {
        event.id = state.next_event;
        state.next_event += 1;
        // No subscriber is not an error: events are for whoever listens.
        self.events.send(event);
    }
}

/// The claim a late entry shows on: an `intent` itself; the claim a renewal or release (whose
/// parsed body is `body`) names when that claim is its author's (others' renewals and
/// releases do not touch a claim, §9.2).
fn late_claim_shown(view: &View, entry: &Entry, body: Option<&Body>) -> Option<Hash256> {
    let header = entry.header();
    if header.kind == "intent" {
        return Some(entry.id());
    }
    let named = match body? {
        Body::IntentRenew(renew) => &renew.claim,
        Body::IntentRelease(release) => &release.claim,
        _ => return None,
    };
    let claim_id = plexus_protocol::coord::parse_entry_id(named)?;
    let claim = view.claim(&header.namespace, &claim_id, u64::MAX)?;
    (claim.author == header.author.to_string()).then_some(claim_id)
}

#[cfg(test)]
mod tests {
    use plexus_crypto::Keypair;
    use plexus_protocol::value::json_text_to_canonical;

    use super::*;

    const NAMESPACE: &str = "ops";
    const NOW_MS: u64 = 1_767_225_600_000;

    /// Appends `kind` with the JSON `body` to `author`'s feed, `offset_ms` after [`NOW_MS`].
    fn append(log: &Log, author: &Keypair, kind: &str, body: &str, offset_ms: u64) -> Entry {
        let body = json_text_to_canonical(body).unwrap();
        log.append_own(author, NAMESPACE, kind, body, NOW_MS + offset_ms)
            .unwrap()
    }

    /// Every event `receiver` holds, as JSON text.
    fn drain(receiver: &mut EventReceiver) -> Vec<String> {
        std::iter::from_fn(|| receiver.try_recv().ok())
            .map(|event| serde_json::to_string(&*event).unwrap())
            .collect()
    }

    #[test]
    fn the_view_applies_each_journal_entry_once_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path()).unwrap();
        let (me, rival) = (Keypair::from_seed(&[1; 32]), Keypair::from_seed(&[2; 32]));
        let coord = Coordinator::new(me.agent_id());
        let mut events = coord.subscribe();
        let later = NOW_MS + 10;
        let claim = r#"{"resource": "printer", "action": "print", "leaseMs": 60000}"#;
        let theirs = append(&log, &rival, "intent", claim, 0);
        append(&log, &me, "intent", claim, 5);
        assert_eq!(coord.sync(&log, later).unwrap(), 2);
        append(&log, &rival, "x-note", r#"{"text": "done soon"}"#, 6);
        let task = r#"{"taskId": "t1", "status": {"state": "TASK_STATE_WORKING"}}"#;
        append(&log, &me, "task", task, 7);
        let release = format!(r#"{{"claim": "{}"}}"#, theirs.id());
        append(&log, &rival, "intent.release", &release, 8);
        assert_eq!(coord.sync(&log, later).unwrap(), 3);
        assert_eq!(
            coord.sync(&log, later).unwrap(),
            0,
            "nothing is applied twice"
        );
        assert_eq!(coord.applied(), 5);
        let events = drain(&mut events);
        // The rival held the printer first; its release handed it to us.
        assert!(events.iter().any(|event| event.contains("\"claim.won\"")));
        let fresh = Coordinator::new(me.agent_id());
        assert_eq!(fresh.sync(&log, later).unwrap(), 5);
        assert_eq!(
            fresh.view().leases(NAMESPACE, later),
            coord.view().leases(NAMESPACE, later)
        );
        assert_eq!(
            fresh.view().tasks(NAMESPACE, later),
            coord.view().tasks(NAMESPACE, later)
        );
        // `coord` applied the bodies the write path parsed, `fresh` parsed the stored ones:
        // the same view.
        assert_eq!(fresh.view().digest(later), coord.view().digest(later));
    }

    /// A claim by `author` dated `timestamp_ms`, signed but not stored.
    fn signed_claim(author: &Keypair, timestamp_ms: u64) -> Entry {
        let body = r#"{"resource": "printer", "action": "print", "leaseMs": 3600000}"#;
        Entry::sign(
            author,
            plexus_protocol::Draft {
                namespace: NAMESPACE.into(),
                seq: 1,
                prev: None,
                timestamp_ms,
                kind: "intent".into(),
                body: json_text_to_canonical(body).unwrap(),
            },
        )
        .unwrap()
    }

    #[test]
    fn a_claim_backfilled_beyond_the_window_is_flagged_late_and_still_counts() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path()).unwrap();
        let me = Keypair::from_seed(&[1; 32]);
        let (cheater, partitioned) = (Keypair::from_seed(&[2; 32]), Keypair::from_seed(&[3; 32]));
        let coord = Coordinator::new(me.agent_id());
        let mut events = coord.subscribe();
        let mine = append(
            &log,
            &me,
            "intent",
            r#"{"resource": "printer", "action": "print", "leaseMs": 3600000}"#,
            0,
        );
        coord.sync(&log, NOW_MS).unwrap();
        // Both arrive by backfill a minute after `mine`: one dated ten minutes back, one made
        // twenty seconds before it arrived (within the 30 s window, as after a short partition).
        let received_ms = NOW_MS + 60_000;
        let backdated = signed_claim(&cheater, NOW_MS - 600_000);
        let timely = signed_claim(&partitioned, received_ms - 20_000);
        for entry in [&backdated, &timely] {
            let outcome = log
                .ingest(&entry.encode(), "sync:peer", received_ms)
                .unwrap();
            assert!(matches!(
                outcome,
                crate::store::IngestOutcome::Accepted { .. }
            ));
        }
        coord.sync(&log, received_ms).unwrap();
        let lease = coord.view().lease(NAMESPACE, "printer", received_ms);
        let standings: Vec<(String, bool)> = lease
            .holders
            .iter()
            .chain(&lease.waiting)
            .map(|claim| (claim.claim_id.clone(), claim.late))
            .collect();
        assert_eq!(
            standings,
            [
                (backdated.id().to_string(), true),
                (mine.id().to_string(), false),
                (timely.id().to_string(), false),
            ],
            "the back-dated claim still sorts first, flagged; the others are not late"
        );
        let lost: Vec<String> = drain(&mut events)
            .into_iter()
            .filter(|event| event.contains("\"claim.lost\""))
            .collect();
        assert_eq!(lost.len(), 1, "{lost:?}");
        let lost: serde_json::Value = serde_json::from_str(&lost[0]).unwrap();
        assert_eq!(lost["data"]["holders"][0]["late"], true);
        // The journal says how each arrived, so a fresh coordinator flags the same claims.
        let receptions: Vec<Option<Arrival>> = log
            .journal(0)
            .map(|item| item.unwrap().reception.map(|r| r.arrival))
            .collect();
        assert_eq!(
            receptions,
            [
                Some(Arrival::Own),
                Some(Arrival::History),
                Some(Arrival::History)
            ]
        );
        let fresh = Coordinator::new(me.agent_id());
        fresh.sync(&log, received_ms).unwrap();
        assert_eq!(fresh.view().lease(NAMESPACE, "printer", received_ms), lease);
        // A node with a wider window (`--clock-skew-ms`) does not flag it.
        let lenient = Coordinator::new(me.agent_id()).with_clock_skew_ms(3_600_000);
        lenient.sync(&log, received_ms).unwrap();
        let lease = lenient.view().lease(NAMESPACE, "printer", received_ms);
        assert!(!lease.holders[0].late);
    }
}
