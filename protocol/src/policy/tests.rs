use std::collections::{BTreeSet, HashMap};

use plexus_crypto::{Hash256, Keypair};
use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::entry::Draft;

const NS: &str = "team";
const ADMIN: usize = 0;

/// Signs entries for a few agents, keeping each agent's chain and [`FeedState`].
struct World {
    keys: Vec<Keypair>,
    heads: HashMap<usize, (u64, Hash256)>,
    feeds: HashMap<usize, FeedState>,
    book: PolicyBook,
}

impl World {
    /// Agent 0 is the admin; the others start with no rights.
    fn new(count: usize) -> World {
        let keys: Vec<Keypair> = (0..count)
            .map(|i| Keypair::from_seed(&[u8::try_from(i).unwrap() + 10; 32]))
            .collect();
        let admins = BTreeSet::from([keys[ADMIN].agent_id()]);
        World {
            keys,
            heads: HashMap::new(),
            feeds: HashMap::new(),
            book: PolicyBook::new(NS, admins),
        }
    }

    fn id(&self, agent: usize) -> String {
        self.keys[agent].agent_id().to_string()
    }

    fn sign(&self, agent: usize, kind: &str, at: u64, body: serde_json::Value) -> Entry {
        let body = Body::from_json(kind, body).unwrap().encode().unwrap();
        let head = self.heads.get(&agent).copied();
        Entry::sign(
            &self.keys[agent],
            Draft {
                namespace: NS.into(),
                seq: head.map_or(1, |(seq, _)| seq + 1),
                prev: head.map(|(_, id)| id),
                timestamp_ms: at,
                kind: kind.into(),
                body,
            },
        )
        .unwrap()
    }

    /// Decides an entry as a node would; when allowed, folds it in as accepted.
    fn offer(&mut self, agent: usize, kind: &str, at: u64, body: serde_json::Value) -> Verdict {
        let entry = self.sign(agent, kind, at, body);
        let parsed = Body::parse(kind, entry.body().unwrap()).unwrap();
        let feed = self.feeds.get(&agent).cloned().unwrap_or_default();
        let verdict = self.book.decide(&entry, Some(&parsed), Some(&feed));
        if verdict.is_ok() {
            self.heads.insert(agent, (entry.header().seq, entry.id()));
            self.feeds
                .entry(agent)
                .or_default()
                .observe(&entry, Some(&parsed));
            if let Body::Policy(policy) = &parsed {
                self.book.learn(&entry, policy).unwrap();
            }
        }
        Verdict { entry, verdict }
    }

    fn policy(&mut self, at: u64, body: serde_json::Value) -> Entry {
        let offered = self.offer(ADMIN, Kind::Policy.as_str(), at, body);
        offered.verdict.unwrap();
        offered.entry
    }

    fn note(&mut self, agent: usize, at: u64) -> Verdict {
        self.offer(agent, "x-note", at, json!({"n": at}))
    }
}

struct Verdict {
    entry: Entry,
    verdict: Result<Allowed, Violation>,
}

impl Verdict {
    fn rule(&self) -> Option<Rule> {
        self.verdict.as_ref().err().map(|violation| violation.rule)
    }
}

fn base_policy(world: &World, version: u64, members: &[usize]) -> serde_json::Value {
    json!({
        "version": version,
        "roles": {"worker": ["intent", "intent.renew", "intent.release", "task", "x-*"],
                  "reader": ["capability"]},
        "members": members.iter().map(|m| json!({"agent": world.id(*m), "roles": ["worker"]}))
            .collect::<Vec<_>>(),
    })
}

