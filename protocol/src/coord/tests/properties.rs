//! Property tests of the view: a random history by four agents, delivered in any order,
//! gives one state; the timeline, the indexed queries and the holder limit agree with a walk
//! of the whole history by the rules of `docs/PROTOCOL.md` §9.2.

use super::*;

/// A random history: claims, renewals, releases, constraints, task updates, cards and
/// patterns by four agents with close timestamps, so orderings and ties matter.
fn history(seed: u64, len: usize) -> Vec<Entry> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut agents = Agents::new(4);
    let mut entries: Vec<Entry> = Vec::new();
    let mut claims: Vec<(usize, String)> = Vec::new();
    let states = [
        "TASK_STATE_SUBMITTED",
        "TASK_STATE_WORKING",
        "TASK_STATE_COMPLETED",
        "TASK_STATE_FAILED",
    ];
    for _ in 0..len {
        let agent = rng.gen_range(0..4);
        let at = rng.gen_range(0..50u64) * 10;
        let resource = format!("r{}", rng.gen_range(0..3));
        let entry = match rng.gen_range(0..8) {
            0 | 1 => {
                let lease = rng.gen_range(1..40u64) * 10;
                let priority = rng.gen_range(0..3u8);
                agents.publish(agent, "intent", at, json!({"resource": resource, "action": "w", "leaseMs": lease, "priority": priority}))
            }
            2 if !claims.is_empty() => {
                let (owner, claim) = claims[rng.gen_range(0..claims.len())].clone();
                agents.publish(
                    owner,
                    "intent.renew",
                    at,
                    json!({"claim": claim, "leaseMs": 200}),
                )
            }
            3 if !claims.is_empty() => {
                let (owner, claim) = claims[rng.gen_range(0..claims.len())].clone();
                agents.publish(owner, "intent.release", at, json!({"claim": claim}))
            }
            4 => {
                let rule = match rng.gen_range(0..3) {
                    0 => json!({"type": "maxHolders", "limit": rng.gen_range(1..3)}),
                    1 => json!({"type": "notBefore", "at": rng.gen_range(0..500)}),
                    _ => json!({"type": "rateLimit", "claims": 1, "windowMs": 100}),
                };
                agents.publish(
                    agent,
                    "constraint",
                    at,
                    json!({"resource": "r*", "rule": rule, "ttlMs": 300}),
                )
            }
            5 => {
                let state = states[rng.gen_range(0..states.len())];
                agents.publish(agent, "task", at, json!({"taskId": format!("t{}", rng.gen_range(0..2)), "status": {"state": state}}))
            }
            6 => agents.publish(
                agent,
                "capability",
                at,
                json!({"name": format!("a{agent}"), "ttlMs": 200}),
            ),
            _ => agents.publish(
                agent,
                "pattern",
                at,
                json!({"topic": "x", "summary": "s", "confidence": 0.25}),
            ),
        };
        if entry.header().kind == "intent" {
            claims.push((agent, entry.id().to_string()));
        }
        entries.push(entry);
    }
    entries
}

/// What a walk of every entry says at `now`, by the rules of the view's documentation.
struct Walked {
    /// (resource, claim id) of every live claim.
    live_claims: BTreeSet<(String, String)>,
    rate_limited: BTreeSet<String>,
    /// Ids of the live constraints, in id order.
    constraints: Vec<String>,
}

