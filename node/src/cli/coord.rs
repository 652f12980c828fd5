//! The coordination commands: people's mirror of the HTTP API (`claim`, `release`, `leases`,
//! `agents`, `tasks`, ...) talking to the node running on the data directory, and
//! `audit replay`, which needs no node at all.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use plexus_protocol::coord::View;
use plexus_protocol::{cbor, export, Entry};
use serde_json::{json, Value};

use super::time::{format_time, parse_duration_ms, parse_time_ms};
use crate::audit::{self, Verdict, VerifyOptions};
use crate::client::{ApiClient, ClientError};
use crate::config::Config;
use crate::store::Log;

/// Options every coordination command shares.
#[derive(Debug, Args)]
pub struct Common {
    /// Namespace [default: the node's configured namespace]
    #[arg(long, global = true)]
    pub namespace: Option<String>,
    /// Print the node's JSON answer instead of a summary
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ClaimArgs {
    /// The resource to claim (`repo/plexus`, `slot/2026-12-01T10`)
    pub resource: String,
    /// What you are about to do with it
    #[arg(long, default_value = "write")]
    pub action: String,
    /// Lease duration (`90s`, `5m`, `1h`, `1500ms`)
    #[arg(long, default_value = "60s")]
    pub lease: String,
    /// A note for the other agents
    #[arg(long, default_value = "")]
    pub note: String,
    /// Breaks ties between claims made in the same millisecond (0-255)
    #[arg(long, default_value_t = 0)]
    pub priority: u8,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct RenewArgs {
    /// The claim id printed by `plexus claim`
    pub claim: String,
    /// New lease duration, counted from now
    #[arg(long, default_value = "60s")]
    pub lease: String,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// The claim id printed by `plexus claim`
    pub claim: String,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct LeasesArgs {
    /// Only this resource
    #[arg(long)]
    pub resource: Option<String>,
    /// Only leases held by this agent id
    #[arg(long)]
    pub holder: Option<String>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct AgentsArgs {
    /// Skill id or name
    #[arg(long)]
    pub skill: Option<String>,
    /// Skill tag
    #[arg(long)]
    pub tag: Option<String>,
    /// Text anywhere on the card
    #[arg(long, short)]
    pub query: Option<String>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct AnnounceArgs {
    /// The card as JSON (`name`, `description`, `version`, `url`, `skills`, `ttlMs`)
    #[arg(long, conflicts_with = "card_file")]
    pub card: Option<String>,
    /// A file holding the card as JSON
    #[arg(long, value_name = "FILE")]
    pub card_file: Option<std::path::PathBuf>,
    /// Withdraw this agent's card instead
    #[arg(long, conflicts_with_all = ["card", "card_file"])]
    pub revoke: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct TasksArgs {
    /// Only tasks in this state (`working` or `TASK_STATE_WORKING`)
    #[arg(long)]
    pub state: Option<String>,
    /// Only tasks of this context id
    #[arg(long)]
    pub context: Option<String>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct TaskArgs {
    /// The task id
    pub task_id: String,
    /// Move the task to this state (`submitted`, `working`, `completed`, ...); without it the
    /// task and its history are shown
    #[arg(long)]
    pub state: Option<String>,
    /// Status message
    #[arg(long, default_value = "")]
    pub message: String,
    /// Context id
    #[arg(long, default_value = "")]
    pub context: String,
    /// Entry id this update depends on (repeatable)
    #[arg(long = "ref", value_name = "ENTRY_ID")]
    pub references: Vec<String>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct ConstrainArgs {
    /// A resource, or a prefix ending in `*` (`repo/*`)
    pub resource: String,
    /// At most one holder
    #[arg(long, group = "rule")]
    pub exclusive: bool,
    /// At most N holders
    #[arg(long, group = "rule", value_name = "N")]
    pub max_holders: Option<u32>,
    /// Nobody holds it before this time (RFC 3339 or Unix milliseconds)
    #[arg(long, group = "rule", value_name = "TIME")]
    pub not_before: Option<String>,
    /// Each agent's claims count only while it made fewer than N in WINDOW (`3/10m`)
    #[arg(long, group = "rule", value_name = "N/WINDOW")]
    pub rate_limit: Option<String>,
    /// How long the constraint holds
    #[arg(long, default_value = "1h")]
    pub ttl: String,
    /// Why
    #[arg(long, default_value = "")]
    pub note: String,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct ShareArgs {
    /// Topic
    #[arg(long)]
    pub topic: String,
    /// One-line summary
    #[arg(long)]
    pub summary: String,
    /// Structured data as JSON
    #[arg(long)]
    pub data: Option<String>,
    /// Confidence from 0 to 1
    #[arg(long)]
    pub confidence: f64,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct PatternsArgs {
    /// Only this topic
    #[arg(long)]
    pub topic: Option<String>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Event types or entry kinds, comma-separated (`claim.won,claim.lost`, `task`)
    #[arg(long)]
    pub kind: Option<String>,
    /// A resource, or a prefix ending in `*`
    #[arg(long)]
    pub resource: Option<String>,
    /// A task id
    #[arg(long)]
    pub task: Option<String>,
    /// Stop after this many events
    #[arg(long)]
    pub count: Option<usize>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct RejectionsArgs {
    /// Show the newest N records
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// An export file, or a node's data directory
    #[arg(value_name = "FILE|DATA_DIR")]
    pub target: std::path::PathBuf,
    /// The moment to reconstruct (RFC 3339 such as 2026-11-25T18:00:00Z, or Unix milliseconds)
    #[arg(long, value_name = "TIME")]
    pub at: String,
    /// Only this namespace
    #[arg(long)]
    pub namespace: Option<String>,
    /// Replay even if the log does not verify
    #[arg(long)]
    pub unverified: bool,
    /// Print the reconstructed state as JSON
    #[arg(long)]
    pub json: bool,
}

/// The coordination commands.
#[derive(Debug, Subcommand)]
pub enum CoordCommand {
    /// Claim a resource for a lease; prints whether you hold it or wait
    Claim(ClaimArgs),
    /// Extend one of your claims
    Renew(RenewArgs),
    /// Release one of your claims
    Release(ReleaseArgs),
    /// The lease table: who holds what, who waits
    Leases(LeasesArgs),
    /// Publish (or revoke) this agent's capability card
    Announce(AnnounceArgs),
    /// Search the live capability cards
    Agents(AgentsArgs),
    /// The task board
    Tasks(TasksArgs),
    /// Show a task, or move it to a new state with --state
    Task(TaskArgs),
    /// Publish a constraint on resources
    Constrain(ConstrainArgs),
    /// The live constraints
    Constraints(ListArgs),
    /// Share a learned pattern
    Share(ShareArgs),
    /// Shared patterns
    Patterns(PatternsArgs),
    /// Follow the node's change events (claims won and lost, tasks, leases, entries)
    Events(EventsArgs),
    /// The node's rejection journal: what was refused and why
    Rejections(RejectionsArgs),
    /// Governance: show, propose or sign a namespace's policy
    #[command(subcommand)]
    Policy(super::governance::PolicyCommand),
    /// The members of a governed namespace, their roles, and revocations
    Members(super::governance::MembersArgs),
}

/// Runs a coordination command against the node running on `config`'s data directory.
pub fn run(config: &Config, command: CoordCommand) -> anyhow::Result<ExitCode> {
    let client = ApiClient::for_data_dir(&config.data_dir)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match runtime.block_on(dispatch(&client, command)) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(error) => match error.downcast_ref::<ClientError>() {
            Some(ClientError::Status {
                status,
                code,
                message,
                field,
            }) => {
                let field = field
                    .as_ref()
                    .map(|f| format!(" (field `{f}`)"))
                    .unwrap_or_default();
                eprintln!(
                    "error: the node refused the request ({status} {code}){field}: {message}"
                );
                Ok(ExitCode::from(4))
            }
            _ => Err(error),
        },
    }
}

async fn dispatch(client: &ApiClient, command: CoordCommand) -> anyhow::Result<()> {
    match command {
        CoordCommand::Claim(args) => {
            let body = json!({
                "resource": args.resource,
                "action": args.action,
                "leaseMs": parse_duration_ms(&args.lease)?,
                "note": args.note,
                "priority": args.priority,
            });
            let answer = client
                .post(&path("/v1/claims", &args.common, &[]), &body)
                .await?;
            print_or(&args.common, &answer, || {
                let claim = &answer["claim"];
                println!("claim {}", text(&claim["claim_id"]));
                println!(
                    "  {} {} until {}",
                    text(&claim["standing"]),
                    text(&claim["resource"]),
                    format_time(claim["expires_ms"].as_u64().unwrap_or(0))
                );
            })
        }
        CoordCommand::Renew(args) => {
            let body = json!({ "leaseMs": parse_duration_ms(&args.lease)? });
            let route = format!("/v1/claims/{}/renew", args.claim);
            let answer = client.post(&path(&route, &args.common, &[]), &body).await?;
            print_or(&args.common, &answer, || {
                let claim = &answer["claim"];
                println!(
                    "renewed {}: {} until {}",
                    text(&claim["resource"]),
                    text(&claim["standing"]),
                    format_time(claim["expires_ms"].as_u64().unwrap_or(0))
                );
            })
        }
        CoordCommand::Release(args) => {
            let route = format!("/v1/claims/{}/release", args.claim);
            let answer = client
                .post(&path(&route, &args.common, &[]), &json!({}))
                .await?;
            print_or(&args.common, &answer, || {
                println!("released {}", args.claim)
            })
        }
        CoordCommand::Leases(args) => {
            let query = [
                ("resource", args.resource.clone()),
                ("holder", args.holder.clone()),
            ];
            let answer = client
                .get(&path("/v1/leases", &args.common, &query))
                .await?;
            print_or(&args.common, &answer, || print_leases(&answer["leases"]))
        }
        CoordCommand::Announce(args) => {
            let (route, body) = if args.revoke {
                ("/v1/capability/revoke", json!({}))
            } else {
                let text = match (&args.card, &args.card_file) {
                    (Some(card), _) => card.clone(),
                    (None, Some(file)) => std::fs::read_to_string(file)
                        .with_context(|| format!("cannot read {}", file.display()))?,
                    (None, None) => {
                        bail!("give the card with --card JSON or --card-file FILE, or use --revoke")
                    }
                };
                let card: Value =
                    serde_json::from_str(&text).context("the card is not valid JSON")?;
                ("/v1/capability", card)
            };
            let answer = client.post(&path(route, &args.common, &[]), &body).await?;
            print_or(&args.common, &answer, || {
                println!("published entry {}", text(&answer["entry"]["entry_id"]))
            })
        }
        CoordCommand::Agents(args) => {
            let query = [
                ("skill", args.skill.clone()),
                ("tag", args.tag.clone()),
                ("q", args.query.clone()),
            ];
            let answer = client
                .get(&path("/v1/agents", &args.common, &query))
                .await?;
            print_or(&args.common, &answer, || {
                for card in answer["agents"].as_array().into_iter().flatten() {
                    let skills: Vec<&str> = card["skills"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|s| s["id"].as_str())
                        .collect();
                    println!(
                        "{:<20} {}  skills: {}  until {}",
                        text(&card["name"]),
                        short(&card["author"]),
                        skills.join(", "),
                        format_time(card["expires_ms"].as_u64().unwrap_or(0))
                    );
                }
            })
        }
        CoordCommand::Tasks(args) => {
            let query = [
                ("state", args.state.clone()),
                ("context", args.context.clone()),
            ];
            let answer = client.get(&path("/v1/tasks", &args.common, &query)).await?;
            print_or(&args.common, &answer, || {
                for task in answer["tasks"].as_array().into_iter().flatten() {
                    println!(
                        "{:<16} {:<26} by {}  {}",
                        text(&task["task_id"]),
                        text(&task["state"]),
                        short(&task["updated_by"]),
                        text(&task["message"])
                    );
                }
            })
        }
        CoordCommand::Task(args) => {
            let Some(state) = &args.state else {
                let route = format!("/v1/tasks/{}", args.task_id);
                let answer = client.get(&path(&route, &args.common, &[])).await?;
                return print_or(&args.common, &answer, || print_task(&answer));
            };
            let state: plexus_protocol::coord::TaskState =
                state.parse().map_err(anyhow::Error::msg)?;
            let body = json!({
                "taskId": args.task_id,
                "contextId": args.context,
                "status": { "state": state.as_str(), "message": args.message },
                "references": args.references,
            });
            let answer = client
                .post(&path("/v1/tasks", &args.common, &[]), &body)
                .await?;
            print_or(&args.common, &answer, || print_task(&answer["task"]))
        }
        CoordCommand::Constrain(args) => {
            let rule = if args.exclusive {
                json!({"type": "exclusive"})
            } else if let Some(limit) = args.max_holders {
                json!({"type": "maxHolders", "limit": limit})
            } else if let Some(at) = &args.not_before {
                json!({"type": "notBefore", "at": parse_time_ms(at)?})
            } else if let Some(rate) = &args.rate_limit {
                let (claims, window) = rate
                    .split_once('/')
                    .context("--rate-limit takes N/WINDOW, for example 3/10m")?;
                json!({"type": "rateLimit", "claims": claims.parse::<u32>().context("--rate-limit: N must be a whole number")?, "windowMs": parse_duration_ms(window)?})
            } else {
                bail!("give one rule: --exclusive, --max-holders N, --not-before TIME or --rate-limit N/WINDOW");
            };
            let body = json!({"resource": args.resource, "rule": rule, "ttlMs": parse_duration_ms(&args.ttl)?, "note": args.note});
            let answer = client
                .post(&path("/v1/constraints", &args.common, &[]), &body)
                .await?;
            print_or(&args.common, &answer, || {
                println!(
                    "published constraint {}",
                    text(&answer["entry"]["entry_id"])
                )
            })
        }
        CoordCommand::Constraints(args) => {
            let answer = client
                .get(&path("/v1/constraints", &args.common, &[]))
                .await?;
            print_or(&args.common, &answer, || {
                for constraint in answer["constraints"].as_array().into_iter().flatten() {
                    println!(
                        "{:<24} {}  until {}  {}",
                        text(&constraint["resource"]),
                        constraint["rule"],
                        format_time(constraint["expires_ms"].as_u64().unwrap_or(0)),
                        text(&constraint["note"])
                    );
                }
            })
        }
        CoordCommand::Share(args) => {
            let data: Value = match &args.data {
                Some(data) => serde_json::from_str(data).context("--data is not valid JSON")?,
                None => Value::Null,
            };
            let body = json!({"topic": args.topic, "summary": args.summary, "data": data, "confidence": args.confidence});
            let answer = client
                .post(&path("/v1/patterns", &args.common, &[]), &body)
                .await?;
            print_or(&args.common, &answer, || {
                println!("shared pattern {}", text(&answer["entry"]["entry_id"]))
            })
        }
        CoordCommand::Patterns(args) => {
            let answer = client
                .get(&path(
                    "/v1/patterns",
                    &args.common,
                    &[("topic", args.topic.clone())],
                ))
                .await?;
            print_or(&args.common, &answer, || {
                for pattern in answer["patterns"].as_array().into_iter().flatten() {
                    println!(
                        "{:<16} {:.2}  {}  by {}",
                        text(&pattern["topic"]),
                        pattern["confidence"].as_f64().unwrap_or(0.0),
                        text(&pattern["summary"]),
                        short(&pattern["author"])
                    );
                }
            })
        }
        CoordCommand::Events(args) => {
            let query = [
                ("kind", args.kind.clone()),
                ("resource", args.resource.clone()),
                ("task", args.task.clone()),
            ];
            let route = path("", &args.common, &query);
            let mut stream = client.events(route.trim_start_matches('?')).await?;
            let mut seen = 0usize;
            while let Some(message) = stream.next().await? {
                if args.common.json {
                    println!("{}", message.data);
                } else {
                    let event: Value = serde_json::from_str(&message.data).unwrap_or(Value::Null);
                    let subject = event["resource"]
                        .as_str()
                        .or(event["task_id"].as_str())
                        .or(event["kind"].as_str())
                        .unwrap_or("");
                    println!(
                        "#{} {} {} {}",
                        message.id.unwrap_or_default(),
                        format_time(event["time_ms"].as_u64().unwrap_or(0)),
                        message.event,
                        subject
                    );
                }
                seen += 1;
                if args.count.is_some_and(|count| seen >= count) {
                    break;
                }
            }
            Ok(())
        }
        CoordCommand::Rejections(args) => {
            let route = format!("/v1/rejections?limit={}", args.limit);
            let answer = client.get(&route).await?;
            print_or(&args.common, &answer, || {
                for record in answer["rejections"].as_array().into_iter().flatten() {
                    let reason = match record["rule"].as_str() {
                        Some(rule) => format!(
                            "{}:{rule} (policy v{})",
                            text(&record["reason"]),
                            text(&record["policy_version"])
                        ),
                        None => text(&record["reason"]),
                    };
                    println!(
                        "{} {:<14} {}  ({})",
                        format_time(record["time_ms"].as_u64().unwrap_or(0)),
                        reason,
                        text(&record["detail"]),
                        text(&record["source"])
                    );
                }
            })
        }
        CoordCommand::Policy(command) => super::governance::policy(client, command).await,
        CoordCommand::Members(args) => super::governance::members(client, args).await,
    }
}

/// `plexus audit replay`: who held which lease, which cards were live and which state each
/// task was in at `--at`, from the log alone.
pub fn replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let at = parse_time_ms(&args.at)?;
    let is_dir = args.target.is_dir();
    if !args.unverified {
        let options = VerifyOptions::default();
        let report = if is_dir {
            audit::verify_data_dir(&args.target, &options, &())?
        } else {
            audit::verify_file(&args.target, &options, &())?
        };
        if report.verdict != Verdict::Verified {
            bail!(
                "{} does not verify ({} problems): run `plexus audit verify` on it for details, \
                 or pass --unverified to replay it anyway",
                args.target.display(),
                report.findings.len()
            );
        }
    }
    let mut view = View::new();
    let mut entries = 0u64;
    let mut apply = |entry: Entry| {
        entries += 1;
        view.apply(&entry);
    };
    if is_dir {
        let log = Log::open_read_only(&args.target)?;
        for item in log.raw_entries() {
            let (_, bytes) = item?;
            apply(Entry::decode(&bytes).context("the log holds an undecodable entry")?);
        }
    } else {
        for item in export_items(&args.target)? {
            if export::classify(&item) == export::ItemKind::Entry {
                apply(Entry::decode(&item).context("the export holds an undecodable entry")?);
            }
        }
    }
    let snapshot = view.snapshot(at);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&snapshot)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "state at {} ({at}) from {entries} entries of {}",
        format_time(at),
        args.target.display()
    );
    for (namespace, space) in &snapshot.namespaces {
        if args
            .namespace
            .as_ref()
            .is_some_and(|wanted| wanted != namespace)
        {
            continue;
        }
        println!("\nnamespace {namespace}");
        println!("  live capabilities ({}):", space.cards.len());
        for card in &space.cards {
            let skills: Vec<&str> = card.skills.iter().map(|s| s.id.as_str()).collect();
            println!(
                "    {:<20} {}  skills: {}",
                card.name,
                &card.author[..12.min(card.author.len())],
                skills.join(", ")
            );
        }
        println!("  leases ({}):", space.leases.len());
        for lease in &space.leases {
            let holders: Vec<String> = lease
                .holders
                .iter()
                .map(|c| {
                    format!(
                        "{} (claim {})",
                        &c.author[..12.min(c.author.len())],
                        &c.claim_id[..12.min(c.claim_id.len())]
                    )
                })
                .collect();
            println!(
                "    {:<24} held by {}; {} waiting",
                lease.resource,
                if holders.is_empty() {
                    "nobody".to_owned()
                } else {
                    holders.join(", ")
                },
                lease.waiting.len()
            );
        }
        println!("  tasks ({}):", space.tasks.len());
        for task in &space.tasks {
            println!(
                "    {:<16} {:<26} {}",
                task.task_id,
                task.state.as_str(),
                task.message
            );
        }
        println!("  constraints in force: {}", space.constraints.len());
    }
    Ok(ExitCode::SUCCESS)
}

fn export_items(path: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut items = Vec::new();
    let mut offset = 0usize;
    while offset < bytes.len() {
        let rest = &bytes[offset..];
        let len = cbor::item_len(rest)
            .map_err(|error| anyhow::anyhow!("at byte {offset}: {error}"))?
            .with_context(|| format!("the file ends inside an item at byte {offset}"))?;
        items.push(rest[..len].to_vec());
        offset += len;
    }
    Ok(items)
}

pub(super) fn path(route: &str, common: &Common, query: &[(&str, Option<String>)]) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(namespace) = &common.namespace {
        parts.push(format!("namespace={}", encode(namespace)));
    }
    for (key, value) in query {
        if let Some(value) = value {
            parts.push(format!("{key}={}", encode(value)));
        }
    }
    if parts.is_empty() {
        route.to_owned()
    } else {
        format!("{route}?{}", parts.join("&"))
    }
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' | b'*' => {
                char::from(byte).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

pub(super) fn print_or(
    common: &Common,
    answer: &Value,
    human: impl FnOnce(),
) -> anyhow::Result<()> {
    if common.json {
        println!("{}", serde_json::to_string_pretty(answer)?);
    } else {
        human();
    }
    Ok(())
}

fn print_leases(leases: &Value) {
    for lease in leases.as_array().into_iter().flatten() {
        let holders: Vec<String> = lease["holders"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                format!(
                    "{} until {}",
                    short(&c["author"]),
                    format_time(c["expires_ms"].as_u64().unwrap_or(0))
                )
            })
            .collect();
        let waiting = lease["waiting"].as_array().map_or(0, Vec::len);
        let holders = if holders.is_empty() {
            "nobody".to_owned()
        } else {
            holders.join(", ")
        };
        println!(
            "{:<28} held by {holders}; {waiting} waiting",
            text(&lease["resource"])
        );
    }
}

fn print_task(task: &Value) {
    let context = text(&task["context_id"]);
    let context = if context.is_empty() {
        String::new()
    } else {
        format!(" (context {context})")
    };
    println!(
        "task {}{context} is {}",
        text(&task["task_id"]),
        text(&task["state"])
    );
    for item in task["history"].as_array().into_iter().flatten() {
        let refused = item["rejected"]
            .as_str()
            .map(|why| format!("  REFUSED: {why}"))
            .unwrap_or_default();
        println!(
            "  {} {:<26} by {}  {}{refused}",
            format_time(item["timestamp_ms"].as_u64().unwrap_or(0)),
            text(&item["state"]),
            short(&item["author"]),
            text(&item["message"])
        );
    }
}

pub(super) fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn short(value: &Value) -> String {
    let text = text(value);
    text.chars().take(12).collect()
}
