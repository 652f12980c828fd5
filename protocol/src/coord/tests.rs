//! Tests of the coordination bodies and the view.

use std::collections::{BTreeSet, HashMap};

use plexus_crypto::Keypair;
use proptest::prelude::*;
use serde_json::json;

use super::view::CardQuery;
use super::*;
use crate::entry::{Draft, Entry};

mod properties;

const NS: &str = "team";

/// Signs entries for a few agents, keeping each agent's chain.
struct Agents {
    keys: Vec<Keypair>,
    heads: HashMap<usize, (u64, plexus_crypto::Hash256)>,
}

impl Agents {
    fn new(count: usize) -> Agents {
        Agents {
            keys: (0..count)
                .map(|i| Keypair::from_seed(&[u8::try_from(i).unwrap() + 1; 32]))
                .collect(),
            heads: HashMap::new(),
        }
    }

    fn publish(
        &mut self,
        agent: usize,
        kind: &str,
        timestamp_ms: u64,
        body: serde_json::Value,
    ) -> Entry {
        let body = Body::from_json(kind, body).unwrap().encode().unwrap();
        let head = self.heads.get(&agent).copied();
        let entry = Entry::sign(
            &self.keys[agent],
            Draft {
                namespace: NS.into(),
                seq: head.map_or(1, |(seq, _)| seq + 1),
                prev: head.map(|(_, id)| id),
                timestamp_ms,
                kind: kind.into(),
                body,
            },
        )
        .unwrap();
        self.heads.insert(agent, (entry.header().seq, entry.id()));
        entry
    }

    fn id(&self, agent: usize) -> String {
        self.keys[agent].agent_id().to_string()
    }
}

fn claim(agents: &mut Agents, agent: usize, resource: &str, at: u64, lease_ms: u64) -> Entry {
    agents.publish(
        agent,
        "intent",
        at,
        json!({"resource": resource, "action": "write", "leaseMs": lease_ms}),
    )
}

fn view_of(entries: &[Entry]) -> View {
    let mut view = View::new();
    for entry in entries {
        file(&mut view, entry);
    }
    view
}

/// Applies an entry as a node applies one read back from its log: its body parsed once.
fn file(view: &mut View, entry: &Entry) {
    if let Some(body) = body_for_view(entry) {
        view.apply(entry, body);
    }
}

#[test]
fn the_earliest_claim_holds_and_the_other_waits_until_release() {
    let mut agents = Agents::new(2);
    let first = claim(&mut agents, 0, "repo/x", 1_000, 60_000);
    let second = claim(&mut agents, 1, "repo/x", 1_005, 60_000);
    // Delivered in the opposite order: the answer is the same.
    let mut view = view_of(&[second.clone(), first.clone()]);
    let lease = view.lease(NS, "repo/x", 2_000);
    assert_eq!(lease.holders.len(), 1);
    assert_eq!(lease.holders[0].claim_id, first.id().to_string());
    assert_eq!(lease.waiting[0].claim_id, second.id().to_string());
    assert_eq!(
        lease.waiting[0].standing,
        ClaimStanding::Waiting { position: 1 }
    );

    let release = agents.publish(
        0,
        "intent.release",
        3_000,
        json!({"claim": first.id().to_string()}),
    );
    file(&mut view, &release);
    assert_eq!(
        view.lease(NS, "repo/x", 2_999).holders[0].author,
        agents.id(0)
    );
    let after = view.lease(NS, "repo/x", 3_000);
    assert_eq!(after.holders[0].author, agents.id(1));
    assert_eq!(
        view.claim(NS, &first.id(), 3_000).unwrap().standing,
        ClaimStanding::Released
    );
}

