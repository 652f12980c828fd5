//! The node's append-only log in RocksDB.
//!
//! Column families:
//!
//! | family     | key                                  | value                              |
//! |------------|--------------------------------------|------------------------------------|
//! | `entries`  | feed prefix, seq (BE)                | the entry envelope                 |
//! | `ids`      | entry id                             | the entry's `entries` key          |
//! | `heads`    | feed prefix                          | head seq (BE), head id             |
//! | `journal`  | arrival counter (BE)                 | the entry's `entries` key, its arrival (1 byte: 0 own, 1 live, 2 history) and the receive time (Unix ms, BE); older logs: the key alone, or the entry id; a pruned entry completed with its body is journaled again |
//! | `forks`    | feed prefix, seq (one proof per seq) | encoded fork proof                 |
//! | `pending`  | feed prefix, seq, entry id           | envelope waiting for a predecessor |
//! | `rejected` | rejection counter (BE), a ring       | encoded [`Rejection`]              |
//!
//! Invariants:
//! - **Every change to entries, heads, forks and pending is one atomic `WriteBatch`.** The
//!   node's own appends are written with `sync = true`: once returned, an append is in the
//!   fsynced write-ahead log and survives a crash of the process (tested) or of the machine
//!   (what fsync promises). Received entries (gossip, backfill) are written without an fsync
//!   each and fsynced by a group commit ([`wal`]) within `SYNC_INTERVAL` (50 ms) and one
//!   fsync: they survive a crash of the process at once, and a machine crash can lose only
//!   that last moment of them, which backfill fetches again. The rejection journal, which is diagnostics, is
//!   written without fsync and kept as a bounded ring.
//! - In-memory counters change only after their batch is committed.
//! - **A feed in `entries` has every seq from 1 to its head with valid links**; entries that do
//!   not chain yet wait in `pending` (bounded by [`MAX_PENDING`], and per author, per peer
//!   and in time by [`pending`]) and move over, in the same batch, when their predecessor
//!   arrives; one that expires or is evicted is simply fetched again.
//! - **Fork proofs are bounded**: one per position for forks found here, one per feed for
//!   proofs learned from peers and only about feeds held here, [`MAX_FORK_PROOFS`] in all.
//! - **Nothing stored is overwritten**: a second entry at a stored seq becomes a fork proof,
//!   including one that was waiting in `pending` when an entry at its seq was accepted.
//! - One writer at a time: a mutex serialises read-modify-write sequences (seq assignment,
//!   placement), and a lock file keeps other processes out of the data directory.
//! - **In a governed namespace, an entry is stored only if the policy allows it**
//!   ([`governance`]): the full decision runs when the entry extends its feed (own appends,
//!   gossip, backfill batches, and entries leaving `pending`), and the part that needs no
//!   history runs before an entry may wait in `pending`.

mod answers;
mod completion;
mod full_disk;
mod governance;
mod heads_range;
mod keys;
mod open;
mod parsed;
mod pending;
mod reads;
mod rejections;
mod snapshot;
mod wal;
mod write;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use plexus_crypto::Hash256;
use plexus_protocol::coord::{Body, BodyError, Reception};
use plexus_protocol::policy::Violation;
use plexus_protocol::{Entry, EntryError, FeedHead, FeedKey, ForkProof};
use rocksdb::{Direction, IteratorMode, ReadOptions, WriteBatch, WriteOptions, DB};

pub use governance::{body_read_by_policy, Governor, Scope, TrustRoots};
pub use heads_range::NamespaceHeads;
pub use keys::{entry_key, feed_prefix, split_entry_key};
pub use parsed::parse_stored_body;
pub use pending::{PendingRefusal, MAX_PENDING_PER_AUTHOR, MAX_PENDING_PER_PEER, PENDING_TTL_MS};
pub use rejections::Rejection;
pub use snapshot::LogSnapshot;
pub use write::Offer;

use pending::{PendingIndex, PendingMeta};

/// Read options for a pass that reads each block once (the journal folded at start, an export,
/// a count): its blocks are not kept in the block cache, which stays for lookups. Checksums
/// are verified as in every read.
fn scan_options() -> ReadOptions {
    let mut options = ReadOptions::default();
    options.fill_cache(false);
    options
}

