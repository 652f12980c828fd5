//! Node benchmarks for `scripts/bench.sh`: coordination, API publish and gossip ingest (not a
//! test: it prints figures as JSON and asserts nothing).
//!
//! - `claim-latency --nodes N --claims C`: N nodes on loopback in a ring, each serving its
//!   HTTP API. Round-robin, one node's agent claims a fresh resource through `POST /v1/claims`;
//!   the time runs from the API call until every node's view shows that claim holding the
//!   lease (each node's `lease` event). Prints p50, p95, p99 and max over C claims, after a
//!   warm-up that lets the gossip mesh form.
//! - `publish --entries E --clients K`: one node; K clients publish E entries in total through
//!   `POST /v1/entries`, each answered only once the entry is fsynced. Prints entries/s and
//!   the p50/p99 of one request's round trip.
//! - `ingest --publishers P --entries E`: one node and P plain gossipsub peers (the hostile
//!   test peer, which never validates or stores, so it costs the machine little) that flood E
//!   valid entries in total, pre-signed by 8 authors per publisher, as fast as the node
//!   stores them (at most half its event queue sent and not yet stored). The node's per-peer and per-author ingress limits are lifted (by
//!   default they cap one peer at 5,000 messages/s): this measures the pipeline, not the
//!   limits. Prints entries stored per second at the node, entries per second the publishers
//!   received from it (each entry is forwarded to the P-1 publishers that did not send it), and
//!   the node's own receipt-to-forward p50/p99.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use plexus_node::client::ApiClient;
use plexus_node::node::limits::IngressLimits;
use plexus_tests::cluster::{
    address, connect, shutdown, spawn, spawn_node_with, test_net_config, NodeSpec, TestNode,
    NAMESPACE,
};
use plexus_tests::hostile::{note, note_topic, HostilePeer};
use serde_json::json;
use tokio::sync::broadcast;

/// Claims made and discarded before measuring, while the gossip mesh forms.
const WARM_UP: usize = 5;

/// How long one claim may take to reach every node before the benchmark gives up.
const CLAIM_TIMEOUT: Duration = Duration::from_secs(30);

/// Authors whose entries each ingest publisher floods, interleaved.
const AUTHORS_PER_PUBLISHER: usize = 8;

/// How long the ingest benchmark waits for progress before it reports what arrived.
const INGEST_STALL: Duration = Duration::from_secs(10);

/// How often the ingest benchmark looks at the node's log while it waits for room.
const INGEST_POLL: Duration = Duration::from_millis(2);

/// Entries sent and not yet stored, at most: half the node's event queue.
const INGEST_WINDOW: u64 = (plexus_node::net::EVENT_QUEUE / 2) as u64;

/// Entries each publisher sends at a time.
const INGEST_CHUNK: usize = 64;

/// Coordination benchmarks for scripts/bench.sh: prints figures as JSON, asserts nothing.
#[derive(Debug, Parser)]
#[command(name = "coord-bench")]
enum Benchmark {
    /// Claim round trip across N nodes in a ring, C claims
    ClaimLatency {
        #[arg(long)]
        nodes: usize,
        #[arg(long)]
        claims: usize,
    },
    /// API publish throughput of one node: E entries from K concurrent clients
    Publish {
        #[arg(long)]
        entries: usize,
        #[arg(long)]
        clients: usize,
    },
    /// Sustained gossip ingest of one node: E entries flooded by P publishing peers
    Ingest {
        #[arg(long)]
        publishers: usize,
        #[arg(long)]
        entries: usize,
    },
}

fn main() -> anyhow::Result<()> {
    let benchmark = Benchmark::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match benchmark {
        Benchmark::ClaimLatency { nodes, claims } => runtime.block_on(claim_latency(nodes, claims)),
        Benchmark::Publish { entries, clients } => runtime.block_on(publish(entries, clients)),
        Benchmark::Ingest {
            publishers,
            entries,
        } => runtime.block_on(ingest(publishers, entries)),
    }
}

