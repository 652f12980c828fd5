//! Group commit for received entries: their writes go to RocksDB's write-ahead log without an
//! fsync each, and one background thread fsyncs the log whenever something was written since
//! its last fsync, so many writes share one fsync.
//!
//! Why: an fsync on these disks costs 2-8 ms. Paid by the ingest worker for every gossip
//! message, it delayed every message queued behind it at every hop; paid per backfill batch, it
//! stalled verification. What it changes: a write of a received entry is in the operating
//! system's buffers when `ingest` returns (it survives a crash of the process) and on disk
//! within one fsync (it survives a crash of the machine). A machine crash can lose the last few
//! milliseconds of *received* history, which backfill fetches again from peers; the node's own
//! appends still fsync before they return, and [`WalSyncer::sync_now`] makes everything durable
//! on demand.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use rocksdb::DB;
use tracing::warn;

/// The background fsync of the write-ahead log.
pub(super) struct WalSyncer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    /// Writes made since the last fsync started.
    dirty: bool,
    stop: bool,
}

impl WalSyncer {
    /// Starts the syncing thread for `db`.
    pub(super) fn start(db: Arc<DB>) -> std::io::Result<WalSyncer> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("plexus-wal-sync".into())
            .spawn(move || worker.run(&db))?;
        Ok(WalSyncer {
            shared,
            thread: Some(thread),
        })
    }

    /// Notes an unsynced write; the thread fsyncs soon.
    pub(super) fn written(&self) {
        self.shared.lock().dirty = true;
        self.shared.wake.notify_one();
    }

    /// Makes every write so far durable now, on the calling thread.
    pub(super) fn sync_now(db: &DB) -> Result<(), rocksdb::Error> {
        db.flush_wal(true)
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn run(&self, db: &DB) {
        loop {
            let mut state = self.lock();
            while !state.dirty && !state.stop {
                state = self
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if state.stop {
                return;
            }
            state.dirty = false;
            drop(state);
            // Writes that land during this fsync set `dirty` again and share the next one.
            if let Err(error) = db.flush_wal(true) {
                warn!(%error, "fsync of the write-ahead log failed; retrying on the next write");
            }
        }
    }
}

impl Drop for WalSyncer {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
