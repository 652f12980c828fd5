//! The `propagation` subcommand: the three clusters on one topology, the rounds, and the
//! JSON summary.

use std::collections::BTreeSet;

use anyhow::bail;
use plexus_crypto::Keypair;
use plexus_node::net::NetConfig;
use plexus_protocol::{Draft, Entry};
use plexus_tests::cluster::NAMESPACE;

use crate::{
    body,
    measure::{Background, Meter, Sample},
    plain::{PlainSide, Stack},
    plexus::PlexusSide,
    ring_edges, IDLE_SAMPLE, IDLE_SAMPLES, KIND, STABLE_CHECKS, TOPOLOGY_CHECKS,
    TOPOLOGY_CHECK_INTERVAL, WARMUP_MESSAGES,
};

/// `only`: for profiling one side, the rounds publish only on it (the others still run, idle).
pub(crate) fn propagation(
    nodes: usize,
    messages: u64,
    rounds: u64,
    only: Option<&str>,
) -> anyhow::Result<()> {
    if nodes < 2 {
        bail!("--nodes must be at least 2");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let net = NetConfig {
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse()?],
            mdns: false,
            ..NetConfig::default()
        };
        // The clusters start alike: the same ring, then warm-up traffic. Plexus nodes then add
        // connections as Kademlia tells them of each other, over seconds; once that has
        // settled, the plain swarms dial the same extra connections in the same directions, so
        // all measure on one topology with meshes grown the same way.
        let ring = ring_edges(nodes);
        let mut plexus = PlexusSide::start(nodes, &net).await;
        let mut plain = PlainSide::start(nodes, &net, Stack::Gossipsub).await?;
        let mut stacked = PlainSide::start(nodes, &net, Stack::Full).await?;
        for side in [&mut plain, &mut stacked] {
            side.connect(&ring).await?;
        }
        for _ in 0..WARMUP_MESSAGES {
            plexus.publish_one().await?;
            plain.publish_one().await?;
            stacked.publish_one().await?;
        }
        // No event tells when Kademlia has found everyone: the connections are polled on a
        // timer, and a stretch of checks without a change counts as settled.
        let complete = nodes * (nodes - 1) / 2;
        let mut edges = plexus.edges().await?;
        let mut unchanged = 0;
        let mut checks = tokio::time::interval(TOPOLOGY_CHECK_INTERVAL);
        checks.tick().await;
        for _ in 0..TOPOLOGY_CHECKS {
            if edges.len() == complete || unchanged == STABLE_CHECKS {
                break;
            }
            checks.tick().await;
            let now = plexus.edges().await?;
            unchanged = if now == edges { unchanged + 1 } else { 0 };
            edges = now;
        }
        // Same pairs and same directions: gossipsub keeps outbound peers in its meshes.
        let extra: BTreeSet<(usize, usize)> = edges
            .iter()
            .filter(|&&(from, to)| !ring.contains(&(from.min(to), from.max(to))))
            .copied()
            .collect();
        for side in [&mut plain, &mut stacked] {
            side.connect(&extra).await?;
            for _ in 0..WARMUP_MESSAGES {
                side.publish_one().await?;
            }
        }
        // The new connections keep the swarms busy for a while (identify, Kademlia, mesh
        // upkeep): wait for the background to settle, so neither it nor its transient lands in
        // the first rounds, and keep the settled figure.
        let mut idle = Background::measure(IDLE_SAMPLE).await;
        for _ in 0..IDLE_SAMPLES {
            let next = Background::measure(IDLE_SAMPLE).await;
            let settled = next.cpu_ms_per_second >= idle.cpu_ms_per_second * 0.8;
            idle = next;
            if settled {
                break;
            }
        }
        let (mut ours, mut after_publish) = (Sample::default(), Sample::default());
        let (mut theirs, mut theirs_stacked) = (Sample::default(), Sample::default());
        eprintln!("measuring");
        for round in 1..=rounds {
            let meter = Meter::start();
            let plexus_messages = if only.is_none_or(|side| side == "plexus") {
                messages
            } else {
                0
            };
            for _ in 0..plexus_messages {
                match plexus.publish_one().await? {
                    Some((latency, publishing)) => {
                        ours.add(latency);
                        after_publish.add(latency.saturating_sub(publishing));
                    }
                    None => ours.lost += 1,
                }
            }
            ours.charge(meter);
            if only.is_none_or(|side| side == "gossipsub") {
                theirs.measure(&mut plain, messages).await?;
            }
            if only.is_none_or(|side| side == "stack") {
                theirs_stacked.measure(&mut stacked, messages).await?;
            }
            eprintln!("propagation round {round}/{rounds} done");
        }
        let edges_after = plexus.edges().await?;
        let meshes = [
            plexus.mean_mesh_size().await?,
            plain.mean_mesh_size().await?,
            stacked.mean_mesh_size().await?,
        ];
        let (forward_p50_ms, forward_p99_ms) = plexus.forward_latency().await?;
        plain.stop().await;
        stacked.stop().await;
        plexus.stop().await;
        let total = rounds * messages;
        let report = serde_json::json!({
            "nodes": nodes,
            "edges": edges.len(),
            "edges_after": edges_after.len(),
            "messages_per_round": messages,
            "rounds": rounds,
            "payload_bytes": plexus_payload_len(),
            "idle_cpu_ms_per_second": idle.cpu_ms_per_second,
            "idle_bytes_per_second": idle.bytes_per_second,
            "plexus": ours.summary(total, meshes[0], idle),
            "plexus_after_publish": after_publish.summary(total, meshes[0], idle),
            "gossipsub": theirs.summary(total, meshes[1], idle),
            "libp2p_stack": theirs_stacked.summary(total, meshes[2], idle),
            "p50_ratio": ours.percentile(0.50) / theirs.percentile(0.50),
            "p99_ratio": ours.percentile(0.99) / theirs.percentile(0.99),
            "p99_ratio_after_publish":
                after_publish.percentile(0.99) / theirs.percentile(0.99),
            "p50_ratio_to_stack": ours.percentile(0.50) / theirs_stacked.percentile(0.50),
            "p99_ratio_to_stack": ours.percentile(0.99) / theirs_stacked.percentile(0.99),
            "receipt_to_forward_p50_ms": forward_p50_ms,
            "receipt_to_forward_p99_ms": forward_p99_ms,
        });
        println!("{report}");
        anyhow::Ok(())
    })
}

/// The size of a benchmark message on the wire (both sides carry envelopes of this size).
fn plexus_payload_len() -> usize {
    let keypair = Keypair::from_seed(&[7; 32]);
    Entry::sign(
        &keypair,
        Draft {
            namespace: NAMESPACE.into(),
            seq: 1,
            prev: None,
            timestamp_ms: 1_767_225_600_000,
            kind: KIND.into(),
            body: body(0),
        },
    )
    .map(|entry| entry.encode().len())
    .unwrap_or(0)
}