/// Entries held while their predecessors are missing, over all feeds. Sized for a backfill gap
/// of a few thousand entries without letting a peer fill memory or disk with unchainable data.
pub const MAX_PENDING: usize = 10_000;

/// Fork proofs stored at most, over all feeds. A proof is two body-less envelopes (under
/// 2 KiB), so this bounds the `forks` family near 20 MB and the quarantine set (built from
/// it) near a megabyte, while leaving room for far more forks than an honest network ever
/// sees: a fork is misbehaviour, and one proof per forked feed is all quarantine needs.
pub const MAX_FORK_PROOFS: usize = 10_000;

const CF_ENTRIES: &str = "entries";
const CF_IDS: &str = "ids";
const CF_HEADS: &str = "heads";
const CF_JOURNAL: &str = "journal";
const CF_FORKS: &str = "forks";
const CF_PENDING: &str = "pending";
const CF_REJECTED: &str = "rejected";
/// Every column family of a log's database, RocksDB's default one (idempotency answers,
/// `answers.rs`) included, so that each is opened with the same options and counted in
/// [`Log::memory`].
const COLUMN_FAMILIES: [&str; 8] = [
    rocksdb::DEFAULT_COLUMN_FAMILY_NAME,
    CF_ENTRIES,
    CF_IDS,
    CF_HEADS,
    CF_JOURNAL,
    CF_FORKS,
    CF_PENDING,
    CF_REJECTED,
];

/// Records kept in the rejection journal; older ones are deleted as new ones arrive.
pub const MAX_REJECTIONS: u64 = 100_000;

/// Name of the lock file in the data directory.
pub const LOCK_FILE: &str = "plexus.lock";
/// The rejection journal's source for this node's own agent's entries, refused before
/// signing into the log.
pub const OWN_AGENT_SOURCE: &str = "local agent";
/// Name of the RocksDB directory inside the data directory.
pub const DB_DIR: &str = "log";

