//! `plexus demo`: a short, self-contained walk through what the node does today.
//!
//! Three agents (a planner, a coder and a reviewer) each get an identity and a log. They publish
//! signed entries, copy each other's entries into their logs (standing in for the gossip layer),
//! export the planner's log, verify it offline, then tamper with a copy and show the auditor
//! catching and locating the change. It exits 0 only when the clean export verifies and the
//! tampered one is caught.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use plexus_crypto::Keypair;
use plexus_protocol::value::json_text_to_canonical;

use super::DemoArgs;
use crate::audit::{self, FindingKind, Verdict, VerifyOptions};
use crate::clock::now_ms;
use crate::config;
use crate::store::{IngestOutcome, Log};

const NAMESPACE: &str = "demo";

struct Agent {
    name: &'static str,
    keypair: Keypair,
    log: Log,
}

pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let temp;
    let args_dir_given = args.dir.is_some();
    let root: PathBuf = match args.dir {
        Some(dir) => dir,
        None => {
            temp = tempfile_dir()?;
            temp.path().to_path_buf()
        }
    };
    let kept = if args_dir_given {
        ""
    } else {
        " (temporary: pass --dir DIR to keep the files)"
    };
    println!("Plexus demo in {}{kept}\n", root.display());
    let agents = ["planner", "coder", "reviewer"]
        .into_iter()
        .map(|name| new_agent(&root, name))
        .collect::<anyhow::Result<Vec<Agent>>>()?;
    for agent in &agents {
        println!("  {:<9} is agent {}", agent.name, agent.keypair.agent_id());
    }
    println!();

    let script: [(usize, &str, &str); 6] = [
        (
            0,
            "task",
            r#"{"task": "T-1", "title": "add rate limiting", "state": "submitted"}"#,
        ),
        (
            1,
            "intent",
            r#"{"resource": "repo:api", "action": "write", "lease_ms": 60000}"#,
        ),
        (1, "task", r#"{"task": "T-1", "state": "working"}"#),
        (
            2,
            "capability",
            r#"{"name": "reviewer", "skills": ["rust", "security"]}"#,
        ),
        (1, "task", r#"{"task": "T-1", "state": "completed"}"#),
        (
            2,
            "pattern",
            r#"{"topic": "rate limits", "summary": "token bucket per author", "confidence": 0.8}"#,
        ),
    ];
    for (index, kind, body) in script {
        let agent = agents
            .get(index)
            .context("script names an agent that exists")?;
        let body = json_text_to_canonical(body)?;
        let entry = agent
            .log
            .append_own(&agent.keypair, NAMESPACE, kind, body, now_ms())?;
        println!(
            "  {:<9} signs {:<10} seq {} id {}",
            agent.name,
            kind,
            entry.header().seq,
            entry.id().short()
        );
        // Every other agent takes the entry into its own log after validating it.
        for other in agents.iter().filter(|other| other.name != agent.name) {
            match other.log.ingest(&entry.encode(), agent.name, now_ms())? {
                IngestOutcome::Accepted { .. } => {}
                outcome => bail!("{} did not accept the entry: {outcome:?}", other.name),
            }
        }
    }
    let planner = agents.first().context("the planner exists")?;
    let stats = planner.log.stats()?;
    println!(
        "\n  every log now holds {} entries in {} feeds\n",
        stats.entries, stats.feeds
    );

    let export_path = root.join("planner-export.plexus");
    let summary = audit::export_to_file(&planner.log, &planner.keypair, &export_path, now_ms())?;
    println!(
        "  planner exports its log: {} ({} entries, {} bytes)",
        export_path.display(),
        summary.entries,
        summary.bytes
    );
    let clean = audit::verify_file(&export_path, &VerifyOptions::default(), &())?;
    println!("  auditor verifies it offline:");
    print_indented(&clean.render_human());

    let tampered_path = root.join("tampered-export.plexus");
    tamper_with_a_body(&export_path, &tampered_path)?;
    println!(
        "  someone flips one bit in a body of a copy: {}",
        tampered_path.display()
    );
    let tampered = audit::verify_file(&tampered_path, &VerifyOptions::default(), &())?;
    println!("  auditor verifies the copy:");
    print_indented(&tampered.render_human());

    let caught = tampered.verdict == Verdict::Failed
        && tampered
            .findings
            .iter()
            .any(|finding| finding.kind == FindingKind::BodyMismatch);
    if clean.verdict == Verdict::Verified && caught {
        println!("demo verdict: the clean log verifies and the tampering was caught and located");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("demo verdict: UNEXPECTED audit results (see above)");
        Ok(ExitCode::FAILURE)
    }
}

fn new_agent(root: &Path, name: &'static str) -> anyhow::Result<Agent> {
    let data_dir = root.join(name);
    let keypair = Keypair::generate();
    config::create_key_file(&data_dir.join(config::KEY_FILE), &keypair)?;
    Ok(Agent {
        name,
        keypair,
        log: Log::open(&data_dir)?,
    })
}

/// Copies the export, flipping one bit in the last byte of the third entry (a body byte).
fn tamper_with_a_body(from: &Path, to: &Path) -> anyhow::Result<()> {
    let mut bytes = std::fs::read(from)?;
    let mut position = 0;
    let mut ends = Vec::new();
    while position < bytes.len() {
        let len = plexus_protocol::cbor::item_len(&bytes[position..])?
            .context("the export ends inside an item")?;
        position += len;
        ends.push(position);
    }
    // Item 0 is the header; items 1.. are entries. The last byte of an entry with a body is
    // the body's last byte.
    let target = *ends
        .get(3)
        .context("the export has at least three entries")?
        - 1;
    bytes[target] ^= 0x01;
    std::fs::write(to, bytes)?;
    Ok(())
}

fn print_indented(text: &str) {
    for line in text.lines() {
        println!("    {line}");
    }
    println!();
}

fn tempfile_dir() -> anyhow::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("plexus-demo-")
        .tempdir()
        .context("cannot create a temporary directory for the demo")
}
