//! `plexus demo`: four agents coordinating through four real nodes on loopback.
//!
//! Each agent (a planner, two coders and a reviewer) gets an identity, a RocksDB log and a
//! node; the nodes gossip over TCP on 127.0.0.1 like separate machines would. A script then
//! walks through what Plexus is for and prints a timeline:
//!
//! 0. the namespace is governed with the planner as admin: it publishes policy v1 (members,
//!    roles, a lease cap), and an entry from an agent outside the policy is refused, with the
//!    rule and the policy version in the rejection journal;
//! 1. the agents publish their cards and each discovers the others' capabilities;
//! 2. the planner posts tasks and a constraint (nobody deploys before a given time);
//! 3. both coders claim the same repository at once: exactly one wins, the same one on every
//!    node, and the loser is told;
//! 4. the winner works, completes its task and releases; the loser is told it now holds the
//!    lease and does its task;
//! 5. an illegal task transition is refused; the deploy claim waits for the constraint;
//! 6. every node exports its log and an offline audit verifies each export, re-deriving every
//!    policy decision.
//!
//! It exits 0 only if every step behaved as described.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use libp2p::Multiaddr;
use plexus_crypto::Keypair;
use plexus_protocol::coord::view::CardQuery;
use plexus_protocol::coord::{
    Body, Capability, ClaimStanding, Constraint, ConstraintRule, Intent, IntentRelease, Pattern,
    Skill, TaskState, TaskStatus, TaskUpdate,
};
use plexus_protocol::policy::{Limits, Member, PolicyBody, RateLimit};
use plexus_protocol::Kind;
use tokio::sync::broadcast;

use super::ui::{keep_running, Kept, PageServer};
use super::DemoArgs;
use crate::audit::{self, Verdict, VerifyOptions};
use crate::clock::now_ms;
use crate::config;
use crate::coord::Event;
use crate::net::NetConfig;
use crate::node::{Node, NodeConfig, SharedNode};
use crate::store::{Log, LogOptions, TrustRoots};

const NAMESPACE: &str = "demo";

/// How long any one step may take before the demo gives up and says which step hung.
const STEP_TIMEOUT: Duration = Duration::from_secs(15);

/// The contested resource.
const REPO: &str = "repo/plexus";

struct Agent {
    name: &'static str,
    /// Shared with the web page's server under `--ui`.
    node: SharedNode,
}

struct Timeline {
    start: Instant,
}

impl Timeline {
    fn say(&self, who: &str, what: impl AsRef<str>) {
        let elapsed = self.start.elapsed().as_secs_f64();
        println!("[{elapsed:6.2}s] {who:<9} {}", what.as_ref());
    }
}

pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let temp;
    let root: PathBuf = match &args.dir {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::Builder::new()
                .prefix("plexus-demo-")
                .tempdir()
                .context("cannot create a temporary directory for the demo")?;
            temp.path().to_path_buf()
        }
    };
    let kept = if args.dir.is_some() {
        ""
    } else {
        " (temporary: pass --dir DIR to keep the files)"
    };
    println!("Plexus demo in {}{kept}", root.display());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let page = args
        .ui
        .then(|| args.api_listen.unwrap_or(DEFAULT_PAGE_ADDRESS));
    let (passed, kept) = runtime.block_on(script(&root, page))?;
    if passed {
        println!("\ndemo verdict: PASS: the non-member refused, one winner everywhere, the loser served next, tasks and constraint respected, every log verified");
    } else {
        println!("\ndemo verdict: FAIL (see above)");
    }
    if let Some(kept) = kept {
        runtime.block_on(keep_running(kept))?;
    }
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Where `--ui` serves the reviewer's web page unless `--api-listen` says otherwise.
const DEFAULT_PAGE_ADDRESS: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 7474);

