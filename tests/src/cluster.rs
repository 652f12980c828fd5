//! A harness that runs real Plexus nodes in one process on 127.0.0.1 ephemeral ports.
//!
//! Waiting is always on a predicate with a deadline: [`wait_for`] re-checks whenever any
//! node's log changes (a `watch` channel each node bumps) and otherwise every
//! [`POLL_INTERVAL`], for predicates about the network (connections, scores) that have no
//! change notification. Nothing sleeps for a fixed time.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use libp2p::Multiaddr;
use plexus_crypto::Keypair;
use plexus_node::api::{self, ApiState};
use plexus_node::client::ApiClient;
use plexus_node::net::peer_store::PEER_STORE_FILE;
use plexus_node::net::NetConfig;
use plexus_node::node::limits::IngressLimits;
use plexus_node::node::{Node, NodeConfig, SharedNode};
use plexus_node::store::{Log, LogOptions, TrustRoots};
use plexus_protocol::value::json_text_to_canonical;
use plexus_protocol::{Entry, FeedHead, FeedKey};
use tokio::sync::watch;
use tokio::time::Instant;

/// How often predicates without a change notification are re-checked.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The namespace the scenarios use.
pub const NAMESPACE: &str = "cluster";

/// A node of the test cluster with its data directory, and its HTTP API once started.
#[derive(Debug)]
pub struct TestNode {
    pub node: SharedNode,
    pub keypair: Keypair,
    pub dir: tempfile::TempDir,
    api: Option<ApiServer>,
}

/// A running HTTP API of a test node.
#[derive(Debug)]
struct ApiServer {
    client: ApiClient,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl TestNode {
    /// Serves the node's HTTP API on an ephemeral 127.0.0.1 port (once) and returns a client.
    pub async fn api(&mut self) -> ApiClient {
        if let Some(api) = &self.api {
            return api.client.clone();
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|error| panic!("bind the API: {error}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|error| panic!("API address: {error}"));
        let token = format!("test-token-{}", self.keypair.agent_id().short());
        let (stop, stopped) = watch::channel(false);
        let state = ApiState {
            node: self.node.clone(),
            token: token.clone().into(),
            namespace: NAMESPACE.into(),
            shutdown: stopped.clone(),
        };
        let mut until_stopped = stopped;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, api::router(state))
                .with_graceful_shutdown(async move {
                    let _ = until_stopped.wait_for(|stop| *stop).await;
                })
                .await;
        });
        let client = ApiClient::new(addr, token);
        self.api = Some(ApiServer {
            client: client.clone(),
            stop,
            task,
        });
        client
    }
}

/// Network settings for loopback tests: [`NetConfig::loopback`].
pub fn test_net_config() -> NetConfig {
    NetConfig::loopback()
}

/// What differs between test nodes beyond the network settings.
#[derive(Debug, Clone, Default)]
pub struct NodeSpec {
    /// The node's identity; a fresh one when `None`.
    pub keypair: Option<Keypair>,
    /// Governed namespaces; empty leaves every namespace open (as a misconfigured or tampered
    /// node would).
    pub trust_roots: TrustRoots,
    /// Gossip ingress limits; the defaults when `None`.
    pub ingress: Option<IngressLimits>,
    /// The clock-skew window (`--clock-skew-ms`); the default when `None`.
    pub clock_skew_ms: Option<u64>,
}

/// Starts a node with a fresh identity and data directory.
pub async fn spawn_node(net: NetConfig) -> TestNode {
    spawn_node_with(net, NodeSpec::default()).await
}

/// Starts a node as `spec` says, with a fresh data directory.
pub async fn spawn_node_with(net: NetConfig, spec: NodeSpec) -> TestNode {
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("tempdir: {error}"));
    start_in(dir, net, spec).await
}

/// A node's identity and data directory after [`stop`], to start it again with
/// [`start_again`].
#[derive(Debug)]
pub struct StoppedNode {
    pub keypair: Keypair,
    pub dir: tempfile::TempDir,
}

