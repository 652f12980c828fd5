//! `plexus audit replay`: the coordination state (leases, live cards, tasks) at a past
//! moment, folded from an export file or a data directory alone, exactly as a node folds it.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;
use plexus_protocol::coord::View;
use plexus_protocol::{cbor, export, Entry};
use serde_json::Value;

use super::coord::{short, standing_text};
use super::time::{format_time, parse_time_ms};
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
    let mut first_ms: Option<u64> = None;
    let mut apply = |entry: Entry| {
        entries += 1;
        let timestamp = entry.header().timestamp_ms;
        first_ms = Some(first_ms.map_or(timestamp, |first| first.min(timestamp)));
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
            for claim in &lease.excluded {
                let claim = serde_json::to_value(claim).unwrap_or(Value::Null);
                println!(
                    "      {}: {}",
                    short(&claim["author"]),
                    standing_text(&claim)
                );
            }
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
