//! Commands that work on the local data directory: `init`, `id`, `publish`, `log`.

use std::collections::VecDeque;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use plexus_crypto::{AgentId, Keypair};
use plexus_protocol::entry::check_name;
use plexus_protocol::{value, Entry};

use super::time::format_time;
use super::{IdArgs, InitArgs, LogArgs, PublishArgs, EXIT_REFUSED};
use crate::client::{ApiClient, ClientError};
use crate::clock::now_ms;
use crate::config::{self, Config, ConfigFile, PathOverrides};
use crate::store::{Log, StoreError};

pub fn init(
    config: &Config,
    overrides: &PathOverrides,
    args: InitArgs,
) -> anyhow::Result<ExitCode> {
    if let Some(namespace) = &args.namespace {
        check_name("namespace", namespace)?;
    }
    let key_path = config.key_path();
    let keypair = if key_path.exists() {
        let keypair = config::load_key_file(&key_path)?;
        println!("identity already exists: {}", keypair.agent_id());
        keypair
    } else {
        let keypair = Keypair::generate();
        config::create_key_file(&key_path, &keypair)?;
        println!("created identity {}", keypair.agent_id());
        keypair
    };
    drop(Log::open(&config.data_dir)?);
    config::load_or_create_token(&config.data_dir)?;
    println!("  key file:   {} (mode 0600)", key_path.display());
    println!(
        "  API token:  {} (mode 0600; send it as `Authorization: Bearer <token>`)",
        config.data_dir.join(config::TOKEN_FILE).display()
    );
    println!(
        "  log:        {}",
        config.data_dir.join(crate::store::DB_DIR).display()
    );
    if config.config_file_exists {
        println!(
            "  config:     {} (kept as it was)",
            config.config_path.display()
        );
    } else {
        let file = ConfigFile {
            network: None,
            governance: None,
            data_dir: overrides.data_dir.clone(),
            namespace: Some(args.namespace.unwrap_or_else(|| config.namespace.clone())),
        };
        config::write_config_file(&config.config_path, &file)?;
        println!("  config:     {} (written)", config.config_path.display());
    }
    drop(keypair);
    Ok(ExitCode::SUCCESS)
}

pub fn id(config: &Config, args: IdArgs) -> anyhow::Result<ExitCode> {
    let keypair = config::load_key_file(&config.key_path())?;
    if !args.json {
        println!("{}", keypair.agent_id());
        return Ok(ExitCode::SUCCESS);
    }
    let peer_id = crate::net::behaviour::libp2p_keypair(&keypair)?
        .public()
        .to_peer_id();
    // The dialable addresses come from the running node, if there is one.
    let addresses = super::run::dialable_addresses(&config.data_dir).unwrap_or_default();
    let answer = serde_json::json!({
        "agent_id": keypair.agent_id().to_string(),
        "peer_id": peer_id.to_string(),
        "addresses": addresses,
    });
    println!("{}", serde_json::to_string_pretty(&answer)?);
    Ok(ExitCode::SUCCESS)
}