/// Errors of the log.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "data directory {dir} is in use by another plexus process{pid}; stop that process or \
         use another --data-dir"
    )]
    Locked { dir: PathBuf, pid: String },
    #[error(
        "no Plexus log in {dir} (expected {dir}/log): check the path, or run `plexus init` to \
         create one"
    )]
    NotInitialised { dir: PathBuf },
    #[error("cannot open the log in {dir}: {source}")]
    Open {
        dir: PathBuf,
        source: rocksdb::Error,
    },
    #[error("RocksDB operation on the log failed: {0}; check free disk space and the data directory's permissions")]
    Rocks(rocksdb::Error),
    /// A checksum or format check of RocksDB failed: a file of the log holds other bytes than
    /// were written. RocksDB's message names the file and the offset of the damaged block.
    #[error(
        "the log is damaged: {0}; nothing damaged is served. Run `plexus audit verify` on the \
         data directory to see which feeds and entries are affected, then restore the data \
         directory from a backup (entries of other agents also come back from peers into a \
         fresh log, this agent's own feed only from a backup or a peer's export)"
    )]
    Damaged(rocksdb::Error),
    /// The file system holding the log has no room left, or RocksDB refuses writes since it
    /// filled; nothing of the refused write was stored. `cause` is RocksDB's error (the first
    /// one names the file it was writing).
    #[error(
        "the disk is full: no space left on the file system holding the log {dir} ({cause}); \
         nothing was written. Free space on that file system, then restart the node (`plexus \
         run`): every acknowledged entry is kept"
    )]
    DiskFull { dir: PathBuf, cause: rocksdb::Error },
    /// The data directory cannot be written (a read-only file system or permissions).
    #[error(
        "cannot write to the data directory {dir}: {source}; a node keeps its log there, so \
         remount it read-write or fix its permissions, or pass another --data-dir (`plexus \
         audit verify {dir}` and `plexus audit export` read it as it is)"
    )]
    ReadOnly {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("file I/O on {path} failed: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("corrupt log: {0}; run `plexus audit verify` on the data directory for details")]
    Corrupt(String),
    #[error("cannot create the entry: {0}")]
    Entry(#[from] EntryError),
    /// The body its kind does not allow; the message names the kind, the field and the rule.
    #[error(transparent)]
    Body(#[from] BodyError),
    /// The namespace's policy refuses the entry; the message names the rule and what to do.
    #[error(transparent)]
    Policy(#[from] Violation),
}

impl From<rocksdb::Error> for StoreError {
    /// Sorts RocksDB's errors by what the user must do: damage (checksums, format) gets a
    /// message of its own. A full disk is recognised by the write paths
    /// (`Log::write_failed`), which know the log's directory and its state.
    fn from(error: rocksdb::Error) -> StoreError {
        match error.kind() {
            rocksdb::ErrorKind::Corruption => StoreError::Damaged(error),
            _ => StoreError::Rocks(error),
        }
    }
}

/// What happened to an entry offered to the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    /// Stored and chained; `released` more entries left `pending` because of it, and `forks`
    /// holds the proofs formed from pending entries that conflicted with what was accepted.
    /// Also the outcome when the entry was stored pruned and this copy completed it with its
    /// body (nothing released, no forks).
    Accepted {
        id: Hash256,
        released: usize,
        forks: Vec<ForkProof>,
    },
    /// Already stored: nothing changed.
    Duplicate { id: Hash256 },
    /// Held until the entries from `missing_from` arrive.
    Pending { id: Hash256, missing_from: u64 },
    /// The author forked: the proof is stored, the stored entry stays.
    Fork { proof: Box<ForkProof> },
    /// Refused and recorded in the rejection journal.
    Rejected {
        reason: RejectReason,
        detail: String,
    },
}

impl From<plexus_protocol::admit::RefusalReason> for RejectReason {
    fn from(reason: plexus_protocol::admit::RefusalReason) -> RejectReason {
        use plexus_protocol::admit::RefusalReason;
        match reason {
            RefusalReason::Malformed => RejectReason::Malformed,
            RefusalReason::WrongTopic => RejectReason::WrongTopic,
            RefusalReason::BadSignature => RejectReason::BadSignature,
            RefusalReason::PrunedBody => RejectReason::PrunedBody,
            RefusalReason::BadBody => RejectReason::BadBody,
        }
    }
}

/// Why input was refused: a stable machine-readable code with every rejection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    Malformed,
    BadSignature,
    PendingFull,
    /// An entry published on a topic that does not match its namespace or kind.
    WrongTopic,
    /// An entry by an author quarantined for forking.
    Quarantined,
    /// An entry of an unknown kind, or whose body is not well formed for its kind.
    BadBody,
    /// A live entry whose timestamp is outside the node's clock-skew window.
    ClockSkew,
    /// An entry the governed namespace's policy refuses.
    Policy,
    /// Over the per-peer or per-author ingress rate of this node (not stored, not forwarded;
    /// backfill brings it again later if it is valid).
    Throttled,
    /// A live entry (gossip, submit) without its body: only history may be pruned.
    PrunedBody,
}

/// An entry waiting in `pending`, with its key there.
type PendingEntry = (Box<[u8]>, Entry);

/// A stored envelope as it sits in RocksDB: its `entries` key and its bytes.
pub type RawEntry = (Box<[u8]>, Box<[u8]>);

/// A stored entry with its local arrival number.
#[derive(Debug, Clone)]
pub struct JournalEntry {
    pub arrival: u64,
    pub entry: Entry,
    /// How and when this node received it (`None` in records of logs written before
    /// receptions were recorded).
    pub reception: Option<Reception>,
}

/// Counts for status displays.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogStats {
    pub entries: u64,
    pub feeds: u64,
    pub forks: u64,
    pub pending: u64,
    pub rejected: u64,
}

/// What RocksDB holds in memory for a log, in bytes; both are bounded (`open.rs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreMemory {
    /// Written and not yet flushed, across every column family: up to the 32 MiB budget, plus
    /// tables being flushed.
    pub memtables: u64,
    /// Blocks in the one block cache every family shares (32 MiB).
    pub block_cache: u64,
}

/// Tunables of a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogOptions {
    /// Most entries held in `pending` at once (see [`MAX_PENDING`]).
    pub max_pending: usize,
    /// The governed namespaces and their admins.
    pub trust_roots: TrustRoots,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            max_pending: MAX_PENDING,
            trust_roots: TrustRoots::new(),
        }
    }
}

