//! A running node: the log, the network task and the ingest worker, wired together.
//!
//! ```text
//!   agent / CLI / tests            swarm task (owns the Swarm)          ingest worker (thread)
//!   Node::publish ─ append_own ─► Command::Publish ─► gossipsub
//!                                 gossip, sync traffic ── NetEvent ──► validate, store, plan
//!                                 ◄── Command::Validate / Respond / Fetch ──┘
//! ```
//!
//! Every local change (an accepted entry, a fork proof) bumps a counter on a `watch` channel,
//! so callers can wait for the log to change instead of polling on a timer.

#[cfg(test)]
mod bounds_tests;
mod ingest;
pub mod limits;
mod reconcile;
mod serve;
mod shared;
#[cfg(test)]
mod start_tests;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use plexus_crypto::{AgentId, Keypair};
use plexus_protocol::coord::{
    parse_entry_id, Body, BodyError, ClaimView, Intent, IntentRelease, IntentRenew, TaskUpdate,
};
use plexus_protocol::entry::check_name;
use plexus_protocol::{Entry, FeedHead, FeedKey, ForkProof};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use crate::clock::now_ms;
use crate::coord::Coordinator;
use crate::net::behaviour::{build_swarm, BuildError};
use crate::net::task::SwarmTask;
use crate::net::{self, topics, NetConfig, NetError, NetStatus, NetworkHandle};
use crate::store::{IngestOutcome, Log, LogStats, StoreError};

pub use serve::answer_ranges;
pub use shared::{SharedNode, RELEASE_TIMEOUT};

/// How a node runs.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The network settings.
    pub net: NetConfig,
    /// Namespaces to follow from the start (more are followed as the agent publishes in them).
    pub namespaces: Vec<String>,
    /// Whether an author proven to have forked a feed is quarantined: its later entries in that
    /// namespace are neither stored nor forwarded.
    pub quarantine_forkers: bool,
    /// The clock-skew window for live claims (see `docs/PROTOCOL.md` §9.4); a governed
    /// namespace's policy may set its own.
    pub clock_skew_ms: u64,
    /// How far back the coordination view answers (`?at=`): it forgets what ended before
    /// (the log keeps everything). See [`crate::coord::DEFAULT_VIEW_HISTORY_MS`].
    pub view_history_ms: u64,
    /// Per-peer and per-author gossip rates, and when to block a peer sending invalid data.
    pub ingress: limits::IngressLimits,
}

/// Errors of a running node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("{0}")]
    Invalid(String),
    /// A thread the node runs on could not be started.
    #[error("cannot start the node's {thread} thread: {source}")]
    Thread {
        thread: &'static str,
        source: std::io::Error,
    },
    /// Blocking work handed to tokio's pool panicked or was cancelled.
    #[error("the node's {task} task failed: {source}")]
    Task {
        task: &'static str,
        source: tokio::task::JoinError,
    },
    /// An entry this node just stored is not in its coordination view. The entry is
    /// published (stored, and gossiped or left to backfill); only the answer is missing.
    #[error(
        "{what} {id} is stored but missing from the coordination view: this is a bug, please \
         report it; read the claim again with GET /v1/claims/{id}"
    )]
    MissingFromView {
        what: &'static str,
        id: plexus_crypto::Hash256,
    },
    /// A body its kind does not allow (the field and the problem are named).
    #[error(transparent)]
    Body(#[from] BodyError),
    /// What the request names does not exist (a claim id, a task).
    #[error("{0}")]
    NotFound(String),
    /// The request is well formed but the current state forbids it (an illegal task
    /// transition, releasing someone else's claim).
    #[error("{0}")]
    Conflict(String),
    /// Shutdown found other handles to the node still held after waiting for them.
    #[error(
        "the node is still in use at shutdown ({0} other handle(s) kept past {timeout:?}), so \
         the log was not flushed; what was written is in RocksDB's write-ahead log and a \
         restart recovers it. This is a bug: please report it",
        timeout = RELEASE_TIMEOUT
    )]
    StillShared(usize),
}

/// State shared by the node handle and the ingest worker.
#[derive(Debug)]
pub(crate) struct Shared {
    quarantine_forkers: bool,
    pub(crate) clock_skew_ms: u64,
    /// Feeds whose authors are quarantined: only feeds with a stored fork proof enter, so it
    /// holds at most [`crate::store::MAX_FORK_PROOFS`] feeds.
    quarantined: Mutex<HashSet<FeedKey>>,
    changes: watch::Sender<u64>,
    /// Stored entries of this node that could not be handed to gossip (see
    /// [`Node::gossip_failures`]).
    gossip_failures: AtomicU64,
}

