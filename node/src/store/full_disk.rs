//! A full disk, recognised in every write it refuses. RocksDB reports the file system's
//! `ENOSPC` once, on the write that hit it; it then stops writing and refuses every later
//! write with the error that stopped it, which after a failed write-ahead log append is often
//! "Writer has previous error" and says nothing about space. The log remembers that the disk
//! filled, so every such refusal reaches the agent as the full disk it is (HTTP 507).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// Free bytes (for an unprivileged writer) under which an I/O error on a write is put down to
/// a full disk even when RocksDB's message does not say so: a write-ahead log record or a
/// memtable flush needs at least this much, and an I/O error with this little left is almost
/// surely the disk filling up (another thread's write may have seen the `ENOSPC` first).
const NEARLY_FULL_BYTES: u64 = 1 << 20;

/// Whether the disk holding the log filled up, from the first write that failed for it until
/// writes work again.
#[derive(Debug, Default)]
pub(super) struct FullDisk {
    full: AtomicBool,
}

impl FullDisk {
    /// Whether `error`, returned by a write to the log in `dir`, is the disk being full (or
    /// RocksDB refusing writes since it filled); remembers a full disk for later refusals.
    pub(super) fn explains(&self, dir: &Path, error: &rocksdb::Error) -> bool {
        let io_error = error.kind() == rocksdb::ErrorKind::IOError;
        if io_error
            && (error.as_ref().contains("No space left on device")
                || free_bytes(dir).is_some_and(|free| free < NEARLY_FULL_BYTES))
        {
            self.full.store(true, Ordering::Relaxed);
        }
        io_error && self.is_full()
    }

    /// Notes that a write succeeded: the disk is not full (any more).
    pub(super) fn write_succeeded(&self) {
        if self.is_full() {
            self.full.store(false, Ordering::Relaxed);
        }
    }

    /// Whether a write failed for a full disk and none has succeeded since.
    pub(super) fn is_full(&self) -> bool {
        self.full.load(Ordering::Relaxed)
    }
}

/// Bytes an unprivileged process may still write on the file system holding `dir`.
pub(super) fn free_bytes(dir: &Path) -> Option<u64> {
    let stats = rustix::fs::statvfs(dir).ok()?;
    Some(stats.f_bavail.saturating_mul(stats.f_frsize))
}
