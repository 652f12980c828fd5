//! Opening a log: the data directory's lock, RocksDB's column families, and recovery of the
//! in-memory counters, the `pending` index and the governance state from what is stored.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};

use plexus_protocol::FeedKey;
use rocksdb::{
    BlockBasedIndexType, BlockBasedOptions, Cache, ColumnFamilyDescriptor, IteratorMode, Options,
    DB,
};

use super::governance::{Governor, TrustRoots};
use super::pending::{PendingIndex, PendingMeta};
use super::{
    decode_head, decode_stored, full_disk, keys, scan_options, wal, Counters, Log, LogOptions,
    LogStats, StoreError, CF_FORKS, CF_HEADS, CF_JOURNAL, CF_PENDING, CF_REJECTED, COLUMN_FAMILIES,
    DB_DIR, LOCK_FILE, MAX_PENDING,
};

/// RocksDB's block cache, one for every column family of a log: the blocks that lookups read
/// (an entry by id, a feed's head, a range served to backfill). Passes that read each block
/// once do not fill it (`scan_options`). RocksDB's default is a 32 MiB cache per family.
/// Index blocks compete with data blocks in it: past about 1.5 million entries (20 bytes of
/// index each) a lookup may read its part of the index from disk again, where RocksDB's
/// default kept every index in memory beside the cache, growing with the log.
const BLOCK_CACHE: usize = 32 << 20;

/// RocksDB's memtables, every column family together: past this the largest is flushed to
/// disk. RocksDB's default is up to two 64 MiB memtables per family, close to 1 GiB for a
/// sidecar's seven families once enough is written.
pub(super) const MEMTABLE_MEMORY: usize = 32 << 20;

/// Options of every column family: the one block cache, index blocks in it, LZ4.
fn family_options(cache: &Cache) -> Options {
    let mut tables = BlockBasedOptions::default();
    tables.set_block_cache(cache);
    // Index blocks (an entry per 4 KiB data block, about 20 bytes an entry of the log) go in
    // the cache too, partitioned. RocksDB keeps each open table's whole index in its reader
    // by default, outside the cache, where it grows with the log (5.7 MB for 300,000 entries).
    // Partitioned, a lookup reads only the 4 KiB part of the index it needs, found through a
    // top-level index pinned in the cache (about a hundredth of the index). A flat index in
    // the cache was read whole by every lookup that does not fill the cache: the fold at
    // start read 282 times its log of 300,000 entries. Level-0 tables, few and the most
    // read, keep their indexes pinned.
    tables.set_index_type(BlockBasedIndexType::TwoLevelIndexSearch);
    tables.set_cache_index_and_filter_blocks(true);
    tables.set_pin_top_level_index_and_filter(true);
    tables.set_pin_l0_filter_and_index_blocks_in_cache(true);
    let mut family = Options::default();
    family.set_block_based_table_factory(&tables);
    family.set_compression_type(rocksdb::DBCompressionType::Lz4);
    family
}

impl Log {
    /// Opens (creating if needed) the log in `data_dir` for reading and writing, taking the
    /// directory's lock.
    pub fn open(data_dir: &Path) -> Result<Log, StoreError> {
        Log::open_with(data_dir, LogOptions::default())
    }