async fn script(
    root: &Path,
    page_address: Option<std::net::SocketAddr>,
) -> anyhow::Result<(bool, Option<Kept>)> {
    let timeline = Timeline {
        start: Instant::now(),
    };
    let names = ["planner", "coder-1", "coder-2", "reviewer"];
    let keys: Vec<Keypair> = names.iter().map(|_| Keypair::generate()).collect();
    let trust_roots =
        TrustRoots::from([(NAMESPACE.to_owned(), BTreeSet::from([keys[0].agent_id()]))]);
    let mut agents = Vec::new();
    for (name, keypair) in names.into_iter().zip(&keys) {
        agents.push(start_agent(root, name, keypair.clone(), &trust_roots).await?);
    }
    // A ring: every node dials its two neighbours (Kademlia then connects the others too).
    let addresses =
        futures::future::try_join_all(agents.iter().map(|a| listen_address(&a.node))).await?;
    for (index, agent) in agents.iter().enumerate() {
        let next = &addresses[(index + 1) % addresses.len()];
        agent.node.net().dial(next.clone()).await?;
    }
    timeline.say(
        "network",
        format!("{} nodes on 127.0.0.1, connected in a ring", agents.len()),
    );
    for agent in &agents {
        timeline.say(
            agent.name,
            format!("is agent {}", agent.node.agent_id().short()),
        );
    }
    let page = match page_address {
        Some(address) => {
            // The reviewer's node: it also receives, and refuses, the outsider's entry.
            let node = agents[3].node.clone();
            let page = PageServer::start(node, NAMESPACE, &root.join("reviewer"), address).await?;
            timeline.say("reviewer", format!("serves the web page at {}", page.url));
            Some(page)
        }
        None => None,
    };
    let mut events: Vec<_> = agents
        .iter()
        .map(|agent| agent.node.coord().subscribe())
        .collect();
    wait_for_mesh(&agents).await?;

    // 0. Governance.
    let governed_ok = govern(&agents, &timeline).await?;

    // 1. Capabilities.
    let skills = [
        (
            "planner",
            vec![("plan", "Breaks work into tasks", vec!["planning"])],
        ),
        (
            "coder-1",
            vec![("rust", "Writes Rust", vec!["code", "rust"])],
        ),
        (
            "coder-2",
            vec![("rust", "Writes Rust", vec!["code", "rust"])],
        ),
        (
            "reviewer",
            vec![("review", "Reviews changes", vec!["code", "review"])],
        ),
    ];
    for (agent, (_, agent_skills)) in agents.iter().zip(&skills) {
        let card = Capability {
            name: agent.name.to_owned(),
            description: format!("demo agent {}", agent.name),
            version: "1.0".into(),
            url: None,
            skills: agent_skills
                .iter()
                .map(|(id, description, tags)| Skill {
                    id: (*id).into(),
                    name: (*id).into(),
                    description: (*description).into(),
                    tags: tags.iter().map(|tag| (*tag).into()).collect(),
                })
                .collect(),
            ttl_ms: 10 * 60 * 1000,
        };
        agent
            .node
            .publish_body(NAMESPACE, Body::Capability(card))
            .await?;
    }
    wait_all(&agents, "every node to see four cards", |node| {
        node.coord()
            .view()
            .cards(NAMESPACE, &CardQuery::default(), now_ms())
            .len()
            == 4
    })
    .await?;
    let reviewer_view = agents[3].node.coord().view().cards(
        NAMESPACE,
        &CardQuery {
            tag: Some("rust".into()),
            ..CardQuery::default()
        },
        now_ms(),
    );
    let rust_coders: Vec<String> = reviewer_view.iter().map(|card| card.name.clone()).collect();
    timeline.say("all", "every node sees the four cards");
    timeline.say(
        "reviewer",
        format!(
            "searches for skill tag \"rust\": {}",
            rust_coders.join(", ")
        ),
    );

    // 2. Tasks and a constraint.
    let planner = &agents[0];
    for (task, message) in [
        ("T-1", "add rate limiting to repo/plexus"),
        ("T-2", "fix the flaky sync test in repo/plexus"),
    ] {
        planner
            .node
            .update_task(NAMESPACE, task_update(task, TaskState::Submitted, message))
            .await?;
        timeline.say("planner", format!("submits task {task}: {message}"));
    }
    let deploy_at = now_ms() + 3_000;
    let constraint = Constraint {
        resource: "deploy/*".into(),
        rule: ConstraintRule::NotBefore { at: deploy_at },
        ttl_ms: 60_000,
        note: "release freeze until the review is done".into(),
    };
    planner
        .node
        .publish_body(NAMESPACE, Body::Constraint(constraint))
        .await?;
    timeline.say(
        "planner",
        "publishes a constraint: nothing under deploy/* before +3 s",
    );

    // 3. The race.
    let claim = |note: &str| Intent {
        resource: REPO.into(),
        action: "write".into(),
        lease_ms: 60_000,
        note: note.into(),
        priority: 0,
    };
    let (coder_1, coder_2) = (&agents[1], &agents[2]);
    timeline.say(
        "coder-1",
        format!("and coder-2 both claim {REPO} at the same moment"),
    );
    let (first, second) = tokio::join!(
        coder_1.node.claim(NAMESPACE, claim("for T-1")),
        coder_2.node.claim(NAMESPACE, claim("for T-2")),
    );
    let (first, second) = (first?, second?);
    wait_all(&agents, "every node to see both claims", |node| {
        let lease = node.coord().view().lease(NAMESPACE, REPO, now_ms());
        lease.holders.len() + lease.waiting.len() == 2
    })
    .await?;
    let winners: Vec<String> = agents
        .iter()
        .map(|agent| {
            let lease = agent.node.coord().view().lease(NAMESPACE, REPO, now_ms());
            lease
                .holders
                .first()
                .map(|claim| claim.author.clone())
                .unwrap_or_default()
        })
        .collect();
    let same_everywhere = winners.windows(2).all(|pair| pair[0] == pair[1]);
    let (winner, loser, winner_claim, loser_claim, loser_task) =
        if winners[0] == coder_1.node.agent_id().to_string() {
            (1usize, 2usize, first.0.id(), second.0.id(), "T-2")
        } else {
            (2, 1, second.0.id(), first.0.id(), "T-1")
        };
    let winner_task = if loser_task == "T-1" { "T-2" } else { "T-1" };
    for agent in &agents {
        let lease = agent.node.coord().view().lease(NAMESPACE, REPO, now_ms());
        let holder = lease
            .holders
            .first()
            .map(|claim| name_of(&agents, &claim.author))
            .unwrap_or("nobody");
        timeline.say(
            agent.name,
            format!(
                "sees {REPO} held by {holder}, {} waiting",
                lease.waiting.len()
            ),
        );
    }
    if !same_everywhere {
        timeline.say("demo", "FAIL: the nodes disagree on the winner");
        return Ok((false, None));
    }
    let lost = wait_event(&mut events[loser], "claim.lost", &loser_claim.to_string()).await?;
    timeline.say(
        agents[loser].name,
        format!(
            "is told: claim.lost ({})",
            lost.data["claim"]["standing"].as_str().unwrap_or("?")
        ),
    );

    // 4. The winner works and releases; the loser is served next.
    let winner_node = &agents[winner].node;
    winner_node
        .update_task(
            NAMESPACE,
            task_update(winner_task, TaskState::Working, "on it"),
        )
        .await?;
    timeline.say(
        agents[winner].name,
        format!("moves {winner_task} to TASK_STATE_WORKING"),
    );
    winner_node
        .update_task(
            NAMESPACE,
            task_update(winner_task, TaskState::Completed, "merged"),
        )
        .await?;
    timeline.say(
        agents[winner].name,
        format!("moves {winner_task} to TASK_STATE_COMPLETED"),
    );
    winner_node
        .release(
            NAMESPACE,
            IntentRelease {
                claim: winner_claim.to_string(),
            },
        )
        .await?;
    timeline.say(agents[winner].name, format!("releases {REPO}"));
    let won = wait_event(&mut events[loser], "claim.won", &loser_claim.to_string()).await?;
    timeline.say(
        agents[loser].name,
        format!(
            "is told: claim.won, it now holds {REPO} (event #{})",
            won.id
        ),
    );
    let loser_node = &agents[loser].node;
    loser_node
        .update_task(
            NAMESPACE,
            task_update(loser_task, TaskState::Working, "on it"),
        )
        .await?;
    loser_node
        .update_task(
            NAMESPACE,
            task_update(loser_task, TaskState::Completed, "fixed"),
        )
        .await?;
    timeline.say(
        agents[loser].name,
        format!("moves {loser_task} through WORKING to COMPLETED"),
    );

    // 5. Rules: an illegal transition, and the constraint.
    let refused = winner_node
        .update_task(
            NAMESPACE,
            task_update(winner_task, TaskState::Working, "one more thing"),
        )
        .await;
    let refused_ok = match refused {
        Err(error) => {
            timeline.say(
                agents[winner].name,
                format!("tries to reopen {winner_task}: refused: {error}"),
            );
            true
        }
        Ok(_) => {
            timeline.say("demo", "FAIL: a completed task was reopened");
            false
        }
    };
    let deploy = Intent {
        resource: "deploy/staging".into(),
        action: "deploy".into(),
        lease_ms: 30_000,
        note: "ship T-1 and T-2".into(),
        priority: 0,
    };
    let (deploy_entry, standing) = agents[3].node.claim(NAMESPACE, deploy).await?;
    let blocked = matches!(standing.standing, ClaimStanding::Blocked { .. });
    timeline.say(
        "reviewer",
        format!("claims deploy/staging: {}", describe(standing.standing)),
    );
    wait_all(
        &agents,
        "every node to see the deploy claim blocked",
        |node| {
            let lease = node
                .coord()
                .view()
                .lease(NAMESPACE, "deploy/staging", now_ms());
            lease.excluded.len() == 1 || now_ms() >= deploy_at
        },
    )
    .await?;
    timeline.say(
        "all",
        "every node keeps deploy/staging empty until the freeze ends",
    );
    wait_event(&mut events[3], "claim.won", &deploy_entry.id().to_string()).await?;
    let respected = now_ms() >= deploy_at;
    timeline.say(
        "reviewer",
        format!(
            "is told: claim.won on deploy/staging, {} ms after the freeze ended",
            now_ms().saturating_sub(deploy_at)
        ),
    );
    let pattern = Pattern {
        topic: "flaky-tests".into(),
        summary: "sync tests flake when they sleep; wait on a change notification instead".into(),
        data: serde_json::json!({"fix": "watch channel", "tasks": ["T-2"]}),
        confidence: 0.9,
        references: Vec::new(),
    };
    agents[3]
        .node
        .publish_body(NAMESPACE, Body::Pattern(pattern))
        .await?;
    timeline.say("reviewer", "shares a learned pattern on flaky-tests");

    // Everyone converges on the same view.
    let total: u64 = agents
        .iter()
        .map(|a| a.node.log().stats().map(|s| s.entries).unwrap_or(0))
        .max()
        .unwrap_or(0);
    wait_all(&agents, "every node to hold and fold every entry", |node| {
        node.log().stats().map(|s| s.entries).unwrap_or(0) == total
            && node.coord().applied() == total
    })
    .await?;
    let at = now_ms();
    let digests: Vec<String> = agents
        .iter()
        .map(|a| a.node.coord().view().digest(at).short())
        .collect();
    let converged = digests.windows(2).all(|pair| pair[0] == pair[1]);
    timeline.say(
        "all",
        format!(
            "{total} entries on every node; view digest at {at}ms: {}",
            digests.join(" ")
        ),
    );

    // 6. Audit.
    let mut audited = true;
    let mut handles = Vec::new();
    let mut running = Vec::new();
    for agent in agents {
        let path = root.join(format!("{}.plexus", agent.name));
        let log = Arc::clone(agent.node.log());
        let keypair = config::load_key_file(&root.join(agent.name).join(config::KEY_FILE))?;
        if page.is_some() {
            // Kept for the web page: the script is over, so nothing writes while it exports.
            running.push(agent.node);
        } else {
            agent.node.shutdown().await?;
        }
        handles.push((agent.name, path, log, keypair));
    }
    for (name, path, log, keypair) in handles {
        let summary = audit::export_to_file(&log, &keypair, &path, now_ms())?;
        let options = VerifyOptions {
            trust_roots: trust_roots.clone(),
            ..VerifyOptions::default()
        };
        let report = audit::verify_file(&path, &options, &())?;
        let verified = report.verdict == Verdict::Verified && report.policy_decisions > 0;
        audited &= verified;
        timeline.say(
            name,
            format!(
                "exports {} entries to {} and the offline audit says: {} ({} policy decisions \
                 re-derived)",
                summary.entries,
                path.file_name().and_then(|n| n.to_str()).unwrap_or("?"),
                if verified { "verified" } else { "FAILED" },
                report.policy_decisions
            ),
        );
    }
    let passed = governed_ok
        && same_everywhere
        && refused_ok
        && blocked
        && respected
        && converged
        && audited;
    let kept = page.map(|page| Kept {
        page,
        nodes: running,
    });
    Ok((passed, kept))
}

