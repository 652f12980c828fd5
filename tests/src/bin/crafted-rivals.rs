//! Writes a crafted audit export for measuring `plexus audit verify` on hostile input (a tool,
//! not a test): `crafted-rivals --rivals N --out FILE` puts N validly signed, different entries
//! at seq 1 of one feed (every one after the first a fork), then one seq 2 whose `prev` names
//! none of them, and signs the trailer. An auditor that keeps the ids at a seq in a list does
//! O(N) work per rival, O(N²) in all, and copies the whole list into the broken-link finding.

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use clap::Parser;
use plexus_crypto::{sha256, Keypair, Sha256Stream};
use plexus_protocol::export::{ExportHeader, ExportTrailer};
use plexus_protocol::{Draft, Entry};
use rayon::prelude::*;

/// Writes a crafted export with many rival entries at one seq.
#[derive(Debug, Parser)]
struct Args {
    /// Rival entries at seq 1 of the feed.
    #[arg(long)]
    rivals: u64,
    /// The export file to write.
    #[arg(long)]
    out: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let Args { rivals, out } = Args::parse();
    let author = Keypair::from_seed(&[0x55; 32]);
    let exporter = Keypair::from_seed(&[0x66; 32]);
    let sign = |seq: u64, prev, index: u64| -> anyhow::Result<Vec<u8>> {
        let entry = Entry::sign(
            &author,
            Draft {
                namespace: "crafted".into(),
                seq,
                prev,
                timestamp_ms: 1_767_225_600_000 + index,
                kind: "x-note".into(),
                body: vec![0xf6],
            },
        )?;
        Ok(entry.encode())
    };
    let mut envelopes: Vec<Vec<u8>> = (0..rivals)
        .into_par_iter()
        .map(|index| sign(1, None, index))
        .collect::<anyhow::Result<_>>()?;
    envelopes.push(sign(2, Some(sha256(b"none of them")), rivals)?);

    let mut writer = BufWriter::new(std::fs::File::create(&out)?);
    let mut digest = Sha256Stream::new();
    let header = ExportHeader {
        exporter: exporter.agent_id(),
        created_ms: 1_767_225_600_000,
        entry_count: envelopes.len() as u64,
    }
    .encode();
    for item in std::iter::once(&header).chain(&envelopes) {
        digest.update(item);
        writer.write_all(item)?;
    }
    let trailer = ExportTrailer::sign(&exporter, envelopes.len() as u64, digest.finish());
    writer.write_all(&trailer.encode())?;
    writer.flush()?;
    println!(
        "wrote {} entries ({rivals} rivals at one seq) to {}",
        envelopes.len(),
        out.display()
    );
    Ok(())
}
