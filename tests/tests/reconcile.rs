//! Anti-entropy by range-based reconciliation of feed heads, between real nodes on 127.0.0.1:
//! a fresh node converges with a peer holding 100,000 feeds, two nodes already in sync pay one
//! small round per session, whatever they hold, a peer announcing 100,000 fake feeds gets
//! bounded work out of the node, and a peer of a version before `Ranges` is asked one `Range`
//! at a time and still delivers everything.
//! Feeds are written straight into the logs (one entry each, signed by its own key), not
//! gossiped, so the tests measure sync alone.

use std::time::{Duration, Instant};

use plexus_crypto::{sha256, Keypair};
use plexus_node::net::sync::{MAX_IN_FLIGHT_PER_PEER, MAX_QUEUED_PER_PEER};
use plexus_protocol::reconcile::Item;
use plexus_protocol::{Entry, FeedHead, FeedKey};
use plexus_tests::cluster::{
    address, connect, publish_note, shutdown, spawn, spawn_node, test_net_config, wait_for,
    TestNode, NAMESPACE,
};
use plexus_tests::fixtures;
use plexus_tests::hostile::{note_topic, HostilePeer};
use rayon::prelude::*;

/// How long a fresh node may take to converge with a peer holding 100,000 feeds.
const CONVERGENCE_TIMEOUT: Duration = Duration::from_secs(300);

/// Feeds of one entry each in the test namespace (see [`fixtures::one_entry_feeds`]).
fn one_entry_feeds(count: usize, first_seed: u64) -> Vec<Entry> {
    fixtures::one_entry_feeds(NAMESPACE, count, first_seed)
}

/// Writes `entries` into the node's log directly (as if it had held them for long).
async fn store_directly(node: &TestNode, entries: Vec<Entry>) {
    let log = std::sync::Arc::clone(node.node.log());
    tokio::task::spawn_blocking(move || {
        for chunk in entries.chunks(10_000) {
            log.ingest_entries(chunk.to_vec(), "test", 1_767_225_700_000)
                .unwrap_or_else(|error| panic!("storing fixture feeds: {error}"));
        }
    })
    .await
    .unwrap_or_else(|error| panic!("storing task: {error}"));
}

fn feed_count(node: &TestNode) -> u64 {
    node.node
        .log()
        .stats()
        .unwrap_or_else(|error| panic!("stats: {error}"))
        .feeds
}

fn heads(node: &TestNode) -> Vec<(FeedKey, FeedHead)> {
    node.node
        .log()
        .heads()
        .unwrap_or_else(|error| panic!("heads: {error}"))
}