fn walk(entries: &[Entry], now: u64) -> Walked {
    let parsed: Vec<(&Entry, Body)> = entries
        .iter()
        .filter(|entry| entry.header().timestamp_ms <= now)
        .map(|entry| {
            (
                entry,
                Body::parse(&entry.header().kind, entry.body().unwrap()).unwrap(),
            )
        })
        .collect();
    let constraints: Vec<(&Entry, &Constraint)> = parsed
        .iter()
        .filter_map(|(entry, body)| match body {
            Body::Constraint(constraint)
                if now < entry.header().timestamp_ms + constraint.ttl_ms =>
            {
                Some((*entry, constraint))
            }
            _ => None,
        })
        .collect();
    let claims: Vec<(&Entry, &Intent)> = parsed
        .iter()
        .filter_map(|(entry, body)| match body {
            Body::Intent(intent) => Some((*entry, intent)),
            _ => None,
        })
        .collect();
    let order = |(entry, intent): &(&Entry, &Intent)| {
        (
            entry.header().timestamp_ms,
            std::cmp::Reverse(intent.priority),
            entry.id(),
        )
    };
    let mut walked = Walked {
        live_claims: BTreeSet::new(),
        rate_limited: BTreeSet::new(),
        constraints: {
            let mut ids: Vec<_> = constraints.iter().map(|(entry, _)| entry.id()).collect();
            ids.sort();
            ids.into_iter().map(|id| id.to_string()).collect()
        },
    };
    for claim in &claims {
        let (entry, intent) = claim;
        let (at, author, id) = (
            entry.header().timestamp_ms,
            entry.header().author,
            entry.id(),
        );
        let mut renewals: Vec<(u64, plexus_crypto::Hash256, u64)> = Vec::new();
        let mut released = false;
        for (other, body) in &parsed {
            let by_owner = other.header().author == author;
            match body {
                Body::IntentRenew(renew) if by_owner && renew.claim == id.to_string() => {
                    renewals.push((other.header().timestamp_ms, other.id(), renew.lease_ms));
                }
                Body::IntentRelease(release) if by_owner && release.claim == id.to_string() => {
                    released = true;
                }
                _ => {}
            }
        }
        renewals.sort();
        let mut end = at + intent.lease_ms;
        for (renewed_at, _, lease_ms) in renewals {
            if renewed_at >= at && renewed_at < end {
                end = renewed_at + lease_ms;
            }
        }
        if released || now >= end {
            continue;
        }
        walked
            .live_claims
            .insert((intent.resource.clone(), id.to_string()));
        let limited = constraints.iter().any(|(_, constraint)| {
            let ConstraintRule::RateLimit {
                claims: limit,
                window_ms,
            } = constraint.rule
            else {
                return false;
            };
            let earlier = claims
                .iter()
                .filter(|other| other.0.header().author == author)
                .filter(|other| other.1.resource == intent.resource)
                .filter(|other| order(other) < order(claim))
                .filter(|other| other.0.header().timestamp_ms > at.saturating_sub(window_ms))
                .count();
            view::resource_matches(&constraint.resource, &intent.resource)
                && earlier >= limit as usize
        });
        if limited {
            walked.rate_limited.insert(id.to_string());
        }
    }
    walked
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Same entries, same state, whatever the arrival order (and however often an entry is
    /// delivered).
    #[test]
    fn arrival_order_does_not_change_the_state(seed in any::<u64>(), shuffle in any::<u64>(), len in 1usize..60) {
        use rand::seq::SliceRandom;
        use rand::SeedableRng;
        let entries = history(seed, len);
        let mut shuffled = entries.clone();
        let mut rng = rand::rngs::StdRng::seed_from_u64(shuffle);
        shuffled.shuffle(&mut rng);
        let duplicates: Vec<Entry> = shuffled.iter().take(len / 3).cloned().collect();
        shuffled.extend(duplicates);
        let in_order = view_of(&entries);
        let out_of_order = view_of(&shuffled);
        for now in [0, 95, 250, 333, 490, 1_000] {
            prop_assert_eq!(in_order.snapshot(now), out_of_order.snapshot(now));
            prop_assert_eq!(in_order.digest(now), out_of_order.digest(now));
        }
    }

    /// The timeline says, at every moment of its window, exactly what the lease query says at
    /// that moment: the same claims, each with the same standing.
    #[test]
    fn the_timeline_agrees_with_the_lease_at_every_moment(seed in any::<u64>(), len in 1usize..60) {
        let view = view_of(&history(seed, len));
        let timeline = view.timeline(NS, 50, 650);
        prop_assert!(!timeline.truncated);
        for now in 50..650u64 {
            for resource in ["r0", "r1", "r2"] {
                let lease = view.lease(NS, resource, now);
                let mut expected: Vec<(String, &str)> = lease
                    .holders
                    .iter()
                    .map(|c| (c.claim_id.clone(), "holding"))
                    .chain(lease.waiting.iter().map(|c| (c.claim_id.clone(), "waiting")))
                    .chain(lease.excluded.iter().map(|c| {
                        let standing = match c.standing {
                            ClaimStanding::Blocked { .. } => "blocked",
                            _ => "rate_limited",
                        };
                        (c.claim_id.clone(), standing)
                    }))
                    .collect();
                expected.sort();
                let mut drawn: Vec<(String, &str)> = timeline
                    .resources
                    .iter()
                    .filter(|row| row.resource == resource)
                    .flat_map(|row| &row.claims)
                    .flat_map(|claim| {
                        claim
                            .segments
                            .iter()
                            .filter(|s| s.from_ms <= now && now < s.to_ms)
                            .map(|s| (claim.claim_id.clone(), s.standing))
                    })
                    .collect();
                drawn.sort();
                prop_assert_eq!(drawn, expected, "resource {} at {}", resource, now);
            }
        }
    }

    /// The indexes find exactly what a walk of the whole history finds: at every time, the
    /// claims in the lease table are the live claims, the rate-limited ones are those the rule
    /// names, and the live constraints are those whose window holds that time.
    #[test]
    fn the_indexes_answer_as_a_walk_of_the_whole_history(seed in any::<u64>(), len in 1usize..80) {
        let entries = history(seed, len);
        let view = view_of(&entries);
        for now in (0..800).step_by(35) {
            let walked = walk(&entries, now);
            let mut listed = BTreeSet::new();
            let mut rate_limited = BTreeSet::new();
            for lease in view.leases(NS, now) {
                for claim in lease.holders.iter().chain(&lease.waiting).chain(&lease.excluded) {
                    listed.insert((claim.resource.clone(), claim.claim_id.clone()));
                    if claim.standing == ClaimStanding::RateLimited {
                        rate_limited.insert(claim.claim_id.clone());
                    }
                }
            }
            prop_assert_eq!(&listed, &walked.live_claims, "live claims at {}", now);
            prop_assert_eq!(&rate_limited, &walked.rate_limited, "rate-limited at {}", now);
            let constraints: Vec<String> =
                view.constraints(NS, now).into_iter().map(|c| c.entry_id).collect();
            prop_assert_eq!(constraints, walked.constraints, "constraints at {}", now);
        }
    }

    /// Whatever the history, a resource never has more holders than its limit, and no claim is
    /// both holding and waiting.
    #[test]
    fn holders_never_exceed_the_limit(seed in any::<u64>(), len in 1usize..60, now in 0u64..600) {
        let view = view_of(&history(seed, len));
        for lease in view.leases(NS, now) {
            prop_assert!(lease.holders.len() <= lease.max_holders as usize);
            if lease.holders.len() < lease.max_holders as usize {
                prop_assert!(lease.waiting.is_empty());
            }
        }
    }

    /// A view that forgot the history before a horizon, part-way through the entries, answers
    /// at every time from the horizon on exactly as a view that forgot nothing, once rebuilt
    /// when it says it needs it; entries made after the horizon make it stale only when a new
    /// rate-limit rule looks back further than those it kept keys for.
    #[test]
    fn forgetting_keeps_every_answer_from_the_horizon_on(
        seed in any::<u64>(),
        shuffle in any::<u64>(),
        len in 1usize..80,
        split in 0usize..80,
        horizon in 0u64..600,
    ) {
        use rand::seq::SliceRandom;
        use rand::SeedableRng;
        let mut entries = history(seed, len);
        entries.shuffle(&mut rand::rngs::StdRng::seed_from_u64(shuffle));
        let split = split.min(entries.len());
        let full = view_of(&entries);
        let mut forgetting = view_of(&entries[..split]);
        forgetting.forget_before(horizon);
        let mut made_stale_by_recent = false;
        for entry in &entries[split..] {
            let stale = forgetting.needs_rebuild();
            file(&mut forgetting, entry);
            made_stale_by_recent |= !stale
                && forgetting.needs_rebuild()
                && entry.header().timestamp_ms >= horizon
                && entry.header().kind != "constraint";
        }
        prop_assert!(!made_stale_by_recent, "an entry made after the horizon needed the forgotten");
        if forgetting.needs_rebuild() {
            forgetting = view_of(&entries);
            forgetting.forget_before(horizon);
        }
        prop_assert_eq!(forgetting.kept_from_ms(), horizon);
        for now in [horizon, horizon + 1, horizon + 37, horizon + 150, horizon + 400, 2_000] {
            let expected = without_tasks_ended_before(full.snapshot(now), horizon);
            prop_assert_eq!(forgetting.snapshot(now), expected, "at {}", now);
            for task in ["t0", "t1"] {
                prop_assert_eq!(
                    forgetting.check_task_update(NS, task, TaskState::Working, now),
                    full.check_task_update(NS, task, TaskState::Working, now),
                    "task {} at {}", task, now
                );
            }
        }
        let window = forgetting.timeline(NS, horizon, horizon + 300);
        prop_assert_eq!(window, full.timeline(NS, horizon, horizon + 300));
        let held = forgetting.held();
        let all = full.held();
        prop_assert!(held.claims <= all.claims && held.constraints <= all.constraints);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Task updates alone, in any order, some arriving after a forget: the view that dropped
    /// the tasks ended before the horizon lists, and refuses or accepts updates, exactly as a
    /// view that kept every update (less the tasks ended before the horizon), once rebuilt
    /// when it says it needs it; an update made after the horizon never makes it stale.
    #[test]
    fn dropping_ended_tasks_keeps_every_verdict(
        seed in any::<u64>(),
        len in 1usize..40,
        split in 0usize..40,
        horizon in 0u64..300,
    ) {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut agents = Agents::new(3);
        let states = [
            TaskState::Submitted,
            TaskState::Working,
            TaskState::InputRequired,
            TaskState::Completed,
            TaskState::Failed,
            TaskState::Rejected,
        ];
        let entries: Vec<Entry> = (0..len)
            .map(|_| {
                let state = states[rng.gen_range(0..states.len())].as_str();
                let task = format!("t{}", rng.gen_range(0..3));
                let body = json!({"taskId": task, "status": {"state": state}});
                agents.publish(rng.gen_range(0..3), "task", rng.gen_range(0..40u64) * 10, body)
            })
            .collect();
        let split = split.min(entries.len());
        let full = view_of(&entries);
        let mut forgetting = view_of(&entries[..split]);
        forgetting.forget_before(horizon);
        for entry in &entries[split..] {
            let stale = forgetting.needs_rebuild();
            file(&mut forgetting, entry);
            prop_assert!(
                stale || !forgetting.needs_rebuild() || entry.header().timestamp_ms < horizon,
                "an update made after the horizon needed what was dropped"
            );
        }
        if forgetting.needs_rebuild() {
            forgetting = view_of(&entries);
            forgetting.forget_before(horizon);
        }
        for now in [horizon, horizon + 25, 500] {
            prop_assert_eq!(
                forgetting.tasks(NS, now),
                without_tasks_ended_before(full.snapshot(now), horizon)
                    .namespaces
                    .remove(NS)
                    .map(|space| space.tasks)
                    .unwrap_or_default(),
                "at {}", now
            );
            for task in ["t0", "t1", "t2"] {
                for state in states {
                    prop_assert_eq!(
                        forgetting.check_task_update(NS, task, state, now),
                        full.check_task_update(NS, task, state, now),
                        "{} to {:?} at {}", task, state, now
                    );
                }
            }
        }
    }
}