impl Shared {
    pub(crate) fn changed(&self) {
        self.changes.send_modify(|version| *version += 1);
    }

    pub(crate) fn is_quarantined(&self, feed: &FeedKey) -> bool {
        self.quarantined
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(feed)
    }

    /// Quarantines a feed whose fork proof the log stored (the log's bound on proofs is
    /// checked again here, so the set cannot outgrow it whatever calls this).
    pub(crate) fn quarantine(&self, feed: FeedKey) {
        let mut quarantined = self
            .quarantined
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if quarantined.len() < crate::store::MAX_FORK_PROOFS {
            quarantined.insert(feed);
        }
    }
}

/// The body of an own entry on its way to the log: bytes (parsed there, once), or a body
/// built and checked already (encoded there, never parsed).
enum OwnBody {
    Encoded(Vec<u8>),
    Parsed(Body),
}

/// A running node.
#[derive(Debug)]
pub struct Node {
    log: Arc<Log>,
    keypair: Keypair,
    net: NetworkHandle,
    shared: Arc<Shared>,
    coord: Arc<Coordinator>,
    /// The ingest pipeline, shared with the worker: submissions take it too.
    pipeline: Arc<ingest::Pipeline>,
    task: Option<tokio::task::JoinHandle<()>>,
    coord_task: Option<tokio::task::JoinHandle<()>>,
    /// Stops the coordination driver once its current update is done (an abort would leave
    /// that update running on a blocking thread, holding the log).
    coord_stop: Option<tokio::sync::oneshot::Sender<()>>,
    worker: Option<std::thread::JoinHandle<()>>,
    /// The sync server thread (`serve.rs`), joined at shutdown so it lets go of the log.
    server: Option<std::thread::JoinHandle<()>>,
    /// The reconciler thread (`reconcile.rs`), joined at shutdown so it lets go of the log.
    reconciler: Option<std::thread::JoinHandle<()>>,
}

/// How often leases are re-evaluated for changes that come with time alone (expiry,
/// `notBefore`): the delay with which a waiting agent learns that an expired lease is its.
pub const LEASE_TICK: std::time::Duration = std::time::Duration::from_millis(200);

/// What `plexus status` shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeStatus {
    pub agent_id: String,
    pub network: NetStatus,
    pub log: StatusCounts,
    pub feeds: Vec<FeedStatus>,
    pub quarantined: Vec<FeedStatus>,
}

/// Log counters in `NodeStatus`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusCounts {
    pub entries: u64,
    pub feeds: u64,
    pub forks: u64,
    pub pending: u64,
    pub rejected: u64,
}

/// One feed head in `NodeStatus`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeedStatus {
    pub namespace: String,
    pub author: String,
    pub seq: u64,
    pub id: String,
}

