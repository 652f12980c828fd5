//! QUIC as the only transport: two real nodes on 127.0.0.1 that listen only on
//! `/udp/0/quic-v1` connect, backfill each other's history and gossip new entries.

use std::time::Duration;

use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;
use plexus_tests::cluster::{
    address, connect, heads, publish_note, shutdown, spawn_node, test_net_config, wait_converged,
};

const CONVERGE: Duration = Duration::from_secs(60);

fn quic_only() -> plexus_node::net::NetConfig {
    let listen: Multiaddr = "/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap();
    plexus_node::net::NetConfig {
        listen: vec![listen],
        ..test_net_config()
    }
}

fn is_quic(addr: &Multiaddr) -> bool {
    addr.iter()
        .any(|protocol| matches!(protocol, Protocol::QuicV1))
        && !addr
            .iter()
            .any(|protocol| matches!(protocol, Protocol::Tcp(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_exchange_entries_over_quic_only() {
    let first = spawn_node(quic_only()).await;
    let second = spawn_node(quic_only()).await;
    // Both listen on QUIC and nothing else, so whatever connects them is QUIC.
    for node in [&first, &second] {
        let addr = address(node).await;
        assert!(is_quic(&addr), "not a QUIC-only address: {addr}");
        let status = node.node.net().status().await.unwrap();
        assert!(
            status
                .listen_addrs
                .iter()
                .all(|addr| is_quic(&addr.parse().unwrap())),
            "a node listens on something other than QUIC: {:?}",
            status.listen_addrs
        );
    }
    // History from before the connection travels by backfill...
    for n in 0..20 {
        publish_note(&first, n).await;
    }
    connect(&second, &first).await;
    wait_converged(&[&first, &second], 1, 20, CONVERGE).await;
    // ...and new entries from either side over the same QUIC connection (gossip, with
    // anti-entropy behind it).
    for n in 0..5 {
        publish_note(&first, 100 + n).await;
        publish_note(&second, 200 + n).await;
    }
    wait_converged(&[&first, &second], 2, 30, CONVERGE).await;
    assert_eq!(heads(&first), heads(&second));
    let status = second.node.net().status().await.unwrap();
    assert!(status.entries_fetched >= 20, "{status:?}");
    assert!(
        status
            .peers
            .iter()
            .any(|peer| peer.peer_id == first.node.net().peer_id().to_string()),
        "{status:?}"
    );
    shutdown(vec![first, second]).await;
}
