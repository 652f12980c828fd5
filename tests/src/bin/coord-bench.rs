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
use plexus_tests::cluster::{connect, shutdown, spawn, TestNode};
use plexus_tests::ingest;
use serde_json::json;
use tokio::sync::broadcast;

/// Claims made and discarded before measuring, while the gossip mesh forms.
const WARM_UP: usize = 5;

/// How long one claim may take to reach every node before the benchmark gives up.
const CLAIM_TIMEOUT: Duration = Duration::from_secs(30);

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
    let node = ingest::unlimited_node().await;
    let run = ingest::flood(&node, publisher_count, entries).await;
    let seconds = run.elapsed.as_secs_f64();
    println!(
        "{}",
        json!({
            "publishers": publisher_count,
            "authors": publisher_count * ingest::AUTHORS_PER_PUBLISHER,
            "entries": run.entries,
            "stored": run.stored,
            "seconds": seconds,
            "stored_per_second": run.stored as f64 / seconds,
            "forwarded_entries": run.forwarded,
            "forwarded_per_second": run.forwarded as f64 / seconds,
            "dropped_queue_full": run.status.gossip_dropped_queue_full,
            "pending": run.pending,
            "sent": run.sent,
            "lost_in_transit": run.lost_in_transit,
            "refused": node.node.log().rejection_counts(),
            "receipt_to_forward_p50_ms": run.status.gossip_forward_latency.p50_us as f64 / 1000.0,
            "receipt_to_forward_p99_ms": run.status.gossip_forward_latency.p99_us as f64 / 1000.0,
        })
    );
    shutdown(vec![node]).await;
    Ok(())
}

fn percentile_ms(sorted: &[Duration], quantile: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 * quantile).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index].as_secs_f64() * 1000.0
}
