//! `plexus policy show|propose|sign` and `plexus members`: governance through the running node.
//!
//! `propose` builds the next policy version from the one the node knows (or a file) and the
//! edits given as flags, and prints it; nothing is signed. `sign` has the node sign and publish
//! a policy body (the node's key must be one of the namespace's admins). Removing a member also
//! revokes it after its current head as this node sees it, so its later entries are refused
//! everywhere whatever their timestamps say, and its earlier ones stay valid.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use plexus_crypto::AgentId;
use plexus_protocol::coord::Body;
use plexus_protocol::policy::{Member, PolicyBody, RateLimit, Revocation};
use plexus_protocol::Kind;
use serde_json::Value;

use super::coord::{path, print_or, text, Common};
use super::time::{format_time, parse_duration_ms, parse_time_ms};
use crate::client::ApiClient;
use crate::clock::now_ms;

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// The namespace's admins, the policy in force and every version known
    Show(ShowArgs),
    /// Print the next policy version: the current one with the edits given as flags
    Propose(Box<ProposeArgs>),
    /// Sign and publish a policy body with this node's key (an admin's)
    Sign(SignArgs),
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct ProposeArgs {
    /// Start from this policy body (JSON) instead of the newest one the node knows
    #[arg(long, value_name = "FILE")]
    pub from: Option<PathBuf>,
    /// Define or replace a role: NAME=KIND,KIND,... (kinds, `x-*` or `*`; repeatable)
    #[arg(long, value_name = "NAME=KINDS")]
    pub role: Vec<String>,
    /// Add a member, or change its roles: AGENT_ID=ROLE,ROLE (repeatable)
    #[arg(long, value_name = "AGENT=ROLES")]
    pub add_member: Vec<String>,
    /// Remove a member and revoke its entries after its current head (repeatable)
    #[arg(long, value_name = "AGENT")]
    pub remove_member: Vec<String>,
    /// Per-author rate limit: ENTRIES/DURATION, such as 20/10s; `none` lifts it
    #[arg(long, value_name = "N/DURATION")]
    pub rate: Option<String>,
    /// Largest body in bytes
    #[arg(long, value_name = "BYTES")]
    pub max_body: Option<u64>,
    /// Longest lease, such as 10m
    #[arg(long, value_name = "DURATION")]
    pub max_lease: Option<String>,
    /// Most claims one agent may have running
    #[arg(long, value_name = "N")]
    pub max_claims: Option<u32>,
    /// Longest TTL of cards and constraints, such as 7d
    #[arg(long, value_name = "DURATION")]
    pub max_ttl: Option<String>,
    /// Clock-skew window for live entries, such as 30s
    #[arg(long, value_name = "DURATION")]
    pub clock_skew: Option<String>,
    /// When the policy takes effect (RFC 3339 or Unix ms) [default: when it is signed]
    #[arg(long, value_name = "TIME")]
    pub effective_at: Option<String>,
    /// A note recorded with the policy
    #[arg(long)]
    pub note: Option<String>,
    /// Write the body to this file instead of standard output
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct SignArgs {
    /// The policy body (JSON), or `-` for standard input
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Sign even a version that is not newer than the one in force (it will not take force)
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct MembersArgs {
    #[command(flatten)]
    pub common: Common,
}

/// The edits of `propose`, separated from I/O so they can be tested.
#[derive(Debug, Default, Clone)]
pub struct Edits {
    pub roles: Vec<(String, Vec<String>)>,
    pub add: Vec<(AgentId, Vec<String>)>,
    /// Members to remove, with the seq after which they are revoked.
    pub remove: Vec<(AgentId, u64)>,
    pub rate: Option<Option<RateLimit>>,
    pub max_body: Option<u64>,
    pub max_lease_ms: Option<u64>,
    pub max_claims: Option<u32>,
    pub max_ttl_ms: Option<u64>,
    pub clock_skew_ms: Option<u64>,
    pub effective_from: Option<u64>,
    pub note: Option<String>,
}

pub async fn policy(client: &ApiClient, command: PolicyCommand) -> anyhow::Result<()> {
    match command {
        PolicyCommand::Show(args) => {
            let answer = client.get(&path("/v1/policy", &args.common, &[])).await?;
            print_or(&args.common, &answer, || print_policy(&answer))
        }
        PolicyCommand::Propose(args) => {
            let current = client.get(&path("/v1/policy", &args.common, &[])).await?;
            if current["governed"] != Value::Bool(true) {
                bail!(
                    "namespace {} is open on this node: start the node with --trust-root \
                     {}=<admin id> before proposing a policy",
                    text(&current["namespace"]),
                    text(&current["namespace"])
                );
            }
            let base: Option<PolicyBody> = match &args.from {
                Some(file) => Some(
                    serde_json::from_str(&read_text(file)?)
                        .with_context(|| format!("{} is not a policy body", file.display()))?,
                ),
                None if current["latest"].is_null() => None,
                None => Some(
                    serde_json::from_value(current["latest"]["body"].clone())
                        .context("the node's newest policy is not a policy body")?,
                ),
            };
            let status = client.get("/v1/status").await?;
            let namespace = text(&current["namespace"]);
            let edits = edits_from(&args, &status, &namespace)?;
            let proposed = propose(base, &edits)?;
            let json = serde_json::to_string_pretty(&proposed)?;
            match &args.output {
                Some(file) => {
                    std::fs::write(file, format!("{json}\n"))
                        .with_context(|| format!("cannot write {}", file.display()))?;
                    eprintln!(
                        "wrote policy v{} to {}; publish it with `plexus policy sign {}`",
                        proposed.version,
                        file.display(),
                        file.display()
                    );
                }
                None => println!("{json}"),
            }
            Ok(())
        }
        PolicyCommand::Sign(args) => {
            let text_body = read_text(&args.file)?;
            let body: Value = serde_json::from_str(&text_body)
                .with_context(|| format!("{} is not JSON", args.file.display()))?;
            let route = path("/v1/policy", &args.common, &[]);
            let before = client.get(&route).await?;
            check_version_to_sign(&body, &before, args.force)?;
            let answer = client.post(&route, &body).await?;
            let after = client.get(&route).await?;
            print_or(&args.common, &answer, || {
                let entry = &answer["entry"];
                println!(
                    "published policy v{} in {}: entry {} (seq {})",
                    body["version"],
                    text(&entry["namespace"]),
                    text(&entry["entry_id"]),
                    entry["seq"]
                );
                match after["inForce"]["version"].as_u64() {
                    Some(version) if Some(version) == body["version"].as_u64() => {
                        println!("policy v{version} is in force now");
                    }
                    Some(version) => println!(
                        "policy v{version} is in force now (v{} {})",
                        body["version"],
                        if after["latest"]["version"] == body["version"] {
                            "takes effect later"
                        } else {
                            "does not take force"
                        }
                    ),
                    None => println!("no policy is in force yet"),
                }
            })
        }
    }
}

pub async fn members(client: &ApiClient, args: MembersArgs) -> anyhow::Result<()> {
    let answer = client.get(&path("/v1/members", &args.common, &[])).await?;
    print_or(&args.common, &answer, || {
        if answer["governed"] != Value::Bool(true) {
            println!("{} is open: anyone may post", text(&answer["namespace"]));
            return;
        }
        println!(
            "{} under policy {}",
            text(&answer["namespace"]),
            match answer["policyVersion"].as_u64() {
                Some(version) => format!("v{version}"),
                None => "(none in force: only admins may post)".to_owned(),
            }
        );
        for admin in answer["admins"].as_array().into_iter().flatten() {
            println!("  {}  admin", text(admin));
        }
        for member in answer["members"].as_array().into_iter().flatten() {
            let roles: Vec<String> = member["roles"]
                .as_array()
                .into_iter()
                .flatten()
                .map(text)
                .collect();
            let revoked = match member["revokedAfterSeq"].as_u64() {
                Some(seq) => format!("  (revoked after seq {seq})"),
                None => String::new(),
            };
            println!("  {}  {}{revoked}", text(&member["agent"]), roles.join(","));
        }
        for revoked in answer["revoked"].as_array().into_iter().flatten() {
            println!(
                "  {}  revoked after seq {}",
                text(&revoked["agent"]),
                revoked["afterSeq"]
            );
        }
    })
}

/// Refuses to sign a version that could not take force: one not newer than the version in
/// force (unless `force`, and then with a warning), or one so far ahead that the namespace
/// would run out of versions.
fn check_version_to_sign(body: &Value, current: &Value, force: bool) -> anyhow::Result<()> {
    let Some(version) = body["version"].as_u64() else {
        bail!("the policy body has no `version` (a whole number): make one with `plexus policy propose`");
    };
    let in_force = current["inForce"]["version"].as_u64();
    let newest = current["latest"]["version"].as_u64();
    let floor = in_force.max(newest).unwrap_or(0);
    if version <= floor {
        let which = match (in_force, newest) {
            (Some(in_force), Some(newest)) if newest > in_force => {
                format!("v{in_force} is in force and v{newest} is signed")
            }
            (Some(in_force), _) => format!("v{in_force} is in force"),
            (None, Some(newest)) => format!("v{newest} is signed"),
            (None, None) => String::from("no version is known"),
        };
        if !force {
            bail!(
                "policy v{version} is not newer than what this namespace has ({which}), so it \
                 would never take force: make the next version with `plexus policy propose`, \
                 or pass --force to sign it anyway"
            );
        }
        eprintln!("warning: signing policy v{version} although {which}; it will not take force");
    }
    // The upper bound (at most 1,000 past the newest version) is the node's to enforce, for
    // every way in: POST /v1/policy refuses it with `version_too_far`.
    Ok(())
}

/// Applies `edits` to `base` (or an empty policy) as the next version.
pub fn propose(base: Option<PolicyBody>, edits: &Edits) -> anyhow::Result<PolicyBody> {
    let mut policy = match base {
        Some(mut base) => {
            base.version = base.version.checked_add(1).with_context(|| {
                format!(
                    "the newest policy has version {}, and no version can follow it: this \
                     namespace needs a new trust root",
                    base.version
                )
            })?;
            base.effective_from = None;
            base.note.clear();
            base
        }
        None => PolicyBody {
            version: 1,
            effective_from: None,
            roles: BTreeMap::new(),
            members: Vec::new(),
            revoked: Vec::new(),
            limits: Default::default(),
            note: String::new(),
        },
    };
    for (name, kinds) in &edits.roles {
        policy.roles.insert(name.clone(), kinds.clone());
    }
    for (agent, roles) in &edits.add {
        let agent = agent.to_string();
        for role in roles {
            if !policy.roles.contains_key(role) {
                bail!("role {role:?} is not defined: add it with --role {role}=KIND,...");
            }
        }
        if let Some(revocation) = policy.revoked.iter().find(|r| r.agent == agent) {
            bail!(
                "agent {agent} was revoked after its seq {}; revocations are permanent (every \
                 node keeps applying them), so re-admit that agent under a new key",
                revocation.after_seq
            );
        }
        match policy
            .members
            .iter_mut()
            .find(|member| member.agent == agent)
        {
            Some(member) => member.roles = roles.clone(),
            None => policy.members.push(Member {
                agent,
                roles: roles.clone(),
            }),
        }
    }
    for (agent, after_seq) in &edits.remove {
        let agent = agent.to_string();
        policy.members.retain(|member| member.agent != agent);
        // An earlier revocation stands (nodes apply the lowest seq anyway).
        if !policy.revoked.iter().any(|r| r.agent == agent) {
            policy.revoked.push(Revocation {
                agent,
                after_seq: *after_seq,
            });
        }
    }
    let limits = &mut policy.limits;
    if let Some(rate) = edits.rate {
        limits.rate = rate;
    }
    limits.max_body_bytes = edits.max_body.or(limits.max_body_bytes);
    limits.max_lease_ms = edits.max_lease_ms.or(limits.max_lease_ms);
    limits.max_claims = edits.max_claims.or(limits.max_claims);
    limits.max_ttl_ms = edits.max_ttl_ms.or(limits.max_ttl_ms);
    limits.clock_skew_ms = edits.clock_skew_ms.or(limits.clock_skew_ms);
    policy.effective_from = edits.effective_from;
    if let Some(note) = &edits.note {
        policy.note = note.clone();
    }
    // The same checks every node will run on the signed entry.
    let json = serde_json::to_value(&policy)?;
    Body::from_json(Kind::Policy.as_str(), json).map_err(|error| anyhow::anyhow!("{error}"))?;
    Ok(policy)
}

fn edits_from(args: &ProposeArgs, status: &Value, namespace: &str) -> anyhow::Result<Edits> {
    let mut edits = Edits::default();
    for role in &args.role {
        let (name, kinds) = role
            .split_once('=')
            .with_context(|| format!("--role {role:?} must be NAME=KIND,KIND,..."))?;
        let kinds = kinds
            .split(',')
            .filter(|kind| !kind.is_empty())
            .map(str::to_owned)
            .collect();
        edits.roles.push((name.to_owned(), kinds));
    }
    for member in &args.add_member {
        let (agent, roles) = member.split_once('=').unwrap_or((member.as_str(), ""));
        let agent: AgentId = agent
            .parse()
            .with_context(|| format!("--add-member {agent:?} is not an agent id"))?;
        let roles = roles
            .split(',')
            .filter(|role| !role.is_empty())
            .map(str::to_owned)
            .collect();
        edits.add.push((agent, roles));
    }
    for agent in &args.remove_member {
        let agent: AgentId = agent
            .parse()
            .with_context(|| format!("--remove-member {agent:?} is not an agent id"))?;
        let head = status["feeds"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|feed| {
                feed["namespace"] == namespace && feed["author"] == agent.to_string().as_str()
            })
            .and_then(|feed| feed["seq"].as_u64());
        if head.is_none() {
            eprintln!(
                "note: this node holds no entries of {agent} in {namespace}: it is revoked after \
                 seq 0, so every entry it ever made is refused"
            );
        }
        edits.remove.push((agent, head.unwrap_or(0)));
    }
    if let Some(rate) = &args.rate {
        edits.rate = Some(if rate == "none" {
            None
        } else {
            let (entries, window) = rate.split_once('/').with_context(|| {
                format!("--rate {rate:?} must be ENTRIES/DURATION, like 20/10s")
            })?;
            Some(RateLimit {
                entries: entries
                    .parse()
                    .with_context(|| format!("--rate: {entries:?} is not a count"))?,
                window_ms: parse_duration_ms(window)?,
            })
        });
    }
    edits.max_body = args.max_body;
    edits.max_lease_ms = args
        .max_lease
        .as_deref()
        .map(parse_duration_ms)
        .transpose()?;
    edits.max_claims = args.max_claims;
    edits.max_ttl_ms = args.max_ttl.as_deref().map(parse_duration_ms).transpose()?;
    edits.clock_skew_ms = args
        .clock_skew
        .as_deref()
        .map(parse_duration_ms)
        .transpose()?;
    edits.effective_from = match &args.effective_at {
        Some(time) => {
            let at = parse_time_ms(time)?;
            if at < now_ms() {
                bail!("--effective-at {time} is in the past: a policy cannot apply to the past");
            }
            Some(at)
        }
        None => None,
    };
    edits.note = args.note.clone();
    Ok(edits)
}

fn print_policy(answer: &Value) {
    let namespace = text(&answer["namespace"]);
    if answer["governed"] != Value::Bool(true) {
        println!("{namespace} is open on this node: anyone may post");
        return;
    }
    let admins: Vec<String> = answer["admins"]
        .as_array()
        .into_iter()
        .flatten()
        .map(text)
        .collect();
    println!("{namespace} is governed; admins: {}", admins.join(", "));
    match answer["inForce"].as_object() {
        None => println!("no policy in force: only admins may post"),
        Some(record) => {
            let body = &record["body"];
            println!(
                "policy v{} in force since {} (entry {})",
                record["version"],
                format_time(record["effectiveFrom"].as_u64().unwrap_or(0)),
                text(&record["entryId"])
            );
            for (role, kinds) in body["roles"].as_object().into_iter().flatten() {
                let kinds: Vec<String> = kinds.as_array().into_iter().flatten().map(text).collect();
                println!("  role {role}: {}", kinds.join(", "));
            }
            println!(
                "  {} members, {} revoked",
                body["members"].as_array().map_or(0, Vec::len),
                body["revoked"].as_array().map_or(0, Vec::len)
            );
            for limit in limit_lines(&body["limits"]) {
                println!("  limit: {limit}");
            }
        }
    }
    let history = answer["history"].as_array().map_or(&[][..], Vec::as_slice);
    if !history.is_empty() {
        println!("versions known ({}):", history.len());
    }
    for record in history {
        println!(
            "  v{:<4} signed {} by {}, effective from {}  (entry {})",
            record["version"],
            format_time(record["timestampMs"].as_u64().unwrap_or(0)),
            text(&record["author"]).chars().take(12).collect::<String>(),
            format_time(record["effectiveFrom"].as_u64().unwrap_or(0)),
            text(&record["entryId"])
                .chars()
                .take(12)
                .collect::<String>()
        );
    }
    if let (Some(latest), Some(in_force)) = (
        answer["latest"].get("version"),
        answer["inForce"].get("version"),
    ) {
        if latest != in_force {
            println!(
                "policy v{latest} is signed and takes effect at {}",
                format_time(answer["latest"]["effectiveFrom"].as_u64().unwrap_or(0))
            );
        }
    }
}

/// A policy's limits in words, one per line: `rate 20 entries per 10s`, `max lease 10m`.
fn limit_lines(limits: &Value) -> Vec<String> {
    let duration = |ms: u64| {
        [
            (86_400_000, "d"),
            (3_600_000, "h"),
            (60_000, "m"),
            (1_000, "s"),
        ]
        .iter()
        .find(|(unit, _)| ms >= *unit && ms.is_multiple_of(*unit))
        .map_or(format!("{ms}ms"), |(unit, name)| {
            format!("{}{name}", ms / unit)
        })
    };
    let mut lines = Vec::new();
    for (key, value) in limits.as_object().into_iter().flatten() {
        let line = match (key.as_str(), value.as_u64()) {
            ("rate", _) => match (value["entries"].as_u64(), value["windowMs"].as_u64()) {
                (Some(entries), Some(window)) => {
                    format!(
                        "at most {entries} entries per author per {}",
                        duration(window)
                    )
                }
                _ => format!("rate {value}"),
            },
            ("maxBodyBytes", Some(bytes)) => format!("bodies of at most {bytes} bytes"),
            ("maxLeaseMs", Some(ms)) => format!("leases of at most {}", duration(ms)),
            ("maxClaims", Some(claims)) => format!("at most {claims} running claims per agent"),
            ("maxTtlMs", Some(ms)) => format!("TTLs of at most {}", duration(ms)),
            ("clockSkewMs", Some(ms)) => format!("clock skew window {}", duration(ms)),
            (_, _) if value.is_null() => continue,
            (other, _) => format!("{other} {value}"),
        };
        lines.push(line);
    }
    lines
}

fn read_text(file: &PathBuf) -> anyhow::Result<String> {
    let mut text = String::new();
    if file.as_os_str() == "-" {
        std::io::stdin()
            .take(1 << 20)
            .read_to_string(&mut text)
            .context("cannot read standard input")?;
    } else {
        text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use plexus_crypto::Keypair;

    use super::*;

    fn agent(seed: u8) -> AgentId {
        Keypair::from_seed(&[seed; 32]).agent_id()
    }

    #[test]
    fn propose_builds_the_next_version_and_removal_revokes() {
        let first = propose(
            None,
            &Edits {
                roles: vec![("worker".into(), vec!["intent".into(), "x-*".into()])],
                add: vec![
                    (agent(1), vec!["worker".into()]),
                    (agent(2), vec!["worker".into()]),
                ],
                rate: Some(Some(RateLimit {
                    entries: 5,
                    window_ms: 1_000,
                })),
                ..Edits::default()
            },
        )
        .unwrap();
        assert_eq!(first.version, 1);
        assert_eq!(first.members.len(), 2);
        let second = propose(
            Some(first),
            &Edits {
                remove: vec![(agent(2), 7)],
                ..Edits::default()
            },
        )
        .unwrap();
        assert_eq!(second.version, 2);
        assert_eq!(second.members.len(), 1);
        assert_eq!(second.revoked[0].agent, agent(2).to_string());
        assert_eq!(second.revoked[0].after_seq, 7);
        // Limits carry over unless changed.
        assert_eq!(second.limits.rate.unwrap().entries, 5);
        // A revocation is permanent: re-adding is refused with the way out.
        let error = propose(
            Some(second),
            &Edits {
                add: vec![(agent(2), vec!["worker".into()])],
                ..Edits::default()
            },
        )
        .unwrap_err();
        assert!(error.to_string().contains("new key"), "{error}");
    }

    #[test]
    fn propose_refuses_undefined_roles_and_bad_kinds() {
        let error = propose(
            None,
            &Edits {
                add: vec![(agent(1), vec!["ghost".into()])],
                ..Edits::default()
            },
        )
        .unwrap_err();
        assert!(error.to_string().contains("--role ghost"), "{error}");
        let error = propose(
            None,
            &Edits {
                roles: vec![("r".into(), vec!["intnet".into()])],
                ..Edits::default()
            },
        )
        .unwrap_err();
        assert!(error.to_string().contains("roles.r"), "{error}");
    }
}
