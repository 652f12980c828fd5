//! Sustained gossip ingest: plain gossipsub peers (the hostile test peer, which never
//! validates or stores) flood pre-signed valid entries into one node as fast as it stores
//! them. Used by the `coord-bench ingest` benchmark and by the test that a burst arrives whole.

use std::time::{Duration, Instant};

use plexus_node::node::limits::IngressLimits;

use crate::cluster::{
    address, spawn_node_with, test_net_config, wait_for, NodeSpec, TestNode, NAMESPACE,
};
use crate::hostile::{note, note_topic, HostilePeer};

/// Authors whose entries each publisher floods, interleaved.
pub const AUTHORS_PER_PUBLISHER: usize = 8;

/// How long the flood waits for progress before it reports what arrived.
const STALL: Duration = Duration::from_secs(10);

/// How long the publishers may take to join the node's mesh.
const MESH_TIMEOUT: Duration = Duration::from_secs(30);

/// How long no forwarded copy may arrive before the flood counts them.
const FORWARDS_QUIET: Duration = Duration::from_secs(1);

/// Entries sent and not yet stored, at most: half the node's event queue.
const WINDOW: u64 = (plexus_node::net::EVENT_QUEUE / 2) as u64;

/// Entries each publisher sends at a time.
const CHUNK: usize = 64;

/// What one flood did.
#[derive(Debug, Clone)]
pub struct Flood {
    /// Entries the publishers had to send.
    pub entries: u64,
    /// Entries the publishers' gossipsub accepted for sending.
    pub sent: u64,
    /// Entries the node stored.
    pub stored: u64,
    /// From the first send until the last entry stored.
    pub elapsed: Duration,
    /// Entries the node forwarded that reached a publisher, counted once per entry (each entry
    /// goes to the publishers that did not send it).
    pub forwarded: u64,
    /// Sent by the publishers but never received by the node's gossipsub.
    pub lost_in_transit: u64,
    /// The node's network status at the end.
    pub status: plexus_node::net::NetStatus,
    /// Entries waiting in the node's pending area at the end.
    pub pending: u64,
}

/// A node with its per-peer and per-author ingress limits lifted (by default they cap one
/// peer at 5,000 messages/s), so that a flood measures the pipeline, not the limits.
pub async fn unlimited_node() -> TestNode {
    let limits = IngressLimits {
        peer_per_sec: 1e9,
        author_per_sec: 1e9,
        ..IngressLimits::default()
    };
    spawn_node_with(
        test_net_config(),
        NodeSpec {
            ingress: Some(limits),
            ..NodeSpec::default()
        },
    )
    .await
}

