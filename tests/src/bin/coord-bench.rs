//! Coordination benchmarks for `scripts/bench.sh` (not a test: it prints figures as JSON and
//! asserts nothing).
//!
//! - `claim-latency --nodes N --claims C`: N nodes on loopback in a ring, each serving its
//!   HTTP API. Round-robin, one node's agent claims a fresh resource through `POST /v1/claims`;
//!   the time runs from the API call until every node's view shows that claim holding the
//!   lease (each node's `lease` event). Prints p50, p95, p99 and max over C claims, after a
//!   warm-up that lets the gossip mesh form.
//! - `publish --entries E --clients K`: one node; K clients publish E entries in total through
//!   `POST /v1/entries`, each answered only once the entry is fsynced. Prints entries/s.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use plexus_node::client::ApiClient;
use plexus_tests::cluster::{connect, shutdown, spawn, TestNode};
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
    let percentile = |p: f64| {
        let index = ((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[index].as_secs_f64() * 1000.0
    };
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
                for n in 0..per_client {
                    let body = json!({"kind": "x-bench", "body": {"worker": worker, "n": n, "text": "a typical small status update from an agent"}});
                    client.post("/v1/entries", &body).await?;
                }
                Ok::<_, anyhow::Error>(())
            })
        })
        .collect();
    for worker in workers {
        worker.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let published = per_client * client_count;
    println!(
        "{}",
        json!({
            "entries": published,
            "clients": client_count,
            "seconds": elapsed,
            "per_second": published as f64 / elapsed,
        })
    );
    shutdown(nodes).await;
    Ok(())
}
