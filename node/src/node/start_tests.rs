//! Tests of starting and stopping a node: what a bad start says, and how a shared node stops.

use std::sync::Arc;

use libp2p::Multiaddr;
use plexus_crypto::Keypair;

use super::limits::IngressLimits;
use super::{Node, NodeConfig, NodeError, SharedNode};
use crate::net::{NetConfig, NetError};
use crate::store::Log;

fn config_listening_on(listen: Vec<Multiaddr>) -> NodeConfig {
    NodeConfig {
        net: NetConfig {
            listen,
            ..NetConfig::loopback()
        },
        namespaces: Vec::new(),
        quarantine_forkers: true,
        clock_skew_ms: plexus_protocol::coord::DEFAULT_CLOCK_SKEW_MS,
        view_history_ms: crate::coord::DEFAULT_VIEW_HISTORY_MS,
        ingress: IngressLimits::default(),
    }
}

#[tokio::test]
async fn an_address_the_node_cannot_listen_on_is_named_with_what_to_use_instead() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path()).unwrap());
    // UDP without QUIC: no transport of the node takes it.
    let unusable: Multiaddr = "/ip4/127.0.0.1/udp/0".parse().unwrap();
    let error = Node::start(
        Keypair::generate(),
        Arc::clone(&log),
        config_listening_on(vec![unusable.clone()]),
    )
    .await
    .unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(&error, NodeError::Net(NetError::Listen { addr, .. }) if *addr == unusable),
        "{error:?}"
    );
    assert!(
        text.starts_with("cannot listen on /ip4/127.0.0.1/udp/0: ")
            && text.contains("give --listen a free TCP address"),
        "{text}"
    );
}

#[tokio::test]
async fn a_shared_node_stops_once_its_clones_are_dropped_and_releases_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path()).unwrap());
    let node = Node::start(
        Keypair::generate(),
        log,
        config_listening_on(NetConfig::loopback().listen),
    )
    .await
    .unwrap();
    let node = SharedNode::new(node);
    let entry = node
        .publish("ns", "x-note", b"\xa0".to_vec())
        .await
        .unwrap();
    let clones: Vec<SharedNode> = (0..3).map(|_| node.clone()).collect();
    let holder = tokio::spawn(async move {
        // Held across an await, as a connection task holds the API state.
        tokio::task::yield_now().await;
        drop(clones);
    });
    node.shutdown().await.unwrap();
    holder.await.unwrap();
    // Shut down means flushed and unlocked: the directory opens again, with the entry.
    let reopened = Log::open(dir.path()).unwrap();
    assert!(reopened.contains(&entry.id()).unwrap());
}
