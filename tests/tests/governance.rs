//! Governance across real nodes on 127.0.0.1: each rule's accept path and reject path.
//!
//! A governed node enforces the policy on its own agent (the API answers 403 or 429 and nothing
//! is signed) and on everything it receives. To see the network refuse an entry, the entry has
//! to come from a node that does not enforce the policy: the scenarios use an "ungoverned" node
//! (started without the trust root, as a misconfigured or tampered node would be) for the
//! offending author.

use std::collections::BTreeSet;
use std::time::Duration;

use plexus_crypto::{AgentId, Keypair};
use plexus_node::audit::{self, FindingKind, Verdict, VerifyOptions};
use plexus_node::client::ApiClient;
use plexus_node::node::limits::IngressLimits;
use plexus_node::store::{Rejection, TrustRoots};
use plexus_protocol::FeedKey;
use plexus_tests::cluster::{
    address, connect, keep_apart, publish_note, shutdown, spawn_node_with, test_net_config,
    wait_for, NodeSpec, TestNode, NAMESPACE,
};
use serde_json::{json, Value};

const CONVERGE: Duration = Duration::from_secs(60);

fn trust_root(admin: &Keypair) -> TrustRoots {
    TrustRoots::from([(NAMESPACE.to_owned(), BTreeSet::from([admin.agent_id()]))])
}

/// A node that enforces the namespace's policy (`governed`) or not.
async fn node(admin: &Keypair, keypair: Option<Keypair>, governed: bool) -> TestNode {
    spawn_node_with(
        test_net_config(),
        NodeSpec {
            keypair,
            trust_roots: if governed {
                trust_root(admin)
            } else {
                TrustRoots::new()
            },
            ingress: None,
            clock_skew_ms: None,
        },
    )
    .await
}

fn policy(version: u64, members: &[AgentId], extra: Value) -> Value {
    let mut body = json!({
        "version": version,
        "roles": {"worker": ["x-*", "intent", "intent.renew", "intent.release", "task"]},
        "members": members.iter().map(|agent| json!({"agent": agent.to_string(), "roles": ["worker"]}))
            .collect::<Vec<_>>(),
    });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    body
}

/// Publishes a policy from the admin's node and waits until every node in `nodes` has it in
/// force.
async fn publish_policy(admin: &ApiClient, nodes: &[&TestNode], body: Value) {
    let version = body["version"].as_u64().unwrap();
    admin.post("/v1/policy", &body).await.unwrap();
    wait_for(
        "the policy in force everywhere",
        CONVERGE,
        nodes,
        || async {
            nodes
                .iter()
                .map(|node| {
                    node.node
                        .log()
                        .governor()
                        .book(NAMESPACE)
                        .and_then(|book| book.in_force(u64::MAX))
                        .map(|record| record.version)
                })
                .collect::<Vec<_>>()
        },
        |versions| versions.iter().all(|v| *v == Some(version)),
    )
    .await;
}

fn head(node: &TestNode, author: &Keypair) -> u64 {
    let feed = FeedKey {
        namespace: NAMESPACE.to_owned(),
        author: author.agent_id(),
    };
    node.node
        .log()
        .head(&feed)
        .unwrap()
        .map_or(0, |head| head.seq)
}

/// Waits until every node in `nodes` holds `author`'s feed up to exactly `seq`.
async fn wait_heads(what: &str, nodes: &[&TestNode], author: &Keypair, seq: u64) {
    wait_for(
        what,
        CONVERGE,
        nodes,
        || async {
            nodes
                .iter()
                .map(|node| head(node, author))
                .collect::<Vec<_>>()
        },
        |heads| heads.iter().all(|head| *head == seq),
    )
    .await;
}

fn policy_rejections(node: &TestNode, rule: &str) -> Vec<Rejection> {
    node.node
        .log()
        .rejections()
        .unwrap()
        .into_iter()
        .filter(|record| record.rule.as_deref() == Some(rule))
        .collect()
}