#[test]
fn only_members_post_and_only_the_kinds_their_roles_allow() {
    let mut world = World::new(3);
    assert_eq!(world.note(1, 1_000).rule(), Some(Rule::NoPolicy));
    // Admins may post before any policy exists.
    assert!(world.note(ADMIN, 1_000).verdict.is_ok());
    let policy = base_policy(&world, 1, &[1]);
    world.policy(2_000, policy);
    let allowed = world.note(1, 2_000);
    assert_eq!(allowed.verdict.unwrap().policy_version, Some(1));
    let outsider = world.note(2, 2_000);
    assert_eq!(outsider.rule(), Some(Rule::NotMember));
    let violation = outsider.verdict.unwrap_err();
    assert_eq!(violation.policy_version, Some(1));
    assert!(
        violation.message.contains(&world.id(2)),
        "{}",
        violation.message
    );
    let card = json!({"name": "a", "ttlMs": 1000});
    assert_eq!(
        world.offer(1, "capability", 2_100, card).rule(),
        Some(Rule::KindNotAllowed)
    );
    // Only admins publish policy, and `*` never covers it.
    let forged = base_policy(&world, 9, &[1, 2]);
    assert_eq!(
        world.offer(1, Kind::Policy.as_str(), 2_200, forged).rule(),
        Some(Rule::NotAdmin)
    );
    assert!(!kind_matches("*", Kind::Policy.as_str()));
    assert!(kind_matches("*", "task"));
}

#[test]
fn the_policy_in_force_is_chosen_by_the_entry_timestamp() {
    let mut world = World::new(3);
    let first = base_policy(&world, 1, &[1]);
    world.policy(1_000, first);
    let mut second = base_policy(&world, 2, &[1, 2]);
    second["effectiveFrom"] = json!(5_000);
    world.policy(1_100, second);
    assert_eq!(world.note(2, 4_999).rule(), Some(Rule::NotMember));
    let admitted = world.note(2, 5_000);
    assert_eq!(admitted.verdict.unwrap().policy_version, Some(2));
    assert_eq!(world.book.in_force(4_999).unwrap().version, 1);
    assert_eq!(world.book.latest().unwrap().version, 2);
    // A policy cannot reach into the past.
    let mut retro = base_policy(&world, 3, &[1]);
    retro["effectiveFrom"] = json!(10);
    assert_eq!(
        world
            .offer(ADMIN, Kind::Policy.as_str(), 6_000, retro)
            .rule(),
        Some(Rule::Retroactive)
    );
}

#[test]
fn two_policies_of_one_version_resolve_to_the_smaller_entry_id_everywhere() {
    let world = World::new(3);
    let a = world.sign(
        ADMIN,
        Kind::Policy.as_str(),
        1_000,
        base_policy(&world, 1, &[1]),
    );
    let b = world.sign(
        ADMIN,
        Kind::Policy.as_str(),
        1_001,
        base_policy(&world, 1, &[2]),
    );
    let body =
        |entry: &Entry| match Body::parse(Kind::Policy.as_str(), entry.body().unwrap()).unwrap() {
            Body::Policy(policy) => policy,
            _ => unreachable!(),
        };
    let mut one = PolicyBook::new(NS, world.book.admins().clone());
    one.learn(&a, &body(&a)).unwrap();
    one.learn(&b, &body(&b)).unwrap();
    let mut two = PolicyBook::new(NS, world.book.admins().clone());
    two.learn(&b, &body(&b)).unwrap();
    two.learn(&a, &body(&a)).unwrap();
    two.learn(&a, &body(&a)).unwrap();
    let expected = a.id().min(b.id());
    assert_eq!(one.in_force(2_000).unwrap().entry_id, expected);
    assert_eq!(two.in_force(2_000).unwrap().entry_id, expected);
    assert_eq!(two.records().len(), 2);
}