/// Stops `test_node` cleanly (API, network, log), keeping its identity and data directory.
pub async fn stop(mut test_node: TestNode) -> StoppedNode {
    if let Some(api) = test_node.api.take() {
        let _ = api.stop.send(true);
        let _ = api.task.await;
    }
    let TestNode {
        node, keypair, dir, ..
    } = test_node;
    node.shutdown()
        .await
        .unwrap_or_else(|error| panic!("stop: {error}"));
    StoppedNode { keypair, dir }
}

/// Starts a stopped node again on its data directory and identity (a new listening port),
/// with `net` (its peer store in the data directory unless `net` names another).
pub async fn start_again(stopped: StoppedNode, net: NetConfig) -> TestNode {
    let spec = NodeSpec {
        keypair: Some(stopped.keypair),
        ..NodeSpec::default()
    };
    start_in(stopped.dir, net, spec).await
}

/// Starts a node in `dir`, keeping its peer store there unless `net` names one.
async fn start_in(dir: tempfile::TempDir, mut net: NetConfig, spec: NodeSpec) -> TestNode {
    if net.peer_store.is_none() {
        net.peer_store = Some(dir.path().join(PEER_STORE_FILE));
    }
    let keypair = spec.keypair.unwrap_or_else(Keypair::generate);
    let log = Arc::new(
        Log::open_with(
            dir.path(),
            LogOptions {
                trust_roots: spec.trust_roots,
                ..LogOptions::default()
            },
        )
        .unwrap_or_else(|error| panic!("open log: {error}")),
    );
    let node = Node::start(
        keypair.clone(),
        log,
        NodeConfig {
            net,
            namespaces: vec![NAMESPACE.to_owned()],
            quarantine_forkers: true,
            clock_skew_ms: spec
                .clock_skew_ms
                .unwrap_or(plexus_protocol::coord::DEFAULT_CLOCK_SKEW_MS),
            view_history_ms: plexus_node::coord::DEFAULT_VIEW_HISTORY_MS,
            ingress: spec.ingress.unwrap_or_default(),
        },
    )
    .await
    .unwrap_or_else(|error| panic!("start node: {error}"));
    TestNode {
        node: SharedNode::new(node),
        keypair,
        dir,
        api: None,
    }
}

/// Starts `count` nodes.
pub async fn spawn(count: usize) -> Vec<TestNode> {
    let mut nodes = Vec::with_capacity(count);
    for _ in 0..count {
        nodes.push(spawn_node(test_net_config()).await);
    }
    nodes
}

/// The node's dialable address (`.../p2p/<peer id>`), once it listens.
pub async fn address(node: &TestNode) -> Multiaddr {
    let listen = wait_for(
        "the node to listen",
        Duration::from_secs(10),
        &[node],
        || {
            let net = node.node.net().clone();
            async move {
                net.status()
                    .await
                    .map(|status| status.listen_addrs)
                    .unwrap_or_default()
            }
        },
        |addrs: &Vec<String>| !addrs.is_empty(),
    )
    .await;
    let text = format!("{}/p2p/{}", listen[0], node.node.net().peer_id());
    text.parse()
        .unwrap_or_else(|error| panic!("address {text}: {error}"))
}

/// Dials `to` from `from` and waits until both see the connection.
pub async fn connect(from: &TestNode, to: &TestNode) {
    let addr = address(to).await;
    from.node
        .net()
        .dial(addr)
        .await
        .unwrap_or_else(|error| panic!("dial: {error}"));
    for (side, other) in [(from, to), (to, from)] {
        let peer = other.node.net().peer_id().to_string();
        wait_for(
            "the connection",
            Duration::from_secs(10),
            &[from, to],
            || {
                let net = side.node.net().clone();
                async move { net.status().await.map(|s| s.peers).unwrap_or_default() }
            },
            |peers| peers.iter().any(|p| p.peer_id == peer),
        )
        .await;
    }
}

/// How many peers `node` counts as neighbours now (connections held only to introduce a
/// newcomer excluded).
pub async fn peer_count(node: &TestNode) -> usize {
    node.node
        .net()
        .status()
        .await
        .map(|status| status.peers.len())
        .unwrap_or(0)
}

