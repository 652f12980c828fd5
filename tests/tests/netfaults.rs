//! Network faults between separate `plexus` processes, each in a network namespace of its own
//! (`tests/src/netns.rs`): partitions and heals, one-way cuts, packet loss and bandwidth caps
//! made with nftables and tc, and what a user must see afterwards: one lease holder
//! everywhere and `claim.lost` for the loser, a policy signed on one side in force on the
//! other, a node restarted while cut off caught up, and nodes that converge on a lossy or slow
//! network.
//!
//! Needs root, iproute2 and nftables. Where namespaces cannot be made each test says so loudly
//! and fails, unless `PLEXUS_ALLOW_NO_NETNS=1`. Rounds per test: `PLEXUS_NETFAULTS_ROUNDS`
//! (default 1; `scripts/faults.sh net` runs 20); each round prints one `netfaults ...` line of
//! figures.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use plexus_tests::netnode::{plexus_binary, wait_same_heads, wait_until, NetNode};
use plexus_tests::netns::{self, Lab};
use serde_json::Value;

/// The coordination namespace of every scenario.
const NAMESPACE: &str = "netfaults";

/// How long nodes get to agree after a heal (or under loss) before the test fails. The
/// measured times are printed; this bound is generous so a loaded machine does not fail it.
const CONVERGENCE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a node may take to connect to the others at the start.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A lease contended across a partition: an agent on each side claims the same resource while
/// cut off, and each side sees its own agent hold it. After the heal every node names the
/// earlier claim's agent as the holder, and the later claimer's node emits `claim.lost`.
#[test]
fn contended_lease_has_one_holder_after_heal() {
    for_each_round("lease", |round| {
        let Some(cluster) = Cluster::start("contended_lease_has_one_holder_after_heal", 3, |_| {
            Vec::new()
        }) else {
            return;
        };
        let (lab, nodes) = (&cluster.lab, &cluster.nodes);
        let resource = "netfaults/contended";
        lab.partition(&[0], &[1, 2]).unwrap();
        let loser_events = nodes[1].follow_events(lab, "claim.won,claim.lost", "netfaults/*");
        // The stream prints nothing when it opens: a claim of its own, seen on it, shows it live.
        let mut probes = 0;
        wait_until("node 1's event stream to be live", CONNECT_TIMEOUT, || {
            probes += 1;
            let probe = format!("netfaults/probe-{probes}");
            claim(lab, &nodes[1], &probe);
            loser_events
                .next_matching(Duration::from_secs(1), |event| {
                    event["type"] == "claim.won" && event["resource"] == probe.as_str()
                })
                .map(|_| ())
        });

        let winner = nodes[0].agent_id();
        let loser = nodes[1].agent_id();
        claim(lab, &nodes[0], resource);
        claim(lab, &nodes[1], resource);
        assert_eq!(holder(lab, &nodes[0], resource).as_deref(), Some(&*winner));
        assert_eq!(
            holder(lab, &nodes[1], resource).as_deref(),
            Some(&*loser),
            "while cut off, node 1 must see its own claim hold"
        );

        lab.heal().unwrap();
        let healed = Instant::now();
        let (_, same_holder) = wait_until("one holder on every node", CONVERGENCE_TIMEOUT, || {
            nodes
                .iter()
                .all(|node| holder(lab, node, resource).as_deref() == Some(&*winner))
                .then_some(())
        });
        let lost = loser_events.next_matching(CONVERGENCE_TIMEOUT, |event| {
            event["type"] == "claim.lost" && event["resource"] == resource
        });
        assert!(
            lost.is_some(),
            "node 1 emitted no claim.lost for {resource} within {CONVERGENCE_TIMEOUT:?}"
        );
        println!(
            "netfaults lease round {round}: converged in {} ms, claim.lost after {} ms",
            same_holder.as_millis(),
            healed.elapsed().as_millis()
        );
    });
}