    /// Like [`Log::open`], with explicit options.
    pub fn open_with(data_dir: &Path, options_in: LogOptions) -> Result<Log, StoreError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|source| io_error(data_dir, data_dir.to_path_buf(), source))?;
        let lock_file = lock_data_dir(data_dir)?;
        let mut options = Options::default();
        // RocksDB's defaults, stated because the log relies on them: a block whose checksum
        // does not match is refused (`verify_checksums` is on in every read), never served.
        options.set_paranoid_checks(true);
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        options.set_compression_type(rocksdb::DBCompressionType::Lz4);
        options.set_db_write_buffer_size(MEMTABLE_MEMORY);
        let cache = Cache::new_lru_cache(BLOCK_CACHE);
        let db_path = data_dir.join(DB_DIR);
        let descriptors = COLUMN_FAMILIES
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(*name, family_options(&cache)));
        let db = DB::open_cf_descriptors(&options, &db_path, descriptors).map_err(|source| {
            StoreError::Open {
                dir: db_path.clone(),
                source,
            }
        })?;
        Log::from_db(db, Some(lock_file), options_in)
    }

    /// Opens an existing log read-only, without the lock: safe next to a running node (it sees
    /// the log as of the moment it opened).
    pub fn open_read_only(data_dir: &Path) -> Result<Log, StoreError> {
        Log::open_read_only_with(data_dir, TrustRoots::new())
    }

    /// Like [`Log::open_read_only`], with the trust roots that make namespaces governed.
    pub fn open_read_only_with(
        data_dir: &Path,
        trust_roots: TrustRoots,
    ) -> Result<Log, StoreError> {
        let db_path = data_dir.join(DB_DIR);
        if !db_path.join("CURRENT").exists() {
            return Err(StoreError::NotInitialised {
                dir: data_dir.to_path_buf(),
            });
        }
        // The same options as a node's: an audit of a large log holds one bounded cache.
        let cache = Cache::new_lru_cache(BLOCK_CACHE);
        let descriptors = COLUMN_FAMILIES
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(*name, family_options(&cache)));
        let db =
            DB::open_cf_descriptors_read_only(&Options::default(), &db_path, descriptors, false)
                .map_err(|source| StoreError::Open {
                    dir: db_path.clone(),
                    source,
                })?;
        Log::from_db(
            db,
            None,
            LogOptions {
                max_pending: MAX_PENDING,
                trust_roots,
            },
        )
    }

    fn from_db(db: DB, lock_file: Option<File>, options: LogOptions) -> Result<Log, StoreError> {
        let db = Arc::new(db);
        let wal =
            match lock_file {
                Some(_) => Some(wal::WalSyncer::start(Arc::clone(&db)).map_err(|source| {
                    StoreError::Io {
                        path: db.path().to_path_buf(),
                        source,
                    }
                })?),
                None => None,
            };
        let log = Log {
            db,
            wal,
            write_lock: Mutex::new(Counters::default()),
            published: Mutex::new(LogStats::default()),
            governor: Mutex::new(Governor::default()),
            trust_roots: options.trust_roots,
            rejection_counts: Mutex::new(BTreeMap::new()),
            max_pending: options.max_pending,
            parsed_bodies: Mutex::default(),
            full_disk: full_disk::FullDisk::default(),
            _lock_file: lock_file,
        };
        log.recover_counters()?;
        log.rebuild_governor()?;
        Ok(log)
    }

    fn recover_counters(&self) -> Result<(), StoreError> {
        let next_after_last = |cf: &str| -> Result<u64, StoreError> {
            match self.db.iterator_cf(self.cf(cf), IteratorMode::End).next() {
                Some(item) => {
                    let (key, _) = item?;
                    keys::split_counter_key(&key)
                        .map(|last| last + 1)
                        .ok_or_else(|| StoreError::Corrupt(format!("unreadable {cf} key")))
                }
                None => Ok(0),
            }
        };
        let mut counters = self.lock_counters();
        counters.next_arrival = next_after_last(CF_JOURNAL)?;
        counters.next_rejection = next_after_last(CF_REJECTED)?;
        // Each entry counts as arriving now, from no known peer: it expires one TTL after
        // this open, and is evicted as any other should the node need the room.
        let now_ms = crate::clock::now_ms();
        let mut index = PendingIndex::default();
        for item in self
            .db
            .iterator_cf(self.cf(CF_PENDING), IteratorMode::Start)
        {
            let (key, value) = item?;
            let feed = FeedKey::of(&decode_stored(&value)?);
            let meta = PendingMeta {
                author: feed.author,
                peer: None,
                arrival_ms: now_ms,
                arrival: plexus_protocol::coord::Arrival::History,
                feed_held: self.head(&feed)?.is_some(),
            };
            index.insert(key, meta);
        }
        counters.pending = index.len();
        counters.pending_index = Arc::new(Mutex::new(index));
        counters.forks = self.count(CF_FORKS)? as usize;
        counters.any_forks = counters.forks > 0;
        // The one full read of the heads: from here on the write path keeps these counts.
        for item in self
            .db
            .iterator_cf_opt(self.cf(CF_HEADS), scan_options(), IteratorMode::Start)
        {
            let (_, value) = item?;
            counters.entries += decode_head(&value)?.seq;
            counters.feeds += 1;
        }
        self.publish_stats(&counters);
        Ok(())
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        // Stop the group commit, then make its last writes durable.
        if self.wal.take().is_some() {
            if let Err(error) = self.db.flush_wal(true) {
                tracing::warn!(%error, "final fsync of the write-ahead log failed");
            }
        }
    }
}

/// Takes the data directory's lock file, writing our pid into it for the error message other
/// processes will show.
fn lock_data_dir(data_dir: &Path) -> Result<File, StoreError> {
    let path = data_dir.join(LOCK_FILE);
    let io_error = |source| io_error(data_dir, path.clone(), source);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_error)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let pid = std::fs::read_to_string(&path)
                .ok()
                .map(|text| text.trim().to_owned())
                .filter(|text| !text.is_empty())
                .map(|pid| format!(" (pid {pid})"))
                .unwrap_or_default();
            return Err(StoreError::Locked {
                dir: data_dir.to_path_buf(),
                pid,
            });
        }
        Err(std::fs::TryLockError::Error(source)) => return Err(io_error(source)),
    }
    file.set_len(0).map_err(io_error)?;
    writeln!(file, "{}", std::process::id()).map_err(io_error)?;
    Ok(file)
}

/// An I/O error on `path` in `data_dir`; one that says the directory cannot be written (a
/// read-only file system, or permissions) names the directory and what to do.
fn io_error(data_dir: &Path, path: std::path::PathBuf, source: std::io::Error) -> StoreError {
    if matches!(
        source.kind(),
        std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied
    ) {
        StoreError::ReadOnly {
            dir: data_dir.to_path_buf(),
            source,
        }
    } else {
        StoreError::Io { path, source }
    }
}