/// Makes `a` and `b` refuse each other, so that a test's topology stays as it connects it:
/// otherwise Kademlia introduces any two nodes with a common peer, and they connect directly.
pub async fn keep_apart(a: &TestNode, b: &TestNode) {
    let (a_net, b_net) = (a.node.net(), b.node.net());
    a_net.block(b_net.peer_id()).await.unwrap();
    b_net.block(a_net.peer_id()).await.unwrap();
}

/// Makes every node of `left` refuse every node of `right` and back.
pub async fn partition(left: &[TestNode], right: &[TestNode]) {
    for a in left {
        for b in right {
            keep_apart(a, b).await;
        }
    }
}

/// Undoes [`partition`]: the groups may connect again (nothing dials yet).
pub async fn heal(left: &[TestNode], right: &[TestNode]) {
    for a in left {
        for b in right {
            let (a_net, b_net) = (a.node.net(), b.node.net());
            a_net.unblock(b_net.peer_id()).await.unwrap();
            b_net.unblock(a_net.peer_id()).await.unwrap();
        }
    }
}

/// Publishes the application entry `{"n": n}` (kind `x-note`) from `node`.
pub async fn publish_note(node: &TestNode, n: u64) -> Entry {
    let body = json_text_to_canonical(&format!("{{\"n\": {n}}}"))
        .unwrap_or_else(|error| panic!("body: {error}"));
    node.node
        .publish(NAMESPACE, "x-note", body)
        .await
        .unwrap_or_else(|error| panic!("publish: {error}"))
}

/// Stops every node cleanly (network task, ingest worker, log flush) before the test ends, so
/// no thread touches RocksDB while the process exits.
pub async fn shutdown(nodes: Vec<TestNode>) {
    for test_node in nodes {
        if let Some(api) = test_node.api {
            let _ = api.stop.send(true);
            let _ = api.task.await;
        }
        test_node
            .node
            .shutdown()
            .await
            .unwrap_or_else(|error| panic!("shutdown: {error}"));
    }
}

/// Feed heads of a node, sorted.
pub fn heads(node: &TestNode) -> Vec<(FeedKey, FeedHead)> {
    node.node
        .log()
        .heads()
        .unwrap_or_else(|error| panic!("heads: {error}"))
}

/// Waits until `check(probe())` holds, re-probing when any of `nodes` changes its log or every
/// [`POLL_INTERVAL`]. Panics with `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(
    what: &str,
    timeout: Duration,
    nodes: &[&TestNode],
    mut probe: F,
    mut check: impl FnMut(&T) -> bool,
) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
    T: std::fmt::Debug,
{
    let deadline = Instant::now() + timeout;
    let mut changes: Vec<_> = nodes.iter().map(|node| node.node.changes()).collect();
    let mut ticker = tokio::time::interval(POLL_INTERVAL);
    loop {
        let value = probe().await;
        if check(&value) {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}; last value: {value:?}");
        }
        let any_change = async {
            let futures: Vec<_> = changes
                .iter_mut()
                .map(|receiver| Box::pin(receiver.changed()))
                .collect();
            if futures.is_empty() {
                std::future::pending::<()>().await;
            }
            let _ = libp2p::futures::future::select_all(futures).await;
        };
        let next = async {
            tokio::select! {
                _ = any_change => {}
                _ = ticker.tick() => {}
            }
        };
        let _ =
            tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), next).await;
    }
}

/// Waits until every node holds exactly the same feed heads as the first, with `feeds` feeds
/// and `entries` entries in total.
pub async fn wait_converged(nodes: &[&TestNode], feeds: usize, entries: u64, timeout: Duration) {
    wait_for(
        "identical feed heads on every node",
        timeout,
        nodes,
        || async { nodes.iter().map(|node| heads(node)).collect::<Vec<_>>() },
        |all| {
            all.iter().all(|heads| {
                heads.len() == feeds
                    && heads.iter().map(|(_, head)| head.seq).sum::<u64>() == entries
            }) && all.windows(2).all(|pair| pair[0] == pair[1])
        },
    )
    .await;
}