/// The planner (the trust root) publishes policy v1; an agent outside it tries to claim the
/// repository, and the reviewer's node refuses the entry. True if all went as described.
async fn govern(agents: &[Agent], timeline: &Timeline) -> anyhow::Result<bool> {
    let planner = &agents[0];
    let worker = [
        Kind::Capability,
        Kind::Intent,
        Kind::IntentRenew,
        Kind::IntentRelease,
        Kind::Task,
        Kind::Pattern,
    ];
    let members: Vec<Member> = agents
        .iter()
        .skip(1)
        .map(|agent| Member {
            agent: agent.node.agent_id().to_string(),
            roles: vec!["worker".into()],
        })
        .collect();
    let policy = PolicyBody {
        version: 1,
        effective_from: None,
        roles: [(
            "worker".to_owned(),
            worker.iter().map(|kind| kind.as_str().to_owned()).collect(),
        )]
        .into(),
        members,
        revoked: Vec::new(),
        limits: Limits {
            max_lease_ms: Some(10 * 60 * 1000),
            rate: Some(RateLimit {
                entries: 100,
                window_ms: 10_000,
            }),
            ..Limits::default()
        },
        note: "demo team".into(),
    };
    planner
        .node
        .publish_body(NAMESPACE, Body::Policy(policy))
        .await?;
    timeline.say(
        "planner",
        "is the namespace's admin: publishes policy v1 (3 members as workers, leases up to \
         10 min, 100 entries per 10 s each)",
    );
    wait_all(agents, "policy v1 in force on every node", |node| {
        node.log()
            .governor()
            .book(NAMESPACE)
            .and_then(|book| book.in_force(now_ms()))
            .is_some_and(|record| record.version == 1)
    })
    .await?;
    // An agent nobody admitted signs a claim on the repository; its entry reaches the
    // reviewer's node as if gossiped by a peer.
    let intruder = Keypair::generate();
    let claim = Body::Intent(Intent {
        resource: REPO.into(),
        action: "write".into(),
        lease_ms: 60_000,
        note: "let me in".into(),
        priority: 9,
    });
    let entry = plexus_protocol::Entry::sign(
        &intruder,
        plexus_protocol::Draft {
            namespace: NAMESPACE.into(),
            seq: 1,
            prev: None,
            timestamp_ms: now_ms(),
            kind: Kind::Intent.as_str().into(),
            body: claim.encode()?,
        },
    )?;
    let reviewer = &agents[3].node;
    let outcome = reviewer.submit(entry.encode()).await?;
    let record = reviewer.log().rejections()?.into_iter().last();
    let refused = matches!(outcome, crate::store::IngestOutcome::Rejected { .. })
        && record
            .as_ref()
            .is_some_and(|record| record.rule.as_deref() == Some("not-member"));
    match record {
        Some(record) if refused => timeline.say(
            "reviewer",
            format!(
                "refuses a claim by unknown agent {}: {}:{} under policy v{}: {}",
                intruder.agent_id().short(),
                record.reason,
                record.rule.unwrap_or_default(),
                record.policy_version.unwrap_or_default(),
                record.detail
            ),
        ),
        _ => timeline.say(
            "reviewer",
            format!("STORED an entry by a non-member: {outcome:?}"),
        ),
    }
    Ok(refused)
}

