//! The node's append-only log in RocksDB.
//!
//! Column families:
//!
//! | family     | key                                  | value                              |
//! |------------|--------------------------------------|------------------------------------|
//! | `entries`  | feed prefix, seq (BE)                | the entry envelope                 |
//! | `ids`      | entry id                             | the entry's `entries` key          |
//! | `heads`    | feed prefix                          | head seq (BE), head id             |
//! | `journal`  | arrival counter (BE)                 | the entry's `entries` key (logs written before this: its id); a pruned entry completed with its body is journaled again |
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

mod completion;
mod governance;
mod heads_range;
mod keys;
mod pending;
mod snapshot;
mod wal;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ciborium::Value;
use plexus_crypto::{sha256, Hash256, Keypair};
use plexus_protocol::coord::{check_body, BodyError};
use plexus_protocol::feed::place;
use plexus_protocol::policy::Violation;
use plexus_protocol::{cbor, Draft, Entry, EntryError, FeedHead, FeedKey, ForkProof, Placement};
use rocksdb::{
    ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB,
};

pub use governance::{Governor, Scope, TrustRoots};
pub use heads_range::NamespaceHeads;
pub use keys::{entry_key, feed_prefix, split_entry_key};
pub use pending::{PendingRefusal, MAX_PENDING_PER_AUTHOR, MAX_PENDING_PER_PEER, PENDING_TTL_MS};
pub use snapshot::LogSnapshot;

