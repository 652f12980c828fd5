//! The `fill-log` subcommand: fills an initialised data directory's log for the memory
//! figures.

use plexus_crypto::Keypair;
use plexus_node::store::Log;
use plexus_protocol::Entry;
use plexus_tests::cluster::NAMESPACE;
use plexus_tests::fixtures::signed_chain;
use rayon::prelude::*;

pub(crate) fn fill_log(
    data_dir: &std::path::Path,
    entries: u64,
    authors: u64,
) -> anyhow::Result<()> {
    let log = Log::open(data_dir)?;
    let per_author = entries / authors;
    let started = std::time::Instant::now();
    let chains: Vec<Vec<Entry>> = (0..authors)
        .into_par_iter()
        .map(|_| signed_chain(&Keypair::generate(), NAMESPACE, per_author))
        .collect();
    for chain in chains {
        for batch in chain.chunks(10_000) {
            log.ingest_entries(batch.to_vec(), "bench", 0)?;
        }
    }
    log.flush()?;
    eprintln!(
        "filled {} with {} entries by {authors} authors in {:.1} s",
        data_dir.display(),
        per_author * authors,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
