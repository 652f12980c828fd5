//! `plexus run` (the long-running sidecar) and `plexus status` (asks a running node).

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use libp2p::Multiaddr;
use tracing::info;

use super::{RunArgs, StatusArgs};
use crate::api::{self, ApiState};
use crate::client::ApiClient;
use crate::config::{self, Config, API_ADDR_FILE};
use crate::net::limits::MIN_CONNECTIONS;
use crate::net::peer_store::PEER_STORE_FILE;
use crate::net::peers::{DegreeTarget, DEFAULT_PEERS_HIGH, DEFAULT_PEERS_LOW};
use crate::net::{NetConfig, DEFAULT_MAX_CONNECTIONS};
use crate::node::limits::IngressLimits;
use crate::node::{Node, NodeConfig, NodeStatus, SharedNode};
use crate::store::{Log, LogOptions, TrustRoots};

/// Default address of the HTTP API.
pub const DEFAULT_API_LISTEN: &str = "127.0.0.1:7474";

pub fn run(config: &Config, args: RunArgs) -> anyhow::Result<ExitCode> {
    let keypair = config::load_key_file(&config.key_path())?;
    let token = config::load_or_create_token(&config.data_dir)?;
    let node_config = node_config(config, &args)?;
    let api_listen: SocketAddr = args
        .api_listen
        .clone()
        .or_else(|| config.network.api_listen.clone())
        .unwrap_or_else(|| DEFAULT_API_LISTEN.to_owned())
        .parse()
        .context("--api-listen must be an IP address and port, for example 127.0.0.1:7474")?;
    let trust_roots = trust_roots(config, &args.trust_root)?;
    for (namespace, admins) in &trust_roots {
        tracing::info!(namespace, admins = admins.len(), "namespace is governed");
    }
    for warning in crate::net::exposure_warnings(
        &node_config.net.listen,
        &node_config.namespaces,
        |namespace| trust_roots.contains_key(namespace),
    ) {
        tracing::warn!("{warning}");
    }
    let log = Arc::new(Log::open_with(
        &config.data_dir,
        LogOptions {
            trust_roots,
            ..LogOptions::default()
        },
    )?);
    // After the lock, so a second node on the same data directory is told about that first.
    check_ports_free(&node_config.net.listen)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(config, keypair, token, log, node_config, api_listen))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(
    config: &Config,
    keypair: plexus_crypto::Keypair,
    token: String,
    log: Arc<Log>,
    node_config: NodeConfig,
    api_listen: SocketAddr,
) -> anyhow::Result<()> {
    let agent = keypair.agent_id();
    let node = SharedNode::new(Node::start(keypair, log, node_config).await?);
    let listener = tokio::net::TcpListener::bind(api_listen)
        .await
        .with_context(|| format!("cannot bind the HTTP API to {api_listen}: is another node running there? pick another --api-listen"))?;
    let api_addr = listener.local_addr()?;
    let addr_file = config.data_dir.join(API_ADDR_FILE);
    std::fs::write(&addr_file, format!("{api_addr}\n"))
        .with_context(|| format!("cannot write {}", addr_file.display()))?;
    for address in wait_for_listen_addrs(&node).await {
        println!("listening on {address}/p2p/{}", node.net().peer_id());
    }
    println!("plexus node {agent} running; HTTP API on http://{api_addr}");
    info!(%agent, %api_addr, "node running");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let state = ApiState {
        node: node.clone(),
        token: token.into(),
        namespace: config.namespace.clone().into(),
        shutdown: stopped,
    };
    let served = axum::serve(listener, api::router(state))
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            // Ends open event streams, which graceful shutdown would otherwise wait for.
            let _ = stop.send(true);
        })
        .await;
    let _ = std::fs::remove_file(&addr_file);
    served.context("the HTTP API failed")?;
    println!("shutting down");
    node.shutdown().await?;
    println!("stopped; the log is flushed");
    Ok(())
}

