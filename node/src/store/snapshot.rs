//! A consistent read of the log: every column family it reads at one sequence number.
//!
//! Exports and in-place audits read two column families (`entries` and `forks`) and the feed
//! heads; read one after the other while the node writes, they could disagree (an entry
//! without the fork proof written in the same batch, a count from the heads that the entries
//! do not match). A RocksDB snapshot pins one sequence number for all of them.

use rocksdb::{IteratorMode, Snapshot};

use super::{decode_head, scan_options, Log, RawEntry, StoreError, CF_ENTRIES, CF_FORKS, CF_HEADS};

/// The log as of one moment (see the module documentation).
pub struct LogSnapshot<'a> {
    log: &'a Log,
    snapshot: Snapshot<'a>,
}

impl std::fmt::Debug for LogSnapshot<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("LogSnapshot")
            .field("sequence", &self.snapshot.sequence_number())
            .finish()
    }
}

impl Log {
    /// Pins the log's current state for reading.
    pub fn snapshot(&self) -> LogSnapshot<'_> {
        LogSnapshot {
            log: self,
            snapshot: self.db.snapshot(),
        }
    }
}

impl LogSnapshot<'_> {
    /// Stored entries, in key order (feed, then seq).
    pub fn raw_entries(&self) -> impl Iterator<Item = Result<RawEntry, StoreError>> + '_ {
        self.snapshot
            .iterator_cf_opt(self.log.cf(CF_ENTRIES), scan_options(), IteratorMode::Start)
            .map(|item| item.map_err(StoreError::from))
    }

    /// Stored fork proofs, in key order (feed, then seq).
    pub fn raw_forks(&self) -> impl Iterator<Item = Result<RawEntry, StoreError>> + '_ {
        self.snapshot
            .iterator_cf_opt(self.log.cf(CF_FORKS), scan_options(), IteratorMode::Start)
            .map(|item| item.map_err(StoreError::from))
    }

    /// Entries (the sum of the feed heads) and fork proofs stored.
    pub fn counts(&self) -> Result<(u64, u64), StoreError> {
        let mut entries = 0u64;
        for item in self.snapshot.iterator_cf_opt(
            self.log.cf(CF_HEADS),
            scan_options(),
            IteratorMode::Start,
        ) {
            let (_, value) = item?;
            entries += decode_head(&value)?.seq;
        }
        let mut forks = 0u64;
        for item in self.raw_forks() {
            item?;
            forks += 1;
        }
        Ok((entries, forks))
    }
}