#[test]
fn revocation_cuts_a_feed_at_a_seq_and_keeps_what_came_before() {
    let mut world = World::new(2);
    let policy = base_policy(&world, 1, &[1]);
    world.policy(1_000, policy);
    // Agent 1's first three entries, each with the feed state before it, as an auditor
    // replaying the feed sees them.
    let mut published = Vec::new();
    for at in [1_000, 1_100, 1_200] {
        let before = world.feeds.get(&1).cloned().unwrap_or_default();
        let offered = world.note(1, at);
        offered.verdict.as_ref().unwrap();
        published.push((offered.entry, before));
    }
    // The admin removes agent 1 after its seq 2, although seq 3 was already published.
    let mut removal = base_policy(&world, 2, &[]);
    removal["revoked"] = json!([{"agent": world.id(1), "afterSeq": 2}]);
    world.policy(1_300, removal);
    let verdicts: Vec<Option<Rule>> = published
        .iter()
        .map(|(entry, before)| {
            let body = Body::parse("x-note", entry.body().unwrap()).unwrap();
            world
                .book
                .decide(entry, Some(&body), Some(before))
                .err()
                .map(|violation| violation.rule)
        })
        .collect();
    assert_eq!(verdicts, [None, None, Some(Rule::Revoked)]);
    let later = world.note(1, 5_000).verdict.unwrap_err();
    assert_eq!(later.rule, Rule::Revoked);
    assert!(later.message.contains("after its entry seq 2"), "{later}");
    // Backdating does not help: the cut is by position, not time.
    assert_eq!(world.note(1, 1_000).rule(), Some(Rule::Revoked));
}

#[test]
fn a_feed_timestamp_never_goes_backwards() {
    let mut world = World::new(2);
    let policy = base_policy(&world, 1, &[1]);
    world.policy(1_000, policy);
    world.note(1, 2_000).verdict.unwrap();
    let back = world.note(1, 1_999);
    assert_eq!(back.rule(), Some(Rule::TimestampRegressed));
    assert!(world.note(1, 2_000).verdict.is_ok());
}

#[test]
fn rate_limit_allows_n_per_window_and_says_when_to_retry() {
    let mut world = World::new(2);
    let mut policy = base_policy(&world, 1, &[1]);
    policy["limits"] = json!({"rate": {"entries": 3, "windowMs": 1_000}});
    world.policy(1_000, policy);
    for at in [10_000, 10_100, 10_200] {
        world.note(1, at).verdict.unwrap();
    }
    let refused = world.note(1, 10_300).verdict.unwrap_err();
    assert_eq!(refused.rule, Rule::RateLimited);
    assert_eq!(refused.retry_after_ms, Some(700));
    assert!(refused.message.contains("retry in 700 ms"), "{refused}");
    assert!(world.note(1, 10_999).rule() == Some(Rule::RateLimited));
    assert!(world.note(1, 11_000).verdict.is_ok());
}

#[test]
fn lease_ttl_and_concurrent_claim_caps() {
    let mut world = World::new(2);
    let mut policy = base_policy(&world, 1, &[1]);
    policy["roles"]["worker"] = json!(["*"]);
    policy["limits"] = json!({"maxLeaseMs": 10_000, "maxClaims": 2, "maxTtlMs": 60_000});
    world.policy(1_000, policy);
    let claim = |resource: &str, lease: u64| json!({"resource": resource, "action": "edit", "leaseMs": lease});
    assert_eq!(
        world.offer(1, "intent", 2_000, claim("a", 10_001)).rule(),
        Some(Rule::LeaseTooLong)
    );
    let first = world.offer(1, "intent", 2_000, claim("a", 5_000));
    first.verdict.unwrap();
    world
        .offer(1, "intent", 2_100, claim("b", 5_000))
        .verdict
        .unwrap();
    let third = world.offer(1, "intent", 2_200, claim("c", 5_000));
    assert_eq!(third.rule(), Some(Rule::TooManyClaims));
    // A release frees a slot.
    let release = json!({"claim": first.entry.id().to_string()});
    world
        .offer(1, "intent.release", 2_300, release)
        .verdict
        .unwrap();
    world
        .offer(1, "intent", 2_400, claim("c", 5_000))
        .verdict
        .unwrap();
    assert_eq!(
        world.offer(1, "intent", 2_500, claim("d", 5_000)).rule(),
        Some(Rule::TooManyClaims)
    );
    // Once the leases run out, claiming works again.
    world
        .offer(1, "intent", 7_500, claim("d", 5_000))
        .verdict
        .unwrap();
    let renew = json!({"claim": first.entry.id().to_string(), "leaseMs": 20_000});
    assert_eq!(
        world.offer(1, "intent.renew", 7_600, renew).rule(),
        Some(Rule::LeaseTooLong)
    );
    let card = json!({"name": "a", "ttlMs": 60_001});
    assert_eq!(
        world.offer(1, "capability", 7_700, card).rule(),
        Some(Rule::TtlTooLong)
    );
}