/// A one-way cut (node 0 hears nothing from the others, they still hear it) during which both
/// sides write; after the heal every node holds every entry.
#[test]
fn one_way_cut_heals_to_the_same_heads() {
    for_each_round("oneway", |round| {
        let Some(cluster) =
            Cluster::start("one_way_cut_heals_to_the_same_heads", 3, |_| Vec::new())
        else {
            return;
        };
        let (lab, nodes) = (&cluster.lab, &cluster.nodes);
        lab.cut_one_way(1, 0).unwrap();
        lab.cut_one_way(2, 0).unwrap();
        for n in 0..5 {
            publish_note(lab, &nodes[0], n, 0);
            publish_note(lab, &nodes[2], n, 0);
        }
        lab.heal().unwrap();
        let took = wait_same_heads(lab, &cluster.node_refs(), 2, CONVERGENCE_TIMEOUT);
        assert_heads_at(lab, &nodes[1], 5);
        println!(
            "netfaults oneway round {round}: converged in {} ms",
            took.as_millis()
        );
    });
}

/// A governed namespace's policy signed by its admin while cut off from the other nodes is in
/// force on them after the heal, and the member it admits can then post everywhere.
#[test]
fn policy_change_made_during_partition_reaches_the_other_side() {
    for_each_round("policy", |round| {
        let Some(cluster) = Cluster::start(
            "policy_change_made_during_partition_reaches_the_other_side",
            3,
            |nodes| {
                vec![
                    "--trust-root".to_owned(),
                    format!("{NAMESPACE}={}", nodes[0].agent_id()),
                ]
            },
        ) else {
            return;
        };
        let (lab, nodes) = (&cluster.lab, &cluster.nodes);
        let member_one = nodes[1].agent_id();
        let member_two = nodes[2].agent_id();
        sign_policy(
            &cluster,
            &[
                "--role",
                "worker=*",
                "--add-member",
                &format!("{member_one}=worker"),
            ],
        );
        wait_until("policy v1 in force everywhere", CONVERGENCE_TIMEOUT, || {
            nodes
                .iter()
                .all(|node| policy_in_force(lab, node) == Some(1))
                .then_some(())
        });

        lab.partition(&[0], &[1, 2]).unwrap();
        sign_policy(&cluster, &["--add-member", &format!("{member_two}=worker")]);
        assert_eq!(policy_in_force(lab, &nodes[0]), Some(2));
        assert_eq!(
            policy_in_force(lab, &nodes[2]),
            Some(1),
            "the cut-off side must not have policy v2 yet"
        );
        lab.heal().unwrap();
        let (_, took) = wait_until("policy v2 in force everywhere", CONVERGENCE_TIMEOUT, || {
            nodes
                .iter()
                .all(|node| policy_in_force(lab, node) == Some(2))
                .then_some(())
        });
        // The member v2 admitted posts; every node takes its entry.
        publish_note(lab, &nodes[2], 1, 0);
        wait_same_heads(lab, &cluster.node_refs(), 2, CONVERGENCE_TIMEOUT);
        println!(
            "netfaults policy round {round}: converged in {} ms",
            took.as_millis()
        );
    });
}

/// A node stopped and started again while cut off (it writes before and after) catches up
/// after the heal: every node ends with the same heads, none missing an entry.
#[test]
fn node_restarted_during_partition_catches_up() {
    for_each_round("restart", |round| {
        let Some(mut cluster) =
            Cluster::start("node_restarted_during_partition_catches_up", 3, |_| {
                Vec::new()
            })
        else {
            return;
        };
        cluster.lab.partition(&[0, 1], &[2]).unwrap();
        for n in 0..5 {
            publish_note(&cluster.lab, &cluster.nodes[0], n, 0);
            publish_note(&cluster.lab, &cluster.nodes[2], n, 0);
        }
        cluster.nodes[2].stop();
        let arguments = cluster.arguments_of(2);
        cluster.nodes[2].start(&cluster.lab, &arguments);
        for n in 5..10 {
            publish_note(&cluster.lab, &cluster.nodes[0], n, 0);
            publish_note(&cluster.lab, &cluster.nodes[2], n, 0);
        }
        cluster.lab.heal().unwrap();
        let took = wait_same_heads(&cluster.lab, &cluster.node_refs(), 2, CONVERGENCE_TIMEOUT);
        for node in &cluster.nodes {
            assert_heads_at(&cluster.lab, node, 10);
        }
        println!(
            "netfaults restart round {round}: converged in {} ms",
            took.as_millis()
        );
    });
}