#[test]
fn leases_expire_and_renewals_extend_only_running_claims() {
    let mut agents = Agents::new(2);
    let first = claim(&mut agents, 0, "slot", 1_000, 1_000);
    let renew = agents.publish(
        0,
        "intent.renew",
        1_500,
        json!({"claim": first.id().to_string(), "leaseMs": 5_000}),
    );
    // A renewal by someone else is ignored.
    let foreign = agents.publish(
        1,
        "intent.renew",
        1_600,
        json!({"claim": first.id().to_string(), "leaseMs": 50_000}),
    );
    let view = view_of(&[first.clone(), renew, foreign]);
    assert_eq!(
        view.claim(NS, &first.id(), 6_499).unwrap().standing,
        ClaimStanding::Holding
    );
    assert_eq!(
        view.claim(NS, &first.id(), 6_500).unwrap().standing,
        ClaimStanding::Expired
    );

    let mut agents = Agents::new(1);
    let late = claim(&mut agents, 0, "slot", 1_000, 1_000);
    let too_late = agents.publish(
        0,
        "intent.renew",
        2_000,
        json!({"claim": late.id().to_string(), "leaseMs": 5_000}),
    );
    let view = view_of(&[late.clone(), too_late]);
    assert_eq!(
        view.claim(NS, &late.id(), 2_500).unwrap().standing,
        ClaimStanding::Expired
    );
}

#[test]
fn a_release_by_another_agent_changes_nothing() {
    let mut agents = Agents::new(2);
    let first = claim(&mut agents, 0, "r", 10, 60_000);
    let release = agents.publish(
        1,
        "intent.release",
        20,
        json!({"claim": first.id().to_string()}),
    );
    let view = view_of(&[first.clone(), release]);
    assert_eq!(
        view.claim(NS, &first.id(), 30).unwrap().standing,
        ClaimStanding::Holding
    );
}

#[test]
fn a_late_mark_flags_the_claim_but_never_changes_the_lease_order() {
    let mut agents = Agents::new(3);
    let honest = claim(&mut agents, 0, "printer", 1_000, 60_000);
    // Back-dated before the honest claim and received late: it still sorts first, so every
    // node holding both agrees on the holder; this node flags it.
    let backdated = claim(&mut agents, 1, "printer", 500, 60_000);
    let entries = [honest.clone(), backdated.clone()];
    let unmarked = view_of(&entries);
    let mut marked = view_of(&entries);
    marked.mark_late(NS, backdated.id());
    let lease = marked.lease(NS, "printer", 2_000);
    assert_eq!(lease.holders[0].claim_id, backdated.id().to_string());
    assert!(lease.holders[0].late);
    assert!(!lease.waiting[0].late, "the honest claim is not late");
    assert_eq!(marked.digest(2_000), unmarked.digest(2_000));
    let json = serde_json::to_value(&lease).unwrap();
    assert_eq!(json["holders"][0]["late"], true);
    assert!(json["waiting"][0].get("late").is_none(), "{json}");

    // Marking before the entry is applied gives the same view.
    let mut early_mark = View::new();
    early_mark.mark_late(NS, backdated.id());
    for entry in &entries {
        file(&mut early_mark, entry);
    }
    assert_eq!(early_mark.lease(NS, "printer", 2_000), lease);

    // A late renewal by the claim's author flags the claim it renews; one by another author
    // renews nothing, so its mark does not show on the claim.
    let renewal = agents.publish(
        0,
        "intent.renew",
        1_500,
        json!({"claim": honest.id().to_string(), "leaseMs": 60_000}),
    );
    let foreign = agents.publish(
        2,
        "intent.renew",
        1_600,
        json!({"claim": honest.id().to_string(), "leaseMs": 60_000}),
    );
    let mut view = view_of(&[honest.clone(), foreign.clone()]);
    view.mark_late(NS, foreign.id());
    assert!(!view.claim(NS, &honest.id(), 2_000).unwrap().late);
    file(&mut view, &renewal);
    view.mark_late(NS, renewal.id());
    assert!(view.claim(NS, &honest.id(), 2_000).unwrap().late);
}

#[test]
fn equal_timestamps_go_to_the_higher_priority_then_the_smaller_id() {
    let mut agents = Agents::new(3);
    let low = claim(&mut agents, 0, "r", 100, 60_000);
    let high = agents.publish(
        1,
        "intent",
        100,
        json!({"resource": "r", "action": "write", "leaseMs": 60_000, "priority": 5}),
    );
    let other = claim(&mut agents, 2, "r", 100, 60_000);
    let view = view_of(&[low.clone(), high.clone(), other.clone()]);
    let lease = view.lease(NS, "r", 200);
    assert_eq!(lease.holders[0].claim_id, high.id().to_string());
    let (first_low, second_low) = if low.id() < other.id() {
        (low, other)
    } else {
        (other, low)
    };
    assert_eq!(lease.waiting[0].claim_id, first_low.id().to_string());
    assert_eq!(lease.waiting[1].claim_id, second_low.id().to_string());
}