impl Node {
    /// Starts the network task and the ingest worker. Must be called inside a tokio runtime.
    pub async fn start(
        keypair: Keypair,
        log: Arc<Log>,
        config: NodeConfig,
    ) -> Result<Node, NodeError> {
        for namespace in &config.namespaces {
            check_name("namespace", namespace)
                .map_err(|error| NodeError::Invalid(error.to_string()))?;
        }
        let mut quarantined = HashSet::new();
        if config.quarantine_forkers {
            for proof in log.forks()? {
                quarantined.insert(proof.feed());
            }
        }
        let (changes, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            quarantine_forkers: config.quarantine_forkers,
            clock_skew_ms: config.clock_skew_ms,
            quarantined: Mutex::new(quarantined),
            changes,
            gossip_failures: AtomicU64::new(0),
        });
        let ingress = Arc::new(Mutex::new(limits::Ingress::new(config.ingress)));
        let coord = Arc::new(
            Coordinator::new(keypair.agent_id())
                .with_clock_skew_ms(config.clock_skew_ms)
                .with_history_ms(config.view_history_ms),
        );
        // Fold the whole log into the view before anything starts: this reads every stored
        // entry once (checksums on), so a damaged log stops the start with the damaged file
        // named, instead of a node that runs with a view stuck before the damage.
        let (coord_for_load, log_for_load) = (Arc::clone(&coord), Arc::clone(&log));
        tokio::task::spawn_blocking(move || {
            let now = now_ms();
            let loaded = coord_for_load.sync(&log_for_load, now)?;
            coord_for_load.forget_expired(now);
            Ok::<_, StoreError>(loaded)
        })
        .await
        .map_err(|source| NodeError::Task {
            task: "load the coordination view",
            source,
        })??;
        let (command_tx, command_rx) = mpsc::channel(net::COMMAND_QUEUE);
        let (event_tx, event_rx) = mpsc::channel(net::EVENT_QUEUE);
        let swarm = build_swarm(&keypair, &config.net)?;
        let peer_id = *swarm.local_peer_id();
        let task = SwarmTask::new(
            swarm,
            command_rx,
            event_tx,
            config.net.clone(),
            config.namespaces.clone(),
        )?;
        let (serve_tx, serve_rx) = mpsc::channel(net::sync::SERVE_QUEUE);
        let held_bytes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let task = task.with_sync_server(serve_tx, Arc::clone(&held_bytes));
        let (reconcile_tx, reconcile_rx) = mpsc::channel(net::reconcile::RECONCILER_QUEUE);
        let task = task.with_reconciler(reconcile_tx);
        let net = NetworkHandle::new(command_tx, peer_id);
        let task = tokio::spawn(task.run());
        let server = serve::SyncServer {
            log: Arc::clone(&log),
            net: net.clone(),
            requests: serve_rx,
            held_bytes,
        };
        // It stops once the swarm task drops the request queue.
        let server = std::thread::Builder::new()
            .name("plexus-sync-server".into())
            .spawn(move || server.run())
            .map_err(|source| NodeError::Thread {
                thread: "sync server",
                source,
            })?;
        let reconciler = reconcile::Reconciler {
            log: Arc::clone(&log),
            net: net.clone(),
            events: reconcile_rx,
            sessions: Default::default(),
        };
        // It stops once the swarm task drops the event queue.
        let reconciler = std::thread::Builder::new()
            .name("plexus-reconciler".into())
            .spawn(move || reconciler.run())
            .map_err(|source| NodeError::Thread {
                thread: "reconciler",
                source,
            })?;
        let pipeline = Arc::new(ingest::Pipeline {
            log: Arc::clone(&log),
            net: net.clone(),
            shared: Arc::clone(&shared),
            ingress,
        });
        let worker = ingest::Worker {
            pipeline: Arc::clone(&pipeline),
            events: event_rx,
        };
        let worker = std::thread::Builder::new()
            .name("plexus-ingest".into())
            .spawn(move || worker.run())
            .map_err(|source| NodeError::Thread {
                thread: "ingest",
                source,
            })?;
        let (coord_stop, coord_stopped) = tokio::sync::oneshot::channel();
        let coord_task = tokio::spawn(drive_coordinator(
            Arc::clone(&coord),
            Arc::clone(&log),
            shared.changes.subscribe(),
            coord_stopped,
        ));
        Ok(Node {
            log,
            keypair,
            net,
            shared,
            coord,
            pipeline,
            task: Some(task),
            coord_task: Some(coord_task),
            coord_stop: Some(coord_stop),
            worker: Some(worker),
            server: Some(server),
            reconciler: Some(reconciler),
        })
    }

    /// The coordination view and its event stream.
    pub fn coord(&self) -> &Arc<Coordinator> {
        &self.coord
    }

    /// Signs a checked body of a coordination or governance kind as this agent's next entry
    /// in `namespace`, stores and gossips it; the view includes it when this returns.
    pub async fn publish_body(&self, namespace: &str, body: Body) -> Result<Entry, NodeError> {
        let kind = match &body {
            Body::Application(_) => {
                return Err(NodeError::Invalid(
                    "application bodies are published with Node::publish_parsed and their x- \
                     kind"
                        .into(),
                ))
            }
            other => other.kind().as_str(),
        };
        self.publish_own(namespace, kind, OwnBody::Parsed(body))
            .await
    }

    /// Signs a checked body of the kind named `kind` (an `x-` kind for an application body)
    /// as this agent's next entry in `namespace`, stores and gossips it. The body is encoded
    /// here and not parsed again: this is for bodies built with `Body::from_json`.
    pub async fn publish_parsed(
        &self,
        namespace: &str,
        kind: &str,
        body: Body,
    ) -> Result<Entry, NodeError> {
        self.publish_own(namespace, kind, OwnBody::Parsed(body))
            .await
    }

    /// Claims a resource; returns the entry and where the claim stands now.
    pub async fn claim(
        &self,
        namespace: &str,
        intent: Intent,
    ) -> Result<(Entry, ClaimView), NodeError> {
        let entry = self.publish_body(namespace, Body::Intent(intent)).await?;
        let standing = self
            .coord
            .view()
            .claim(
                namespace,
                &entry.id(),
                now_ms().max(entry.header().timestamp_ms),
            )
            .ok_or_else(|| NodeError::MissingFromView {
                what: "the new claim",
                id: entry.id(),
            })?;
        Ok((entry, standing))
    }

    /// Renews one of this agent's claims.
    pub async fn renew(
        &self,
        namespace: &str,
        renew: IntentRenew,
    ) -> Result<(Entry, ClaimView), NodeError> {
        let claim = self.own_claim(namespace, &renew.claim)?;
        let entry = self
            .publish_body(namespace, Body::IntentRenew(renew))
            .await?;
        let standing = self
            .coord
            .view()
            .claim(namespace, &claim, now_ms().max(entry.header().timestamp_ms))
            .ok_or_else(|| NodeError::MissingFromView {
                what: "the renewed claim",
                id: claim,
            })?;
        Ok((entry, standing))
    }

    /// Releases one of this agent's claims.
    pub async fn release(
        &self,
        namespace: &str,
        release: IntentRelease,
    ) -> Result<Entry, NodeError> {
        self.own_claim(namespace, &release.claim)?;
        self.publish_body(namespace, Body::IntentRelease(release))
            .await
    }

    /// Publishes a task update after checking the transition against the current view.
    pub async fn update_task(
        &self,
        namespace: &str,
        update: TaskUpdate,
    ) -> Result<Entry, NodeError> {
        self.coord
            .view()
            .check_task_update(namespace, &update.task_id, update.status.state, now_ms())
            .map_err(|problem| {
                NodeError::Conflict(format!(
                    "task {:?} cannot move to {}: {problem}",
                    update.task_id, update.status.state
                ))
            })?;
        self.publish_body(namespace, Body::Task(update)).await
    }

    fn own_claim(&self, namespace: &str, claim: &str) -> Result<plexus_crypto::Hash256, NodeError> {
        let id = parse_entry_id(claim).ok_or_else(|| {
            NodeError::Invalid(format!(
                "claim {claim:?} is not an entry id: use the 64 hex digits returned when claiming"
            ))
        })?;
        let (author, resource) =
            self.coord
                .view()
                .claim_owner(namespace, &id)
                .ok_or_else(|| {
                    NodeError::NotFound(format!("no claim {claim} in namespace {namespace}"))
                })?;
        if author != self.agent_id() {
            return Err(NodeError::Conflict(format!(
                "claim {claim} on {resource} belongs to agent {author}; only its author can \
                 renew or release it"
            )));
        }
        Ok(id)
    }

    /// Signs and stores a new entry of this agent with the canonical body bytes `body` of
    /// kind `kind` (checked here), then gossips it.
    pub async fn publish(
        &self,
        namespace: &str,
        kind: &str,
        body: Vec<u8>,
    ) -> Result<Entry, NodeError> {
        self.publish_own(namespace, kind, OwnBody::Encoded(body))
            .await
    }

    async fn publish_own(
        &self,
        namespace: &str,
        kind: &str,
        body: OwnBody,
    ) -> Result<Entry, NodeError> {
        check_name("namespace", namespace)
            .map_err(|error| NodeError::Invalid(error.to_string()))?;
        check_name("kind", kind).map_err(|error| NodeError::Invalid(error.to_string()))?;
        self.net.follow(namespace).await?;
        let log = Arc::clone(&self.log);
        let keypair = self.keypair.clone();
        let (namespace_owned, kind_owned) = (namespace.to_owned(), kind.to_owned());
        let entry = tokio::task::spawn_blocking(move || match body {
            OwnBody::Encoded(bytes) => {
                log.append_own(&keypair, &namespace_owned, &kind_owned, bytes, now_ms())
            }
            OwnBody::Parsed(body) => {
                log.append_own_body(&keypair, &namespace_owned, &kind_owned, body, now_ms())
            }
        })
        .await
        .map_err(|source| NodeError::Task {
            task: "publish",
            source,
        })??;
        // On the wire first (the write is synced already), then into the view. From here on
        // the entry is published: a gossip failure (a full send queue, the network stopping)
        // is logged and counted, never reported as a failed publish, or the agent would retry
        // and make a second entry (a second claim). Backfill spreads the entry instead.
        let sent = self
            .net
            .publish(topics::entry_topic(namespace, kind), entry.encode())
            .await;
        self.gossip_failed(&entry, sent);
        self.shared.changed();
        let (log, coord) = (Arc::clone(&self.log), Arc::clone(&self.coord));
        let synced = tokio::task::spawn_blocking(move || coord.sync(&log, now_ms())).await;
        match synced {
            Ok(Ok(_)) => {}
            // The driver task applies the journal on the next change or tick.
            Ok(Err(error)) => tracing::warn!(%error, "cannot update the view after a publish"),
            Err(error) => tracing::warn!(%error, "cannot update the view after a publish"),
        }
        Ok(entry)
    }

    /// Stored entries of this agent (own or submitted) that gossip could not take when they
    /// were published; backfill spreads them. Shown in `GET /v1/metrics`.
    pub fn gossip_failures(&self) -> u64 {
        self.shared.gossip_failures.load(Ordering::Relaxed)
    }

    /// Logs and counts a failed hand-off of a stored entry to gossip.
    fn gossip_failed(&self, entry: &Entry, sent: Result<(), NetError>) {
        if let Err(error) = sent {
            self.shared.gossip_failures.fetch_add(1, Ordering::Relaxed);
            let header = entry.header();
            tracing::warn!(
                %error,
                author = %header.author,
                seq = header.seq,
                namespace = %header.namespace,
                "entry stored but not gossiped; peers will fetch it by backfill"
            );
        }
    }

    /// Offers an entry signed elsewhere (for example by an agent that holds its own key) as
    /// if it had arrived from a peer; an accepted entry is gossiped on.
    pub async fn submit(&self, bytes: Vec<u8>) -> Result<IngestOutcome, NodeError> {
        let pipeline = Arc::clone(&self.pipeline);
        let (outcome, bytes) = tokio::task::spawn_blocking(move || {
            let outcome = pipeline.submit(&bytes, "local");
            (outcome, bytes)
        })
        .await
        .map_err(|source| NodeError::Task {
            task: "submit",
            source,
        })?;
        let outcome = outcome?;
        match &outcome {
            IngestOutcome::Accepted { forks, .. } => {
                self.shared.changed();
                // Stored and synced: from here on failures to spread it are logged, never
                // reported as a failed submit (see `publish`).
                if let Ok(entry) = Entry::decode(&bytes) {
                    let header = entry.header();
                    let sent = match self.net.follow(&header.namespace).await {
                        Ok(()) => {
                            self.net
                                .publish(
                                    topics::entry_topic(&header.namespace, &header.kind),
                                    bytes.clone(),
                                )
                                .await
                        }
                        Err(error) => Err(error),
                    };
                    self.gossip_failed(&entry, sent);
                }
                for proof in forks {
                    if let Err(error) = self.spread_fork(proof).await {
                        tracing::warn!(%error, "fork proof stored but not gossiped");
                    }
                }
            }
            IngestOutcome::Fork { proof } => {
                self.shared.changed();
                self.spread_fork(proof).await?;
            }
            _ => {}
        }
        Ok(outcome)
    }

    async fn spread_fork(&self, proof: &ForkProof) -> Result<(), NodeError> {
        if self.shared.quarantine_forkers {
            self.shared.quarantine(proof.feed());
        }
        self.net
            .publish(topics::fork_topic(&proof.feed().namespace), proof.encode())
            .await?;
        Ok(())
    }

    /// The node's log.
    pub fn log(&self) -> &Arc<Log> {
        &self.log
    }

    /// The network handle.
    pub fn net(&self) -> &NetworkHandle {
        &self.net
    }

    /// This node's agent id.
    pub fn agent_id(&self) -> AgentId {
        self.keypair.agent_id()
    }

    /// A receiver that changes whenever the log does.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.shared.changes.subscribe()
    }

    /// Feeds whose authors are quarantined.
    pub fn quarantined(&self) -> Vec<FeedKey> {
        let mut feeds: Vec<FeedKey> = self
            .shared
            .quarantined
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .cloned()
            .collect();
        feeds.sort();
        feeds
    }

    /// A snapshot for `plexus status`.
    pub async fn status(&self) -> Result<NodeStatus, NodeError> {
        let network = self.net.status().await?;
        let log = Arc::clone(&self.log);
        let (stats, heads) = tokio::task::spawn_blocking(
            move || -> Result<(LogStats, Vec<(FeedKey, FeedHead)>), StoreError> {
                Ok((log.stats()?, log.heads()?))
            },
        )
        .await
        .map_err(|source| NodeError::Task {
            task: "status",
            source,
        })??;
        let feed_status = |feed: &FeedKey, head: Option<&FeedHead>| FeedStatus {
            namespace: feed.namespace.clone(),
            author: feed.author.to_string(),
            seq: head.map_or(0, |head| head.seq),
            id: head.map(|head| head.id.to_string()).unwrap_or_default(),
        };
        let quarantined = self
            .quarantined()
            .iter()
            .map(|feed| {
                let head = heads
                    .iter()
                    .find(|(known, _)| known == feed)
                    .map(|(_, head)| head);
                feed_status(feed, head)
            })
            .collect();
        Ok(NodeStatus {
            agent_id: self.agent_id().to_string(),
            network,
            log: StatusCounts {
                entries: stats.entries,
                feeds: stats.feeds,
                forks: stats.forks,
                pending: stats.pending,
                rejected: stats.rejected,
            },
            feeds: heads
                .iter()
                .map(|(feed, head)| feed_status(feed, Some(head)))
                .collect(),
            quarantined,
        })
    }

    /// Stops the network task and the ingest worker, and flushes the log.
    pub async fn shutdown(mut self) -> Result<(), NodeError> {
        if let Some(stop) = self.coord_stop.take() {
            let _ = stop.send(());
        }
        if let Some(coord_task) = self.coord_task.take() {
            let _ = coord_task.await;
        }
        self.net.shutdown().await;
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        if let Some(worker) = self.worker.take() {
            let _ = tokio::task::spawn_blocking(move || worker.join()).await;
        }
        if let Some(server) = self.server.take() {
            let _ = tokio::task::spawn_blocking(move || server.join()).await;
        }
        if let Some(reconciler) = self.reconciler.take() {
            let _ = tokio::task::spawn_blocking(move || reconciler.join()).await;
        }
        let log = Arc::clone(&self.log);
        tokio::task::spawn_blocking(move || log.flush())
            .await
            .map_err(|source| NodeError::Task {
                task: "flush",
                source,
            })??;
        Ok(())
    }
}