async fn claim_latency(count: usize, claims: usize) -> anyhow::Result<()> {
    let mut nodes = spawn(count).await;
    for index in 0..count {
        let next = (index + 1) % count;
        if next != index {
            connect(&nodes[index], &nodes[next]).await;
        }
    }
    let mut clients = Vec::new();
    for node in &mut nodes {
        clients.push(node.api().await);
    }
    let mut samples = Vec::new();
    for round in 0..WARM_UP + claims {
        let resource = format!("bench/{round}");
        let receivers: Vec<_> = nodes
            .iter()
            .map(|node| node.node.coord().subscribe())
            .collect();
        let client = &clients[round % count];
        let started = Instant::now();
        let answer = client
            .post(
                "/v1/claims",
                &json!({"resource": resource, "action": "write", "leaseMs": 600_000}),
            )
            .await?;
        let claim_id = answer["claim"]["claim_id"]
            .as_str()
            .context("no claim id")?
            .to_owned();
        let waits = receivers
            .into_iter()
            .map(|receiver| wait_holding(receiver, resource.clone(), claim_id.clone()));
        tokio::time::timeout(CLAIM_TIMEOUT, futures::future::try_join_all(waits))
            .await
            .with_context(|| format!("claim {round} did not reach every node"))??;
        if round >= WARM_UP {
            samples.push(started.elapsed());
        }
    }
    samples.sort();
    let percentile = |quantile: f64| percentile_ms(&samples, quantile);
    println!(
        "{}",
        json!({
            "nodes": count,
            "claims": samples.len(),
            "p50_ms": percentile(0.50),
            "p95_ms": percentile(0.95),
            "p99_ms": percentile(0.99),
            "max_ms": percentile(1.0),
        })
    );
    shutdown(nodes).await;
    Ok(())
}

async fn wait_holding(
    mut receiver: plexus_node::coord::EventReceiver,
    resource: String,
    claim_id: String,
) -> anyhow::Result<()> {
    loop {
        match receiver.recv().await {
            Ok(event)
                if event.event_type == "lease"
                    && event.resource.as_deref() == Some(resource.as_str())
                    && event.data["holders"][0]["claim_id"].as_str() == Some(claim_id.as_str()) =>
            {
                return Ok(())
            }
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => bail!("a node stopped"),
        }
    }
}

