//! RocksDB's memory: the log keeps within one budget however much is written to it.

use super::*;
use crate::store::open::MEMTABLE_MEMORY;

/// Bytes held in memtables, across every column family (written, not yet flushed to disk).
fn memtable_bytes(log: &Log) -> u64 {
    COLUMN_FAMILIES
        .iter()
        .map(|name| {
            log.db
                .property_int_value_cf(log.cf(name), "rocksdb.size-all-mem-tables")
                .unwrap()
                .unwrap_or(0)
        })
        .sum()
}

#[test]
fn memtables_stay_within_the_budget_however_much_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path()).unwrap();
    let keypair = Keypair::generate();
    // About 1 KB an entry, three times the memtables' budget in all, in batches as gossip
    // and backfill store them.
    let padding = "x".repeat(1_000);
    let count = 3 * MEMTABLE_MEMORY / 1_000;
    let bodies = (0..count).map(|index| text_body(&format!("{index} {padding}")));
    let entries = chain_of(&keypair, "x-note", bodies);
    let mut most = 0;
    for batch in entries.chunks(1_000) {
        log.ingest_entries(batch.to_vec(), "test", 0).unwrap();
        most = most.max(memtable_bytes(&log));
    }
    assert_eq!(log.stats().unwrap().entries, count as u64);
    // A flush may still be under way while the next memtable fills: at most two at once.
    assert!(
        most <= 2 * MEMTABLE_MEMORY as u64,
        "memtables held {most} bytes, the budget is {MEMTABLE_MEMORY}"
    );
}