/// Waits briefly for the swarm to report its listening addresses (they appear once the
/// sockets are bound), so they can be printed for operators and scripts.
async fn wait_for_listen_addrs(node: &Node) -> Vec<String> {
    let mut ticker = tokio::time::interval(Duration::from_millis(50));
    for _ in 0..100 {
        ticker.tick().await;
        if let Ok(status) = node.net().status().await {
            if !status.listen_addrs.is_empty() {
                return status.listen_addrs;
            }
        }
    }
    Vec::new()
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = terminate => {},
    }
}

fn node_config(config: &Config, args: &RunArgs) -> anyhow::Result<NodeConfig> {
    let file = &config.network;
    let addrs = |flag: &[String],
                 from_file: &Option<Vec<String>>,
                 what: &str|
     -> anyhow::Result<Option<Vec<Multiaddr>>> {
        let texts: Vec<String> = if !flag.is_empty() {
            flag.to_vec()
        } else if let Some(texts) = from_file {
            texts.clone()
        } else {
            return Ok(None);
        };
        texts
            .iter()
            .map(|text| {
                text.parse::<Multiaddr>().with_context(|| {
                    format!(
                        "{what} {text:?} is not a multiaddr, for example /ip4/127.0.0.1/tcp/7400"
                    )
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()
            .map(Some)
    };
    let mut net = NetConfig::default();
    if let Some(bootstrap) = addrs(&args.bootstrap, &file.bootstrap, "--bootstrap")? {
        net.bootstrap = bootstrap;
    }
    net.listen = match addrs(&args.listen, &file.listen, "--listen")? {
        Some(listen) => listen,
        None => crate::net::default_listen(&net.bootstrap),
    };
    if let Some(external) = addrs(&args.external, &file.external, "--external")? {
        net.external = external;
    }
    // mDNS finds peers on the LAN, which a node listening on this host only cannot serve.
    let reachable = !net.listen.iter().all(crate::net::is_loopback);
    net.mdns = !args.no_mdns && file.mdns.unwrap_or(reachable);
    net.max_connections = max_connections(config, args.max_connections)?;
    net.degree = degree(config, args.peers_low, args.peers_high)?;
    if net.degree.high() > net.max_connections {
        tracing::warn!(
            peers_high = net.degree.high(),
            max_connections = net.max_connections,
            "the connection limit is below the high watermark and caps the peers first"
        );
    }
    net.peer_store = Some(config.data_dir.join(PEER_STORE_FILE));
    if let Some(seconds) = args.backfill_interval.or(file.backfill_interval_secs) {
        if seconds == 0 {
            bail!("--backfill-interval must be at least 1 second");
        }
        net.backfill_interval = Duration::from_secs(seconds);
    }
    let mut namespaces = if args.follow.is_empty() {
        file.follow.clone().unwrap_or_default()
    } else {
        args.follow.clone()
    };
    if !namespaces.contains(&config.namespace) {
        namespaces.push(config.namespace.clone());
    }
    Ok(NodeConfig {
        net,
        namespaces,
        quarantine_forkers: !args.no_quarantine && file.quarantine_forkers.unwrap_or(true),
        clock_skew_ms: args
            .clock_skew_ms
            .or(file.clock_skew_ms)
            .unwrap_or(plexus_protocol::coord::DEFAULT_CLOCK_SKEW_MS),
        view_history_ms: view_history_ms(args.view_history_minutes.or(file.view_history_minutes))?,
        ingress: ingress_limits(
            args.ingress_peer_rate.or(file.ingress_peer_rate),
            args.ingress_author_rate.or(file.ingress_author_rate),
        )?,
    })
}

/// The trust roots: from `--trust-root` flags when given, else from the config file.
pub fn trust_roots(config: &Config, flags: &[String]) -> anyhow::Result<TrustRoots> {
    if flags.is_empty() {
        return Ok(config.trust_roots.clone());
    }
    Ok(config::parse_trust_root_flags(flags)?)
}

/// The connection limit from the flag (or `PLEXUS_MAX_CONNECTIONS`), else the config file,
/// else the default; a limit with no room to dial out is refused, naming where it came from.
fn max_connections(config: &Config, flag: Option<u32>) -> anyhow::Result<u32> {
    let (max, source) = match (flag, config.network.max_connections) {
        (Some(max), _) => (
            max,
            "--max-connections (or PLEXUS_MAX_CONNECTIONS)".to_owned(),
        ),
        (None, Some(max)) => (
            max,
            format!(
                "network.max_connections in {}",
                config.config_path.display()
            ),
        ),
        (None, None) => return Ok(DEFAULT_MAX_CONNECTIONS),
    };
    if max < MIN_CONNECTIONS {
        bail!(
            "{source} is {max}: a node needs at least {MIN_CONNECTIONS} connections, one \
             inbound and one to dial out with (the default is {DEFAULT_MAX_CONNECTIONS})"
        );
    }
    Ok(max)
}

/// The degree watermarks from the flags (or `PLEXUS_PEERS_LOW`/`_HIGH`), else the config
/// file, else the defaults; watermarks that cannot work are refused, naming where each came
/// from.
fn degree(config: &Config, low: Option<u32>, high: Option<u32>) -> anyhow::Result<DegreeTarget> {
    let file = &config.network;
    let source = |flag: Option<u32>, from_file: Option<u32>, name: &str| match (flag, from_file) {
        (Some(_), _) => format!("--peers-{name} (or PLEXUS_PEERS_{})", name.to_uppercase()),
        (None, Some(_)) => format!("network.peers_{name} in {}", config.config_path.display()),
        (None, None) => format!("the default peers-{name}"),
    };
    let low_value = low.or(file.peers_low).unwrap_or(DEFAULT_PEERS_LOW);
    let high_value = high.or(file.peers_high).unwrap_or(DEFAULT_PEERS_HIGH);
    DegreeTarget::new(low_value, high_value).map_err(|error| {
        anyhow::anyhow!(
            "{error} (low watermark from {}, high watermark from {}; the defaults are \
             {DEFAULT_PEERS_LOW} and {DEFAULT_PEERS_HIGH})",
            source(low, file.peers_low, "low"),
            source(high, file.peers_high, "high")
        )
    })
}

/// `--view-history-minutes` in milliseconds: the default when not given, at least
/// [`crate::coord::MIN_VIEW_HISTORY_MS`].
fn view_history_ms(minutes: Option<u64>) -> anyhow::Result<u64> {
    let Some(minutes) = minutes else {
        return Ok(crate::coord::DEFAULT_VIEW_HISTORY_MS);
    };
    let min_minutes = crate::coord::MIN_VIEW_HISTORY_MS / 60_000;
    if minutes < min_minutes {
        bail!(
            "--view-history-minutes (network.view_history_minutes) must be at least \
             {min_minutes}: the view must answer for well past the clock-skew window (asked: \
             {minutes})"
        );
    }
    Ok(minutes.saturating_mul(60_000))
}

fn ingress_limits(peer: Option<u32>, author: Option<u32>) -> anyhow::Result<IngressLimits> {
    let mut limits = IngressLimits::default();
    for (value, slot, flag) in [
        (peer, &mut limits.peer_per_sec, "--ingress-peer-rate"),
        (author, &mut limits.author_per_sec, "--ingress-author-rate"),
    ] {
        if let Some(value) = value {
            if value == 0 {
                bail!("{flag} must be a number of messages per second, at least 1");
            }
            *slot = f64::from(value);
        }
    }
    Ok(limits)
}

pub fn status(config: &Config, args: StatusArgs) -> anyhow::Result<ExitCode> {
    let body = get_json(&config.data_dir, "/v1/status")?;
    if args.json {
        println!("{body}");
        return Ok(ExitCode::SUCCESS);
    }
    let status: NodeStatus =
        serde_json::from_str(&body).context("the node's status is not valid JSON")?;
    println!("agent {}", status.agent_id);
    println!("peer  {}", status.network.peer_id);
    for address in &status.network.listen_addrs {
        println!(
            "  listening on {}",
            dialable(address, &status.network.peer_id)
        );
    }
    let connections = &status.network.connections;
    println!(
        "connections: {} inbound, {} outbound (at most {}, {} inbound); refused at the limit: \
         {} inbound, {} of our dials",
        connections.incoming,
        connections.outgoing,
        connections.max_established,
        connections.max_incoming,
        connections.refused_incoming,
        connections.refused_outgoing
    );
    println!("peers ({}):", status.network.peers.len());
    for peer in &status.network.peers {
        println!(
            "  {} score {} in the mesh of {} topics",
            peer.peer_id,
            peer.score
                .map_or("-".to_owned(), |score| format!("{score:.1}")),
            peer.mesh.len()
        );
    }
    println!(
        "gossip: {} received, {} dropped (ingest queue full)",
        status.network.gossip_received, status.network.gossip_dropped_queue_full
    );
    println!("namespaces: {}", status.network.namespaces.join(", "));
    println!("topics: {}", status.network.topics.len());
    println!(
        "log: {} entries in {} feeds, {} forks, {} pending, {} rejected",
        status.log.entries,
        status.log.feeds,
        status.log.forks,
        status.log.pending,
        status.log.rejected
    );
    println!(
        "backfill: {} requests in flight, {} ranges queued, {} entries fetched",
        status.network.sync_requests_in_flight,
        status.network.sync_ranges_queued,
        status.network.entries_fetched
    );
    for feed in &status.feeds {
        println!(
            "  feed {} {} head seq {} {}",
            feed.namespace,
            feed.author,
            feed.seq,
            &feed.id[..8.min(feed.id.len())]
        );
    }
    for feed in &status.quarantined {
        println!("  QUARANTINED {} {}", feed.namespace, feed.author);
    }
    Ok(ExitCode::SUCCESS)
}

/// GETs a JSON document from the node running on `data_dir`, with its token.
pub fn get_json(data_dir: &Path, route: &str) -> anyhow::Result<String> {
    let client = ApiClient::for_data_dir(data_dir)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let answer = runtime.block_on(client.get(route))?;
    Ok(answer.to_string())
}

/// The running node's listening addresses, each ending in `/p2p/<peer id>` so that another
/// node can dial it as it is.
pub fn dialable_addresses(data_dir: &Path) -> anyhow::Result<Vec<String>> {
    let body = get_json(data_dir, "/v1/node")?;
    let node: serde_json::Value = serde_json::from_str(&body)?;
    let peer_id = node["peer_id"].as_str().unwrap_or_default();
    Ok(node["listen_addrs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(serde_json::Value::as_str)
        .map(|address| dialable(address, peer_id))
        .collect())
}

fn dialable(address: &str, peer_id: &str) -> String {
    if address.contains("/p2p/") {
        address.to_owned()
    } else {
        format!("{address}/p2p/{peer_id}")
    }
}

/// Refuses listen addresses whose port another process already holds. libp2p binds with
/// SO_REUSEPORT, so a second node on the same port would start and share it with the first,
/// each getting some of the connections; a plain bind (without that option) fails instead.
fn check_ports_free(listen: &[Multiaddr]) -> anyhow::Result<()> {
    use libp2p::multiaddr::Protocol;
    for address in listen {
        let mut ip = None;
        for protocol in address.iter() {
            let socket = match (protocol, ip) {
                (Protocol::Ip4(addr), _) => {
                    ip = Some(std::net::IpAddr::V4(addr));
                    continue;
                }
                (Protocol::Ip6(addr), _) => {
                    ip = Some(std::net::IpAddr::V6(addr));
                    continue;
                }
                (Protocol::Tcp(port), Some(ip)) if port != 0 => {
                    std::net::TcpListener::bind((ip, port)).map(drop)
                }
                (Protocol::Udp(port), Some(ip)) if port != 0 => {
                    std::net::UdpSocket::bind((ip, port)).map(drop)
                }
                _ => continue,
            };
            if let Err(error) = socket {
                bail!(
                    "cannot listen on {address}: {error}; another process (perhaps another \
                     plexus node) holds that port: stop it, or pick another --listen port"
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::NetworkFile;

    fn config_with(max_connections: Option<u32>) -> Config {
        Config {
            config_path: PathBuf::from("/etc/plexus/config.toml"),
            config_file_exists: true,
            data_dir: PathBuf::from("/var/lib/plexus"),
            namespace: "default".into(),
            network: NetworkFile {
                max_connections,
                ..NetworkFile::default()
            },
            trust_roots: TrustRoots::default(),
        }
    }

    #[test]
    fn watermarks_come_from_the_flags_then_the_file_and_must_make_sense() {
        let mut config = config_with(None);
        let defaults = degree(&config, None, None).unwrap();
        assert_eq!(
            (defaults.low(), defaults.high()),
            (DEFAULT_PEERS_LOW, DEFAULT_PEERS_HIGH)
        );
        config.network.peers_low = Some(6);
        config.network.peers_high = Some(12);
        let from_file = degree(&config, None, None).unwrap();
        assert_eq!((from_file.low(), from_file.high()), (6, 12));
        let from_flags = degree(&config, Some(3), Some(4)).unwrap();
        assert_eq!((from_flags.low(), from_flags.high()), (3, 4));
        // A flag low above the file's high: both sources named.
        let error = degree(&config, Some(30), None).unwrap_err().to_string();
        assert!(
            error.contains("(12) is below the low watermark (30)")
                && error.contains("--peers-low (or PLEXUS_PEERS_LOW)")
                && error.contains("network.peers_high in /etc/plexus/config.toml"),
            "{error}"
        );
        let error = degree(&config, Some(0), None).unwrap_err().to_string();
        assert!(error.contains("low watermark is 0"), "{error}");
    }

    #[test]
    fn the_connection_limit_comes_from_the_flag_then_the_file_and_needs_room_to_dial_out() {
        assert_eq!(
            max_connections(&config_with(None), None).unwrap(),
            DEFAULT_MAX_CONNECTIONS
        );
        assert_eq!(max_connections(&config_with(Some(40)), None).unwrap(), 40);
        assert_eq!(max_connections(&config_with(Some(40)), Some(9)).unwrap(), 9);
        // The flag wins even over a bad file value.
        assert_eq!(max_connections(&config_with(Some(0)), Some(2)).unwrap(), 2);
        let error = max_connections(&config_with(None), Some(1))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("--max-connections (or PLEXUS_MAX_CONNECTIONS) is 1")
                && error.contains("at least 2"),
            "{error}"
        );
        let error = max_connections(&config_with(Some(0)), None)
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("network.max_connections in /etc/plexus/config.toml is 0"),
            "{error}"
        );
    }

    #[test]
    fn the_view_history_is_given_in_minutes_and_may_not_be_shorter_than_five() {
        assert_eq!(
            view_history_ms(None).unwrap(),
            crate::coord::DEFAULT_VIEW_HISTORY_MS
        );
        assert_eq!(view_history_ms(Some(5)).unwrap(), 300_000);
        assert_eq!(view_history_ms(Some(1_440)).unwrap(), 86_400_000);
        let error = view_history_ms(Some(4)).unwrap_err().to_string();
        assert!(
            error.contains(
                "--view-history-minutes (network.view_history_minutes) must be at least 5"
            ) && error.contains("(asked: 4)"),
            "{error}"
        );
    }
}
