//! Claims received late (docs/PROTOCOL.md §9.4) across real nodes on 127.0.0.1: a back-dated
//! claim is refused live over gossip, and once backfill brings it, every node that fetched it
//! flags it `late` in its lease table, its events and `audit replay`; an honest claim made
//! across a partition longer than the clock-skew window still takes the lease everywhere,
//! flagged only on the nodes that received it late.

use std::process::Command;
use std::time::Duration;

use plexus_crypto::Keypair;
use plexus_node::client::ApiClient;
use plexus_node::clock::now_ms;
use plexus_node::net::topics;
use plexus_protocol::coord::Body;
use plexus_protocol::{Draft, Entry};
use plexus_tests::cluster::{
    connect, heal, partition, publish_note, shutdown, spawn_node_with, stop, test_net_config,
    wait_for, NodeSpec, TestNode, NAMESPACE,
};
use plexus_tests::netnode::plexus_binary;
use serde_json::{json, Value};

const CONVERGE: Duration = Duration::from_secs(60);

/// Ten minutes: far outside any clock-skew window.
const BACKDATE_MS: u64 = 10 * 60 * 1000;

fn claim_body(resource: &str) -> Value {
    json!({"resource": resource, "action": "write", "leaseMs": 3_600_000})
}

/// A claim by `keypair` at `seq` after `prev`, dated `timestamp_ms`, never stored anywhere.
fn signed_claim(keypair: &Keypair, seq: u64, prev: &Entry, timestamp_ms: u64) -> Entry {
    let body = Body::from_json("intent", claim_body("printer"))
        .unwrap()
        .encode()
        .unwrap();
    Entry::sign(
        keypair,
        Draft {
            namespace: NAMESPACE.into(),
            seq,
            prev: Some(prev.id()),
            timestamp_ms,
            kind: "intent".into(),
            body,
        },
    )
    .unwrap()
}

/// The lease on `printer` as `client` shows it.
async fn printer(client: &ApiClient) -> Value {
    client
        .get("/v1/leases?resource=printer")
        .await
        .unwrap_or(Value::Null)["leases"][0]
        .clone()
}

