//! A network that scales: no node left alone at a full bootstrap node, a restarted node
//! rejoins from its peer store, and 30 nodes with a bounded degree all connect and all receive
//! every entry. Real nodes on 127.0.0.1; no timings asserted.

use std::time::Duration;

use libp2p::Multiaddr;
use plexus_node::net::peers::DegreeTarget;
use plexus_node::net::NetConfig;
use plexus_tests::cluster::{
    address, connect, heads, peer_count, publish_note, shutdown, spawn_node, start_again, stop,
    test_net_config, wait_converged, wait_for, TestNode,
};

const CONVERGE: Duration = Duration::from_secs(60);

/// Whether `node` is connected to `other`.
async fn is_connected(node: &TestNode, other: &TestNode) -> bool {
    let other = other.node.net().peer_id().to_string();
    node.node
        .net()
        .status()
        .await
        .map(|status| status.peers.iter().any(|peer| peer.peer_id == other))
        .unwrap_or(false)
}

fn bootstrapping_from(bootstrap: Vec<Multiaddr>) -> NetConfig {
    NetConfig {
        bootstrap,
        ..test_net_config()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_hub_still_introduces_a_newcomer_to_other_peers() {
    // The hub takes one inbound connection; `member` takes it.
    let hub = spawn_node(NetConfig {
        max_connections: 2,
        ..test_net_config()
    })
    .await;
    let member = spawn_node(test_net_config()).await;
    connect(&member, &hub).await;
    // The newcomer knows only the full hub.
    let newcomer = spawn_node(bootstrapping_from(vec![address(&hub).await])).await;
    wait_for(
        "the newcomer to connect to the member the hub introduced",
        CONVERGE,
        &[&newcomer],
        || is_connected(&newcomer, &member),
        |connected| *connected,
    )
    .await;
    // And it hears what the member publishes.
    let entry = publish_note(&member, 1).await;
    wait_for(
        "the member's entry on the newcomer",
        CONVERGE,
        &[&newcomer],
        || async { newcomer.node.log().contains(&entry.id()).unwrap_or(false) },
        |held| *held,
    )
    .await;
    // The hub kept its limit: the newcomer was never one of its inbound neighbours.
    let status = hub.node.net().status().await.unwrap();
    assert_eq!(status.connections.incoming, 1, "{:?}", status.connections);
    assert!(status.connections.refused_incoming >= 1);
    shutdown(vec![hub, member, newcomer]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_rejoins_from_its_peer_store_without_bootstrap() {
    let first = spawn_node(test_net_config()).await;
    let second = spawn_node(test_net_config()).await;
    let rejoining = spawn_node(test_net_config()).await;
    connect(&first, &second).await;
    connect(&rejoining, &first).await;
    // Stopped, it misses an entry; started again with no bootstrap peer and no mDNS, only
    // its data directory tells it where the network is.
    let stopped = stop(rejoining).await;
    publish_note(&second, 1).await;
    let net = test_net_config();
    assert!(net.bootstrap.is_empty() && !net.mdns);
    let restarting = start_again(stopped, net).await;
    let missed = heads(&second);
    wait_for(
        "the restarted node to reconnect and catch up",
        CONVERGE,
        &[&restarting],
        || async { heads(&restarting) },
        |held| *held == missed,
    )
    .await;
    assert!(peer_count(&restarting).await >= 1);
    shutdown(vec![first, second, restarting]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_nodes_with_a_bounded_degree_all_connect_and_receive_every_entry() {
    // Watermarks scaled down from 20/40 for 30 nodes sharing one process and two cores.
    let degree = DegreeTarget::new(6, 12).unwrap();
    let config = |bootstrap| NetConfig {
        degree,
        bootstrap,
        ..test_net_config()
    };
    let mut nodes: Vec<TestNode> = Vec::new();
    // Three bootstrap nodes, each introduced to the previous one.
    for _ in 0..3 {
        let bootstrap = match nodes.last() {
            Some(previous) => vec![address(previous).await],
            None => Vec::new(),
        };
        nodes.push(spawn_node(config(bootstrap)).await);
    }
    let bootstrap_addrs = [
        address(&nodes[0]).await,
        address(&nodes[1]).await,
        address(&nodes[2]).await,
    ];
    // The others each know one bootstrap node.
    for n in 3..30 {
        let one = bootstrap_addrs[n % 3].clone();
        nodes.push(spawn_node(config(vec![one])).await);
    }
    let all: Vec<&TestNode> = nodes.iter().collect();
    wait_for(
        "every node to reach the low watermark of peers",
        Duration::from_secs(120),
        &all,
        || async {
            let mut counts = Vec::with_capacity(nodes.len());
            for node in &nodes {
                counts.push(peer_count(node).await);
            }
            counts
        },
        |counts| counts.iter().all(|count| *count >= degree.low() as usize),
    )
    .await;
    // Entries from five different nodes reach all thirty.
    for (n, publisher) in nodes.iter().step_by(6).enumerate() {
        publish_note(publisher, n as u64).await;
    }
    wait_converged(&all, 5, 5, Duration::from_secs(120)).await;
    shutdown(nodes).await;
}
