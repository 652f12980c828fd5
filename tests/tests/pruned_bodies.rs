//! Copies of an entry without its body, across real nodes: a peer relaying a signed claim with
//! its body stripped is refused and cannot keep the real claim out, and a claim that arrived
//! pruned by backfill is completed, view included, when the full copy comes.

use std::time::Duration;

use plexus_crypto::Keypair;
use plexus_node::clock::now_ms;
use plexus_node::net::topics;
use plexus_node::store::IngestOutcome;
use plexus_protocol::value::json_text_to_canonical;
use plexus_protocol::{Draft, Entry};
use plexus_tests::cluster::{
    connect, keep_apart, publish_note, shutdown, spawn, wait_converged, wait_for, TestNode,
    NAMESPACE,
};

const CONVERGE: Duration = Duration::from_secs(60);

/// A claim on `resource` by `author`, timestamped now (live claims must be).
fn claim(author: &Keypair, resource: &str) -> Entry {
    let body = format!(r#"{{"resource": "{resource}", "action": "write", "leaseMs": 600000}}"#);
    Entry::sign(
        author,
        Draft {
            namespace: NAMESPACE.into(),
            seq: 1,
            prev: None,
            timestamp_ms: now_ms(),
            kind: "intent".into(),
            body: json_text_to_canonical(&body).unwrap(),
        },
    )
    .unwrap()
}

/// Whether `node` stores `entry`, and with its body.
fn stored(node: &TestNode, entry: &Entry) -> Option<bool> {
    node.node
        .log()
        .entry_by_id(&entry.id())
        .unwrap()
        .map(|stored| stored.body().is_some())
}

/// The claim ids holding `resource` in `node`'s view.
fn holders(node: &TestNode, resource: &str) -> Vec<String> {
    node.node
        .coord()
        .view()
        .lease(NAMESPACE, resource, now_ms())
        .holders
        .into_iter()
        .map(|claim| claim.claim_id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stripped_copy_is_refused_and_does_not_block_the_real_one() {
    // mallory - bob - carol: mallory relays a claim with its body stripped, carol the real one.
    let nodes = spawn(3).await;
    let (mallory, bob, carol) = (&nodes[0], &nodes[1], &nodes[2]);
    keep_apart(mallory, carol).await;
    connect(bob, mallory).await;
    connect(carol, bob).await;
    publish_note(bob, 1).await;
    wait_converged(&[mallory, bob, carol], 1, 1, CONVERGE).await;

    let author = Keypair::generate();
    let real = claim(&author, "printer");
    mallory
        .node
        .net()
        .publish(
            topics::entry_topic(NAMESPACE, "intent"),
            real.without_body().encode(),
        )
        .await
        .unwrap();
    let mallory_source = format!("gossip:{}", mallory.node.net().peer_id());
    wait_for(
        "bob to decide on the stripped copy",
        CONVERGE,
        &[bob],
        || async {
            (
                stored(bob, &real),
                bob.node.log().rejections().unwrap().len(),
            )
        },
        |(stored, rejections)| stored.is_some() || *rejections > 0,
    )
    .await;
    assert_eq!(stored(bob, &real), None, "bob stored the stripped copy");
    let rejections = bob.node.log().rejections().unwrap();
    assert_eq!(rejections.len(), 1);
    assert_eq!(rejections[0].reason, "pruned-body");
    assert_eq!(rejections[0].source, mallory_source);
    assert!(rejections[0].detail.contains("without its body"));

    // The real claim still goes through, on every node, and bob's view has it.
    assert!(matches!(
        carol.node.submit(real.encode()).await.unwrap(),
        IngestOutcome::Accepted { .. }
    ));
    wait_for(
        "the real claim at bob, with its body",
        CONVERGE,
        &[bob],
        || async { stored(bob, &real) },
        |stored| *stored == Some(true),
    )
    .await;
    let real_id = real.id().to_string();
    wait_for(
        "the claim in bob's view",
        CONVERGE,
        &[bob],
        || async { holders(bob, "printer") },
        |holders| holders.contains(&real_id),
    )
    .await;
    // Submitting a stripped copy locally is refused the same way.
    assert!(matches!(
        carol
            .node
            .submit(real.without_body().encode())
            .await
            .unwrap(),
        IngestOutcome::Rejected { .. }
    ));
    let stripped_fresh = claim(&Keypair::generate(), "scanner").without_body();
    match carol.node.submit(stripped_fresh.encode()).await.unwrap() {
        IngestOutcome::Rejected { detail, .. } => assert!(detail.contains("without its body")),
        other => panic!("a stripped submit was not refused: {other:?}"),
    }
    assert_eq!(stored(carol, &stripped_fresh), None);
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_backfilled_without_its_body_is_completed_when_the_body_arrives() {
    // alice holds the claim pruned (as from an export's history); bob backfills it from her,
    // then carol gossips the full copy to bob.
    let nodes = spawn(3).await;
    let (alice, bob, carol) = (&nodes[0], &nodes[1], &nodes[2]);
    keep_apart(alice, carol).await;
    connect(bob, alice).await;
    connect(carol, bob).await;
    // The mesh must be up for carol's copy to reach bob by gossip.
    publish_note(bob, 1).await;
    wait_converged(&[alice, bob, carol], 1, 1, CONVERGE).await;
    // Made now: the full copy below is a live claim, checked against the clock-skew window.
    let real = claim(&Keypair::generate(), "printer");
    assert!(matches!(
        alice
            .node
            .log()
            .ingest(&real.without_body().encode(), "history", now_ms())
            .unwrap(),
        IngestOutcome::Accepted { .. }
    ));
    // Anti-entropy brings the pruned claim to bob and carol.
    wait_converged(&[alice, bob, carol], 2, 2, CONVERGE).await;
    assert_eq!(stored(bob, &real), Some(false));
    assert!(
        holders(bob, "printer").is_empty(),
        "a claim without its body cannot be read"
    );

    assert!(matches!(
        carol.node.submit(real.encode()).await.unwrap(),
        IngestOutcome::Accepted { .. }
    ));
    let real_id = real.id().to_string();
    for node in [bob, alice] {
        wait_for(
            "the completed claim in the view",
            CONVERGE,
            &[node],
            || async { (stored(node, &real), holders(node, "printer")) },
            |(stored, holders)| *stored == Some(true) && holders.contains(&real_id),
        )
        .await;
    }
    // Completion changes no position: still one entry in that feed.
    assert_eq!(bob.node.log().stats().unwrap().entries, 2);
    shutdown(nodes).await;
}