/// The whole sync path at scale: reconciliation over 100,000 feed heads, `Ranges` fetches of
/// 128 feeds each, batch verification and writes. It runs alone (nextest test group
/// `sync-scale` with every test thread, `.config/nextest.toml`), so its timeout is sized for
/// both cores, not for a share of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_node_converges_with_a_peer_holding_100_000_feeds() {
    const FEEDS: usize = 100_000;
    let holder = spawn_node(test_net_config()).await;
    store_directly(&holder, one_entry_feeds(FEEDS, 2_000_000)).await;
    let fresh = spawn_node(test_net_config()).await;
    connect(&fresh, &holder).await;
    let connected = Instant::now();
    // Counted from the log's counters (O(1)), so polling costs the writer nothing.
    let holder_feeds = feed_count(&holder);
    assert!(holder_feeds >= FEEDS as u64);
    wait_for(
        "the fresh node to hold as many feeds as its peer",
        CONVERGENCE_TIMEOUT,
        &[],
        || async { feed_count(&fresh) },
        |feeds| *feeds >= holder_feeds,
    )
    .await;
    let converged = connected.elapsed();
    // The same heads on both sides: every feed at its one entry, none missing, none extra.
    wait_for(
        "the fresh node's feed heads to equal its peer's",
        Duration::from_secs(60),
        &[],
        || async { heads(&fresh) == heads(&holder) },
        |equal| *equal,
    )
    .await;
    // Feeds of one entry are fetched many to a request: one request per feed (100,000 round
    // trips) is what made this too slow before `Ranges`.
    let status = fresh.node.net().status().await.unwrap();
    let holder_status = holder.node.net().status().await.unwrap();
    println!(
        "figure | fresh node against 100,000 feeds | converged in {converged:?}; {} reconcile \
         sessions, {} messages ({} bytes); {} fetch requests ({} bytes of entries); {} \
         requests refused as busy by the peer",
        status.reconcile.sessions,
        status.reconcile.messages,
        status.reconcile.bytes,
        status.fetch.requests,
        status.fetch.bytes,
        holder_status.sync_requests_refused
    );
    assert!(
        status.fetch.requests <= (FEEDS / 32) as u64,
        "{} fetch requests for {FEEDS} feeds of one entry",
        status.fetch.requests
    );
    shutdown(vec![fresh, holder]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_in_sync_pay_one_small_round_per_session() {
    const FEEDS: usize = 20_000;
    let first = spawn_node(test_net_config()).await;
    let second = spawn_node(test_net_config()).await;
    let feeds = one_entry_feeds(FEEDS, 1_000_000);
    store_directly(&first, feeds.clone()).await;
    store_directly(&second, feeds).await;
    connect(&first, &second).await;
    // Sessions start on connecting and every anti-entropy interval (2 s here): wait for a few.
    let status = wait_for(
        "three finished reconciliation sessions",
        Duration::from_secs(60),
        &[],
        || async { first.node.net().status().await.unwrap() },
        |status| status.reconcile.sessions >= 3,
    )
    .await;
    let cost = status.reconcile;
    // Equal sets: one range asked, `Equal` answered. A request is the namespace, two 32-byte
    // bounds (one null) and a 32-byte fingerprint with CBOR framing (~130 bytes), the answer
    // ~30 bytes. The heads list this replaces was ~120 bytes per feed: 2.4 MB here.
    assert!(
        cost.messages <= 2 * cost.sessions,
        "{} messages for {} sessions",
        cost.messages,
        cost.sessions
    );
    assert!(
        cost.bytes <= 256 * cost.sessions,
        "{} bytes for {} sessions",
        cost.bytes,
        cost.sessions
    );
    assert_eq!(
        status.entries_fetched, 0,
        "nothing to fetch between equal logs"
    );
    shutdown(vec![first, second]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_announcing_100_000_fake_feeds_costs_bounded_work() {
    let nodes = spawn(2).await;
    let (target, honest) = (&nodes[0], &nodes[1]);
    connect(honest, target).await;
    // Valid author keys (so every one names a feed the node could fetch), each claiming a
    // million entries; the hostile peer serves none of them.
    let fake: Vec<Item> = (0..100_000u64)
        .into_par_iter()
        .map(|index| {
            let mut seed = [0xfa; 32];
            seed[..8].copy_from_slice(&index.to_be_bytes());
            Item {
                key: *Keypair::from_seed(&seed).agent_id().as_bytes(),
                seq: 1_000_000,
                id: sha256(&seed).0,
            }
        })
        .collect();
    let hostile = HostilePeer::start();
    hostile.announce(fake).await;
    hostile
        .join(address(target).await, note_topic(NAMESPACE))
        .await;
    // The node reconciles with it and queues fetches of the fake feeds, up to its bound.
    let status = wait_for(
        "the node to queue fetches of the announced feeds",
        Duration::from_secs(60),
        &[],
        || async { target.node.net().status().await.unwrap() },
        |status| status.sync_ranges_queued > 0,
    )
    .await;
    assert!(status.sync_ranges_queued <= MAX_QUEUED_PER_PEER);
    // While the attack runs, honest entries still arrive and the bounds hold.
    for n in 1..=5 {
        let entry = publish_note(honest, n).await;
        wait_for(
            "an honest entry on the attacked node",
            Duration::from_secs(60),
            &[target],
            || async { target.node.log().contains(&entry.id()).unwrap_or(false) },
            |held| *held,
        )
        .await;
        let status = target.node.net().status().await.unwrap();
        assert!(
            status.sync_ranges_queued <= MAX_QUEUED_PER_PEER,
            "{} ranges queued",
            status.sync_ranges_queued
        );
    }
    // Rounds are held back while the fetch queue lacks room for what an answer can name, and
    // the attacker never serves the fetches that would free it: the session stops after the
    // few rounds that reach its first listed ranges (a walk of all 100,000 feeds would take
    // about 800 messages).
    let status = target.node.net().status().await.unwrap();
    eprintln!(
        "fake-feed announcer: {} reconcile messages, {} bytes, {} ranges queued",
        status.reconcile.messages, status.reconcile.bytes, status.sync_ranges_queued
    );
    assert!(
        status.reconcile.messages < 64,
        "{} reconciliation messages: the session was not held back by the fetch queue",
        status.reconcile.messages
    );
    // Nothing of the fake feeds was stored: only the honest peer's feed is held.
    assert_eq!(feed_count(target), 1);
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_fails_ranges_requests_is_asked_one_range_at_a_time() {
    const FEEDS: usize = 200;
    let node = spawn_node(test_net_config()).await;
    // A peer of a version before `Ranges`: it reconciles and serves `Range` requests, and every
    // `Ranges` request to it fails.
    let old_peer = HostilePeer::start();
    old_peer
        .serve(one_entry_feeds(FEEDS, 3_000_000), true)
        .await;
    old_peer
        .join(address(&node).await, note_topic(NAMESPACE))
        .await;
    // Everything it holds still arrives, and only by `Range` requests (its feeds reach the
    // node in no other way).
    wait_for(
        "the node to hold the old peer's feeds",
        Duration::from_secs(240),
        &[&node],
        || async { feed_count(&node) },
        |feeds| *feeds == FEEDS as u64,
    )
    .await;
    let tally = old_peer.served_tally().await;
    assert!(
        tally.range_requests >= FEEDS as u64,
        "{FEEDS} feeds arrived with only {} range requests",
        tally.range_requests
    );
    // The node tried `Ranges`, and after the first failure asked no more of them on this
    // connection: at most the requests already in flight when it failed.
    assert!(
        (1..=MAX_IN_FLIGHT_PER_PEER as u64).contains(&tally.ranges_requests),
        "{} ranges requests to a peer that fails them",
        tally.ranges_requests
    );
    shutdown(vec![node]).await;
}