/// The node's log.
pub struct Log {
    db: Arc<DB>,
    /// Group commit of received entries' writes (writable logs only).
    wal: Option<wal::WalSyncer>,
    write_lock: Mutex<Counters>,
    /// What [`Log::stats`] reports: a copy of the counters, taken each time a write settles
    /// them, behind a lock of its own, so that a status poll costs O(1) and never waits for a
    /// write (a batch of thousands of entries holds `write_lock` for a while) nor makes one
    /// wait.
    published: Mutex<LogStats>,
    /// Taken only while `write_lock` is held (or alone, for reads).
    governor: Mutex<Governor>,
    trust_roots: TrustRoots,
    /// Rejections since the log opened, by reason (and rule, for policy), for metrics.
    rejection_counts: Mutex<BTreeMap<String, u64>>,
    max_pending: usize,
    /// Bodies the write path parsed, for the coordination view ([`Log::take_parsed_body`]).
    parsed_bodies: Mutex<parsed::ParsedBodies>,
    /// Whether the disk filled: every write it refuses is reported as a full disk.
    full_disk: full_disk::FullDisk,
    /// Held for the lifetime of a writable log; dropping it releases the directory.
    _lock_file: Option<File>,
}

#[derive(Debug, Default, Clone)]
struct Counters {
    next_arrival: u64,
    next_rejection: u64,
    pending: usize,
    /// Whether any fork proof is stored: until one is, no feed needs looking up for one.
    any_forks: bool,
    /// Fork proofs stored (bounded by [`MAX_FORK_PROOFS`]).
    forks: usize,
    /// Entries chained in `entries` (the sum of the feed heads' seqs: a feed holds every seq
    /// up to its head, so each entry that extends a feed adds one).
    entries: u64,
    /// Feeds with a head (each entry at seq 1 starts one).
    feeds: u64,
    /// Who holds `pending` and since when (quotas, expiry, eviction). Shared, not copied, by
    /// the staged clone of a write, and changed only once that write is committed
    /// ([`Counters::settled`]), so it always describes what RocksDB holds.
    pending_index: Arc<Mutex<PendingIndex>>,
    /// `pending` entries added by the write being built, for the index once it commits.
    added_pending: Vec<(Box<[u8]>, PendingMeta)>,
    /// Why the last orphan of the write being built was not held, for its rejection record.
    pending_refusal: Option<PendingRefusal>,
    /// `pending` keys deleted in the write batch being built. Lookups read RocksDB, which
    /// does not see the batch yet, so they skip these, and nothing is deleted (and counted)
    /// twice. Always empty outside a write (see [`Counters::settled`]).
    deleted_pending: HashSet<Box<[u8]>>,
    /// The newest head of each feed that gained entries in the batch being built: written
    /// once per feed when the batch is committed ([`Log::put_heads`]), not once per entry.
    batch_heads: HashMap<FeedKey, (u64, Hash256)>,
}

impl Counters {
    /// The counters once their batch is committed: its deletions are in RocksDB now.
    fn settled(mut self) -> Counters {
        if !self.added_pending.is_empty() || !self.deleted_pending.is_empty() {
            let mut index = lock_index(&self.pending_index);
            for (key, meta) in self.added_pending.drain(..) {
                index.insert(key, meta);
            }
            for key in &self.deleted_pending {
                index.remove(key);
            }
        }
        self.pending_refusal = None;
        self.deleted_pending.clear();
        self.batch_heads.clear();
        self
    }

    /// Deletes a `pending` key in `batch` unless this batch already did; true if it did now.
    fn delete_pending(
        &mut self,
        batch: &mut WriteBatch,
        cf: &rocksdb::ColumnFamily,
        key: &[u8],
    ) -> bool {
        if !self.deleted_pending.insert(key.into()) {
            return false;
        }
        batch.delete_cf(cf, key);
        self.pending = self.pending.saturating_sub(1);
        true
    }
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("path", &self.db.path())
            .finish()
    }
}

impl Log {
    /// The governed namespaces and their admins this log was opened with.
    pub fn trust_roots(&self) -> &TrustRoots {
        &self.trust_roots
    }

