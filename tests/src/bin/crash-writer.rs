//! Test helper for the crash test (`tests/tests/durability.rs`): writes entries to a log in a
//! loop and prints `acked SEQ` after each write returns, until it is killed.
//!
//! Usage: `crash-writer DATA_DIR [own|received]`: `own` (the default) appends the node's own
//! entries (fsynced before they return); `received` ingests entries signed elsewhere, as gossip
//! does (written at once, fsynced by the group commit).

use std::io::Write;

use clap::{Parser, ValueEnum};
use plexus_crypto::Keypair;
use plexus_node::store::{IngestOutcome, Log};
use plexus_protocol::{Draft, Entry};

/// Writes entries to a log until killed, printing `acked SEQ` after each write returns.
#[derive(Debug, Parser)]
#[command(name = "crash-writer")]
struct Args {
    data_dir: std::path::PathBuf,
    #[arg(value_enum, default_value_t = Mode::Own)]
    mode: Mode,
}

/// Whose entries are written, and so how durably each is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// The node's own entries, fsynced before they return.
    Own,
    /// Entries signed elsewhere, ingested as gossip is (fsynced by the group commit).
    Received,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let received = args.mode == Mode::Received;
    let log = Log::open(&args.data_dir)?;
    let keypair = Keypair::from_seed(&[9; 32]);
    let mut stdout = std::io::stdout().lock();
    let mut prev = None;
    // Bounded so a test that forgets to kill it still ends.
    for n in 0..1_000_000u64 {
        let body = plexus_protocol::value::json_text_to_canonical(&format!("{{\"n\": {n}}}"))?;
        let entry = if received {
            let entry = Entry::sign(
                &keypair,
                Draft {
                    namespace: "crash".into(),
                    seq: n + 1,
                    prev,
                    timestamp_ms: n,
                    kind: "x-note".into(),
                    body,
                },
            )?;
            match log.ingest(&entry.encode(), "crash-writer", n)? {
                IngestOutcome::Accepted { .. } => entry,
                other => anyhow::bail!("entry {n} was not accepted: {other:?}"),
            }
        } else {
            log.append_own(&keypair, "crash", "x-note", body, n)?
        };
        prev = Some(entry.id());
        writeln!(stdout, "acked {}", entry.header().seq)?;
        stdout.flush()?;
    }
    Ok(())
}
