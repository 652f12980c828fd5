//! RocksDB's memory: reading the whole log leaves the block cache as it was, the memtables
//! of every column family keep within one budget however much is written, RocksDB allocates
//! through jemalloc, and index blocks are held in the block cache, partitioned, so that a
//! pass over the journal still reads the log a few times, not once per entry.

use super::*;
use crate::store::open::MEMTABLE_MEMORY;

/// `count` entries of about 1 KB each, in one feed, stored in batches as gossip and backfill
/// store them.
fn fill(log: &Log, count: usize, mut each_batch: impl FnMut(&Log)) {
    let keypair = Keypair::generate();
    let padding = "x".repeat(1_000);
    let bodies = (0..count).map(|index| text_body(&format!("{index} {padding}")));
    let entries = chain_of(&keypair, "x-note", bodies);
    for batch in entries.chunks(1_000) {
        log.ingest_entries(batch.to_vec(), "test", 0).unwrap();
        each_batch(log);
    }
    assert_eq!(log.stats().unwrap().entries, count as u64);
}

#[test]
fn reading_the_whole_journal_does_not_fill_the_block_cache() {
    // The node folds the whole journal into its view at every start: on a large log that one
    // pass used to leave up to 32 MiB of blocks cached per column family (a node holding
    // 1,000,000 entries started at 109 MiB instead of 32 MiB).
    let dir = tempfile::tempdir().unwrap();
    {
        let log = Log::open(dir.path()).unwrap();
        fill(&log, 4_000, |_| {});
        for name in COLUMN_FAMILIES {
            log.db.flush_cf(log.cf(name)).unwrap();
        }
    }
    let log = Log::open(dir.path()).unwrap();
    let before = log.memory().block_cache;
    let read = log.journal(0).map(Result::unwrap).count();
    assert_eq!(read, 4_000);
    let exported = log.raw_entries().map(Result::unwrap).count();
    assert_eq!(exported, 4_000);
    let after = log.memory().block_cache;
    // The 4,000 entries take about 4 MB on disk: a pass that cached them would hold that much.
    assert!(
        after <= before + (256 << 10),
        "the block cache went from {before} to {after} bytes after one pass over the log"
    );
}

#[test]
fn memtables_stay_within_the_budget_however_much_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path()).unwrap();
    // About 1 KB an entry, three times the memtables' budget in all.
    let count = 3 * MEMTABLE_MEMORY / 1_000;
    let mut most = 0;
    fill(&log, count, |log| most = most.max(log.memory().memtables));
    // A flush may still be under way while the next memtable fills: at most two at once.
    assert!(
        most <= 2 * MEMTABLE_MEMORY as u64,
        "memtables held {most} bytes, the budget is {MEMTABLE_MEMORY}"
    );
    // What `/v1/metrics` reports as plexus_store_memtable_bytes: the budget filled at least
    // half way before a flush.
    assert!(
        most >= MEMTABLE_MEMORY as u64 / 2,
        "memtables never held more than {most} bytes while writing {count} KB"
    );
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn rocksdb_allocates_through_jemalloc() {
    // jemalloc is the process's malloc, RocksDB's C++ included (`crate::heap`): what the
    // memtables hold shows in its statistics, and what they free goes back to one allocator.
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path()).unwrap();
    let before = crate::heap::read().unwrap().allocated;
    // About 8 MB, a quarter of the memtables' budget: nothing is flushed.
    fill(&log, 8_000, |_| {});
    let memtables = log.memory().memtables;
    let after = crate::heap::read().unwrap().allocated;
    assert!(memtables >= 8_000_000, "memtables hold {memtables} bytes");
    assert!(
        after >= before + memtables / 2,
        "RocksDB holds {memtables} bytes of memtables but jemalloc's allocated bytes went from \
         {before} to {after}: RocksDB allocates elsewhere"
    );
}

#[test]
fn index_blocks_are_held_in_the_block_cache_not_beside_it() {
    // Table readers held every SST file's index outside the block cache, so RocksDB's memory
    // grew with the log whatever the cache's bound: 157 KB for these 8,000 entries (about
    // 20 bytes an entry, 20 MB for a million). What stays outside is each file's own
    // bookkeeping, 9 KB here.
    let dir = tempfile::tempdir().unwrap();
    {
        let log = Log::open(dir.path()).unwrap();
        fill(&log, 8_000, |_| {});
        log.flush().unwrap();
    }
    let log = Log::open(dir.path()).unwrap();
    let read = log.journal(0).map(Result::unwrap).count();
    assert_eq!(read, 8_000);
    let outside: u64 = COLUMN_FAMILIES
        .iter()
        .map(|name| {
            log.db
                .property_int_value_cf(log.cf(name), "rocksdb.estimate-table-readers-mem")
                .unwrap()
                .unwrap_or(0)
        })
        .sum();
    assert!(
        outside < 32 << 10,
        "table readers hold {outside} bytes outside the block cache"
    );
}

#[test]
fn idempotency_answers_count_in_the_memtables_budget() {
    // Answers live in RocksDB's default column family, which was opened with RocksDB's own
    // options (a cache of its own, index blocks beside it) and left out of `memory()`, so of
    // `plexus_store_memtable_bytes`.
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path()).unwrap();
    let before = log.memory().memtables;
    let record = vec![7_u8; 16_000];
    for index in 0..250 {
        log.save_idempotent_answer(&format!("key-{index}"), &record, &[])
            .unwrap();
    }
    let after = log.memory().memtables;
    assert!(
        after >= before + 4_000_000,
        "4 MB of answers moved the memtables from {before} to {after} bytes"
    );
}

#[test]
fn a_pass_over_the_journal_reads_the_log_a_few_times_not_once_per_entry() {
    // With whole (unpartitioned) index blocks in the block cache, each of the journal's
    // lookups, which do not fill the cache, read its table's whole index again: a node with
    // 300,000 entries read 21.8 GB, 282 times its log, to start (18 s instead of 1.6 s).
    let dir = tempfile::tempdir().unwrap();
    {
        let log = Log::open(dir.path()).unwrap();
        fill(&log, 8_000, |_| {});
        log.flush().unwrap();
        // Into the last level, whose indexes are not pinned, as on a node that has run a while.
        for name in COLUMN_FAMILIES {
            log.db
                .compact_range_cf(log.cf(name), None::<&[u8]>, None::<&[u8]>);
        }
    }
    let on_disk = directory_size(dir.path());
    let log = Log::open(dir.path()).unwrap();
    let before = bytes_read_by_this_thread();
    assert_eq!(log.journal(0).map(Result::unwrap).count(), 8_000);
    let read = bytes_read_by_this_thread() - before;
    // 2.1 times with the indexes outside the cache, 5.4 partitioned in it, 109 whole in it.
    assert!(
        read <= 10 * on_disk,
        "one pass over the journal of a {on_disk}-byte log read {read} bytes"
    );
}

/// Bytes this thread has read through system calls (RocksDB reads with `pread` on the
/// calling thread), page-cache hits included.
fn bytes_read_by_this_thread() -> u64 {
    let io = std::fs::read_to_string("/proc/thread-self/io").unwrap();
    io.lines()
        .find_map(|line| line.strip_prefix("rchar: "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no rchar in /proc/thread-self/io: {io}"))
}

fn directory_size(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .unwrap()
        .map(|item| {
            let item = item.unwrap();
            if item.file_type().unwrap().is_dir() {
                directory_size(&item.path())
            } else {
                item.metadata().unwrap().len()
            }
        })
        .sum()
}