/// Floods about `entries` valid entries (rounded down to whole rounds of every author) from
/// `publisher_count` peers into `node`, with flow control: each publisher sends its next chunk
/// while fewer than half the node's event queue are sent but not yet stored. Without it the
/// flood outruns the node's event queue, which then drops gossip (as it must: sync repairs
/// it), and these publishers serve no sync, so the run would measure the drops, not the
/// pipeline. Stops when every entry is stored, or when nothing more is stored for 10 s.
pub async fn flood(node: &TestNode, publisher_count: usize, entries: usize) -> Flood {
    let per_author = entries / (publisher_count * AUTHORS_PER_PUBLISHER);
    // Signed before the clock starts: the publishers stand for peers that signed long ago.
    let floods: Vec<Vec<Vec<u8>>> = (0..publisher_count)
        .map(|_| signed_entries(per_author))
        .collect();
    let total = (per_author * AUTHORS_PER_PUBLISHER * publisher_count) as u64;
    let topic = note_topic(NAMESPACE);
    let addr = address(node).await;
    let mut publishers = Vec::new();
    for _ in 0..publisher_count {
        let publisher = HostilePeer::start();
        publisher.join(addr.clone(), topic.clone()).await;
        publishers.push(publisher);
    }
    wait_meshed(node, &topic.to_string(), publisher_count).await;
    let stored_before = stored(node).await;
    let started = Instant::now();
    let mut floods: Vec<std::vec::IntoIter<Vec<u8>>> =
        floods.into_iter().map(Vec::into_iter).collect();
    let mut changes = node.node.changes();
    let (mut sent, mut last, mut last_progress) = (0u64, stored_before, Instant::now());
    let mut elapsed = Duration::ZERO;
    while last - stored_before < total && last_progress.elapsed() < STALL {
        if sent - (last - stored_before) < WINDOW && sent < total {
            let chunks: Vec<Vec<Vec<u8>>> = floods
                .iter_mut()
                .map(|flood| flood.by_ref().take(CHUNK).collect())
                .collect();
            let publishing = publishers
                .iter()
                .zip(chunks)
                .map(|(publisher, chunk)| publisher.flood(topic.clone(), chunk));
            for count in futures::future::join_all(publishing).await {
                sent += count as u64;
            }
        } else {
            // The window is full: the next store makes room (or the stall check ends the run).
            let _ = tokio::time::timeout(STALL, changes.changed()).await;
        }
        let now = stored(node).await;
        if now > last {
            (last, last_progress) = (now, Instant::now());
            elapsed = started.elapsed();
        }
    }
    // Forwarded copies keep arriving a little after the last store; count them once none has
    // arrived for a second.
    let mut received: Vec<_> = publishers.iter().map(HostilePeer::received).collect();
    loop {
        let next = received
            .iter_mut()
            .map(|receiver| Box::pin(receiver.changed()));
        match tokio::time::timeout(FORWARDS_QUIET, futures::future::select_all(next)).await {
            Ok((Ok(()), _, _)) => {}
            // A quiet second, or a publisher that stopped.
            Err(_) | Ok((Err(_), _, _)) => break,
        }
    }
    let forwarded: u64 = received.iter().map(|receiver| *receiver.borrow()).sum();
    let status = net_status(node).await;
    let pending = node
        .node
        .log()
        .stats()
        .unwrap_or_else(|error| panic!("log stats: {error}"))
        .pending;
    Flood {
        entries: total,
        sent,
        stored: last - stored_before,
        elapsed,
        forwarded: forwarded / (publisher_count as u64 - 1).max(1),
        lost_in_transit: sent.saturating_sub(status.gossip_received),
        status,
        pending,
    }
}

/// `per_author` entries of each of [`AUTHORS_PER_PUBLISHER`] fresh authors, interleaved, each
/// feed in order.
fn signed_entries(per_author: usize) -> Vec<Vec<u8>> {
    let authors: Vec<plexus_crypto::Keypair> = (0..AUTHORS_PER_PUBLISHER)
        .map(|_| plexus_crypto::Keypair::generate())
        .collect();
    let mut previous: Vec<Option<plexus_protocol::Entry>> = vec![None; authors.len()];
    let mut flood = Vec::with_capacity(per_author * authors.len());
    for seq in 1..=per_author as u64 {
        for (author, prev) in authors.iter().zip(previous.iter_mut()) {
            let entry = note(
                author,
                NAMESPACE,
                seq,
                prev.as_ref(),
                "a typical small status update from an agent",
            );
            flood.push(entry.encode());
            *prev = Some(entry);
        }
    }
    flood
}

/// Waits until `count` peers are in the node's mesh for `topic`: forwarding needs them there.
async fn wait_meshed(node: &TestNode, topic: &str, count: usize) {
    let in_mesh = |status: &plexus_node::net::NetStatus| {
        status
            .peers
            .iter()
            .filter(|peer| peer.mesh.iter().any(|meshed| meshed == topic))
            .count()
    };
    wait_for(
        &format!("{count} publishers in the node's mesh"),
        MESH_TIMEOUT,
        &[node],
        || net_status(node),
        |status| in_mesh(status) >= count,
    )
    .await;
}

/// The node's network status.
async fn net_status(node: &TestNode) -> plexus_node::net::NetStatus {
    node.node
        .net()
        .status()
        .await
        .unwrap_or_else(|error| panic!("network status: {error}"))
}

/// Entries in the node's log.
async fn stored(node: &TestNode) -> u64 {
    let log = std::sync::Arc::clone(node.node.log());
    tokio::task::spawn_blocking(move || log.stats())
        .await
        .unwrap_or_else(|error| panic!("log stats task: {error}"))
        .unwrap_or_else(|error| panic!("log stats: {error}"))
        .entries
}
