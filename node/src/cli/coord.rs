//! The coordination commands: people's mirror of the HTTP API (`claim`, `release`, `leases`,
//! `agents`, `tasks`, ...) talking to the node running on the data directory.

use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::time::{format_time, parse_duration_ms, parse_time_ms};
use crate::client::{ApiClient, ClientError};
use crate::config::Config;

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
                println!("  {}", standing_text(claim));
            })
        }
        CoordCommand::Renew(args) => {
            check_claim_id(&args.claim)?;
            let body = json!({ "leaseMs": parse_duration_ms(&args.lease)? });
            let route = format!("/v1/claims/{}/renew", args.claim);
            let answer = client.post(&path(&route, &args.common, &[]), &body).await?;
            print_or(&args.common, &answer, || {
                println!("renewed: {}", standing_text(&answer["claim"]));
            })
        }
        CoordCommand::Release(args) => {
            check_claim_id(&args.claim)?;
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
                say_if_empty(&answer["agents"], "no live capability cards match");
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
                say_if_empty(&answer["tasks"], "no tasks");
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
                let route = format!("/v1/tasks/{}", encode(&args.task_id));
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
                say_if_empty(&answer["constraints"], "no constraints in force");
                for constraint in answer["constraints"].as_array().into_iter().flatten() {
                    println!(
                        "{:<24} {}  until {}  {}",
                        text(&constraint["resource"]),
                        rule_text(&constraint["rule"]),
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
                say_if_empty(&answer["patterns"], "no patterns");
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
                say_if_empty(&answer["rejections"], "no rejections since start");
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

/// Percent-encodes a query value or a path segment: everything but RFC 3986's unreserved
/// characters (and `*`, which resource patterns use), so a `/` in a task id stays inside its
/// segment.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'*' => {
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

/// A constraint's rule in words.
fn rule_text(rule: &Value) -> String {
    let number = |key: &str| rule[key].as_u64().unwrap_or(0);
    match rule["type"].as_str().unwrap_or_default() {
        "exclusive" => "exclusive (one holder)".to_owned(),
        "maxHolders" => format!("at most {} holders", number("limit")),
        "notBefore" => format!("nobody holds it before {}", format_time(number("at"))),
        "rateLimit" => format!(
            "an agent's claims count while it made fewer than {} in {} ms",
            number("claims"),
            number("windowMs")
        ),
        _ => rule.to_string(),
    }
}

/// Says so when a list is empty, rather than printing nothing, which looks like a failure.
fn say_if_empty(list: &Value, message: &str) {
    if list.as_array().is_none_or(Vec::is_empty) {
        println!("{message}");
    }
}

/// Refuses, before any request, an argument that cannot be a claim id: the node would refuse
/// it too, and the message here can say what a claim id looks like.
fn check_claim_id(text: &str) -> anyhow::Result<()> {
    if plexus_protocol::coord::parse_entry_id(text).is_none() {
        bail!(
            "{text:?} is not a claim id: give the 64 lowercase hex digits that `plexus claim` \
             printed (`plexus leases --json` lists the claims)"
        );
    }
    Ok(())
}

/// A claim's standing in words, with the moment that matters for it: a holder until its
/// lease ends, a blocked claim until the constraint lets it in.
pub(super) fn standing_text(claim: &Value) -> String {
    let resource = text(&claim["resource"]);
    let expires = format_time(claim["expires_ms"].as_u64().unwrap_or(0));
    match claim["standing"].as_str().unwrap_or_default() {
        "holding" => format!("holding {resource} until {expires}"),
        "waiting" => format!(
            "waiting for {resource} (position {}; the claim lasts until {expires})",
            text(&claim["position"])
        ),
        "blocked" => format!(
            "blocked from {resource} by a notBefore constraint until {} (the claim lasts \
             until {expires})",
            format_time(claim["until_ms"].as_u64().unwrap_or(0))
        ),
        "rate_limited" => format!(
            "excluded from {resource} by a rate-limit constraint (the claim lasts until \
             {expires})"
        ),
        other => format!("{other} {resource} at {expires}"),
    }
}

fn print_leases(leases: &Value) {
    say_if_empty(leases, "no leases");
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
        for claim in lease["excluded"].as_array().into_iter().flatten() {
            println!("  {}: {}", short(&claim["author"]), standing_text(claim));
        }
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

pub(super) fn short(value: &Value) -> String {
    let text = text(value);
    text.chars().take(12).collect()
}
