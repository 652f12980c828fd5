//! Test helper for the crash test (`tests/tests/durability.rs`): appends entries to a log in a
//! loop and prints `acked SEQ` after each append returns, until it is killed.
//!
//! Usage: `crash-writer DATA_DIR`

use std::io::Write;

use plexus_crypto::Keypair;
use plexus_node::store::Log;

fn main() -> anyhow::Result<()> {
    let data_dir = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: crash-writer DATA_DIR"))?;
    let log = Log::open(std::path::Path::new(&data_dir))?;
    let keypair = Keypair::from_seed(&[9; 32]);
    let mut stdout = std::io::stdout().lock();
    // Bounded so a test that forgets to kill it still ends.
    for n in 0..1_000_000u64 {
        let body = plexus_protocol::value::json_text_to_canonical(&format!("{{\"n\": {n}}}"))?;
        let entry = log.append_own(&keypair, "crash", "x-note", body, n)?;
        writeln!(stdout, "acked {}", entry.header().seq)?;
        stdout.flush()?;
    }
    Ok(())
}