#[test]
fn constraints_set_holders_block_and_rate_limit() {
    let mut agents = Agents::new(4);
    let claims: Vec<Entry> = (0..3)
        .map(|i| claim(&mut agents, i, "db/main", 1_000 + i as u64, 60_000))
        .collect();
    let max = agents.publish(
        3,
        "constraint",
        500,
        json!({"resource": "db/*", "rule": {"type": "maxHolders", "limit": 2}, "ttlMs": 10_000}),
    );
    let mut entries = claims.clone();
    entries.push(max.clone());
    let view = view_of(&entries);
    let lease = view.lease(NS, "db/main", 2_000);
    assert_eq!(lease.max_holders, 2);
    assert_eq!(lease.holders.len(), 2);
    assert_eq!(lease.waiting.len(), 1);
    // After the constraint expires, the default of one holder applies again.
    assert_eq!(view.lease(NS, "db/main", 10_500).holders.len(), 1);
    // Exclusive wins over a larger limit.
    let exclusive = agents.publish(
        3,
        "constraint",
        600,
        json!({"resource": "db/main", "rule": {"type": "exclusive"}, "ttlMs": 10_000}),
    );
    entries.push(exclusive);
    assert_eq!(
        view_of(&entries).lease(NS, "db/main", 2_000).holders.len(),
        1
    );

    let mut agents = Agents::new(2);
    let block = agents.publish(
        1,
        "constraint",
        0,
        json!({"resource": "deploy", "rule": {"type": "notBefore", "at": 5_000}, "ttlMs": 100_000}),
    );
    let early = claim(&mut agents, 0, "deploy", 1_000, 60_000);
    let view = view_of(&[block, early.clone()]);
    assert_eq!(
        view.claim(NS, &early.id(), 4_000).unwrap().standing,
        ClaimStanding::Blocked { until_ms: 5_000 }
    );
    assert_eq!(
        view.claim(NS, &early.id(), 5_000).unwrap().standing,
        ClaimStanding::Holding
    );

    let mut agents = Agents::new(2);
    let limit = agents.publish(1, "constraint", 0, json!({"resource": "api/*", "rule": {"type": "rateLimit", "claims": 1, "windowMs": 10_000}, "ttlMs": 100_000}));
    let first = claim(&mut agents, 0, "api/z", 1_000, 60_000);
    let second = claim(&mut agents, 0, "api/z", 2_000, 60_000);
    let view = view_of(&[limit, first.clone(), second.clone()]);
    assert_eq!(
        view.claim(NS, &first.id(), 3_000).unwrap().standing,
        ClaimStanding::Holding
    );
    assert_eq!(
        view.claim(NS, &second.id(), 3_000).unwrap().standing,
        ClaimStanding::RateLimited
    );
}

#[test]
fn tasks_follow_the_state_machine_and_keep_rejected_updates() {
    let mut agents = Agents::new(2);
    let task = |state: &str| json!({"taskId": "t1", "contextId": "c", "status": {"state": state, "message": state}});
    let entries = vec![
        agents.publish(0, "task", 10, task("TASK_STATE_SUBMITTED")),
        agents.publish(1, "task", 20, task("TASK_STATE_WORKING")),
        agents.publish(1, "task", 30, task("TASK_STATE_COMPLETED")),
        agents.publish(0, "task", 40, task("TASK_STATE_WORKING")),
    ];
    let mut reversed = entries.clone();
    reversed.reverse();
    let view = view_of(&reversed);
    let task = view.task(NS, "t1", 100).unwrap();
    assert_eq!(task.state, TaskState::Completed);
    assert_eq!(task.created_by, agents.id(0));
    assert_eq!(task.updated_by, agents.id(1));
    assert_eq!(task.history.len(), 4);
    let last = task.history.last().unwrap();
    assert!(
        last.rejected.as_deref().unwrap().contains("terminal"),
        "{last:?}"
    );
    assert_eq!(view.task(NS, "t1", 25).unwrap().state, TaskState::Working);
    // Applying every update a second time changes nothing.
    let twice = view_of(&[reversed.as_slice(), entries.as_slice()].concat());
    assert_eq!(
        format!("{:?}", twice.task(NS, "t1", 100)),
        format!("{:?}", Some(task))
    );
    assert!(view
        .check_task_update(NS, "t1", TaskState::Failed, 100)
        .unwrap_err()
        .contains("TASK_STATE_COMPLETED"));
}