/// Every node drops 15 % of the packets it receives, at random, while the nodes write on both
/// sides of a partition and after its heal: they still converge (retransmissions, and backfill
/// for what gossip lost).
#[test]
fn nodes_converge_under_packet_loss() {
    converge_under_a_degraded_network(
        "loss",
        "nodes_converge_under_packet_loss",
        |lab| lab.packet_loss(15),
        "15% loss",
        0,
    );
}

/// Every node may send 256 kbit/s only, while the nodes write entries of 8 KiB on both sides
/// of a partition and after its heal: they still converge.
#[test]
fn nodes_converge_under_a_bandwidth_cap() {
    converge_under_a_degraded_network(
        "bandwidth",
        "nodes_converge_under_a_bandwidth_cap",
        |lab| lab.bandwidth_cap(256),
        "256 kbit/s",
        8 * 1024,
    );
}

/// Degrades the network with `degrade`, then has every node write 4 entries (of `padding`
/// bytes) while node 0 is cut off and 4 after the heal; every node must end with every entry.
fn converge_under_a_degraded_network(
    scenario: &str,
    test: &str,
    degrade: impl Fn(&Lab) -> Result<(), netns::LabError>,
    fault: &str,
    padding: usize,
) {
    for_each_round(scenario, |round| {
        let Some(cluster) = Cluster::start(test, 3, |_| Vec::new()) else {
            return;
        };
        degrade(&cluster.lab).unwrap();
        cluster.lab.partition(&[0], &[1, 2]).unwrap();
        for n in 0..8 {
            if n == 4 {
                cluster.lab.heal().unwrap();
            }
            for node in &cluster.nodes {
                publish_note(&cluster.lab, node, n, padding);
            }
        }
        let took = wait_same_heads(&cluster.lab, &cluster.node_refs(), 3, CONVERGENCE_TIMEOUT);
        for node in &cluster.nodes {
            assert_heads_at(&cluster.lab, node, 8);
        }
        println!(
            "netfaults {scenario} round {round}: {fault}, converged in {} ms",
            took.as_millis()
        );
    });
}

/// Nodes running in a lab, all connected to each other. Fields drop in order: the nodes
/// (killed), then the lab (namespaces removed), then the data directories.
struct Cluster {
    nodes: Vec<NetNode>,
    lab: Lab,
    arguments: Vec<Vec<String>>,
    work: tempfile::TempDir,
}

impl Cluster {
    /// Starts `count` nodes, each with the arguments `extra` gives (it sees the initialised
    /// nodes), node 0 first and the others bootstrapping from it; waits until every node is
    /// connected to every other. `None` (after a loud message) where namespaces cannot be made.
    fn start(
        test: &str,
        count: usize,
        extra: impl Fn(&[NetNode]) -> Vec<String>,
    ) -> Option<Cluster> {
        if let Some(reason) = netns::unavailable() {
            netns::skip_or_fail(test, &reason);
            return None;
        }
        let binary = plexus_binary();
        let lab = Lab::new(count).unwrap_or_else(|error| panic!("make the lab: {error}"));
        let work = tempfile::tempdir().unwrap();
        let mut nodes: Vec<NetNode> = (0..count)
            .map(|host| NetNode::init(&binary, work.path(), host, NAMESPACE))
            .collect();
        let common = extra(&nodes);
        let mut arguments = Vec::new();
        for index in 0..count {
            let mut own = common.clone();
            if index > 0 {
                own.extend(["--bootstrap".to_owned(), nodes[0].p2p_address.clone()]);
            }
            nodes[index].start(&lab, &own);
            arguments.push(own);
        }
        let cluster = Cluster {
            nodes,
            lab,
            arguments,
            work,
        };
        wait_until(
            "every node connected to every other",
            CONNECT_TIMEOUT,
            || {
                cluster
                    .nodes
                    .iter()
                    .all(|node| peer_count(&cluster.lab, node) >= count - 1)
                    .then_some(())
            },
        );
        Some(cluster)
    }

