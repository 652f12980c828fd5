//! `plexus audit replay`: the coordination state (leases, live cards, tasks) at a past
//! moment, folded from an export file or a data directory alone, exactly as a node folds it.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;
use plexus_protocol::coord::{body_for_view, View};
use plexus_protocol::{cbor, export, Entry};
use serde_json::Value;

use super::coord::{short, standing_text};
use super::time::{format_time, parse_time_ms};
use crate::audit::late::LateClaim;
use crate::audit::{self, Verdict, VerifyOptions};
use crate::store::Log;

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
    /// The clock-skew window the node ran with (its `--clock-skew-ms`), for marking the claims
    /// it received late (replaying a data directory; in namespaces whose policy sets no
    /// `clockSkewMs`, or that no --trust-root governs)
    #[arg(long, value_name = "MS", default_value_t = plexus_protocol::coord::DEFAULT_CLOCK_SKEW_MS)]
    pub clock_skew_ms: u64,
    /// Govern a namespace as the node did: NAMESPACE=ADMIN_AGENT_ID (repeatable). Its policy
    /// decisions are re-derived when verifying, and its late claims are judged with the
    /// `clockSkewMs` of the policy in force at each claim's timestamp
    #[arg(long, value_name = "NS=ADMIN")]
    pub trust_root: Vec<String>,
}

/// `plexus audit replay`: who held which lease, which cards were live and which state each
/// task was in at `--at`, from the log alone.
pub fn replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let at = parse_time_ms(&args.at)?;
    let is_dir = args.target.is_dir();
    let trust_roots = crate::config::parse_trust_root_flags(&args.trust_root)?;
    if !args.unverified {
        let options = VerifyOptions {
            trust_roots: trust_roots.clone(),
            clock_skew_ms: Some(args.clock_skew_ms),
            ..VerifyOptions::default()
        };
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
    let mut replayed = Replayed::default();
    let mut late_claims = Vec::new();
    if is_dir {
        // The journal, not the feeds: it also says how and when the node received each entry,
        // which marks the claims it received late (§9.4). A completed entry is journaled
        // twice; applying it again changes nothing.
        let log = Log::open_read_only_with(&args.target, trust_roots)?;
        late_claims = audit::late::late_claims(&log, args.clock_skew_ms, usize::MAX)
            .context("the log's journal cannot be read")?
            .claims;
        for claim in &late_claims {
            // Marked before the fold, as the node marks a claim before applying it.
            replayed.view.mark_late(&claim.namespace, claim.id);
        }
        for item in log.journal(0) {
            replayed.apply(&item.context("the log's journal cannot be read")?.entry);
        }
        replayed.entries = log.stats()?.entries;
    } else {
        for item in export_items(&args.target)? {
            if export::classify(&item) == export::ItemKind::Entry {
                replayed
                    .apply(&Entry::decode(&item).context("the export holds an undecodable entry")?);
            }
        }
    }
    let Replayed {
        view,
        entries,
        first_ms,
    } = replayed;
    if let Some(first) = first_ms.filter(|first| at < *first) {
        eprintln!(
            "note: {} is before the log's first entry ({}), so nothing had happened yet",
            format_time(at),
            format_time(first)
        );
    }
    let snapshot = view.snapshot(at);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&snapshot)?);
        return Ok(ExitCode::SUCCESS);
    }
    if !is_dir {
        eprintln!(
            "note: an export holds no reception times, so claims a node received late are \
             marked only when replaying its data directory"
        );
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
                        "{} (claim {}{})",
                        &c.author[..12.min(c.author.len())],
                        &c.claim_id[..12.min(c.claim_id.len())],
                        if c.late { ", LATE" } else { "" }
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
            for claim in &lease.excluded {
                let claim = serde_json::to_value(claim).unwrap_or(Value::Null);
                println!(
                    "      {}: {}",
                    short(&claim["author"]),
                    standing_text(&claim)
                );
            }
        }
        print_late_claims(namespace, &late_claims, at);
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

/// The view folded so far, with how many entries went in and the earliest timestamp.
#[derive(Default)]
struct Replayed {
    view: View,
    entries: u64,
    first_ms: Option<u64>,
}

impl Replayed {
    fn apply(&mut self, entry: &Entry) {
        self.entries += 1;
        let timestamp = entry.header().timestamp_ms;
        self.first_ms = Some(
            self.first_ms
                .map_or(timestamp, |first| first.min(timestamp)),
        );
        if let Some(body) = body_for_view(entry) {
            self.view.apply(entry, body);
        }
    }
}

/// Prints the claims of `namespace` (made up to `at`) that the node received late.
fn print_late_claims(namespace: &str, late_claims: &[LateClaim], at: u64) {
    let late: Vec<&LateClaim> = late_claims
        .iter()
        .filter(|claim| claim.namespace == namespace && claim.timestamp_ms <= at)
        .collect();
    if late.is_empty() {
        return;
    }
    println!(
        "  received late ({}): made more than the clock-skew window before this node fetched \
         them by backfill, across a long partition or back-dated (PROTOCOL.md §9.4):",
        late.len()
    );
    for claim in late {
        let id = claim.id.to_string();
        println!(
            "    LATE {} {} by {}: dated {}, received {} ({} s later; window {} s)",
            claim.kind,
            &id[..12],
            &claim.author[..12.min(claim.author.len())],
            format_time(claim.timestamp_ms),
            format_time(claim.received_ms),
            claim.late_by_ms / 1000,
            claim.window_ms as f64 / 1000.0
        );
    }
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