/// A task that ended before the horizon is dropped to its end: not listed, refusing every
/// later update as its whole history does, and stale (needing a rebuild) only for an update
/// that may sort before its end. The rule holds for a task that arrives after the forget.
#[test]
fn a_task_that_ended_before_the_horizon_is_dropped_and_stays_ended() {
    let mut agents = Agents::new(2);
    let update = |task: &str, state: &str| json!({"taskId": task, "status": {"state": state}});
    let ended = [
        agents.publish(0, "task", 100, update("a", "TASK_STATE_SUBMITTED")),
        agents.publish(1, "task", 200, update("a", "TASK_STATE_COMPLETED")),
    ];
    let running = agents.publish(0, "task", 150, update("b", "TASK_STATE_WORKING"));
    let mut entries = ended.to_vec();
    entries.push(running);
    let full = view_of(&entries);
    let mut view = view_of(&entries);
    let forgotten = view.forget_before(1_000);
    assert_eq!((forgotten.tasks, forgotten.task_updates), (1, 2));
    let held = view.held();
    assert_eq!((held.task_updates, held.finished_tasks), (1, 1));
    assert!(view.task(NS, "a", 1_500).is_none());
    assert!(
        full.task(NS, "a", 1_500).is_some(),
        "a view that forgot nothing lists it"
    );
    assert_eq!(
        view.task_ended_before_history(NS, "a"),
        Some((TaskState::Completed, 200))
    );
    assert_eq!(view.task_ended_before_history(NS, "b"), None);
    let listed: Vec<String> = view
        .tasks(NS, 1_500)
        .into_iter()
        .map(|t| t.task_id)
        .collect();
    assert_eq!(listed, ["b"]);
    // A later update is refused as the whole history refuses it, and needs nothing dropped.
    let again = agents.publish(0, "task", 1_200, update("a", "TASK_STATE_WORKING"));
    file(&mut view, &again);
    assert!(!view.needs_rebuild());
    assert!(view.task(NS, "a", 1_500).is_none());
    let refusal = view.check_task_update(NS, "a", TaskState::Working, 1_500);
    assert_eq!(
        refusal,
        full.check_task_update(NS, "a", TaskState::Working, 1_500)
    );
    assert!(refusal.unwrap_err().contains("TASK_STATE_COMPLETED"));
    // An update made before its end may come first in its order: the view needs a rebuild.
    let earlier = agents.publish(1, "task", 200, update("a", "TASK_STATE_FAILED"));
    file(&mut view, &earlier);
    assert!(view.needs_rebuild());
    // A task that ended before the horizon but reached the view after the forget: not listed.
    let mut late = View::new();
    late.forget_before(1_000);
    for entry in &ended {
        file(&mut late, entry);
    }
    assert!(!late.needs_rebuild());
    assert!(late.task(NS, "a", 1_500).is_none());
    assert_eq!(
        late.task_ended_before_history(NS, "a"),
        Some((TaskState::Completed, 200))
    );
}

#[test]
fn one_authors_updates_in_the_same_millisecond_keep_their_feed_order() {
    // Find two updates whose ids sort against their seqs, so ordering by id would apply
    // WORKING before SUBMITTED.
    let (submitted, working) = (0..64)
        .map(|attempt| {
            let mut agents = Agents::new(1);
            let submitted = agents.publish(
                0,
                "task",
                10,
                json!({"taskId": "t", "contextId": "c", "status": {"state": "TASK_STATE_SUBMITTED", "message": format!("{attempt}")}}),
            );
            let working = agents.publish(
                0,
                "task",
                10,
                json!({"taskId": "t", "status": {"state": "TASK_STATE_WORKING"}}),
            );
            (submitted, working)
        })
        .find(|(submitted, working)| working.id() < submitted.id())
        .unwrap();
    let task = view_of(&[working, submitted]).task(NS, "t", 10).unwrap();
    assert_eq!(task.state, TaskState::Working);
    assert_eq!(task.context_id, "c");
    assert!(
        task.history.iter().all(|item| item.rejected.is_none()),
        "{task:?}"
    );
}