async fn wait_rejected(nodes: &[&TestNode], rule: &str, count: usize) {
    wait_for(
        &format!("{count} `{rule}` rejections on every node"),
        CONVERGE,
        nodes,
        || async {
            nodes
                .iter()
                .map(|node| policy_rejections(node, rule).len())
                .collect::<Vec<_>>()
        },
        |counts| counts.iter().all(|count_here| *count_here >= count),
    )
    .await;
}

async fn post_raw(client: &ApiClient, route: &str, body: &Value) -> (u16, Value) {
    let bytes = serde_json::to_vec(body).unwrap();
    let response = client.request("POST", route, Some(&bytes)).await.unwrap();
    (
        response.status,
        serde_json::from_slice(&response.body).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_members_entries_are_refused_everywhere_while_members_flow() {
    let admin_key = Keypair::generate();
    let member_key = Keypair::generate();
    let outsider_key = Keypair::generate();
    let mut admin = node(&admin_key, Some(admin_key.clone()), true).await;
    let member = node(&admin_key, Some(member_key.clone()), true).await;
    let mut outsider = node(&admin_key, Some(outsider_key.clone()), true).await;
    let rogue_key = Keypair::generate();
    let rogue = node(&admin_key, Some(rogue_key.clone()), false).await;
    // A line: rogue - member - admin - outsider.
    for (a, b) in [(&rogue, &admin), (&rogue, &outsider), (&member, &outsider)] {
        keep_apart(a, b).await;
    }
    connect(&rogue, &member).await;
    connect(&member, &admin).await;
    connect(&outsider, &admin).await;
    let admin_api = admin.api().await;
    let outsider_api = outsider.api().await;
    let governed = [&admin, &member, &outsider];
    publish_policy(
        &admin_api,
        &governed,
        policy(1, &[member_key.agent_id()], json!({})),
    )
    .await;

    // The outsider's own node refuses to sign for it: 403, and nothing is stored.
    let (status, answer) = post_raw(
        &outsider_api,
        "/v1/entries",
        &json!({"kind": "x-note", "body": {"hello": 1}}),
    )
    .await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(answer["error"]["code"], "policy_violation");
    assert_eq!(answer["error"]["rule"], "not-member");
    assert_eq!(answer["error"]["policyVersion"], 1);
    assert_eq!(head(&outsider, &outsider_key), 0);

    // The rogue node signs anyway; every governed node refuses, journals the reason and the
    // policy version, and does not store or forward it.
    for n in 0..3 {
        publish_note(&rogue, n).await;
    }
    let member_note = publish_note(&member, 100).await;
    wait_heads(
        "the member's entry everywhere",
        &governed,
        &member_key,
        member_note.header().seq,
    )
    .await;
    // The member's node is the rogue's only peer, so only it sees the rogue's gossip; it
    // refuses all three (the first on the rule, the rest before they may wait in pending).
    wait_rejected(&[&member], "not-member", 3).await;
    let record = &policy_rejections(&member, "not-member")[0];
    assert_eq!(record.reason, "policy");
    assert_eq!(record.policy_version, Some(1));
    assert!(
        record.detail.contains(&rogue_key.agent_id().to_string()),
        "{}",
        record.detail
    );
    for node in governed {
        assert_eq!(
            head(node, &rogue_key),
            0,
            "a governed node stored a non-member's entry"
        );
        assert_eq!(node.node.log().stats().unwrap().pending, 0);
    }
    // The refusal shows in metrics too.
    let metrics = member
        .node
        .log()
        .rejection_counts()
        .get("policy:not-member")
        .copied();
    assert!(metrics >= Some(3), "{metrics:?}");

    drop(outsider_api);
    shutdown(vec![admin, member, outsider, rogue]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_is_refused_after_the_change_and_its_earlier_entries_stay() {
    let admin_key = Keypair::generate();
    let member_key = Keypair::generate();
    let mut admin = node(&admin_key, Some(admin_key.clone()), true).await;
    let observer = node(&admin_key, None, true).await;
    // The member runs an ungoverned node, so it keeps publishing after its removal.
    let member = node(&admin_key, Some(member_key.clone()), false).await;
    connect(&member, &admin).await;
    connect(&observer, &admin).await;
    // Both governed nodes hear the member directly, so both must refuse on their own.
    connect(&member, &observer).await;
    let admin_api = admin.api().await;
    let governed = [&admin, &observer];
    publish_policy(
        &admin_api,
        &governed,
        policy(1, &[member_key.agent_id()], json!({})),
    )
    .await;
    for n in 0..3 {
        publish_note(&member, n).await;
    }
    wait_heads(
        "the member's three entries on the governed nodes",
        &governed,
        &member_key,
        3,
    )
    .await;

    // The admin removes the member after its seq 3 (what `plexus policy propose
    // --remove-member` writes).
    let removal = policy(
        2,
        &[],
        json!({"revoked": [{"agent": member_key.agent_id().to_string(), "afterSeq": 3}]}),
    );
    publish_policy(&admin_api, &governed, removal).await;
    let members = admin_api.get("/v1/members").await.unwrap();
    assert_eq!(members["policyVersion"], 2);
    assert_eq!(members["members"], json!([]));
    assert_eq!(members["revoked"][0]["afterSeq"], 3);

    publish_note(&member, 3).await;
    publish_note(&member, 4).await;
    wait_rejected(&governed, "revoked", 2).await;
    for node in governed {
        assert_eq!(
            head(node, &member_key),
            3,
            "earlier entries stay, later ones are refused"
        );
        assert_eq!(node.node.log().stats().unwrap().pending, 0);
        let record = &policy_rejections(node, "revoked")[0];
        assert_eq!(record.policy_version, Some(2));
        assert!(
            record.detail.contains("after its entry seq 3"),
            "{}",
            record.detail
        );
    }
    shutdown(vec![admin, observer, member]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_hold_at_the_authors_node_and_across_the_network() {
    let admin_key = Keypair::generate();
    let member_key = Keypair::generate();
    let flooder_key = Keypair::generate();
    let mut admin = node(&admin_key, Some(admin_key.clone()), true).await;
    let mut member = node(&admin_key, Some(member_key.clone()), true).await;
    let flooder = node(&admin_key, Some(flooder_key.clone()), false).await;
    connect(&member, &admin).await;
    connect(&flooder, &admin).await;
    let admin_api = admin.api().await;
    let api = member.api().await;
    let governed = [&admin, &member];
    let limits = json!({"limits": {"rate": {"entries": 3, "windowMs": 600_000}}});
    publish_policy(
        &admin_api,
        &governed,
        policy(1, &[member_key.agent_id(), flooder_key.agent_id()], limits),
    )
    .await;

    // The member's node allows three, then answers 429 with when to retry, signing nothing.
    for n in 0..3 {
        let (status, answer) = post_raw(
            &api,
            "/v1/entries",
            &json!({"kind": "x-note", "body": {"n": n}}),
        )
        .await;
        assert_eq!(status, 201, "{answer}");
    }
    let (status, answer) = post_raw(
        &api,
        "/v1/entries",
        &json!({"kind": "x-note", "body": {"n": 3}}),
    )
    .await;
    assert_eq!(status, 429, "{answer}");
    assert_eq!(answer["error"]["rule"], "rate-limited");
    assert!(
        answer["error"]["retryAfterMs"].as_u64().unwrap() > 500_000,
        "{answer}"
    );
    assert_eq!(head(&member, &member_key), 3);

    // A flooding author's node ignores the limit; the network keeps the first three.
    for n in 0..6 {
        publish_note(&flooder, n).await;
    }
    wait_rejected(&[&admin], "rate-limited", 1).await;
    wait_heads(
        "the flooder's allowed entries on the member's node",
        &governed,
        &flooder_key,
        3,
    )
    .await;
    // The member's three are everywhere too: honest traffic was not held up.
    assert_eq!(head(&admin, &member_key), 3);
    let record = &policy_rejections(&admin, "rate-limited")[0];
    assert_eq!(record.policy_version, Some(1));
    drop(api);
    shutdown(vec![admin, member, flooder]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_flags_entries_a_tampered_node_accepted_against_the_policy() {
    let admin_key = Keypair::generate();
    let member_key = Keypair::generate();
    let outsider_key = Keypair::generate();
    let mut admin = node(&admin_key, Some(admin_key.clone()), true).await;
    // The tampered node stores whatever arrives; the outsider publishes through it.
    let tampered = node(&admin_key, Some(outsider_key.clone()), false).await;
    let member = node(&admin_key, Some(member_key.clone()), true).await;
    connect(&tampered, &admin).await;
    connect(&member, &admin).await;
    let admin_api = admin.api().await;
    publish_policy(
        &admin_api,
        &[&admin, &member],
        policy(1, &[member_key.agent_id()], json!({})),
    )
    .await;
    wait_heads(
        "the policy on the tampered node",
        &[&tampered],
        &admin_key,
        1,
    )
    .await;
    publish_note(&member, 1).await;
    let bad = publish_note(&tampered, 2).await;
    // A policy signed by the outsider, not the trust root.
    let forged = policy(9, &[outsider_key.agent_id()], json!({})).to_string();
    let forged = plexus_protocol::value::json_text_to_canonical(&forged).unwrap();
    tampered
        .node
        .publish(NAMESPACE, "policy", forged)
        .await
        .unwrap();
    wait_heads(
        "the member's entry on the tampered node",
        &[&tampered],
        &member_key,
        1,
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let tampered_export = dir.path().join("tampered.plexus");
    let honest_export = dir.path().join("honest.plexus");
    audit::export_to_file(
        tampered.node.log(),
        &tampered.keypair,
        &tampered_export,
        now(),
    )
    .unwrap();
    audit::export_to_file(admin.node.log(), &admin.keypair, &honest_export, now()).unwrap();
    let with_policy = VerifyOptions {
        trust_roots: trust_root(&admin_key),
        ..VerifyOptions::default()
    };

    let report = audit::verify_file(&tampered_export, &with_policy, &()).unwrap();
    assert_eq!(report.verdict, Verdict::Failed);
    let violations: Vec<_> = report
        .findings
        .iter()
        .filter(|finding| finding.kind == FindingKind::PolicyViolation)
        .collect();
    assert_eq!(violations.len(), 2, "{:#?}", report.findings);
    assert!(violations
        .iter()
        .all(|f| f.author == Some(outsider_key.agent_id())));
    assert_eq!(violations[0].seq, Some(bad.header().seq));
    assert!(
        violations[0].detail.contains("not-member"),
        "{}",
        violations[0].detail
    );
    assert!(
        violations[0].detail.contains("policy v1"),
        "{}",
        violations[0].detail
    );
    assert!(
        violations[1].detail.contains("not-admin"),
        "{}",
        violations[1].detail
    );
    assert!(report.render_human().contains("2 violations"));

    // Without the trust root the same file is intact: signatures and chains are fine.
    let plain = audit::verify_file(&tampered_export, &VerifyOptions::default(), &()).unwrap();
    assert_eq!(plain.verdict, Verdict::Verified);
    // The honest node's export passes with the policy re-derived.
    let honest = audit::verify_file(&honest_export, &with_policy, &()).unwrap();
    assert_eq!(honest.verdict, Verdict::Verified, "{:#?}", honest.findings);
    assert!(honest.policy_decisions >= 2);
    // The data-directory path reaches the same verdicts.
    let dir_report = audit::verify_data_dir(tampered.dir.path(), &with_policy, &()).unwrap();
    assert_eq!(dir_report.verdict, Verdict::Failed);
    assert_eq!(
        dir_report
            .findings
            .iter()
            .filter(|finding| finding.kind == FindingKind::PolicyViolation)
            .count(),
        2
    );
    shutdown(vec![admin, tampered, member]).await;
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_keeps_sending_invalid_data_is_disconnected() {
    let admin_key = Keypair::generate();
    let mallory = node(&admin_key, None, false).await;
    let alice = node(&admin_key, None, false).await;
    let bob = node(&admin_key, None, false).await;
    keep_apart(&mallory, &bob).await;
    connect(&alice, &mallory).await;
    connect(&bob, &alice).await;
    // Honest traffic first, so gossipsub's mesh is up and mallory's messages reach alice.
    let warmup = publish_note(&alice, 0).await;
    wait_heads(
        "alice's entry at mallory",
        &[&mallory],
        &alice.keypair,
        warmup.header().seq,
    )
    .await;
    let mallory_peer = mallory.node.net().peer_id().to_string();
    let topic = plexus_node::net::topics::entry_topic(NAMESPACE, "x-note");
    for n in 0..3u8 {
        mallory
            .node
            .net()
            .publish(topic.clone(), vec![0xde, 0xad, n])
            .await
            .unwrap();
    }
    let _ = wait_for(
        "alice to drop mallory",
        CONVERGE,
        &[&alice],
        || alice.node.net().status(),
        |status| {
            status
                .as_ref()
                .is_ok_and(|status| status.peers.iter().all(|peer| peer.peer_id != mallory_peer))
        },
    )
    .await;
    let malformed = alice
        .node
        .log()
        .rejections()
        .unwrap()
        .iter()
        .filter(|record| record.reason == "malformed")
        .count();
    assert_eq!(malformed, 3);
    // A blocked peer cannot come back by dialling.
    let again = address(&alice).await;
    let _ = mallory.node.net().dial(again).await;
    // Honest traffic still flows, and its arrival proves alice processed events after the
    // dial attempt.
    let note = publish_note(&bob, 1).await;
    wait_for(
        "bob's entry at alice",
        CONVERGE,
        &[&alice],
        || async { head(&alice, &bob.keypair) },
        |seq| *seq == note.header().seq,
    )
    .await;
    let status = alice.node.net().status().await.unwrap();
    assert!(status.peers.iter().all(|peer| peer.peer_id != mallory_peer));
    shutdown(vec![mallory, alice, bob]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_author_over_the_ingress_rate_is_throttled_and_its_entries_arrive_later() {
    let admin_key = Keypair::generate();
    let sender = node(&admin_key, None, false).await;
    let receiver = spawn_node_with(
        test_net_config(),
        NodeSpec {
            ingress: Some(IngressLimits {
                author_per_sec: 1.0,
                ..IngressLimits::default()
            }),
            ..NodeSpec::default()
        },
    )
    .await;
    connect(&receiver, &sender).await;
    // Mesh first, so the burst goes out by gossip.
    let first = publish_note(&sender, 0).await;
    wait_heads(
        "the first entry",
        &[&receiver],
        &sender.keypair,
        first.header().seq,
    )
    .await;
    for n in 1..12 {
        publish_note(&sender, n).await;
    }
    // Gossip beyond the burst is dropped at the edge and counted; backfill delivers it all.
    wait_heads("all twelve entries", &[&receiver], &sender.keypair, 12).await;
    let throttled = receiver
        .node
        .log()
        .rejection_counts()
        .get("throttled:author")
        .copied()
        .unwrap_or_default();
    assert!(
        throttled >= 1,
        "{:?}",
        receiver.node.log().rejection_counts()
    );
    shutdown(vec![sender, receiver]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_limit_has_an_accept_and_a_reject_path_at_the_members_node() {
    let admin_key = Keypair::generate();
    let member_key = Keypair::generate();
    let mut admin = node(&admin_key, Some(admin_key.clone()), true).await;
    let mut member = node(&admin_key, Some(member_key.clone()), true).await;
    connect(&member, &admin).await;
    let admin_api = admin.api().await;
    let api = member.api().await;
    let body = json!({
        "version": 1,
        "roles": {"worker": ["intent", "intent.release", "constraint", "x-*"]},
        "members": [{"agent": member_key.agent_id().to_string(), "roles": ["worker"]}],
        "limits": {"maxBodyBytes": 200, "maxLeaseMs": 60_000, "maxClaims": 2, "maxTtlMs": 120_000},
    });
    publish_policy(&admin_api, &[&admin, &member], body).await;
    let expect = |status: u16, rule: Option<&str>, answer: &Value, what: &str| match rule {
        None => assert_eq!(status, 201, "{what}: {answer}"),
        Some(rule) => {
            assert_eq!(status, 403, "{what}: {answer}");
            assert_eq!(answer["error"]["rule"], rule, "{what}: {answer}");
            assert_eq!(answer["error"]["policyVersion"], 1, "{what}: {answer}");
        }
    };
    let claim = |resource: &str, lease: u64| json!({"resource": resource, "action": "edit", "leaseMs": lease});
    // Kinds: a constraint is in the role, a card is not.
    let constraint =
        |ttl: u64| json!({"resource": "repo/*", "rule": {"type": "exclusive"}, "ttlMs": ttl});
    let (status, answer) = post_raw(&api, "/v1/constraints", &constraint(120_000)).await;
    expect(status, None, &answer, "constraint within the TTL cap");
    let (status, answer) = post_raw(&api, "/v1/constraints", &constraint(120_001)).await;
    expect(
        status,
        Some("ttl-too-long"),
        &answer,
        "constraint over the TTL cap",
    );
    let card = json!({"name": "m", "ttlMs": 1000});
    let (status, answer) = post_raw(&api, "/v1/capability", &card).await;
    expect(status, Some("kind-not-allowed"), &answer, "a card");
    // Body size.
    let small = json!({"kind": "x-note", "body": {"t": "short"}});
    let (status, answer) = post_raw(&api, "/v1/entries", &small).await;
    expect(status, None, &answer, "a small body");
    let big = json!({"kind": "x-note", "body": {"t": "x".repeat(300)}});
    let (status, answer) = post_raw(&api, "/v1/entries", &big).await;
    expect(status, Some("body-too-large"), &answer, "a large body");
    // Lease cap and concurrent claims.
    let (status, answer) = post_raw(&api, "/v1/claims", &claim("a", 60_001)).await;
    expect(status, Some("lease-too-long"), &answer, "a long lease");
    let (status, first) = post_raw(&api, "/v1/claims", &claim("a", 60_000)).await;
    expect(status, None, &first, "the first claim");
    let (status, answer) = post_raw(&api, "/v1/claims", &claim("b", 60_000)).await;
    expect(status, None, &answer, "the second claim");
    let (status, answer) = post_raw(&api, "/v1/claims", &claim("c", 60_000)).await;
    expect(status, Some("too-many-claims"), &answer, "a third claim");
    let first_id = first["claim"]["claim_id"].as_str().unwrap().to_owned();
    let (status, answer) =
        post_raw(&api, &format!("/v1/claims/{first_id}/release"), &json!({})).await;
    expect(status, None, &answer, "releasing the first claim");
    let (status, answer) = post_raw(&api, "/v1/claims", &claim("c", 60_000)).await;
    expect(status, None, &answer, "a claim after a release");
    // What the member's node signed reached the admin's node and passed its checks too.
    let member_head = head(&member, &member_key);
    wait_heads(
        "the member's entries at the admin's node",
        &[&admin],
        &member_key,
        member_head,
    )
    .await;
    assert!(policy_rejections(&admin, "too-many-claims").is_empty());
    drop((admin_api, api));
    shutdown(vec![admin, member]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_signs_no_policy_version_that_would_leave_no_room_to_move_on() {
    let admin_key = Keypair::generate();
    let mut admin = node(&admin_key, Some(admin_key.clone()), true).await;
    let admin_api = admin.api().await;
    publish_policy(&admin_api, &[&admin], policy(1, &[], json!({}))).await;
    let head_before = head(&admin, &admin_key);
    // Every way in (the CLI, MCP, the Python client) posts here: a version at the end of the
    // number range is refused before anything is signed, naming the field and the ceiling.
    for version in [u64::MAX, 1_002] {
        let (status, answer) =
            post_raw(&admin_api, "/v1/policy", &policy(version, &[], json!({}))).await;
        assert_eq!(status, 422, "v{version}: {answer}");
        assert_eq!(answer["error"]["code"], "version_too_far", "{answer}");
        assert_eq!(answer["error"]["field"], "version", "{answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|message| message.contains("at most v1001")),
            "{answer}"
        );
    }
    assert_eq!(
        head(&admin, &admin_key),
        head_before,
        "a refused policy took a seq"
    );
    // The largest step allowed is signed and takes force.
    publish_policy(&admin_api, &[&admin], policy(1_001, &[], json!({}))).await;
    shutdown(vec![admin]).await;
}