/// Keeps the coordination view current: applies new journal entries whenever the log changes,
/// re-evaluates leases every [`LEASE_TICK`], has the view forget what fell behind its horizon,
/// and rebuilds it (on a blocking thread, one at a time) when an entry needs what it forgot.
/// Stops, between updates, when `stop` fires or its sender or the node's change sender is
/// dropped; a rebuild under way then stops at its next check.
async fn drive_coordinator(
    coord: Arc<Coordinator>,
    log: Arc<Log>,
    mut changes: watch::Receiver<u64>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    /// Sets the flag when dropped, however the loop ends.
    struct StopOnDrop(Arc<AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let stopping = StopOnDrop(Arc::new(AtomicBool::new(false)));
    let mut rebuilding: Option<tokio::task::JoinHandle<()>> = None;
    let mut tick = tokio::time::interval(LEASE_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        // The view follows the log's journal, and nothing else.
        let (coord_for_sync, log_for_sync) = (Arc::clone(&coord), Arc::clone(&log));
        let synced = tokio::task::spawn_blocking(move || {
            let now = now_ms();
            let synced = coord_for_sync.sync(&log_for_sync, now);
            coord_for_sync.forget_expired(now);
            synced
        })
        .await;
        if let Ok(Err(error)) = synced {
            tracing::warn!(%error, "cannot update the coordination view from the log");
        }
        let now = now_ms();
        if rebuilding.as_ref().is_none_or(|task| task.is_finished()) && coord.rebuild_due(now) {
            let (coord, log, stop) = (
                Arc::clone(&coord),
                Arc::clone(&log),
                Arc::clone(&stopping.0),
            );
            rebuilding = Some(tokio::task::spawn_blocking(move || {
                if let Err(error) = coord.rebuild(&log, now, &stop) {
                    tracing::warn!(%error, "cannot rebuild the coordination view from the log");
                }
            }));
        }
        tokio::select! {
            _ = &mut stop => return,
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = tick.tick() => coord.tick(now_ms()),
        }
    }
}