pub fn publish(config: &Config, args: PublishArgs) -> anyhow::Result<ExitCode> {
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| config.namespace.clone());
    check_name("namespace", &namespace)?;
    check_name("kind", &args.kind)?;
    let body = value::json_text_to_canonical(&args.body)
        .with_context(|| "--body must be one JSON value, for example '{\"text\": \"hello\"}'")?;
    let answer = if args.offline {
        None
    } else {
        match publish_through_node(config, &namespace, &args)? {
            ThroughNode::NotRunning => None,
            ThroughNode::Published(answer) => Some(answer),
            ThroughNode::Refused => return Ok(ExitCode::from(EXIT_REFUSED)),
        }
    };
    if let Some(answer) = answer {
        if args.json {
            println!("{answer}");
        } else {
            println!(
                "published {} seq {} in {} through the running node: id {}",
                args.kind,
                answer["seq"],
                namespace,
                answer["entry_id"].as_str().unwrap_or_default()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let keypair = config::load_key_file(&config.key_path())?;
    // Offline publishing follows the config file's governance, as the node would.
    let log = open_waiting_for_the_lock(config)?;
    let entry = match log.append_own(&keypair, &namespace, &args.kind, body, now_ms()) {
        Ok(entry) => entry,
        // Refused, as a running node would refuse it: exit 4 like the node's refusals.
        Err(refusal @ (StoreError::Body(_) | StoreError::Policy(_) | StoreError::Entry(_))) => {
            eprintln!("error: the entry was refused: {refusal}");
            return Ok(ExitCode::from(EXIT_REFUSED));
        }
        Err(error) => return Err(error.into()),
    };
    if args.json {
        println!("{}", entry_json(&entry, None));
    } else {
        println!(
            "published {} seq {} in {} ({} bytes): id {}",
            entry.header().kind,
            entry.header().seq,
            entry.header().namespace,
            entry.encoded_len(),
            entry.id()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// How long an offline writer waits for another offline writer to release the data directory.
const LOCK_WAIT: Duration = Duration::from_secs(5);
/// How often it tries again meanwhile.
const LOCK_RETRY: Duration = Duration::from_millis(50);

/// Opens the log for writing. Another offline writer holds the directory only for the moment
/// of one append, so two of them wait for each other briefly instead of one failing; a
/// running node holds it for good, and is reported at once.
fn open_waiting_for_the_lock(config: &Config) -> anyhow::Result<Log> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        let opened = Log::open_with(
            &config.data_dir,
            crate::store::LogOptions {
                trust_roots: config.trust_roots.clone(),
                ..Default::default()
            },
        );
        match opened {
            Err(StoreError::Locked { .. })
                if Instant::now() < deadline
                    && !config.data_dir.join(config::API_ADDR_FILE).exists() =>
            {
                std::thread::sleep(LOCK_RETRY);
            }
            other => return Ok(other?),
        }
    }
}

/// Whether some process holds the data directory's lock right now (a running node does).
fn data_dir_is_held(data_dir: &std::path::Path) -> bool {
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(data_dir.join(crate::store::LOCK_FILE))
    else {
        return false;
    };
    matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock))
}

/// What publishing through a running node did. While `plexus run` holds the data directory,
/// publishing goes through its API, so the entry is also gossiped.
enum ThroughNode {
    /// No node runs on this data directory: publish to the log directly.
    NotRunning,
    Published(serde_json::Value),
    /// The node refused the entry (the reason is printed); exit 4, like the coordination
    /// commands.
    Refused,
}

fn publish_through_node(
    config: &Config,
    namespace: &str,
    args: &PublishArgs,
) -> anyhow::Result<ThroughNode> {
    if !config.data_dir.join(config::API_ADDR_FILE).exists() {
        return Ok(ThroughNode::NotRunning);
    }
    let client = ApiClient::for_data_dir(&config.data_dir)?;
    let body: serde_json::Value = serde_json::from_str(&args.body)?;
    let request = serde_json::json!({ "kind": args.kind, "body": body });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match runtime.block_on(client.post(&format!("/v1/entries?namespace={namespace}"), &request)) {
        Ok(answer) => Ok(ThroughNode::Published(answer["entry"].clone())),
        // The address file says a node runs, but nothing answers. Writing offline behind its
        // back would surprise whoever started it: only a node that is gone for good (its
        // data directory no longer locked) is passed over, and that is said out loud.
        Err(error @ ClientError::Connect { .. }) => {
            if data_dir_is_held(&config.data_dir) {
                bail!(
                    "{error}; the node still holds {}, so nothing was written: wait for it, \
                     or stop it and pass --offline",
                    config.data_dir.display()
                );
            }
            eprintln!(
                "note: the node that ran on {} is gone ({error}); writing into the log \
                 directly, to be gossiped when a node runs again",
                config.data_dir.display()
            );
            Ok(ThroughNode::NotRunning)
        }
        Err(ClientError::Status {
            status,
            code,
            message,
            field,
        }) => {
            let field = field.map(|f| format!(" (field `{f}`)")).unwrap_or_default();
            eprintln!(
                "error: the running node refused the entry ({status} {code}){field}: {message}"
            );
            Ok(ThroughNode::Refused)
        }
        Err(other) => Err(other.into()),
    }
}

pub fn log(config: &Config, args: LogArgs) -> anyhow::Result<ExitCode> {
    let author: Option<AgentId> = args
        .author
        .as_deref()
        .map(str::parse)
        .transpose()
        .context("--author must be an agent id (64 hex digits)")?;
    if args.limit == Some(0) {
        bail!("--limit must be at least 1");
    }
    let log = Log::open_read_only(&config.data_dir)?;
    let print = |arrival: u64, entry: &Entry| {
        if args.json {
            println!("{}", entry_json(entry, Some(arrival)));
        } else {
            let header = entry.header();
            println!(
                "#{arrival:<6} {} {} seq {:<5} {:<14} {} {}",
                format_time(header.timestamp_ms),
                header.author.short(),
                header.seq,
                header.kind,
                header.namespace,
                body_text(entry)
            );
        }
    };
    // With --limit only the last N matches are kept; without it, entries stream out as read.
    let mut kept: VecDeque<(u64, Entry)> = VecDeque::new();
    let mut matched = 0u64;
    for item in log.journal(0) {
        let item = item?;
        let header = item.entry.header();
        let keep = author.is_none_or(|author| header.author == author)
            && args.kind.as_deref().is_none_or(|kind| header.kind == kind)
            && args
                .namespace
                .as_deref()
                .is_none_or(|namespace| header.namespace == namespace);
        if !keep {
            continue;
        }
        matched += 1;
        match args.limit {
            None => print(item.arrival, &item.entry),
            Some(limit) => {
                if kept.len() == limit {
                    kept.pop_front();
                }
                kept.push_back((item.arrival, item.entry));
            }
        }
    }
    for (arrival, entry) in &kept {
        print(*arrival, entry);
    }
    if matched == 0 && !args.json {
        eprintln!("no entries match");
    }
    Ok(ExitCode::SUCCESS)
}

/// An entry as one JSON object (the same shape the HTTP API will use).
pub fn entry_json(entry: &Entry, arrival: Option<u64>) -> serde_json::Value {
    let header = entry.header();
    let decoded = entry.body().map(value::canonical_to_json);
    // Bodies that are not canonical JSON values are shown as hex rather than hidden.
    let (body, body_hex) = match (decoded, entry.body()) {
        (Some(Ok(json)), _) => (json, None),
        (Some(Err(_)), Some(bytes)) => (serde_json::Value::Null, Some(hex_string(bytes))),
        _ => (serde_json::Value::Null, None),
    };
    serde_json::json!({
        "arrival": arrival,
        "id": entry.id().to_string(),
        "namespace": header.namespace,
        "author": header.author.to_string(),
        "seq": header.seq,
        "prev": header.prev.map(|prev| prev.to_string()),
        "timestamp_ms": header.timestamp_ms,
        "kind": header.kind,
        "body_hash": header.body_hash.to_string(),
        "body_len": header.body_len,
        "body": body,
        "body_hex": body_hex,
    })
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn body_text(entry: &Entry) -> String {
    match entry.body() {
        None => "(body pruned)".to_owned(),
        Some(bytes) => match value::canonical_to_json(bytes) {
            Ok(json) => json.to_string(),
            Err(_) => format!("({} bytes, not JSON)", bytes.len()),
        },
    }
}