#[test]
fn transitions_follow_a2a() {
    use TaskState::*;
    assert!(Submitted.check_transition(None).is_ok());
    assert!(Working.check_transition(None).is_ok());
    assert!(Completed.check_transition(None).is_err());
    assert!(Rejected.check_transition(Some(Submitted)).is_ok());
    assert!(Rejected.check_transition(Some(Working)).is_err());
    assert!(Submitted.check_transition(Some(Working)).is_err());
    assert!(Working.check_transition(Some(InputRequired)).is_ok());
    for terminal in [Completed, Failed, Canceled, Rejected] {
        assert!(Working.check_transition(Some(terminal)).is_err());
    }
    assert_eq!("working".parse::<TaskState>().unwrap(), Working);
    assert_eq!("TASK_STATE_FAILED".parse::<TaskState>().unwrap(), Failed);
    assert!("done".parse::<TaskState>().is_err());
}

#[test]
fn cards_are_searchable_and_revocable() {
    let mut agents = Agents::new(2);
    let card = json!({
        "name": "coder-1", "description": "Writes Rust", "version": "1.0",
        "skills": [{"id": "rust", "name": "Rust coding", "tags": ["code", "review"]}],
        "ttlMs": 60_000,
    });
    let published = agents.publish(0, "capability", 1_000, card);
    let other = agents.publish(
        1,
        "capability",
        1_000,
        json!({"name": "planner", "ttlMs": 60_000}),
    );
    let mut view = view_of(&[published, other]);
    let by = |query: CardQuery| view_names(&view.cards(NS, &query, 2_000));
    assert_eq!(by(CardQuery::default()).len(), 2);
    assert_eq!(
        by(CardQuery {
            skill: Some("RUST".into()),
            ..Default::default()
        }),
        vec!["coder-1"]
    );
    assert_eq!(
        by(CardQuery {
            tag: Some("review".into()),
            ..Default::default()
        }),
        vec!["coder-1"]
    );
    assert_eq!(
        by(CardQuery {
            text: Some("plan".into()),
            ..Default::default()
        }),
        vec!["planner"]
    );
    assert!(view.cards(NS, &CardQuery::default(), 61_000).is_empty());
    let revoke = agents.publish(0, "capability.revoke", 1_500, json!({}));
    file(&mut view, &revoke);
    assert_eq!(
        view_names(&view.cards(NS, &CardQuery::default(), 2_000)),
        vec!["planner"]
    );
}

fn view_names(cards: &[CardView]) -> Vec<String> {
    let mut names: Vec<String> = cards.iter().map(|card| card.name.clone()).collect();
    names.sort();
    names
}

#[test]
fn bad_bodies_name_the_field_and_the_problem() {
    let error = |kind: &str, body: serde_json::Value| Body::from_json(kind, body).unwrap_err();
    let e = error(
        "intent",
        json!({"resource": "r", "action": "write", "leaseMs": 0}),
    );
    assert_eq!(e.field(), Some("leaseMs"));
    assert!(e.to_string().contains("from 1 to"), "{e}");
    let e = error("intent", json!({"resource": "r", "action": "write"}));
    assert!(e.to_string().contains("missing field `leaseMs`"), "{e}");
    let e = error(
        "intent",
        json!({"resource": "r", "action": "w", "leaseMs": 5, "lease": 5}),
    );
    assert!(e.to_string().contains("unknown field `lease`"), "{e}");
    let e = error(
        "intent",
        json!({"resource": "a b", "action": "w", "leaseMs": 5}),
    );
    assert_eq!(e.field(), Some("resource"));
    let e = error("intent.release", json!({"claim": "abc"}));
    assert_eq!(e.field(), Some("claim"));
    let e = error("task", json!({"taskId": "t", "status": {"state": "DONE"}}));
    assert!(e.to_string().contains("unknown variant"), "{e}");
    let e = error(
        "pattern",
        json!({"topic": "t", "summary": "s", "confidence": 1.5}),
    );
    assert_eq!(e.field(), Some("confidence"));
    let e = error(
        "constraint",
        json!({"resource": "a*b", "rule": {"type": "exclusive"}, "ttlMs": 5}),
    );
    assert_eq!(e.field(), Some("resource"));
    let e = error("intnet", json!({}));
    assert_eq!(e.code(), "unknown_kind");
    assert!(e.to_string().contains("x-"), "{e}");
    assert!(Body::from_json("x-note", json!({"any": [1, 2]})).is_ok());
    let e = error("capability", json!([]));
    assert!(e.to_string().contains("JSON object"), "{e}");
}