    fn arguments_of(&self, index: usize) -> Vec<String> {
        self.arguments[index].clone()
    }

    fn node_refs(&self) -> Vec<&NetNode> {
        self.nodes.iter().collect()
    }

    fn work_dir(&self) -> PathBuf {
        self.work.path().to_path_buf()
    }
}

/// Runs `round` `PLEXUS_NETFAULTS_ROUNDS` times (default 1), each with a lab of its own.
fn for_each_round(scenario: &str, mut round: impl FnMut(String)) {
    let rounds: u32 = std::env::var("PLEXUS_NETFAULTS_ROUNDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(1);
    for index in 1..=rounds {
        eprintln!("netfaults {scenario}: round {index}/{rounds}");
        round(format!("{index}/{rounds}"));
    }
}

fn peer_count(lab: &Lab, node: &NetNode) -> usize {
    let output = node.cli(lab, &["status", "--json"]);
    let status: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    status["network"]["peers"].as_array().map_or(0, Vec::len)
}

fn claim(lab: &Lab, node: &NetNode, resource: &str) {
    node.json(lab, &["claim", resource, "--lease", "5m"]);
}

/// The agent holding `resource` as `node` sees it.
fn holder(lab: &Lab, node: &NetNode, resource: &str) -> Option<String> {
    let answer = node.json(lab, &["leases", "--resource", resource]);
    answer["leases"][0]["holders"][0]["author"]
        .as_str()
        .map(str::to_owned)
}

fn publish_note(lab: &Lab, node: &NetNode, n: u64, padding: usize) {
    let body = format!(r#"{{"n": {n}, "pad": "{}"}}"#, "x".repeat(padding));
    let output = node.cli(lab, &["publish", "--kind", "x-note", "--body", &body]);
    assert!(
        output.status.success(),
        "node {} could not publish: {}",
        node.host,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Asserts that every feed `node` holds has reached `seq`.
fn assert_heads_at(lab: &Lab, node: &NetNode, seq: u64) {
    let heads = node.heads(lab).unwrap_or_default();
    assert!(
        !heads.is_empty() && heads.iter().all(|(_, _, head, _)| *head == seq),
        "node {} should hold every feed up to seq {seq}: {heads:?}",
        node.host
    );
}

/// Has node 0 (the admin) sign the next policy version, made by `plexus policy propose` with
/// `edits`.
fn sign_policy(cluster: &Cluster, edits: &[&str]) {
    let (lab, admin) = (&cluster.lab, &cluster.nodes[0]);
    let file = cluster.work_dir().join("policy.json");
    let file_text = file.display().to_string();
    let mut propose = vec!["policy", "propose"];
    propose.extend_from_slice(edits);
    propose.extend(["--output", &file_text]);
    let output = admin.cli(lab, &propose);
    assert!(
        output.status.success(),
        "policy propose: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    admin.json(lab, &["policy", "sign", &file_text]);
}

/// The policy version in force on `node`.
fn policy_in_force(lab: &Lab, node: &NetNode) -> Option<u64> {
    node.json(lab, &["policy", "show"])["inForce"]["version"].as_u64()
}