async fn start_agent(
    root: &Path,
    name: &'static str,
    keypair: Keypair,
    trust_roots: &TrustRoots,
) -> anyhow::Result<Agent> {
    let data_dir = root.join(name);
    config::create_key_file(&data_dir.join(config::KEY_FILE), &keypair)?;
    let log = Arc::new(Log::open_with(
        &data_dir,
        LogOptions {
            trust_roots: trust_roots.clone(),
            ..LogOptions::default()
        },
    )?);
    let net = NetConfig::loopback();
    let node = Node::start(
        keypair,
        log,
        NodeConfig {
            net,
            namespaces: vec![NAMESPACE.to_owned()],
            quarantine_forkers: true,
            clock_skew_ms: plexus_protocol::coord::DEFAULT_CLOCK_SKEW_MS,
            view_history_ms: crate::coord::DEFAULT_VIEW_HISTORY_MS,
            ingress: crate::node::limits::IngressLimits::default(),
        },
    )
    .await?;
    Ok(Agent {
        name,
        node: SharedNode::new(node),
    })
}

async fn listen_address(node: &Node) -> anyhow::Result<Multiaddr> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    loop {
        ticker.tick().await;
        let status = node.net().status().await?;
        if let Some(address) = status.listen_addrs.first() {
            return Ok(format!("{address}/p2p/{}", node.net().peer_id()).parse()?);
        }
        if Instant::now() > deadline {
            bail!("a demo node did not start listening");
        }
    }
}