use pending::{PendingIndex, PendingMeta};

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
const COLUMN_FAMILIES: [&str; 7] = [
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
    Rocks(#[from] rocksdb::Error),
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

/// One record of the rejection journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub counter: u64,
    pub time_ms: u64,
    pub reason: String,
    pub detail: String,
    pub input_hash: Hash256,
    pub input_len: u64,
    pub source: String,
    /// For policy rejections: the rule's code and the policy version used.
    pub rule: Option<String>,
    pub policy_version: Option<u64>,
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
    /// Taken only while `write_lock` is held (or alone, for reads).
    governor: Mutex<Governor>,
    trust_roots: TrustRoots,
    /// Rejections since the log opened, by reason (and rule, for policy), for metrics.
    rejection_counts: Mutex<BTreeMap<String, u64>>,
    max_pending: usize,
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

impl RejectReason {
    /// The stable code stored in the rejection journal.
    pub fn code(self) -> &'static str {
        match self {
            RejectReason::Malformed => "malformed",
            RejectReason::BadSignature => "bad-signature",
            RejectReason::PendingFull => "pending-full",
            RejectReason::WrongTopic => "wrong-topic",
            RejectReason::Quarantined => "quarantined",
            RejectReason::BadBody => "bad-body",
            RejectReason::ClockSkew => "clock-skew",
            RejectReason::Policy => "policy",
            RejectReason::Throttled => "throttled",
            RejectReason::PrunedBody => "pruned-body",
        }
    }
}

impl Log {
    /// Opens (creating if needed) the log in `data_dir` for reading and writing, taking the
    /// directory's lock.
    pub fn open(data_dir: &Path) -> Result<Log, StoreError> {
        Log::open_with(data_dir, LogOptions::default())
    }

    /// Like [`Log::open`], with explicit options.
    pub fn open_with(data_dir: &Path, options_in: LogOptions) -> Result<Log, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::Io {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let lock_file = lock_data_dir(data_dir)?;
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        options.set_compression_type(rocksdb::DBCompressionType::Lz4);
        let db_path = data_dir.join(DB_DIR);
        let descriptors = COLUMN_FAMILIES
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(*name, Options::default()));
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
        let db = DB::open_cf_for_read_only(&Options::default(), &db_path, COLUMN_FAMILIES, false)
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
            governor: Mutex::new(Governor::default()),
            trust_roots: options.trust_roots,
            rejection_counts: Mutex::new(BTreeMap::new()),
            max_pending: options.max_pending,
            _lock_file: lock_file,
        };
        log.recover_counters()?;
        log.rebuild_governor()?;
        Ok(log)
    }

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

    /// Counts a refusal in the metrics without a journal record (for throttling, where one
    /// write per dropped message would turn a flood into a flood of writes).
    pub fn count_rejection(&self, reason: RejectReason, detail: &str) {
        *self
            .rejection_counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(format!("{}:{detail}", reason.code()))
            .or_default() += 1;
    }

    /// Rejections recorded since the log opened, by reason (`policy:<rule>` for policy).
    pub fn rejection_counts(&self) -> BTreeMap<String, u64> {
        self.rejection_counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
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
            for item in self.db.iterator_cf(
                self.cf(CF_ENTRIES),
                IteratorMode::From(&prefix, Direction::Forward),
            ) {
                let (key, value) = item?;
                if !key.starts_with(&prefix) {
                    break;
                }
                governor.observe(&decode_stored(&value)?);
            }
        }
        Ok(governor)
    }

    /// Appends a new entry to `keypair`'s own feed in `namespace`, assigning seq and prev
    /// atomically. Returns the stored entry once it is durable.
    pub fn append_own(
        &self,
        keypair: &Keypair,
        namespace: &str,
        kind: &str,
        body: Vec<u8>,
        timestamp_ms: u64,
    ) -> Result<Entry, StoreError> {
        plexus_protocol::coord::Body::parse(kind, &body)?;
        let mut counters = self.lock_counters();
        let feed = FeedKey {
            namespace: namespace.to_owned(),
            author: keypair.agent_id(),
        };
        let head = self.head(&feed)?;
        let entry = Entry::sign(
            keypair,
            Draft {
                namespace: namespace.to_owned(),
                seq: head.map_or(1, |head| head.seq + 1),
                prev: head.map(|head| head.id),
                timestamp_ms,
                kind: kind.to_owned(),
                body,
            },
        )?;
        let mut governor = self.settled_governor()?;
        // Decided before anything is written: a refused entry never takes a seq.
        if let Err(violation) = governor.decide(&entry, Scope::Full) {
            // Journalled and counted like anyone else's refusal, marked as our own agent's,
            // so `plexus rejections` and the metrics show what this node refused. The journal
            // takes the counters' lock itself.
            drop(counters);
            self.record_policy_rejection(
                &entry.encode(),
                &violation,
                OWN_AGENT_SOURCE,
                timestamp_ms,
            )?;
            return Err(violation.into());
        }
        let mut staged = counters.clone();
        let mut batch = WriteBatch::default();
        // Only someone holding our key could have put a rival of our own entry in pending;
        // `accept` still turns it into a proof rather than dropping it.
        let mut forks = Vec::new();
        self.accept(&mut batch, &mut staged, &entry, &mut forks)?;
        self.put_heads(&mut batch, &mut staged);
        // Our own entry: durable before we return it (and with it every received write).
        self.db.write_opt(batch, &sync_options())?;
        governor.observe(&entry);
        *counters = staged.settled();
        Ok(entry)
    }

    /// Offers an entry received from elsewhere (a peer, a file). It is validated first: a bad
    /// entry lands in the rejection journal; a good one is stored, held as pending, recognised
    /// as a duplicate, or turned into a fork proof.
    pub fn ingest(
        &self,
        bytes: &[u8],
        source: &str,
        now_ms: u64,
    ) -> Result<IngestOutcome, StoreError> {
        let entry = match Entry::decode(bytes) {
            Ok(entry) => entry,
            Err(error) => {
                return self.record_rejection(
                    bytes,
                    RejectReason::Malformed,
                    error.to_string(),
                    source,
                    now_ms,
                )
            }
        };
        if !entry.verify_signature() {
            let detail = format!(
                "signature does not verify for author {} seq {}",
                entry.header().author,
                entry.header().seq
            );
            return self.record_rejection(
                bytes,
                RejectReason::BadSignature,
                detail,
                source,
                now_ms,
            );
        }
        self.ingest_verified(entry, bytes, source, now_ms)
    }

    /// Like [`Log::ingest`] for an entry whose encoding and signature were already checked
    /// (for example by a batch verification).
    pub fn ingest_verified(
        &self,
        entry: Entry,
        bytes: &[u8],
        source: &str,
        now_ms: u64,
    ) -> Result<IngestOutcome, StoreError> {
        if let Err(error) = check_body(&entry) {
            let detail = body_rejection(&entry, &error);
            return self.record_rejection(bytes, RejectReason::BadBody, detail, source, now_ms);
        }
        self.ingest_verified_then(entry, bytes, source, now_ms, || {})
    }

    /// Like [`Log::ingest_verified`] for an entry whose body was also checked against its kind
    /// (`check_body`), calling `on_next` once the entry is known to be the next of its feed,
    /// before its write is committed. The gossip path checks the body itself (to answer
    /// gossipsub) and forwards the validated entry from `on_next`, so forwarding overlaps the
    /// write; the outcome comes back once the write is in the log (made durable by the group
    /// commit, [`wal`]).
    pub fn ingest_verified_then(
        &self,
        entry: Entry,
        bytes: &[u8],
        source: &str,
        now_ms: u64,
        on_next: impl FnOnce(),
    ) -> Result<IngestOutcome, StoreError> {
        let mut counters = self.lock_counters();
        let mut governor = self.settled_governor()?;
        let mut refused = Vec::new();
        let id = entry.id();
        if self.is_stored(&id)? {
            // The copy with the body completes a stored pruned copy (see `completion`).
            return Ok(match self.complete_pruned(&mut counters, &entry)? {
                Some(completed) => completed,
                None => IngestOutcome::Duplicate { id },
            });
        }
        let feed = FeedKey::of(&entry);
        let seq = entry.header().seq;
        let head = self.head(&feed)?;
        let stored_at_seq = match head {
            Some(head) if seq <= head.seq => self.entry_at(&feed, seq)?.map(|stored| stored.id()),
            _ => None,
        };
        let mut staged = counters.clone();
        let placement = place(head, stored_at_seq, &entry);
        // Duplicates and fork rivals are not judged again: the stored entry was, and a rival
        // is evidence, never accepted.
        let decision = match placement {
            Placement::Next => governor.decide(&entry, Scope::Full),
            Placement::Ahead { .. } | Placement::BrokenLink { .. } => {
                governor.decide(&entry, Scope::Stateless)
            }
            Placement::Duplicate | Placement::Fork { .. } => Ok(None),
        };
        if let Err(violation) = decision {
            if placement == Placement::Next {
                // What waits for this entry can never chain here now.
                let mut batch = WriteBatch::default();
                self.purge_successors(
                    &mut batch,
                    &mut staged,
                    &feed,
                    &entry,
                    &violation,
                    &mut refused,
                )?;
                if !batch.is_empty() {
                    self.commit(batch)?;
                }
                *counters = staged.settled();
            }
            drop(governor);
            drop(counters);
            self.record_refused(refused, source, now_ms)?;
            return self.record_policy_rejection(bytes, &violation, source, now_ms);
        }
        let outcome = match placement {
            Placement::Next => {
                let mut batch = WriteBatch::default();
                let mut forks = Vec::new();
                governor.unsettled = true;
                self.accept(&mut batch, &mut staged, &entry, &mut forks)?;
                governor.observe(&entry);
                let released = self.release_pending(
                    &mut batch,
                    &mut staged,
                    &mut governor,
                    &feed,
                    &entry,
                    &mut forks,
                    &mut refused,
                )?;
                on_next();
                self.commit_governed(batch, &mut staged, &mut governor)?;
                Some(IngestOutcome::Accepted {
                    id,
                    released,
                    forks,
                })
            }
            Placement::Duplicate => Some(IngestOutcome::Duplicate { id }),
            Placement::Fork { .. } => {
                let stored = self.entry_at(&feed, seq)?.ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "entry seq {seq} of author {} vanished",
                        feed.author
                    ))
                })?;
                let mut batch = WriteBatch::default();
                match self.put_fork(&mut batch, &mut staged, stored, entry)? {
                    Some(proof) => {
                        self.commit(batch)?;
                        Some(IngestOutcome::Fork {
                            proof: Box::new(proof),
                        })
                    }
                    // A proof for this position is already stored: one is enough.
                    None => Some(IngestOutcome::Duplicate { id }),
                }
            }
            Placement::Ahead { missing_from } => {
                self.hold_now(&mut staged, &entry, missing_from, (source, now_ms))?
            }
            // The entry names a predecessor other than our head: the author forked at the
            // head's seq, and the other branch's entry is missing. Hold it; fetching seq
            // `head.seq` from whoever sent it completes the proof.
            Placement::BrokenLink { head } => {
                self.hold_now(&mut staged, &entry, head.seq, (source, now_ms))?
            }
        };
        let refusal = staged.pending_refusal.unwrap_or(PendingRefusal::Full);
        *counters = staged.settled();
        drop(governor);
        drop(counters);
        self.record_refused(refused, source, now_ms)?;
        match outcome {
            Some(outcome) => Ok(outcome),
            None => {
                let why = match refusal {
                    PendingRefusal::Full => format!(
                        "{} entries already wait for missing predecessors",
                        self.max_pending
                    ),
                    PendingRefusal::AuthorQuota => format!(
                        "its author already has {MAX_PENDING_PER_AUTHOR} entries waiting for \
                         missing predecessors"
                    ),
                    PendingRefusal::PeerQuota => format!(
                        "{source} already sent {MAX_PENDING_PER_PEER} entries that wait for \
                         missing predecessors"
                    ),
                };
                let detail = format!(
                    "{why}; entry seq {seq} of author {} was not kept; backfill fetches it \
                     again once the gap is filled",
                    feed.author
                );
                self.record_rejection(bytes, RejectReason::PendingFull, detail, source, now_ms)
            }
        }
    }

    /// The gossip fast path: stores `entry` (encoding, signature and body already checked) if it
    /// can be done at once, without waiting: the log's locks are free, nothing of its feed waits
    /// in `pending` (so accepting it releases nothing), no fork proof names its feed (whose
    /// author the node may be quarantining right now), the entry is the next of its feed, its
    /// namespace's policy (if any) allows it, and RocksDB takes the write without a stall.
    /// `Ok(Some(arrival))`: stored at that journal position, exactly as
    /// [`Log::ingest_verified_then`] would have. `Ok(None)`: nothing was done or recorded;
    /// take the full path, which handles every other case.
    ///
    /// The network task calls this so that a valid entry is judged and forwarded without a
    /// hand-off to another thread; it must never block there, hence the `try_lock`s and the
    /// `no_slowdown` write.
    pub fn try_append_next(&self, entry: &Entry) -> Result<Option<u64>, StoreError> {
        let Some(mut counters) = lock_now(&self.write_lock) else {
            return Ok(None);
        };
        if self.wal.is_none() {
            return Ok(None);
        }
        let feed = FeedKey::of(entry);
        // Proofs and pending entries are written under the write lock, so these hold until the
        // write below.
        if (counters.pending > 0 && self.feed_has_any(CF_PENDING, &feed)?)
            || (counters.any_forks && self.feed_has_any(CF_FORKS, &feed)?)
        {
            return Ok(None);
        }
        let Some(mut governor) = lock_now(&self.governor) else {
            return Ok(None);
        };
        if governor.unsettled {
            return Ok(None);
        }
        // The next entry of its feed cannot be stored yet (heads are written with entries), so
        // no separate replay lookup is needed: a replay's seq is at or below the head, so it
        // never places as the next entry.
        let head = self.head(&feed)?;
        if place(head, None, entry) != Placement::Next
            || governor.decide(entry, Scope::Full).is_err()
        {
            return Ok(None);
        }
        let arrival = counters.next_arrival;
        let mut staged = counters.clone();
        let mut batch = WriteBatch::default();
        let mut forks = Vec::new();
        // Nothing of this feed is pending, so no fork proof can form here.
        self.accept(&mut batch, &mut staged, entry, &mut forks)?;
        self.put_heads(&mut batch, &mut staged);
        let mut options = WriteOptions::default();
        options.set_no_slowdown(true);
        if self.db.write_opt(batch, &options).is_err() {
            // A stall (or a failure the full path will meet and report): nothing was written.
            return Ok(None);
        }
        if let Some(wal) = &self.wal {
            wal.written();
        }
        governor.observe(entry);
        *counters = staged.settled();
        Ok(Some(arrival))
    }

    /// The journal's length (the next arrival number) if the write lock is free now; `None`
    /// while a write is in progress (the caller then treats the journal as possibly longer).
    pub fn journal_len_now(&self) -> Option<u64> {
        lock_now(&self.write_lock).map(|counters| counters.next_arrival)
    }

    /// Like [`Log::clock_skew_for`], or `None` at once if the governance state is locked.
    pub fn try_clock_skew_for(&self, entry: &Entry, default_ms: u64) -> Option<(u64, bool)> {
        let governor = lock_now(&self.governor)?;
        Some(skew_window(&governor, entry, default_ms))
    }

    /// Ingests verified entries (encoding and signature already checked, for example by a
    /// batch verification) with one synced write for every run of entries that extend their
    /// feeds or lie beyond their heads (held in `pending`); the others (duplicates, forks,
    /// holes, a full `pending`) fall back to [`Log::ingest_verified`] one by one, after the
    /// batch. Outcomes come back in input order.
    pub fn ingest_verified_batch(
        &self,
        entries: Vec<Entry>,
        source: &str,
        now_ms: u64,
    ) -> Result<Vec<IngestOutcome>, StoreError> {
        let mut outcomes: Vec<Option<IngestOutcome>> = vec![None; entries.len()];
        let mut deferred: Vec<(usize, Entry)> = Vec::new();
        let mut rejected: Vec<(usize, Vec<u8>, Refusal)> = Vec::new();
        let mut refused = Vec::new();
        {
            let mut counters = self.lock_counters();
            let mut governor = self.settled_governor()?;
            let mut staged = counters.clone();
            // Feeds whose next entry the policy refused in this batch: the refused entry's id,
            // so what follows it is refused too instead of waiting in `pending` for ever.
            let mut refused_tips: HashMap<FeedKey, (Hash256, Violation)> = HashMap::new();
            // Entries refused in this batch, so a second copy is refused again, not re-judged
            // (and its successors not purged twice).
            let mut refused_ids: HashMap<Hash256, Violation> = HashMap::new();
            let mut batch = WriteBatch::default();
            let mut tips: HashMap<FeedKey, Entry> = HashMap::new();
            let mut in_batch: HashSet<Hash256> = HashSet::new();
            let mut held_feeds: HashSet<FeedKey> = HashSet::new();
            for (index, entry) in entries.into_iter().enumerate() {
                let id = entry.id();
                if let Err(error) = check_body(&entry) {
                    // Refused after the batch commits, like the other deferred entries.
                    let detail = body_rejection(&entry, &error);
                    rejected.push((index, entry.encode(), Refusal::Body(detail)));
                    continue;
                }
                if in_batch.contains(&id) {
                    outcomes[index] = Some(IngestOutcome::Duplicate { id });
                    continue;
                }
                if let Some(violation) = refused_ids.get(&id) {
                    rejected.push((index, entry.encode(), Refusal::Policy(violation.clone())));
                    continue;
                }
                let feed = FeedKey::of(&entry);
                if let Some((refused_id, violation)) = refused_tips.get(&feed) {
                    if entry.header().prev == Some(*refused_id) {
                        let follow = follows_refused(&entry, violation);
                        refused_tips.insert(feed, (id, violation.clone()));
                        rejected.push((index, entry.encode(), Refusal::Policy(follow)));
                        continue;
                    }
                }
                let head = match tips.get(&feed) {
                    Some(tip) => Some(FeedHead {
                        seq: tip.header().seq,
                        id: tip.id(),
                    }),
                    None => self.head(&feed)?,
                };
                // The next entry of a feed cannot be stored yet (feeds are complete up to their
                // head and nothing past it is in `ids`), so only the others need the lookup.
                if place(head, None, &entry) == Placement::Next {
                    if let Err(violation) = governor.decide(&entry, Scope::Full) {
                        self.purge_successors(
                            &mut batch,
                            &mut staged,
                            &feed,
                            &entry,
                            &violation,
                            &mut refused,
                        )?;
                        refused_tips.insert(feed, (id, violation.clone()));
                        refused_ids.insert(id, violation.clone());
                        rejected.push((index, entry.encode(), Refusal::Policy(violation)));
                        continue;
                    }
                    governor.unsettled = true;
                    let mut forks = Vec::new();
                    self.accept(&mut batch, &mut staged, &entry, &mut forks)?;
                    governor.observe(&entry);
                    in_batch.insert(id);
                    outcomes[index] = Some(IngestOutcome::Accepted {
                        id,
                        released: 0,
                        forks,
                    });
                    tips.insert(feed, entry);
                } else if self.is_stored(&id)? {
                    outcomes[index] = Some(IngestOutcome::Duplicate { id });
                } else if let Err(violation) = governor.decide(&entry, Scope::Stateless) {
                    rejected.push((index, entry.encode(), Refusal::Policy(violation)));
                } else if let Some(outcome) =
                    self.hold_ahead(&mut batch, &mut staged, head, &entry, (source, now_ms))?
                {
                    // Past the head (a later range of a pipelined backfill that arrived first):
                    // held in this batch rather than with a synced write each.
                    in_batch.insert(id);
                    held_feeds.insert(feed);
                    outcomes[index] = Some(outcome);
                } else {
                    deferred.push((index, entry));
                }
            }
            self.release_tips(
                &mut batch,
                &mut staged,
                &mut governor,
                tips.iter(),
                &mut refused,
            )?;
            self.commit_governed(batch, &mut staged, &mut governor)?;
            *counters = staged.settled();
            // An entry held above may chain onto a tip that later entries of the same batch
            // reached; it is in `pending` only now, so release once more.
            let mut staged = counters.clone();
            let mut batch = WriteBatch::default();
            self.release_tips(
                &mut batch,
                &mut staged,
                &mut governor,
                tips.iter().filter(|(feed, _)| held_feeds.contains(*feed)),
                &mut refused,
            )?;
            if !batch.is_empty() {
                self.commit_governed(batch, &mut staged, &mut governor)?;
                *counters = staged.settled();
            }
        }
        self.record_refused(refused, source, now_ms)?;
        for (index, bytes, refusal) in rejected {
            outcomes[index] = Some(match refusal {
                Refusal::Body(detail) => {
                    self.record_rejection(&bytes, RejectReason::BadBody, detail, source, now_ms)?
                }
                Refusal::Policy(violation) => {
                    self.record_policy_rejection(&bytes, &violation, source, now_ms)?
                }
            });
        }
        for (index, entry) in deferred {
            let bytes = entry.encode();
            // Their bodies were checked in the loop above.
            outcomes[index] =
                Some(self.ingest_verified_then(entry, &bytes, source, now_ms, || {})?);
        }
        Ok(outcomes.into_iter().flatten().collect())
    }

    /// Stored envelopes `from_seq..=to_seq` of a feed, stopping once `byte_budget` is reached
    /// (at least one entry is returned when the first exists).
    pub fn entries_range(
        &self,
        feed: &FeedKey,
        from_seq: u64,
        to_seq: u64,
        byte_budget: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let prefix = feed_prefix(feed);
        let start = entry_key(feed, from_seq);
        let mut out = Vec::new();
        let mut bytes = 0usize;
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
            if seq > to_seq || (!out.is_empty() && bytes + value.len() > byte_budget) {
                break;
            }
            bytes += value.len();
            out.push(value.into_vec());
        }
        Ok(out)
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
        // Set first: a proof must never be stored while the fast path thinks there is none.
        counters.any_forks = true;
        let mut batch = WriteBatch::default();
        batch.put_cf(
            self.cf(CF_FORKS),
            entry_key(&feed, proof.seq()),
            proof.encode(),
        );
        self.commit(batch)?;
        counters.forks += 1;
        Ok(true)
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
            .iterator_cf(self.cf(CF_ENTRIES), IteratorMode::Start)
            .map(|item| item.map_err(StoreError::from))
    }

    /// Stored entries in arrival order, starting at arrival number `from`.
    pub fn journal(
        &self,
        from: u64,
    ) -> impl Iterator<Item = Result<JournalEntry, StoreError>> + '_ {
        let start = keys::counter_key(from);
        self.db
            .iterator_cf(
                self.cf(CF_JOURNAL),
                IteratorMode::From(&start, Direction::Forward),
            )
            .map(move |item| {
                let (key, value) = item?;
                let arrival = keys::split_counter_key(&key)
                    .ok_or_else(|| StoreError::Corrupt("unreadable journal key".into()))?;
                let entry = if value.len() == plexus_crypto::HASH_LEN {
                    // Written before journal records held the entry's key: look the id up.
                    let id = Hash256::from_slice(&value)
                        .ok_or_else(|| StoreError::Corrupt("unreadable journal value".into()))?;
                    self.entry_by_id(&id)?
                } else {
                    self.db
                        .get_pinned_cf(self.cf(CF_ENTRIES), &value)?
                        .map(|bytes| decode_stored(&bytes))
                        .transpose()?
                };
                let entry = entry.ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "journal record {arrival} names an entry that is not stored"
                    ))
                })?;
                Ok(JournalEntry { arrival, entry })
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

    /// The rejection journal, oldest first.
    pub fn rejections(&self) -> Result<Vec<Rejection>, StoreError> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(CF_REJECTED), IteratorMode::Start)
        {
            let (key, value) = item?;
            let counter = keys::split_counter_key(&key)
                .ok_or_else(|| StoreError::Corrupt("unreadable rejection key".into()))?;
            out.push(decode_rejection(counter, &value)?);
        }
        Ok(out)
    }

    /// Counts for status output.
    pub fn stats(&self) -> Result<LogStats, StoreError> {
        let counters = self.lock_counters();
        let heads = self.heads()?;
        Ok(LogStats {
            entries: heads.iter().map(|(_, head)| head.seq).sum(),
            feeds: heads.len() as u64,
            forks: self.count(CF_FORKS)?,
            pending: counters.pending as u64,
            rejected: counters.next_rejection,
        })
    }

    /// Flushes memtables to SST files. Durability does not depend on it (the WAL is synced on
    /// every write); it makes a clean shutdown faster to reopen.
    pub fn flush(&self) -> Result<(), StoreError> {
        for name in COLUMN_FAMILIES {
            self.db.flush_cf(self.cf(name))?;
        }
        Ok(())
    }

    /// Puts an accepted entry into the batch, and settles entries waiting in `pending` at the
    /// same position: the same entry is dropped from pending, a different one becomes a fork
    /// proof (collected in `forks`).
    fn accept(
        &self,
        batch: &mut WriteBatch,
        counters: &mut Counters,
        entry: &Entry,
        forks: &mut Vec<ForkProof>,
    ) -> Result<(), StoreError> {
        let feed = FeedKey::of(entry);
        let seq = entry.header().seq;
        let key = entry_key(&feed, seq);
        batch.put_cf(self.cf(CF_ENTRIES), &key, entry.encode());
        batch.put_cf(self.cf(CF_IDS), entry.id().as_bytes(), &key);
        counters.batch_heads.insert(feed.clone(), (seq, entry.id()));
        // The entry's key, not its id: following the journal then takes one lookup, not two.
        batch.put_cf(
            self.cf(CF_JOURNAL),
            keys::counter_key(counters.next_arrival),
            &key,
        );
        counters.next_arrival += 1;
        if counters.pending == 0 {
            // Nothing waits anywhere: spare the lookup (one iterator per accepted entry).
            return Ok(());
        }
        for (pending_key, waiting) in self.pending_at(counters, &feed, seq)? {
            counters.delete_pending(batch, self.cf(CF_PENDING), &pending_key);
            if waiting.id() != entry.id() {
                if let Some(proof) = self.put_fork(batch, counters, entry.clone(), waiting)? {
                    forks.push(proof);
                }
            }
        }
        Ok(())
    }

    /// Releases what waits in `pending` behind each of `tips` (feed, newest entry) into the
    /// batch. Fork proofs formed on the way are stored with the batch; the backfill path does
    /// not report them one by one.
    fn release_tips<'a>(
        &self,
        batch: &mut WriteBatch,
        counters: &mut Counters,
        governor: &mut Governor,
        tips: impl Iterator<Item = (&'a FeedKey, &'a Entry)>,
        refused: &mut Vec<(Entry, Violation)>,
    ) -> Result<(), StoreError> {
        for (feed, tip) in tips {
            let mut forks = Vec::new();
            self.release_pending(batch, counters, governor, feed, tip, &mut forks, refused)?;
        }
        Ok(())
    }

    /// Moves pending entries that now chain onto `tip` into the batch, repeatedly. An entry
    /// the policy refuses leaves `pending` into `refused` (for the rejection journal), and
    /// the release stops there: nothing after it can chain.
    #[allow(clippy::too_many_arguments)]
    fn release_pending(
        &self,
        batch: &mut WriteBatch,
        counters: &mut Counters,
        governor: &mut Governor,
        feed: &FeedKey,
        tip: &Entry,
        forks: &mut Vec<ForkProof>,
        refused: &mut Vec<(Entry, Violation)>,
    ) -> Result<usize, StoreError> {
        let mut released = 0;
        if counters.pending == 0 {
            return Ok(released);
        }
        let mut tip = tip.clone();
        loop {
            let next_seq = tip.header().seq + 1;
            let successor = self
                .pending_at(counters, feed, next_seq)?
                .into_iter()
                .find(|(_, entry)| entry.header().prev == Some(tip.id()));
            // A pending entry on another branch stays: `accept` turns it into a fork proof
            // once an entry at its seq is accepted.
            let Some((pending_key, entry)) = successor else {
                return Ok(released);
            };
            if let Err(violation) = governor.decide(&entry, Scope::Full) {
                counters.delete_pending(batch, self.cf(CF_PENDING), &pending_key);
                self.purge_successors(batch, counters, feed, &entry, &violation, refused)?;
                refused.push((entry, violation));
                return Ok(released);
            }
            governor.unsettled = true;
            self.accept(batch, counters, &entry, forks)?;
            governor.observe(&entry);
            tip = entry;
            released += 1;
        }
    }

    /// Removes from `pending` every entry that descends from `refused` (which the policy
    /// refused, so they can never chain on this node), on every branch an equivocating author
    /// made behind it, adding each to `out`.
    fn purge_successors(
        &self,
        batch: &mut WriteBatch,
        counters: &mut Counters,
        feed: &FeedKey,
        refused: &Entry,
        violation: &Violation,
        out: &mut Vec<(Entry, Violation)>,
    ) -> Result<(), StoreError> {
        // Depth first; each pending entry has one parent, so none is visited twice.
        let mut parents = vec![(refused.header().seq, refused.id())];
        while let Some((seq, id)) = parents.pop() {
            if counters.pending == 0 {
                break;
            }
            for (key, entry) in self.pending_at(counters, feed, seq + 1)? {
                if entry.header().prev == Some(id) {
                    counters.delete_pending(batch, self.cf(CF_PENDING), &key);
                    parents.push((entry.header().seq, entry.id()));
                    let why = follows_refused(&entry, violation);
                    out.push((entry, why));
                }
            }
        }
        Ok(())
    }

    /// Whether column family `cf` (keyed by entry key) holds anything of `feed`.
    fn feed_has_any(&self, cf: &str, feed: &FeedKey) -> Result<bool, StoreError> {
        let prefix = feed_prefix(feed);
        match self.db.prefix_iterator_cf(self.cf(cf), &prefix).next() {
            Some(item) => Ok(item?.0.starts_with(&prefix)),
            None => Ok(false),
        }
    }

    /// Entries waiting in `pending` at one position of a feed, with their keys.
    fn pending_at(
        &self,
        counters: &Counters,
        feed: &FeedKey,
        seq: u64,
    ) -> Result<Vec<PendingEntry>, StoreError> {
        let prefix = entry_key(feed, seq);
        let mut found = Vec::new();
        for item in self.db.prefix_iterator_cf(self.cf(CF_PENDING), &prefix) {
            let (key, value) = item?;
            if !key.starts_with(&prefix) {
                break;
            }
            if counters.deleted_pending.contains(&key) {
                continue;
            }
            found.push((key, decode_stored(&value)?));
        }
        Ok(found)
    }

    /// Holds an entry whose predecessor is missing, within the pending bound; `None` when the
    /// bound is reached (the caller records the rejection once the lock is released).
    fn hold_now(
        &self,
        counters: &mut Counters,
        entry: &Entry,
        missing_from: u64,
        origin: (&str, u64),
    ) -> Result<Option<IngestOutcome>, StoreError> {
        let mut batch = WriteBatch::default();
        let outcome = self.hold(&mut batch, counters, entry, missing_from, origin)?;
        if !batch.is_empty() {
            self.commit(batch)?;
        }
        Ok(outcome)
    }

    /// Holds `entry` in `batch` if it lies beyond `head + 1` (so it is neither stored nor a
    /// fork candidate) and the pending bound allows; `None` otherwise, for the one-by-one path.
    fn hold_ahead(
        &self,
        batch: &mut WriteBatch,
        counters: &mut Counters,
        head: Option<FeedHead>,
        entry: &Entry,
        origin: (&str, u64),
    ) -> Result<Option<IngestOutcome>, StoreError> {
        let next_seq = head.map_or(0, |head| head.seq) + 1;
        if entry.header().seq <= next_seq {
            return Ok(None);
        }
        self.hold(batch, counters, entry, next_seq, origin)
    }

    /// Puts an entry whose predecessor is missing into `pending` in `batch`, within the
    /// pending bound and the quotas of its author and of the peer it came from (`origin`:
    /// source and arrival time), after dropping expired entries; when `pending` is full, an
    /// entry of a feed the node holds evicts the oldest of a feed it does not hold
    /// ([`pending`]). `None` when it is not held (the reason in `pending_refusal`).
    fn hold(
        &self,
        batch: &mut WriteBatch,
        counters: &mut Counters,
        entry: &Entry,
        missing_from: u64,
        (source, now_ms): (&str, u64),
    ) -> Result<Option<IngestOutcome>, StoreError> {
        let id = entry.id();
        let feed = FeedKey::of(entry);
        let key = keys::pending_key(&feed, entry.header().seq, &id);
        if self.db.get_pinned_cf(self.cf(CF_PENDING), &key)?.is_some() {
            return Ok(Some(IngestOutcome::Pending { id, missing_from }));
        }
        let meta = PendingMeta {
            author: feed.author,
            peer: pending::peer_of_source(source),
            arrival_ms: now_ms,
            feed_held: self.head(&feed)?.is_some(),
        };
        let index_handle = Arc::clone(&counters.pending_index);
        let index = lock_index(&index_handle);
        for expired in index.expired(now_ms) {
            counters.delete_pending(batch, self.cf(CF_PENDING), &expired);
        }
        let in_batch = |same: &dyn Fn(&PendingMeta) -> bool| {
            counters
                .added_pending
                .iter()
                .filter(|(_, added)| same(added))
                .count()
        };
        let extra_author = in_batch(&|added| added.author == meta.author);
        let extra_peer = in_batch(&|added| meta.peer.is_some() && added.peer == meta.peer);
        let admission = index.admit(
            &meta,
            (counters.pending, self.max_pending),
            (extra_author, extra_peer),
            |key| counters.deleted_pending.contains(key),
        );
        drop(index);
        match admission {
            pending::Admission::Hold => {}
            pending::Admission::HoldEvicting(victim) => {
                counters.delete_pending(batch, self.cf(CF_PENDING), &victim);
            }
            pending::Admission::Refuse(refusal) => {
                counters.pending_refusal = Some(refusal);
                return Ok(None);
            }
        }
        batch.put_cf(self.cf(CF_PENDING), &key, entry.encode());
        counters.pending += 1;
        counters.added_pending.push((key.into(), meta));
        Ok(Some(IngestOutcome::Pending { id, missing_from }))
    }

    /// Adds the proof that `stored` and `rival` fork a feed, unless one is already stored for
    /// that position (one proof per position is enough, and keeps the family bounded by the
    /// log's size).
    fn put_fork(
        &self,
        batch: &mut WriteBatch,
        counters: &mut Counters,
        stored: Entry,
        rival: Entry,
    ) -> Result<Option<ForkProof>, StoreError> {
        let feed = FeedKey::of(&stored);
        let key = entry_key(&feed, stored.header().seq);
        if counters.forks >= MAX_FORK_PROOFS
            || self.db.get_pinned_cf(self.cf(CF_FORKS), &key)?.is_some()
        {
            return Ok(None);
        }
        let proof = ForkProof::new(stored, rival).map_err(|error| {
            StoreError::Corrupt(format!("fork proof from stored entries failed: {error}"))
        })?;
        batch.put_cf(self.cf(CF_FORKS), key, proof.encode());
        counters.any_forks = true;
        counters.forks += 1;
        Ok(Some(proof))
    }

    /// Whether the entry with this id is stored.
    pub fn contains(&self, id: &Hash256) -> Result<bool, StoreError> {
        self.is_stored(id)
    }

    fn is_stored(&self, id: &Hash256) -> Result<bool, StoreError> {
        Ok(self
            .db
            .get_pinned_cf(self.cf(CF_IDS), id.as_bytes())?
            .is_some())
    }

    /// Records refused input in the rejection journal and returns the matching outcome.
    ///
    /// The journal is a ring of the newest [`MAX_REJECTIONS`] records, written without fsync:
    /// it is diagnostics, and a peer sending garbage must not be able to make us fsync per
    /// message or fill the disk.
    pub fn record_rejection(
        &self,
        bytes: &[u8],
        reason: RejectReason,
        detail: String,
        source: &str,
        now_ms: u64,
    ) -> Result<IngestOutcome, StoreError> {
        self.write_rejection(bytes, reason, detail, None, source, now_ms)
    }

    /// Records an entry the policy refused, with the rule and the policy version used.
    pub fn record_policy_rejection(
        &self,
        bytes: &[u8],
        violation: &Violation,
        source: &str,
        now_ms: u64,
    ) -> Result<IngestOutcome, StoreError> {
        self.write_rejection(
            bytes,
            RejectReason::Policy,
            violation.message.clone(),
            Some(violation),
            source,
            now_ms,
        )
    }

    fn write_rejection(
        &self,
        bytes: &[u8],
        reason: RejectReason,
        detail: String,
        violation: Option<&Violation>,
        source: &str,
        now_ms: u64,
    ) -> Result<IngestOutcome, StoreError> {
        let mut counters = self.lock_counters();
        let mut items = vec![
            Value::Integer(now_ms.into()),
            Value::Text(reason.code().into()),
            Value::Text(detail.clone()),
            Value::Bytes(sha256(bytes).0.to_vec()),
            Value::Integer((bytes.len() as u64).into()),
            Value::Text(source.to_owned()),
        ];
        let mut count_key = reason.code().to_owned();
        if let Some(violation) = violation {
            items.push(Value::Text(violation.rule.code().into()));
            items.push(match violation.policy_version {
                Some(version) => Value::Integer(version.into()),
                None => Value::Null,
            });
            count_key = format!("policy:{}", violation.rule.code());
        }
        let record = Value::Array(items);
        let mut batch = WriteBatch::default();
        batch.put_cf(
            self.cf(CF_REJECTED),
            keys::counter_key(counters.next_rejection),
            cbor::encode(&record),
        );
        if let Some(expired) = counters.next_rejection.checked_sub(MAX_REJECTIONS) {
            batch.delete_cf(self.cf(CF_REJECTED), keys::counter_key(expired));
        }
        self.db.write(batch)?;
        counters.next_rejection += 1;
        *self
            .rejection_counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(count_key)
            .or_default() += 1;
        Ok(IngestOutcome::Rejected { reason, detail })
    }

    /// Records entries the policy refused while leaving `pending`.
    fn record_refused(
        &self,
        refused: Vec<(Entry, Violation)>,
        source: &str,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        for (entry, violation) in refused {
            self.record_policy_rejection(&entry.encode(), &violation, source, now_ms)?;
        }
        Ok(())
    }

    /// Puts the head of every feed that gained entries in this batch.
    fn put_heads(&self, batch: &mut WriteBatch, counters: &mut Counters) {
        for (feed, (seq, id)) in counters.batch_heads.drain() {
            batch.put_cf(self.cf(CF_HEADS), feed_prefix(&feed), encode_head(seq, &id));
        }
    }

    /// Writes a batch of received data: atomic and in the write-ahead log at once (it survives
    /// a crash of the process), fsynced by the group commit shortly after ([`wal`]).
    fn commit(&self, batch: WriteBatch) -> Result<(), StoreError> {
        match &self.wal {
            Some(wal) => {
                self.db.write(batch)?;
                wal.written();
            }
            None => self.db.write_opt(batch, &sync_options())?,
        }
        Ok(())
    }

    /// Makes every write so far durable now (for callers that acknowledge received entries to
    /// someone, such as the API's submit).
    pub fn sync(&self) -> Result<(), StoreError> {
        wal::WalSyncer::sync_now(&self.db)?;
        Ok(())
    }

    /// Commits a batch whose entries were already folded into `governor`, which is then
    /// settled.
    fn commit_governed(
        &self,
        mut batch: WriteBatch,
        counters: &mut Counters,
        governor: &mut Governor,
    ) -> Result<(), StoreError> {
        self.put_heads(&mut batch, counters);
        // On failure `unsettled` stays set, and the next decision rebuilds the state first.
        self.commit(batch)?;
        governor.unsettled = false;
        Ok(())
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
                feed_held: self.head(&feed)?.is_some(),
            };
            index.insert(key, meta);
        }
        counters.pending = index.len();
        counters.pending_index = Arc::new(Mutex::new(index));
        counters.forks = self.count(CF_FORKS)? as usize;
        counters.any_forks = counters.forks > 0;
        Ok(())
    }

    fn count(&self, cf: &str) -> Result<u64, StoreError> {
        let mut count = 0;
        for item in self.db.iterator_cf(self.cf(cf), IteratorMode::Start) {
            item?;
            count += 1;
        }
        Ok(count)
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

/// The `pending` index; taken only under the write lock (a poisoned lock still holds a
/// consistent index: it changes only in [`Counters::settled`]).
fn lock_index(index: &Mutex<PendingIndex>) -> std::sync::MutexGuard<'_, PendingIndex> {
    index
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `mutex`'s guard if nobody holds it now (a poisoned lock is taken as it is: batches are
/// atomic, so a panic while holding it cannot leave RocksDB half-written), else `None`.
fn lock_now<T>(mutex: &Mutex<T>) -> Option<std::sync::MutexGuard<'_, T>> {
    match mutex.try_lock() {
        Ok(guard) => Some(guard),
        Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
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

fn sync_options() -> WriteOptions {
    let mut options = WriteOptions::default();
    options.set_sync(true);
    options
}

fn encode_head(seq: u64, id: &Hash256) -> Vec<u8> {
    let mut value = seq.to_be_bytes().to_vec();
    value.extend_from_slice(id.as_bytes());
    value
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

fn decode_rejection(counter: u64, bytes: &[u8]) -> Result<Rejection, StoreError> {
    let corrupt = || StoreError::Corrupt(format!("unreadable rejection record {counter}"));
    let Ok(Value::Array(mut items)) = cbor::decode_canonical(bytes) else {
        return Err(corrupt());
    };
    // Policy rejections carry two more items: the rule and the policy version (or null).
    let (rule, policy_version) = if items.len() == 8 {
        let version = items.pop();
        let rule = items.pop();
        let version = match version {
            Some(Value::Integer(version)) => Some(u64::try_from(version).map_err(|_| corrupt())?),
            Some(Value::Null) => None,
            _ => return Err(corrupt()),
        };
        match rule {
            Some(Value::Text(rule)) => (Some(rule), version),
            _ => return Err(corrupt()),
        }
    } else {
        (None, None)
    };
    let [Value::Integer(time), Value::Text(reason), Value::Text(detail), Value::Bytes(hash), Value::Integer(len), Value::Text(source)]: [Value; 6] =
        items.try_into().map_err(|_| corrupt())?
    else {
        return Err(corrupt());
    };
    Ok(Rejection {
        counter,
        time_ms: u64::try_from(time).map_err(|_| corrupt())?,
        reason,
        detail,
        input_hash: Hash256::from_slice(&hash).ok_or_else(corrupt)?,
        input_len: u64::try_from(len).map_err(|_| corrupt())?,
        source,
        rule,
        policy_version,
    })
}

/// Takes the data directory's lock file, writing our pid into it for the error message other
/// processes will show.
fn lock_data_dir(data_dir: &Path) -> Result<File, StoreError> {
    let path = data_dir.join(LOCK_FILE);
    let io_error = |source| StoreError::Io {
        path: path.clone(),
        source,
    };
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

#[cfg(test)]
mod tests;

/// The refusal of an entry whose predecessor the policy refused.
fn follows_refused(entry: &Entry, refused: &Violation) -> Violation {
    let header = entry.header();
    Violation {
        message: format!(
            "entry seq {} of author {} follows an entry the policy refused, so it can never \
             chain on this node (that entry: {})",
            header.seq, header.author, refused.message
        ),
        ..refused.clone()
    }
}

/// Why an entry of a backfill batch was refused.
enum Refusal {
    Body(String),
    Policy(Violation),
}

/// The rejection detail for an entry whose body its kind does not allow.
fn body_rejection(entry: &Entry, error: &BodyError) -> String {
    let header = entry.header();
    format!(
        "entry seq {} of author {} in {}: {error}",
        header.seq, header.author, header.namespace
    )
}
