//! Real nodes on 127.0.0.1 gossiping, backfilling, healing partitions, resisting a malicious
//! peer and catching a fork. Every wait is on a predicate with a deadline.

use std::time::Duration;

use plexus_crypto::Keypair;
use plexus_node::net::{topics, NetConfig, NetStatus};
use plexus_node::node::limits::IngressLimits;
use plexus_node::store::IngestOutcome;
use plexus_protocol::value::json_text_to_canonical;
use plexus_protocol::{Draft, Entry, FeedKey};
use plexus_tests::cluster::{
    address, connect, heads, heal, keep_apart, partition, publish_note, shutdown, spawn,
    spawn_node, spawn_node_with, test_net_config, wait_converged, wait_for, NodeSpec, TestNode,
    NAMESPACE,
};
use plexus_tests::ingest;

const CONVERGE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_reach_every_node_of_a_line() {
    let nodes = spawn(8).await;
    // Entries must cross up to seven hops: no shortcuts.
    for (index, node) in nodes.iter().enumerate() {
        for far in &nodes[(index + 2).min(nodes.len())..] {
            keep_apart(node, far).await;
        }
    }
    for pair in nodes.windows(2) {
        connect(&pair[1], &pair[0]).await;
    }
    for (index, node) in nodes.iter().enumerate().step_by(3) {
        for n in 0..4 {
            publish_note(node, (index * 10 + n) as u64).await;
        }
    }
    let all: Vec<&TestNode> = nodes.iter().collect();
    // Three publishers (0, 3, 6) with four entries each.
    wait_converged(&all, 3, 12, CONVERGE).await;
    let reference = heads(&nodes[0]);
    for node in &nodes {
        assert_eq!(heads(node), reference);
        assert_eq!(node.node.log().stats().unwrap().entries, 12);
    }
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarding_node_validates_stores_and_forwards_gossip() {
    // A line: carol hears alice only through bob, who must validate, store and forward.
    let nodes = spawn(3).await;
    let (alice, bob, carol) = (&nodes[0], &nodes[1], &nodes[2]);
    keep_apart(alice, carol).await;
    connect(bob, alice).await;
    connect(carol, bob).await;
    // Gossip needs the mesh: wait until bob has alice and carol in it for notes.
    let topic = topics::entry_topic(NAMESPACE, "x-note").to_string();
    let (alice_peer, carol_peer) = (
        alice.node.net().peer_id().to_string(),
        carol.node.net().peer_id().to_string(),
    );
    let _ = wait_for(
        "alice and carol in bob's mesh",
        CONVERGE,
        &[bob],
        || bob.node.net().status(),
        |status| {
            status.as_ref().is_ok_and(|status| {
                [&alice_peer, &carol_peer].iter().all(|wanted| {
                    status
                        .peers
                        .iter()
                        .any(|peer| &&peer.peer_id == wanted && peer.mesh.contains(&topic))
                })
            })
        },
    )
    .await;
    for n in 0..5 {
        publish_note(alice, n).await;
    }
    wait_converged(&[alice, bob, carol], 1, 5, CONVERGE).await;
    // What bob stored, and carol got through him, is exactly alice's feed.
    assert_eq!(heads(bob), heads(alice));
    assert_eq!(heads(carol), heads(alice));
    assert_eq!(bob.node.log().rejections().unwrap().len(), 0);
    // Bob reports how long what he forwarded waited in him (receipt to verdict).
    let forwarded = bob
        .node
        .net()
        .status()
        .await
        .unwrap()
        .gossip_forward_latency;
    assert!(
        (1..=5).contains(&forwarded.count) && forwarded.p50_us <= forwarded.p99_us,
        "{forwarded:?}"
    );
    shutdown(nodes).await;
}

/// Four peers publishing as fast as the node stores lose nothing on the way. Two library
/// defaults used to cut them off after a few thousand entries: a publisher's `IHAVE` of more
/// than about 480 message ids exceeded the 16 KiB control limit of its receiver, which closed
/// its side of the stream and left the publisher writing into it for good; and the node
/// graylisted (stopped reading) a publisher that fell 400 forwards behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_from_four_fast_peers_arrives_whole() {
    let node = ingest::unlimited_node().await;
    let run = ingest::flood(&node, 4, 20_000).await;
    assert_eq!(
        (run.stored, run.lost_in_transit, run.pending),
        (run.entries, 0, 0),
        "stored, lost between the publishers and the node, pending: {run:?}"
    );
    shutdown(vec![node]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_catches_up_through_backfill() {
    let nodes = spawn(1).await;
    let writer = &nodes[0];
    // History written before anyone else exists: gossip can never deliver it.
    for n in 0..3000u64 {
        writer
            .node
            .log()
            .append_own(
                &writer.keypair,
                NAMESPACE,
                "x-note",
                json_text_to_canonical(&format!("{{\"n\":{n}}}")).unwrap(),
                n,
            )
            .unwrap();
    }
    let late = spawn_node(test_net_config()).await;
    connect(&late, writer).await;
    wait_converged(&[writer, &late], 1, 3000, CONVERGE).await;
    let feed = FeedKey {
        namespace: NAMESPACE.into(),
        author: writer.keypair.agent_id(),
    };
    for seq in [1, 1500, 3000] {
        assert_eq!(
            late.node.log().entry_at(&feed, seq).unwrap().unwrap().id(),
            writer
                .node
                .log()
                .entry_at(&feed, seq)
                .unwrap()
                .unwrap()
                .id()
        );
    }
    let status = late.node.net().status().await.unwrap();
    assert!(status.entries_fetched >= 3000, "{status:?}");
    shutdown(nodes).await;
    shutdown(vec![late]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healed_partition_converges() {
    let nodes = spawn(6).await;
    let (left, right) = nodes.split_at(3);
    for group in [left, right] {
        connect(&group[1], &group[0]).await;
        connect(&group[2], &group[1]).await;
    }
    // Partition: every left node refuses every right node and vice versa.
    partition(left, right).await;
    for n in 0..5 {
        publish_note(&left[0], n).await;
        publish_note(&right[2], 100 + n).await;
    }
    let left_refs: Vec<&TestNode> = left.iter().collect();
    let right_refs: Vec<&TestNode> = right.iter().collect();
    wait_converged(&left_refs, 1, 5, CONVERGE).await;
    wait_converged(&right_refs, 1, 5, CONVERGE).await;
    assert_ne!(heads(&left[0]), heads(&right[0]));
    // Heal, and bridge the groups.
    heal(left, right).await;
    connect(&right[0], &left[2]).await;
    let all: Vec<&TestNode> = nodes.iter().collect();
    wait_converged(&all, 2, 10, CONVERGE).await;
    shutdown(nodes).await;
}

fn sign(keypair: &Keypair, seq: u64, prev: Option<plexus_crypto::Hash256>, body: &[u8]) -> Entry {
    Entry::sign(
        keypair,
        Draft {
            namespace: NAMESPACE.into(),
            seq,
            prev,
            timestamp_ms: 1_767_225_600_000 + seq,
            kind: "x-note".into(),
            body: json_text_to_canonical(
                &serde_json::Value::String(String::from_utf8_lossy(body).into_owned()).to_string(),
            )
            .unwrap(),
        },
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malicious_peer_is_stopped_at_the_first_hop() {
    // mallory - alice - bob: bob must never see mallory's garbage. This test watches mallory's
    // score, so alice keeps the connection (blocking is tested in governance.rs).
    let lenient = NodeSpec {
        ingress: Some(IngressLimits {
            strikes_before_block: 0,
            ..IngressLimits::default()
        }),
        ..NodeSpec::default()
    };
    let nodes = vec![
        spawn_node(test_net_config()).await,
        spawn_node_with(test_net_config(), lenient).await,
        spawn_node(test_net_config()).await,
    ];
    let (mallory, alice, bob) = (&nodes[0], &nodes[1], &nodes[2]);
    // Otherwise mallory's garbage reaches bob at a first hop of its own.
    keep_apart(mallory, bob).await;
    connect(alice, mallory).await;
    connect(bob, alice).await;
    // Honest traffic first, so the mesh is up.
    publish_note(alice, 1).await;
    wait_converged(&[alice, bob, mallory], 1, 1, CONVERGE).await;

    let topic = topics::entry_topic(NAMESPACE, "x-note");
    let victim = Keypair::generate();
    let good = sign(&victim, 1, None, b"genuine");
    let mut bad_signature = good.encode();
    let last = bad_signature.len() - 1 - 7 - 64; // first signature byte ("genuine" body is 7 bytes)
    bad_signature[last] ^= 0x01;
    let broken_chain = sign(
        &victim,
        5,
        Some(plexus_crypto::sha256(b"nothing")),
        b"orphan",
    )
    .encode();
    let wrong_topic = sign(&victim, 1, None, b"on the wrong topic").encode();
    let oversized = vec![0x82; 66_000];
    let garbage = b"\xde\xad\xbe\xef not an entry at all".to_vec();
    // Invalid deliveries cost quadratically (P4): after three, mallory is graylisted and the
    // rest of its traffic is dropped unread. The order puts one of each kind of rejection first.
    let task_topic = topics::entry_topic(NAMESPACE, "task");
    let attacks = [
        (&topic, bad_signature),
        (&task_topic, wrong_topic),
        (&topic, broken_chain),
        (&topic, oversized),
        (&topic, garbage.clone()),
        (&topic, garbage.iter().rev().copied().collect()),
    ];
    for (topic, payload) in attacks {
        mallory
            .node
            .net()
            .publish((*topic).clone(), payload)
            .await
            .unwrap();
    }
    // Honest traffic keeps flowing meanwhile.
    for n in 2..6 {
        publish_note(alice, n).await;
    }
    wait_converged(&[alice, bob], 1, 5, CONVERGE).await;
    let mallory_peer = mallory.node.net().peer_id().to_string();
    let status =
        wait_for(
            "mallory's score to drop and the rejections to be journaled",
            CONVERGE,
            &[alice],
            || alice.node.status(),
            |status| {
                let status = status.as_ref().unwrap();
                status.log.rejected >= 3
                    && status.network.peers.iter().any(|peer| {
                        peer.peer_id == mallory_peer && peer.score.is_some_and(|s| s < 0.0)
                    })
            },
        )
        .await
        .unwrap();
    let reasons: Vec<String> = alice
        .node
        .log()
        .rejections()
        .unwrap()
        .into_iter()
        .map(|rejection| rejection.reason)
        .collect();
    for reason in ["bad-signature", "malformed", "wrong-topic"] {
        assert!(
            reasons.iter().any(|r| r == reason),
            "{reason} missing from {reasons:?}"
        );
    }
    // Nothing of it was stored as accepted, anywhere, and bob never even saw it.
    for node in [alice, bob] {
        assert_eq!(node.node.log().stats().unwrap().entries, 5);
        assert!(heads(node)
            .iter()
            .all(|(feed, _)| feed.author != victim.agent_id()));
    }
    let seen_by_bob = bob.node.log().rejections().unwrap();
    assert!(
        seen_by_bob.is_empty(),
        "bob saw mallory's garbage: {:?}",
        seen_by_bob
            .iter()
            .map(|rejection| (&rejection.reason, &rejection.source))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        status.log.pending, 1,
        "the orphan waits for its predecessors, unforwarded"
    );
    assert_eq!(bob.node.log().stats().unwrap().pending, 0);
    // A replay of an accepted entry changes nothing.
    let accepted = alice
        .node
        .log()
        .entry_at(
            &FeedKey {
                namespace: NAMESPACE.into(),
                author: alice.keypair.agent_id(),
            },
            1,
        )
        .unwrap()
        .unwrap();
    assert!(matches!(
        bob.node.submit(accepted.encode()).await.unwrap(),
        IngestOutcome::Duplicate { .. }
    ));
    assert_eq!(bob.node.log().stats().unwrap().entries, 5);
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_is_detected_everywhere_and_the_author_quarantined() {
    let nodes = spawn(4).await;
    connect(&nodes[1], &nodes[0]).await;
    connect(&nodes[3], &nodes[2]).await;
    let forker = Keypair::generate();
    let first = sign(&forker, 1, None, b"to the left");
    let second = sign(&forker, 1, None, b"to the right");
    assert!(matches!(
        nodes[0].node.submit(first.encode()).await.unwrap(),
        IngestOutcome::Accepted { .. }
    ));
    assert!(matches!(
        nodes[2].node.submit(second.encode()).await.unwrap(),
        IngestOutcome::Accepted { .. }
    ));
    wait_converged(&[&nodes[0], &nodes[1]], 1, 1, CONVERGE).await;
    wait_converged(&[&nodes[2], &nodes[3]], 1, 1, CONVERGE).await;
    // The halves meet.
    connect(&nodes[2], &nodes[1]).await;
    let feed = FeedKey {
        namespace: NAMESPACE.into(),
        author: forker.agent_id(),
    };
    let all: Vec<&TestNode> = nodes.iter().collect();
    wait_for(
        "a fork proof and a quarantine on every node",
        CONVERGE,
        &all,
        || async {
            nodes
                .iter()
                .map(|node| {
                    (
                        node.node.log().forks().unwrap().len(),
                        node.node.quarantined(),
                    )
                })
                .collect::<Vec<_>>()
        },
        |states| {
            states
                .iter()
                .all(|(forks, quarantined)| *forks == 1 && quarantined.contains(&feed))
        },
    )
    .await;
    // Each node kept the entry it saw first; none was overwritten.
    assert_eq!(
        nodes[0]
            .node
            .log()
            .entry_at(&feed, 1)
            .unwrap()
            .unwrap()
            .id(),
        first.id()
    );
    assert_eq!(
        nodes[3]
            .node
            .log()
            .entry_at(&feed, 1)
            .unwrap()
            .unwrap()
            .id(),
        second.id()
    );
    // The quarantined author's next entry is refused.
    let next = sign(&forker, 2, Some(first.id()), b"more");
    assert!(matches!(
        nodes[0].node.submit(next.encode()).await.unwrap(),
        IngestOutcome::Rejected { .. }
    ));
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_connections_beyond_its_limits_and_keeps_room_to_dial_out() {
    // At most two connections, of which one inbound.
    let hub = spawn_node(NetConfig {
        max_connections: 2,
        ..test_net_config()
    })
    .await;
    let others = spawn(3).await;
    let (a, b, c) = (&others[0], &others[1], &others[2]);
    let peers_of_hub = || async {
        let mut peers: Vec<String> = (hub.node.net().status().await.unwrap().peers)
            .into_iter()
            .map(|peer| peer.peer_id)
            .collect();
        peers.sort();
        peers
    };
    let peer = |node: &TestNode| node.node.net().peer_id().to_string();

    connect(a, &hub).await;
    // The inbound slot is taken: b's connection is closed once its handshake completes.
    b.node.net().dial(address(&hub).await).await.unwrap();
    let status = refused_at_least(&hub, Direction::Inbound, 1).await;
    assert_eq!(peers_of_hub().await, vec![peer(a)]);
    assert_eq!(
        (status.connections.incoming, status.connections.outgoing),
        (1, 0)
    );
    assert_eq!(
        (
            status.connections.max_established,
            status.connections.max_incoming
        ),
        (2, 1)
    );
    // The slot kept for dialling out still works.
    connect(&hub, c).await;
    let mut expected = vec![peer(a), peer(c)];
    expected.sort();
    assert_eq!(peers_of_hub().await, expected);
    // Now the total is reached: even the hub's own dial is refused.
    hub.node.net().dial(address(b).await).await.unwrap();
    let status = refused_at_least(&hub, Direction::Outbound, 1).await;
    assert_eq!(peers_of_hub().await, expected);
    assert_eq!(
        (status.connections.incoming, status.connections.outgoing),
        (1, 1)
    );
    let mut all = others;
    all.push(hub);
    shutdown(all).await;
}

#[derive(Debug, Clone, Copy)]
enum Direction {
    Inbound,
    Outbound,
}

/// Waits until `node` has refused `count` connections in `direction` at its limits; returns
/// its status then.
async fn refused_at_least(node: &TestNode, direction: Direction, count: u64) -> NetStatus {
    wait_for(
        &format!("the node to refuse {count} {direction:?} connections"),
        CONVERGE,
        &[node],
        || node.node.net().status(),
        |status| {
            status.as_ref().is_ok_and(|status| {
                let connections = &status.connections;
                match direction {
                    Direction::Inbound => connections.refused_incoming >= count,
                    Direction::Outbound => connections.refused_outgoing >= count,
                }
            })
        },
    )
    .await
    .unwrap()
}
