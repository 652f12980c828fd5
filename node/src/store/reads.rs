//! Reads of the log: entries, heads, the journal, fork proofs and counts. Reads take no lock
//! but the write lock where they report counters; they see RocksDB's latest committed state.

use plexus_crypto::Hash256;
use plexus_protocol::{Entry, FeedHead, FeedKey, ForkProof};
use rocksdb::{Direction, IteratorMode};

use super::{
    decode_head, decode_stored, entry_key, feed_prefix, keys, scan_options, JournalEntry, Log,
    LogStats, RawEntry, StoreError, StoreMemory, CF_ENTRIES, CF_FORKS, CF_HEADS, CF_IDS,
    CF_JOURNAL, COLUMN_FAMILIES,
};

/// What a response being read may still take: bytes, and whether it holds nothing yet (its
/// first entry goes in whatever its size).
struct BudgetLeft {
    bytes: usize,
    empty: bool,
}

impl Log {
    /// Stored envelopes `from_seq..=to_seq` of a feed, stopping once `byte_budget` is reached
    /// (at least one entry is returned when the first exists).
    pub fn entries_range(
        &self,
        feed: &FeedKey,
        from_seq: u64,
        to_seq: u64,
        byte_budget: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut budget = BudgetLeft {
            bytes: byte_budget,
            empty: true,
        };
        Ok(self.read_range(feed, from_seq, to_seq, &mut budget)?.0)
    }

    /// Stored envelopes of several ranges, for a `Ranges` answer (docs/PROTOCOL.md §8.2): for
    /// each range in order, its entries `from_seq..=to_seq` in ascending seq. An entry goes in
    /// while the lengths of all the entries taken stay within `byte_budget` (the first entry
    /// taken always goes in); at the first that would pass it, its range's list ends there and
    /// no later range is read, so fewer lists than ranges come back.
    pub fn entries_ranges<'a>(
        &self,
        ranges: impl IntoIterator<Item = (&'a FeedKey, u64, u64)>,
        byte_budget: usize,
    ) -> Result<Vec<Vec<Vec<u8>>>, StoreError> {
        let mut budget = BudgetLeft {
            bytes: byte_budget,
            empty: true,
        };
        let mut lists = Vec::new();
        for (feed, from_seq, to_seq) in ranges {
            let (entries, cut) = self.read_range(feed, from_seq, to_seq, &mut budget)?;
            lists.push(entries);
            if cut {
                break;
            }
        }
        Ok(lists)
    }

    /// One range's entries within what is left of a response's budget; also says whether the
    /// budget cut it short.
    fn read_range(
        &self,
        feed: &FeedKey,
        from_seq: u64,
        to_seq: u64,
        budget: &mut BudgetLeft,
    ) -> Result<(Vec<Vec<u8>>, bool), StoreError> {
        let prefix = feed_prefix(feed);
        let start = entry_key(feed, from_seq);
        let mut out = Vec::new();
        for item in self.db.iterator_cf(
            self.cf(CF_ENTRIES),
            IteratorMode::From(&start, Direction::Forward),
        ) {
            let (key, value) = item?;
            if !key.starts_with(&prefix) {
                break;
            }
            let Some(seq) = keys::seq_after_prefix(&key, prefix.len()) else {
                break;
            };
            if seq > to_seq {
                break;
            }
            if !budget.empty && value.len() > budget.bytes {
                return Ok((out, true));
            }
            budget.bytes = budget.bytes.saturating_sub(value.len());
            budget.empty = false;
            out.push(value.into_vec());
        }
        Ok((out, false))
    }