/// Waits until every node has a gossip mesh peer for the demo's topics, so the first entries
/// are not published into an empty mesh (backfill would still deliver them, only later).
async fn wait_for_mesh(agents: &[Agent]) -> anyhow::Result<()> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    let mut ticker = tokio::time::interval(Duration::from_millis(50));
    loop {
        ticker.tick().await;
        let mut ready = true;
        for agent in agents {
            ready &= agent.node.net().status().await?.peers.len() >= 2;
        }
        if ready {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the demo nodes did not connect within {STEP_TIMEOUT:?}");
        }
    }
}

/// Waits until `predicate` holds on every node, re-checking whenever a log changes.
async fn wait_all(
    agents: &[Agent],
    what: &str,
    predicate: impl Fn(&Node) -> bool,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    let mut changes: Vec<_> = agents.iter().map(|agent| agent.node.changes()).collect();
    loop {
        if agents.iter().all(|agent| predicate(&agent.node)) {
            return Ok(());
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            bail!("timed out after {STEP_TIMEOUT:?} waiting for {what}");
        }
        let any_change = futures::future::select_all(
            changes
                .iter_mut()
                .map(|receiver| Box::pin(receiver.changed())),
        );
        // Leases also change with time alone, so re-check at least every lease tick.
        let _ =
            tokio::time::timeout_at(deadline.min(now + crate::node::LEASE_TICK), any_change).await;
    }
}