    /// A copy of the governance state (policy books and feed states), for tests and tools.
    pub fn governor(&self) -> Governor {
        self.lock_governor().clone()
    }

    /// The version of the policy in force at `now_ms` in each governed namespace (0: none).
    pub fn governor_versions(&self, now_ms: u64) -> Vec<(String, u64)> {
        let governor = self.lock_governor();
        governor
            .namespaces()
            .map(|namespace| {
                let version = governor
                    .book(namespace)
                    .and_then(|book| book.in_force(now_ms))
                    .map_or(0, |record| record.version);
                (namespace.to_owned(), version)
            })
            .collect()
    }

    /// A copy of one governed namespace's policy book (`None`: the namespace is open).
    pub fn policy_book(&self, namespace: &str) -> Option<plexus_protocol::policy::PolicyBook> {
        self.lock_governor().book(namespace).cloned()
    }

    /// The clock-skew window for a live entry, and whether its namespace is governed (where
    /// every kind is checked, not only claims): the policy's window when it sets one, else
    /// `default_ms`.
    pub fn clock_skew_for(&self, entry: &Entry, default_ms: u64) -> (u64, bool) {
        skew_window(&self.lock_governor(), entry, default_ms)
    }

    /// The body of the journal record `arrival` as the write path parsed it, if the log still
    /// holds it (`store/parsed.rs`): what the coordination view applies instead of parsing the
    /// stored entry's body again. `None` means: parse it (`coord::body_for_view`).
    pub fn take_parsed_body(&self, arrival: u64) -> Option<Body> {
        self.parsed_bodies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take(arrival)
    }

    /// Rebuilds the governance state from the stored feeds of the governed namespaces.
    fn rebuild_governor(&self) -> Result<(), StoreError> {
        let governor = self.scan_governor()?;
        *self.lock_governor() = governor;
        Ok(())
    }

    /// The governance state folded from the stored feeds of the governed namespaces.
    fn scan_governor(&self) -> Result<Governor, StoreError> {
        let mut governor = Governor::new(&self.trust_roots);
        for namespace in self.trust_roots.keys() {
            let mut prefix = vec![namespace.len() as u8];
            prefix.extend_from_slice(namespace.as_bytes());
            for item in self.db.iterator_cf_opt(
                self.cf(CF_ENTRIES),
                scan_options(),
                IteratorMode::From(&prefix, Direction::Forward),
            ) {
                let (key, value) = item?;
                if !key.starts_with(&prefix) {
                    break;
                }
                let entry = decode_stored(&value)?;
                governor.observe(&entry, body_read_by_policy(&entry).as_ref());
            }
        }
        Ok(governor)
    }

    /// Stores a fork proof learned from elsewhere; returns whether it was stored. Only a proof
    /// about a feed this node holds entries of is kept, and only the first for that feed
    /// (quarantine needs one), within [`MAX_FORK_PROOFS`]: proofs about feeds the node does
    /// not hold cost nothing to make (a fresh key forking itself), so they are neither stored
    /// nor forwarded. The write goes through the group commit, never an fsync of its own.
    pub fn store_fork_proof(&self, proof: &ForkProof) -> Result<bool, StoreError> {
        let mut counters = self.lock_counters();
        let feed = proof.feed();
        if counters.forks >= MAX_FORK_PROOFS
            || self.head(&feed)?.is_none()
            || (counters.any_forks && self.feed_has_any(CF_FORKS, &feed)?)
        {
            return Ok(false);
        }
        let mut batch = WriteBatch::default();
        batch.put_cf(
            self.cf(CF_FORKS),
            entry_key(&feed, proof.seq()),
            proof.encode(),
        );
        self.commit(batch)?;
        counters.any_forks = true;
        counters.forks += 1;
        self.publish_stats(&counters);
        Ok(true)
    }

    /// Writes a batch: atomic and in the write-ahead log at once (it survives a crash of the
    /// process), fsynced by the group commit shortly after ([`wal`]). Returns the write's
    /// durability ticket ([`Log::wait_durable`]).
    fn commit(&self, batch: WriteBatch) -> Result<u64, StoreError> {
        let ticket = match &self.wal {
            Some(wal) => {
                self.db
                    .write(batch)
                    .map_err(|error| self.write_failed(error))?;
                wal.written()
            }
            None => {
                let mut options = WriteOptions::default();
                options.set_sync(true);
                self.db
                    .write_opt(batch, &options)
                    .map_err(|error| self.write_failed(error))?;
                0
            }
        };
        self.full_disk.write_succeeded();
        Ok(ticket)
    }