    /// Every stored fork proof with its key (the entry key of the forked position), in key
    /// order.
    pub fn raw_forks(&self) -> impl Iterator<Item = Result<RawEntry, StoreError>> + '_ {
        self.db
            .iterator_cf(self.cf(CF_FORKS), IteratorMode::Start)
            .map(|item| item.map_err(StoreError::from))
    }

    /// The stored head of a feed.
    pub fn head(&self, feed: &FeedKey) -> Result<Option<FeedHead>, StoreError> {
        let Some(value) = self
            .db
            .get_pinned_cf(self.cf(CF_HEADS), feed_prefix(feed))?
        else {
            return Ok(None);
        };
        decode_head(&value).map(Some)
    }

    /// Every feed head, in feed order.
    pub fn heads(&self) -> Result<Vec<(FeedKey, FeedHead)>, StoreError> {
        let mut heads = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_HEADS), IteratorMode::Start) {
            let (key, value) = item?;
            let feed = keys::split_feed_prefix(&key)
                .ok_or_else(|| StoreError::Corrupt("unreadable feed head key".into()))?;
            heads.push((feed, decode_head(&value)?));
        }
        Ok(heads)
    }

    /// The entry stored at `seq` of a feed.
    pub fn entry_at(&self, feed: &FeedKey, seq: u64) -> Result<Option<Entry>, StoreError> {
        self.db
            .get_pinned_cf(self.cf(CF_ENTRIES), entry_key(feed, seq))?
            .map(|bytes| decode_stored(&bytes))
            .transpose()
    }

    /// The entry with this id, if stored.
    pub fn entry_by_id(&self, id: &Hash256) -> Result<Option<Entry>, StoreError> {
        let Some(key) = self.db.get_pinned_cf(self.cf(CF_IDS), id.as_bytes())? else {
            return Ok(None);
        };
        self.db
            .get_pinned_cf(self.cf(CF_ENTRIES), &key)?
            .map(|bytes| decode_stored(&bytes))
            .transpose()
    }

    /// Raw envelopes in export order (namespace, author, seq), each with its key.
    pub fn raw_entries(&self) -> impl Iterator<Item = Result<RawEntry, StoreError>> + '_ {
        self.db
            .iterator_cf_opt(self.cf(CF_ENTRIES), scan_options(), IteratorMode::Start)
            .map(|item| item.map_err(StoreError::from))
    }

    /// Stored entries in arrival order, starting at arrival number `from`.
    pub fn journal(
        &self,
        from: u64,
    ) -> impl Iterator<Item = Result<JournalEntry, StoreError>> + '_ {
        let start = keys::counter_key(from);
        let lookups = scan_options();
        self.db
            .iterator_cf_opt(
                self.cf(CF_JOURNAL),
                scan_options(),
                IteratorMode::From(&start, Direction::Forward),
            )
            .map(move |item| {
                let (key, value) = item?;
                let arrival = keys::split_counter_key(&key)
                    .ok_or_else(|| StoreError::Corrupt("unreadable journal key".into()))?;
                let target = keys::split_journal_value(&value)
                    .ok_or_else(|| StoreError::Corrupt("unreadable journal value".into()))?;
                let (entry, reception) = match target {
                    // Written before journal records held the entry's key: look the id up.
                    keys::JournalTarget::Id(id) => (self.entry_by_id(&id)?, None),
                    keys::JournalTarget::Key { key, reception } => (
                        self.db
                            .get_pinned_cf_opt(self.cf(CF_ENTRIES), key, &lookups)?
                            .map(|bytes| decode_stored(&bytes))
                            .transpose()?,
                        reception,
                    ),
                };
                let entry = entry.ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "journal record {arrival} names an entry that is not stored"
                    ))
                })?;
                Ok(JournalEntry {
                    arrival,
                    entry,
                    reception,
                })
            })
    }

    /// Every stored fork proof, in feed order.
    pub fn forks(&self) -> Result<Vec<ForkProof>, StoreError> {
        let mut proofs = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_FORKS), IteratorMode::Start) {
            let (_, value) = item?;
            proofs.push(
                ForkProof::decode(&value)
                    .map_err(|error| StoreError::Corrupt(format!("stored fork proof: {error}")))?,
            );
        }
        Ok(proofs)
    }

    /// Counts for status output, as of the last committed write: O(1), and it neither waits
    /// for a write in progress nor holds one up (the counts are kept by the write path).
    pub fn stats(&self) -> Result<LogStats, StoreError> {
        Ok(self
            .published
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone())
    }

    /// What RocksDB holds in memory: memtables (summed over the column families) and the
    /// shared block cache (the same figure from every family, so the largest).
    pub fn memory(&self) -> StoreMemory {
        let property = |name: &'static str| {
            COLUMN_FAMILIES.iter().map(move |family| {
                // A property RocksDB cannot give counts as nothing held.
                self.db
                    .property_int_value_cf(self.cf(family), name)
                    .ok()
                    .flatten()
                    .unwrap_or(0)
            })
        };
        StoreMemory {
            memtables: property("rocksdb.size-all-mem-tables").sum(),
            block_cache: property("rocksdb.block-cache-usage").max().unwrap_or(0),
        }
    }

    /// Flushes memtables to SST files. Durability does not depend on it (the WAL is synced on
    /// every write); it makes a clean shutdown faster to reopen.
    pub fn flush(&self) -> Result<(), StoreError> {
        for name in COLUMN_FAMILIES {
            self.db.flush_cf(self.cf(name))?;
        }
        Ok(())
    }

    /// Whether the entry with this id is stored.
    pub fn contains(&self, id: &Hash256) -> Result<bool, StoreError> {
        self.is_stored(id)
    }

    pub(super) fn is_stored(&self, id: &Hash256) -> Result<bool, StoreError> {
        Ok(self
            .db
            .get_pinned_cf(self.cf(CF_IDS), id.as_bytes())?
            .is_some())
    }

    pub(super) fn count(&self, cf: &str) -> Result<u64, StoreError> {
        let mut count = 0;
        for item in self.db.iterator_cf(self.cf(cf), IteratorMode::Start) {
            item?;
            count += 1;
        }
        Ok(count)
    }

    /// Whether column family `cf` (keyed by entry key) holds anything of `feed`.
    pub(super) fn feed_has_any(&self, cf: &str, feed: &FeedKey) -> Result<bool, StoreError> {
        let prefix = feed_prefix(feed);
        match self.db.prefix_iterator_cf(self.cf(cf), &prefix).next() {
            Some(item) => Ok(item?.0.starts_with(&prefix)),
            None => Ok(false),
        }
    }
}