async fn publish(entries: usize, client_count: usize) -> anyhow::Result<()> {
    let mut nodes: Vec<TestNode> = spawn(1).await;
    let client: ApiClient = nodes[0].api().await;
    let per_client = entries / client_count;
    let started = Instant::now();
    let workers: Vec<_> = (0..client_count)
        .map(|worker| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_client);
                for n in 0..per_client {
                    let body = json!({"kind": "x-bench", "body": {"worker": worker, "n": n, "text": "a typical small status update from an agent"}});
                    let sent = Instant::now();
                    client.post("/v1/entries", &body).await?;
                    latencies.push(sent.elapsed());
                }
                Ok::<_, anyhow::Error>(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(entries);
    for worker in workers {
        latencies.extend(worker.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let published = per_client * client_count;
    latencies.sort();
    println!(
        "{}",
        json!({
            "entries": published,
            "clients": client_count,
            "seconds": elapsed,
            "per_second": published as f64 / elapsed,
            "p50_ms": percentile_ms(&latencies, 0.50),
            "p99_ms": percentile_ms(&latencies, 0.99),
        })
    );
    shutdown(nodes).await;
    Ok(())
}

async fn ingest(publisher_count: usize, entries: usize) -> anyhow::Result<()> {
    anyhow::ensure!(publisher_count >= 2, "ingest needs at least 2 publishers");
    let limits = IngressLimits {
        peer_per_sec: 1e9,
        author_per_sec: 1e9,
        ..IngressLimits::default()
    };
    let node = spawn_node_with(
        test_net_config(),
        NodeSpec {
            ingress: Some(limits),
            ..NodeSpec::default()
        },
    )
    .await;
    let per_author = entries / (publisher_count * AUTHORS_PER_PUBLISHER);
    // Signed before the clock starts: the publishers stand for peers that signed long ago.
    let floods: Vec<Vec<Vec<u8>>> = (0..publisher_count)
        .map(|_| {
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
        })
        .collect();
    let total = (per_author * AUTHORS_PER_PUBLISHER * publisher_count) as u64;
    let topic = note_topic(NAMESPACE);
    let addr = address(&node).await;
    let mut publishers = Vec::new();
    for _ in 0..publisher_count {
        let publisher = HostilePeer::start();
        publisher.join(addr.clone(), topic.clone()).await;
        publishers.push(publisher);
    }
    // Forwarding needs every publisher in the node's mesh for the topic.
    let topic_text = topic.to_string();
    let meshed = Instant::now();
    loop {
        let status = node.node.net().status().await?;
        let in_mesh = status
            .peers
            .iter()
            .filter(|peer| peer.mesh.contains(&topic_text))
            .count();
        if in_mesh >= publisher_count {
            break;
        }
        anyhow::ensure!(
            meshed.elapsed() < CLAIM_TIMEOUT,
            "only {in_mesh} of {publisher_count} publishers joined the node's mesh"
        );
        tokio::time::sleep(INGEST_POLL).await;
    }
    let stored_before = stored(&node).await?;
    let started = Instant::now();
    // Full speed with flow control: each publisher sends its next chunk while fewer than
    // INGEST_WINDOW entries are sent but not yet stored. Without it the flood outruns the
    // node's event queue, which then drops gossip (as it must: sync repairs it), and these
    // publishers serve no sync, so the run would measure the drops, not the pipeline.
    let mut floods: Vec<std::vec::IntoIter<Vec<u8>>> =
        floods.into_iter().map(Vec::into_iter).collect();
    let (mut sent, mut last, mut last_progress) = (0u64, stored_before, Instant::now());
    let mut finished = started.elapsed();
    while last - stored_before < total && last_progress.elapsed() < INGEST_STALL {
        if sent - (last - stored_before) < INGEST_WINDOW && sent < total {
            let chunks: Vec<Vec<Vec<u8>>> = floods
                .iter_mut()
                .map(|flood| flood.by_ref().take(INGEST_CHUNK).collect())
                .collect();
            let publishing = publishers
                .iter()
                .zip(chunks)
                .map(|(publisher, chunk)| publisher.flood(topic.clone(), chunk));
            for count in futures::future::join_all(publishing).await {
                sent += count as u64;
            }
        } else {
            tokio::time::sleep(INGEST_POLL).await;
        }
        let now = stored(&node).await?;
        if now > last {
            (last, last_progress) = (now, Instant::now());
            finished = started.elapsed();
        }
    }
    let stored_count = last - stored_before;
    // Forwarded copies keep arriving a little after the last store; count them once they stop.
    let mut forwarded = 0;
    let mut settled = Instant::now();
    while settled.elapsed() < Duration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut now = 0;
        for publisher in &publishers {
            now += publisher.received().await;
        }
        if now > forwarded {
            (forwarded, settled) = (now, Instant::now());
        }
    }
    let forwarded_per_entry_copies = forwarded / (publisher_count as u64 - 1);
    let status = node.node.net().status().await?;
    let seconds = finished.as_secs_f64();
    println!(
        "{}",
        json!({
            "publishers": publisher_count,
            "authors": publisher_count * AUTHORS_PER_PUBLISHER,
            "entries": total,
            "stored": stored_count,
            "seconds": seconds,
            "stored_per_second": stored_count as f64 / seconds,
            "forwarded_entries": forwarded_per_entry_copies,
            "forwarded_per_second": forwarded_per_entry_copies as f64 / seconds,
            "dropped_queue_full": status.gossip_dropped_queue_full,
            "pending": node.node.log().stats()?.pending,
            "sent": sent,
            // Sent by the publishers but never received by the node's gossipsub.
            "lost_in_transit": sent.saturating_sub(status.gossip_received),
            "refused": node.node.log().rejection_counts(),
            "receipt_to_forward_p50_ms": status.gossip_forward_latency.p50_us as f64 / 1000.0,
            "receipt_to_forward_p99_ms": status.gossip_forward_latency.p99_us as f64 / 1000.0,
        })
    );
    shutdown(vec![node]).await;
    Ok(())
}

/// Entries in the node's log.
async fn stored(node: &TestNode) -> anyhow::Result<u64> {
    let log = std::sync::Arc::clone(node.node.log());
    Ok(tokio::task::spawn_blocking(move || log.stats())
        .await??
        .entries)
}

fn percentile_ms(sorted: &[Duration], quantile: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 * quantile).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index].as_secs_f64() * 1000.0
}
