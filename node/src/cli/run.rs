//! `plexus run` (the long-running sidecar) and `plexus status` (asks a running node).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use libp2p::Multiaddr;
use tracing::info;

use super::{RunArgs, StatusArgs};
use crate::api::{self, ApiState};
use crate::config::{self, Config, API_ADDR_FILE};
use crate::net::limits::MIN_CONNECTIONS;
use crate::net::{NetConfig, DEFAULT_MAX_CONNECTIONS};
use crate::node::limits::IngressLimits;
use crate::node::{Node, NodeConfig, NodeStatus};
use crate::store::{Log, LogOptions, TrustRoots};

/// Default address of the HTTP API.
pub const DEFAULT_API_LISTEN: &str = "127.0.0.1:7474";

/// Largest `status` response read from a node.
const MAX_STATUS_BYTES: u64 = 16 << 20;

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
    let node = Arc::new(Node::start(keypair, log, node_config).await?);
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
        node: Arc::clone(&node),
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
    Node::shutdown_shared(node).await?;
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
    config::parse_trust_root_flags(flags).map_err(anyhow::Error::msg)
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
        println!("  listening on {address}");
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
        "gossip: {} received, {} judged on the network task, {} dropped (ingest queue full)",
        status.network.gossip_received,
        status.network.gossip_judged_inline,
        status.network.gossip_dropped_queue_full
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
    let addr_file = data_dir.join(API_ADDR_FILE);
    let addr = std::fs::read_to_string(&addr_file).with_context(|| {
        format!(
            "no running node found for {} (no {}): start one with `plexus run`",
            data_dir.display(),
            API_ADDR_FILE
        )
    })?;
    let addr: SocketAddr = addr
        .trim()
        .parse()
        .with_context(|| format!("{} does not hold an address", addr_file.display()))?;
    let token = config::load_or_create_token(data_dir)?;
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).with_context(|| {
            format!(
                "cannot reach the node at {addr}: it may have stopped; start it with `plexus run`"
            )
        })?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "GET {route} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.take(MAX_STATUS_BYTES).read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        bail!("the node at {addr} sent an incomplete HTTP response");
    };
    let status_line = head.lines().next().unwrap_or_default();
    if !status_line.contains(" 200 ") {
        bail!("the node at {addr} answered {status_line}: {body}");
    }
    Ok(body.to_owned())
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
}