/// Waits for this agent's `event_type` event about `claim_id`.
async fn wait_event(
    events: &mut crate::coord::EventReceiver,
    event_type: &str,
    claim_id: &str,
) -> anyhow::Result<Arc<Event>> {
    let wait = async {
        loop {
            match events.recv().await {
                Ok(event)
                    if event.event_type == event_type
                        && event.data["claim"]["claim_id"].as_str() == Some(claim_id) =>
                {
                    return Ok(event)
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => bail!("the node stopped"),
            }
        }
    };
    tokio::time::timeout(STEP_TIMEOUT, wait)
        .await
        .with_context(|| format!("timed out waiting for {event_type} on claim {claim_id}"))?
}

fn task_update(task_id: &str, state: TaskState, message: &str) -> TaskUpdate {
    TaskUpdate {
        task_id: task_id.into(),
        context_id: "demo-sprint".into(),
        status: TaskStatus {
            state,
            message: message.into(),
        },
        references: Vec::new(),
    }
}

fn name_of<'a>(agents: &'a [Agent], author: &str) -> &'a str {
    agents
        .iter()
        .find(|agent| agent.node.agent_id().to_string() == author)
        .map_or("someone else", |agent| agent.name)
}

fn describe(standing: ClaimStanding) -> String {
    match standing {
        ClaimStanding::Holding => "holding".into(),
        ClaimStanding::Waiting { position } => format!("waiting (position {position})"),
        ClaimStanding::Blocked { until_ms } => {
            format!(
                "blocked by the constraint for {} ms more",
                until_ms.saturating_sub(now_ms())
            )
        }
        ClaimStanding::RateLimited => "rate-limited".into(),
        ClaimStanding::Expired => "expired".into(),
        ClaimStanding::Released => "released".into(),
    }
}