#[test]
fn body_size_cap() {
    let mut world = World::new(2);
    let mut policy = base_policy(&world, 1, &[1]);
    policy["limits"] = json!({"maxBodyBytes": 40});
    world.policy(1_000, policy);
    assert!(world
        .offer(1, "x-note", 2_000, json!({"t": "short"}))
        .verdict
        .is_ok());
    let big = world.offer(1, "x-note", 2_000, json!({"t": "x".repeat(60)}));
    assert_eq!(big.rule(), Some(Rule::BodyTooLarge));
}

#[test]
fn malformed_policies_are_refused_with_the_field() {
    let world = World::new(2);
    let cases = [
        (json!({"version": 0}), "version"),
        (
            json!({"version": 1, "members": [{"agent": "beef", "roles": []}]}),
            "members[0].agent",
        ),
        (
            json!({"version": 1, "members": [{"agent": world.id(1), "roles": ["ghost"]}]}),
            "members[0].roles",
        ),
        (
            json!({"version": 1, "roles": {"r": []},
                   "members": [{"agent": world.id(1), "roles": []},
                               {"agent": world.id(1), "roles": []}]}),
            "members[1].agent",
        ),
        (json!({"version": 1, "roles": {"r": ["intnet"]}}), "roles.r"),
        (
            json!({"version": 1, "limits": {"rate": {"entries": 0, "windowMs": 5}}}),
            "limits.rate.entries",
        ),
        (
            json!({"version": 1, "limits": {"maxClaims": 5000}}),
            "limits.maxClaims",
        ),
        (
            json!({"version": 1, "limits": {"clockSkewMs": 0}}),
            "limits.clockSkewMs",
        ),
    ];
    for (body, field) in cases {
        let error = Body::from_json(Kind::Policy.as_str(), body.clone()).unwrap_err();
        assert_eq!(error.field(), Some(field), "{body}: {error}");
    }
    let error =
        Body::from_json(Kind::Policy.as_str(), json!({"version": 1, "admins": []})).unwrap_err();
    assert_eq!(error.field(), Some("admins"), "{error}");
}

#[test]
fn entries_without_their_body_are_refused_even_from_admins() {
    let mut world = World::new(3);
    let policy = base_policy(&world, 1, &[1]);
    let policy_entry = world.policy(1_000, policy);
    let member_note = world.sign(1, "x-note", 2_000, json!({}));
    for pruned in [member_note.without_body(), policy_entry.without_body()] {
        let violation = world.book.decide(&pruned, None, None).unwrap_err();
        assert_eq!(violation.rule, Rule::MissingBody);
        assert!(violation.message.contains("whole"), "{violation}");
    }
}

proptest! {
    /// Whatever the timing, the accepted entries never exceed the rate in any window, and every
    /// refused entry would have exceeded it.
    #[test]
    fn rate_limit_is_a_sliding_window(
        gaps in proptest::collection::vec(0u64..400, 1..60),
        entries in 1u32..5,
        window_ms in 1u64..1_500,
    ) {
        let mut world = World::new(2);
        let mut policy = base_policy(&world, 1, &[1]);
        policy["limits"] = json!({"rate": {"entries": entries, "windowMs": window_ms}});
        world.policy(0, policy);
        let mut accepted: Vec<u64> = Vec::new();
        let mut at = 10_000;
        for gap in gaps {
            at += gap;
            let in_window = accepted.iter().filter(|t| **t + window_ms > at).count();
            let verdict = world.note(1, at);
            match verdict.rule() {
                None => {
                    prop_assert!(in_window < entries as usize);
                    accepted.push(at);
                }
                Some(Rule::RateLimited) => prop_assert!(in_window >= entries as usize),
                Some(other) => prop_assert!(false, "unexpected rule {other}"),
            }
        }
    }
}