async fn spawn_with_skew(count: usize, clock_skew_ms: Option<u64>) -> Vec<TestNode> {
    let mut nodes = Vec::new();
    for _ in 0..count {
        let spec = NodeSpec {
            clock_skew_ms,
            ..NodeSpec::default()
        };
        nodes.push(spawn_node_with(test_net_config(), spec).await);
    }
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backdated_claim_is_refused_live_and_flagged_late_wherever_backfill_brings_it() {
    let mut nodes = spawn_with_skew(3, None).await;
    let (honest, relay, cheater) = (0, 1, 2);
    connect(&nodes[relay], &nodes[honest]).await;
    connect(&nodes[cheater], &nodes[relay]).await;
    let mut clients = Vec::new();
    for node in &mut nodes {
        clients.push(node.api().await);
    }
    let mine = clients[honest]
        .post("/v1/claims", &claim_body("printer"))
        .await
        .unwrap();
    let my_claim = mine["claim"]["claim_id"].as_str().unwrap().to_owned();
    assert_eq!(mine["claim"]["standing"], "holding");
    let mut lost = clients[honest]
        .events("kind=claim.lost&resource=printer")
        .await
        .unwrap();

    // The cheater's node publishes something honest first, so its feed is known and gossip
    // between it and the relay is up.
    let note = publish_note(&nodes[cheater], 1).await;
    let refs: Vec<&TestNode> = nodes.iter().collect();
    wait_for(
        "the cheater's note to reach the relay",
        CONVERGE,
        &refs,
        || async { nodes[relay].node.log().contains(&note.id()).unwrap() },
        |held| *held,
    )
    .await;

    // (a) Gossiped live, the back-dated claim is refused for its clock skew.
    let backdated = signed_claim(&nodes[cheater].keypair, 2, &note, now_ms() - BACKDATE_MS);
    let backdated_id = backdated.id().to_string();
    let topic = topics::entry_topic(NAMESPACE, "intent");
    wait_for(
        "the relay to refuse the gossiped back-dated claim",
        CONVERGE,
        &refs,
        || async {
            // Sent again until refused: a first publish may find no subscribed peer yet.
            let _ = nodes[cheater]
                .node
                .net()
                .publish(topic.clone(), backdated.encode())
                .await;
            clients[relay]
                .get("/v1/rejections")
                .await
                .unwrap_or_default()
        },
        |answer| {
            answer["rejections"].as_array().is_some_and(|records| {
                records
                    .iter()
                    .any(|record| record["reason"] == "clock-skew")
            })
        },
    )
    .await;
    assert!(!nodes[relay].node.log().contains(&backdated.id()).unwrap());
    assert_eq!(
        printer(&clients[relay]).await["holders"][0]["claim_id"],
        my_claim.as_str()
    );

    // (b) The cheater then serves it as history only: its own log takes it from a "file",
    // and backfill carries it to the others, who store it (history is not checked against
    // the clock) and flag it late.
    nodes[cheater]
        .node
        .log()
        .ingest(&backdated.encode(), "file", now_ms())
        .unwrap();
    let answers = wait_for(
        "every honest node to hold the back-dated claim, flagged late",
        CONVERGE,
        &refs,
        || async {
            let mut leases = Vec::new();
            for index in [honest, relay] {
                let _ = nodes[index].node.net().sync_now().await;
                leases.push(printer(&clients[index]).await);
            }
            leases
        },
        |leases| {
            leases.iter().all(|lease| {
                lease["holders"][0]["claim_id"] == backdated_id.as_str()
                    && lease["holders"][0]["late"] == true
            })
        },
    )
    .await;
    for lease in &answers {
        // The lease order is the one every node computes from the same entries: the earlier
        // timestamp holds; the flag is what tells the agents why, and how late it came.
        assert_eq!(lease["waiting"][0]["claim_id"], my_claim.as_str());
        assert!(lease["waiting"][0].get("late").is_none(), "{lease}");
        let late_after_ms = lease["holders"][0]["late_after_ms"].as_u64().unwrap_or(0);
        assert!(late_after_ms > BACKDATE_MS, "{lease}");
    }
    // The claim itself and the timeline (what the web page draws) carry the same mark.
    let claim = clients[honest]
        .get(&format!("/v1/claims/{backdated_id}"))
        .await
        .unwrap();
    assert_eq!(claim["late"], true, "{claim}");
    assert!(
        claim["late_after_ms"].as_u64().unwrap_or(0) > BACKDATE_MS,
        "{claim}"
    );
    let timeline = clients[honest]
        .get(&format!("/v1/timeline?from={}", now_ms() - 2 * BACKDATE_MS))
        .await
        .unwrap();
    let claims: Vec<&Value> = timeline["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|row| row["resource"] == "printer")
        .flat_map(|row| row["claims"].as_array().unwrap())
        .collect();
    let late: Vec<&str> = claims
        .iter()
        .filter(|claim| claim["late"] == true)
        .map(|claim| claim["claim_id"].as_str().unwrap())
        .collect();
    assert_eq!(late, vec![backdated_id.as_str()], "{timeline}");
    let event = tokio::time::timeout(CONVERGE, lost.next())
        .await
        .expect("the displaced agent is told")
        .unwrap()
        .unwrap();
    let event: Value = serde_json::from_str(&event.data).unwrap();
    assert_eq!(event["data"]["claim"]["claim_id"], my_claim.as_str());
    assert_eq!(
        event["data"]["holders"][0]["claim_id"],
        backdated_id.as_str()
    );
    assert_eq!(event["data"]["holders"][0]["late"], true);
    // Each node's log says how it received the claim.
    let log = clients[honest]
        .get("/v1/log?kind=intent&limit=1000")
        .await
        .unwrap();
    let record = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["entry_id"] == backdated_id.as_str())
        .unwrap_or_else(|| panic!("no back-dated claim in {log}"))
        .clone();
    assert_eq!(record["received_via"], "history");
    let received_ms = record["received_ms"].as_u64().unwrap();
    assert!(received_ms > record["timestamp_ms"].as_u64().unwrap() + BACKDATE_MS / 2);

    // (d) An auditor replaying the honest node's data directory sees the mark.
    let cheater_node = nodes.pop().unwrap();
    let relay_node = nodes.pop().unwrap();
    let honest_node = stop(nodes.pop().unwrap()).await;
    shutdown(vec![relay_node, cheater_node]).await;
    let at = format!("{}ms", now_ms());
    let output = Command::new(plexus_binary())
        .arg("audit")
        .arg("replay")
        .arg(honest_node.dir.path())
        .args(["--at", &at])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("received late (1)"), "{text}");
    assert!(
        text.contains(&format!("LATE intent {}", &backdated_id[..12])),
        "{text}"
    );
    assert!(
        text.contains(&format!("claim {}, LATE)", &backdated_id[..12])),
        "{text}"
    );
    let output = Command::new(plexus_binary())
        .arg("audit")
        .arg("replay")
        .arg(honest_node.dir.path())
        .args(["--at", &at, "--json"])
        .output()
        .unwrap();
    let snapshot: Value = serde_json::from_slice(&output.stdout).unwrap();
    let lease = &snapshot["namespaces"][NAMESPACE]["leases"][0];
    assert_eq!(lease["holders"][0]["claim_id"], backdated_id.as_str());
    assert_eq!(lease["holders"][0]["late"], true);

    // (e) Verifying that data directory passes, and a notice after the verdict names the late
    // claim: lateness is this node's observation, not a fault of the log.
    let output = Command::new(plexus_binary())
        .arg("audit")
        .arg("verify")
        .arg(honest_node.dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("VERIFIED"), "{text}");
    assert!(text.contains("received 1 claim late"), "{text}");
    assert!(
        text.contains(&format!(
            "LATE namespace {NAMESPACE}, resource printer: intent {}",
            &backdated_id[..12]
        )),
        "{text}"
    );
    let output = Command::new(plexus_binary())
        .arg("audit")
        .arg("verify")
        .arg(honest_node.dir.path())
        .arg("--json")
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["verdict"], "verified", "{report}");
    let late = &report["late_claims"]["claims"][0];
    assert_eq!(late["claim_id"], backdated_id.as_str(), "{report}");
    assert_eq!(late["received_via"], "history", "{report}");
    assert!(
        late["late_by_ms"].as_u64().unwrap_or(0) > BACKDATE_MS,
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honest_claim_across_a_long_partition_still_wins_and_is_flagged_only_where_late() {
    // A two-second window, so the partition outlasts it without a long test.
    const WINDOW_MS: u64 = 2_000;
    let mut nodes = spawn_with_skew(4, Some(WINDOW_MS)).await;
    connect(&nodes[1], &nodes[0]).await;
    connect(&nodes[3], &nodes[2]).await;
    partition(&nodes[..2], &nodes[2..]).await;
    let mut clients = Vec::new();
    for node in &mut nodes {
        clients.push(node.api().await);
    }
    let early = clients[0]
        .post("/v1/claims", &claim_body("printer"))
        .await
        .unwrap();
    let early_id = early["claim"]["claim_id"].as_str().unwrap().to_owned();
    let early_ms = early["claim"]["claimed_ms"].as_u64().unwrap();
    let refs: Vec<&TestNode> = nodes.iter().collect();
    // The partition outlasts the window: the left claim will reach the right side late.
    wait_for(
        "the partition to outlast the clock-skew window",
        CONVERGE,
        &refs,
        || async { now_ms() },
        |now| *now > early_ms + 2 * WINDOW_MS,
    )
    .await;
    // The other side claims later, while the partition lasts; alone there, it holds.
    let later = clients[3]
        .post("/v1/claims", &claim_body("printer"))
        .await
        .unwrap();
    let later_id = later["claim"]["claim_id"].as_str().unwrap().to_owned();
    assert_eq!(later["claim"]["standing"], "holding");
    heal(&nodes[..2], &nodes[2..]).await;
    connect(&nodes[2], &nodes[1]).await;
    let answers = wait_for(
        "the honest early claim to hold, and the later one to wait, everywhere",
        CONVERGE,
        &refs,
        || async {
            let mut leases = Vec::new();
            for (node, client) in nodes.iter().zip(&clients) {
                let _ = node.node.net().sync_now().await;
                leases.push(printer(client).await);
            }
            leases
        },
        // Every node must also have heard of the later claim, which then waits: the early
        // claimant's node may hold its own claim before the later one reaches it.
        |leases| {
            leases.iter().all(|lease| {
                lease["holders"][0]["claim_id"] == early_id.as_str()
                    && lease["waiting"][0]["claim_id"] == later_id.as_str()
            })
        },
    )
    .await;
    for (index, lease) in answers.iter().enumerate() {
        // The claimant's own node never flags it; the far side fetched it by backfill after
        // the window. (Node 1 got it by gossip, or by backfill had gossip been slow.)
        if index != 1 {
            let far_side = index >= 2;
            assert_eq!(
                lease["holders"][0]["late"] == true,
                far_side,
                "node {index}: the early claim is late only where backfill brought it: {lease}"
            );
        }
        assert_eq!(
            lease["waiting"][0]["claim_id"],
            later_id.as_str(),
            "node {index}: {lease}"
        );
    }
    shutdown(nodes).await;
}