    /// Returns once the write with `ticket` (and every one before it) is fsynced.
    fn wait_durable(&self, ticket: u64) -> Result<(), StoreError> {
        if let Some(wal) = &self.wal {
            wal.wait_durable(ticket, &self.db)
                .map_err(|error| self.write_failed(error))?;
        }
        Ok(())
    }

    /// Makes every write so far durable now (for callers that acknowledge received entries to
    /// someone, such as the API's submit).
    pub fn sync(&self) -> Result<(), StoreError> {
        wal::WalSyncer::sync_now(&self.db).map_err(|error| self.write_failed(error))
    }

    /// The error for a write (or fsync) RocksDB refused: a full disk, also when RocksDB
    /// refuses with the state it stopped in after the disk filled, which names no space.
    fn write_failed(&self, error: rocksdb::Error) -> StoreError {
        let dir = self.db.path();
        if self.full_disk.explains(dir, &error) {
            StoreError::DiskFull {
                dir: dir.to_path_buf(),
                cause: error,
            }
        } else {
            error.into()
        }
    }

    /// The governor, rebuilt from the log first if an earlier write sequence did not settle
    /// (an error between folding entries in and committing them).
    fn settled_governor(&self) -> Result<std::sync::MutexGuard<'_, Governor>, StoreError> {
        let mut governor = self.lock_governor();
        if governor.unsettled {
            *governor = self.scan_governor()?;
        }
        Ok(governor)
    }

    fn lock_governor(&self) -> std::sync::MutexGuard<'_, Governor> {
        self.governor
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Copies the settled counters for [`Log::stats`]; called with the write lock held, after
    /// each commit that changed them.
    fn publish_stats(&self, counters: &Counters) {
        *self
            .published
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = LogStats {
            entries: counters.entries,
            feeds: counters.feeds,
            forks: counters.forks as u64,
            pending: counters.pending as u64,
            rejected: counters.next_rejection,
        };
    }

    fn lock_counters(&self) -> std::sync::MutexGuard<'_, Counters> {
        // A panic while holding the lock cannot leave RocksDB half-written (batches are
        // atomic), so a poisoned lock is safe to keep using.
        self.write_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        // Every family in COLUMN_FAMILIES is created or opened with the database, so the
        // handle always exists for the names used in this module.
        #[allow(clippy::expect_used)]
        self.db
            .cf_handle(name)
            .expect("column family opened with the database")
    }
}

/// The `pending` index; taken only under the write lock (a poisoned lock still holds a
/// consistent index: it changes only in [`Counters::settled`]).
fn lock_index(index: &Mutex<PendingIndex>) -> std::sync::MutexGuard<'_, PendingIndex> {
    index
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The clock-skew window for `entry` under `governor` (see [`Log::clock_skew_for`]).
fn skew_window(governor: &Governor, entry: &Entry, default_ms: u64) -> (u64, bool) {
    let header = entry.header();
    match governor.book(&header.namespace) {
        Some(book) => (
            book.clock_skew_ms(header.timestamp_ms)
                .unwrap_or(default_ms),
            true,
        ),
        None => (default_ms, false),
    }
}

fn decode_head(value: &[u8]) -> Result<FeedHead, StoreError> {
    let corrupt = || StoreError::Corrupt("unreadable feed head".into());
    let seq = u64::from_be_bytes(
        value
            .get(..8)
            .ok_or_else(corrupt)?
            .try_into()
            .map_err(|_| corrupt())?,
    );
    let id = Hash256::from_slice(value.get(8..).ok_or_else(corrupt)?).ok_or_else(corrupt)?;
    Ok(FeedHead { seq, id })
}

fn decode_stored(bytes: &[u8]) -> Result<Entry, StoreError> {
    Entry::decode(bytes).map_err(|error| StoreError::Corrupt(format!("stored entry: {error}")))
}

#[cfg(test)]
mod stats_tests;
#[cfg(test)]
mod tests;