#[test]
fn clock_skew_applies_to_claims_and_to_every_kind_when_governed() {
    let mut agents = Agents::new(1);
    let claim_entry = claim(&mut agents, 0, "r", 100_000, 1_000);
    assert!(check_clock_skew(
        &claim_entry,
        100_000 + DEFAULT_CLOCK_SKEW_MS,
        DEFAULT_CLOCK_SKEW_MS,
        false
    )
    .is_ok());
    let error = check_clock_skew(
        &claim_entry,
        100_001 + DEFAULT_CLOCK_SKEW_MS,
        DEFAULT_CLOCK_SKEW_MS,
        false,
    )
    .unwrap_err();
    assert_eq!(error.code(), "clock_skew");
    assert!(error.to_string().contains("behind"), "{error}");
    let error = check_clock_skew(&claim_entry, 0, DEFAULT_CLOCK_SKEW_MS, false).unwrap_err();
    assert!(error.to_string().contains("ahead of"), "{error}");
    let pattern = agents.publish(
        0,
        "pattern",
        0,
        json!({"topic": "t", "summary": "s", "confidence": 0.5}),
    );
    assert!(check_clock_skew(&pattern, 10_000_000, DEFAULT_CLOCK_SKEW_MS, false).is_ok());
    let error = check_clock_skew(&pattern, 10_000_000, DEFAULT_CLOCK_SKEW_MS, true).unwrap_err();
    assert_eq!(error.code(), "clock_skew");
}

#[test]
fn the_timeline_shows_the_holder_then_the_waiter_that_follows_and_the_constraint() {
    let mut agents = Agents::new(2);
    let first = claim(&mut agents, 0, "repo", 100, 1_000);
    let second = claim(&mut agents, 1, "repo", 200, 1_000);
    let release = agents.publish(
        0,
        "intent.release",
        500,
        json!({"claim": first.id().to_string()}),
    );
    let rule = json!({"resource": "repo", "rule": {"type": "exclusive"}, "ttlMs": 100});
    let constraint = agents.publish(1, "constraint", 300, rule);
    let view = view_of(&[first.clone(), second.clone(), release, constraint]);
    let timeline = view.timeline(NS, 0, 2_000);
    assert_eq!(timeline.resources.len(), 1);
    let row = &timeline.resources[0];
    let segments = |claim: &Entry| -> Vec<(u64, u64, &str)> {
        let id = claim.id().to_string();
        let found = row.claims.iter().find(|c| c.claim_id == id).unwrap();
        found
            .segments
            .iter()
            .map(|s| (s.from_ms, s.to_ms, s.standing))
            .collect()
    };
    assert_eq!(segments(&first), vec![(100, 500, "holding")]);
    assert_eq!(
        segments(&second),
        vec![(200, 500, "waiting"), (500, 1_200, "holding")]
    );
    assert_eq!(row.constraints.len(), 1);
    assert_eq!(
        (
            row.constraints[0].published_ms,
            row.constraints[0].expires_ms
        ),
        (300, 400)
    );
    // A window that ends before the first claim shows nothing.
    assert!(view.timeline(NS, 0, 100).resources.is_empty());
}

#[test]
fn bodies_round_trip_through_their_canonical_form() {
    let bodies = [
        (
            "intent",
            json!({"resource": "r", "action": "w", "leaseMs": 5, "note": "n", "priority": 2}),
        ),
        (
            "task",
            json!({"taskId": "t", "contextId": "c", "status": {"state": "TASK_STATE_WORKING", "message": "m"}}),
        ),
        (
            "constraint",
            json!({"resource": "r*", "rule": {"type": "rateLimit", "claims": 2, "windowMs": 10}, "ttlMs": 5}),
        ),
        (
            "pattern",
            json!({"topic": "t", "summary": "s", "data": {"b": 1, "a": [true]}, "confidence": 0.75}),
        ),
        (
            "capability",
            json!({"name": "n", "skills": [{"id": "i", "name": "n", "tags": ["t"]}], "url": "http://x", "ttlMs": 5}),
        ),
    ];
    for (kind, json) in bodies {
        let body = Body::from_json(kind, json.clone()).unwrap();
        let bytes = body.encode().unwrap();
        assert_eq!(Body::parse(kind, &bytes).unwrap(), body);
        assert_eq!(crate::value::canonical_to_json(&bytes).unwrap(), json);
    }
}

/// A week of claims (each released), card updates and hourly constraints, forgotten hourly
/// with a day's horizon as a node does: the view holds about a day of history, not the week,
/// and answers now, and over the last day, as a view that kept everything.
#[test]
fn forgetting_hourly_keeps_a_day_of_history_not_a_week() {
    const MINUTE: u64 = 60_000;
    const DAY: u64 = 24 * 60 * MINUTE;
    const EVERY: u64 = 5 * MINUTE;
    let mut agents = Agents::new(3);
    let (mut full, mut kept) = (View::new(), View::new());
    let start = 1_767_225_600_000;
    let mut now = start;
    for step in 0..7 * DAY / EVERY {
        now = start + step * EVERY;
        let agent = usize::try_from(step % 3).unwrap();
        let held = claim(
            &mut agents,
            agent,
            &format!("r{}", step % 10),
            now,
            10 * MINUTE,
        );
        let release = json!({"claim": held.id().to_string()});
        let mut entries = vec![
            held,
            agents.publish(agent, "intent.release", now + MINUTE, release),
            agents.publish(
                agent,
                "capability",
                now,
                json!({"name": format!("a{step}"), "ttlMs": DAY}),
            ),
        ];
        let task = format!("t{step}");
        for (at, state) in [
            (now, "TASK_STATE_WORKING"),
            (now + MINUTE, "TASK_STATE_COMPLETED"),
        ] {
            let body = json!({"taskId": task, "status": {"state": state}});
            entries.push(agents.publish(agent, "task", at, body));
        }
        if step % 12 == 0 {
            let rule = json!({"type": "maxHolders", "limit": 1});
            let body = json!({"resource": "r*", "rule": rule, "ttlMs": 30 * MINUTE});
            entries.push(agents.publish(agent, "constraint", now, body));
            kept.forget_before(now - DAY);
        }
        for entry in &entries {
            file(&mut full, entry);
            file(&mut kept, entry);
        }
    }
    assert!(
        !kept.needs_rebuild(),
        "live entries never need what was forgotten"
    );
    assert_eq!(
        kept.snapshot(now),
        without_tasks_ended_before(full.snapshot(now), kept.kept_from_ms())
    );
    let last_day = (now - DAY + 60 * MINUTE, now);
    assert_eq!(
        kept.timeline(NS, last_day.0, last_day.1),
        full.timeline(NS, last_day.0, last_day.1)
    );
    let (held, all) = (kept.held(), full.held());
    // A day, the hour since the last forget, and a lease that ran past the horizon.
    let a_day = usize::try_from((DAY + 70 * MINUTE) / EVERY).unwrap() + 1;
    assert_eq!((all.claims, all.constraints), (7 * 288, 7 * 24));
    assert!(held.claims <= a_day, "{held:?}");
    assert!(held.claim_updates <= a_day, "{held:?}");
    assert!(held.order_keys <= a_day, "{held:?}");
    assert!(held.card_events <= a_day + 3, "{held:?}");
    assert!(held.constraints <= 26, "{held:?}");
    assert!(held.task_updates <= 2 * a_day, "{held:?}");
    assert_eq!(held.finished_tasks + held.task_updates / 2, 7 * 288);
}

/// `snapshot` without the tasks that ended before `horizon`, which a view forgetting that
/// horizon does not list.
fn without_tasks_ended_before(mut snapshot: Snapshot, horizon: u64) -> Snapshot {
    for space in snapshot.namespaces.values_mut() {
        space
            .tasks
            .retain(|task| !(task.state.is_terminal() && task.updated_ms < horizon));
    }
    snapshot
}
