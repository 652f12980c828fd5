//! Group commit for received entries: their writes go to RocksDB's write-ahead log without an
//! fsync each, and one background thread fsyncs the log at most every [`SYNC_INTERVAL`] while
//! something was written since its last fsync, so many writes share one fsync.
//!
//! Why: an fsync on these disks costs 2-8 ms of waiting and a fair amount of CPU. Paid by the
//! ingest worker for every gossip message, it delayed every message queued behind it at every
//! hop; paid per backfill batch, it stalled verification; paid by the background thread for
//! every message of a steady trickle, it took a core's time from forwarding. What it changes: a
//! write of a received entry is in the operating system's buffers when `ingest` returns (it
//! survives a crash of the process) and on disk within [`SYNC_INTERVAL`] plus one fsync (it
//! survives a crash of the machine). A machine crash can lose that last moment of *received*
//! history, which backfill fetches again from peers; the node's own appends still fsync before
//! they return, and [`WalSyncer::sync_now`] makes everything durable on demand.
//!
//! Own appends wait for durability with [`WalSyncer::wait_durable`]: each write gets a ticket,
//! and a waiter whose ticket no finished fsync covers yet either starts one (covering every
//! write made so far) or, if one is running, waits for it and looks again. So concurrent own
//! appends share fsyncs: with one writer each append costs one fsync, as a synced write
//! would; with many, one fsync acknowledges every append written while the previous ran.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rocksdb::DB;
use tracing::warn;

/// Shortest time between two background fsyncs. Writes arriving within it share the next
/// fsync: a steady stream of gossip costs at most 20 fsyncs a second instead of one per
/// message, and a machine crash loses at most this much (plus one fsync) of received history.
pub(super) const SYNC_INTERVAL: Duration = Duration::from_millis(50);

/// The background fsync of the write-ahead log.
pub(super) struct WalSyncer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    /// Signalled whenever an fsync finishes.
    synced: Condvar,
}

#[derive(Default)]
struct State {
    /// Writes made since the last fsync started.
    dirty: bool,
    stop: bool,
    /// Tickets: the number of writes made so far, and the number a finished fsync covers.
    written: u64,
    durable: u64,
    /// Whether a waiter is running an fsync now (others wait for it rather than start one).
    waiter_syncing: bool,
}

impl WalSyncer {
    /// Starts the syncing thread for `db`.
    pub(super) fn start(db: Arc<DB>) -> std::io::Result<WalSyncer> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            synced: Condvar::new(),
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

    /// Notes an unsynced write, which the thread fsyncs soon; returns the write's ticket
    /// for [`WalSyncer::wait_durable`].
    pub(super) fn written(&self) -> u64 {
        let mut state = self.shared.lock();
        state.written += 1;
        let ticket = state.written;
        // Already marked: the thread is waiting out the interval for this very fsync, or will
        // see the mark when its current fsync ends. Waking it again would only cost a switch.
        if !state.dirty {
            state.dirty = true;
            self.shared.wake.notify_one();
        }
        ticket
    }

    /// Returns once the write with `ticket` is fsynced, running the fsync on the calling
    /// thread unless one that covers it is already running.
    pub(super) fn wait_durable(&self, ticket: u64, db: &DB) -> Result<(), rocksdb::Error> {
        let mut state = self.shared.lock();
        loop {
            if state.durable >= ticket {
                return Ok(());
            }
            if state.waiter_syncing {
                state = self
                    .shared
                    .synced
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            state.waiter_syncing = true;
            let covers = state.written;
            drop(state);
            let result = db.flush_wal(true);
            state = self.shared.lock();
            state.waiter_syncing = false;
            if result.is_ok() {
                state.durable = state.durable.max(covers);
            }
            self.shared.synced.notify_all();
            result?;
        }
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
        let mut last_sync: Option<Instant> = None;
        loop {
            let mut state = self.lock();
            while !state.dirty && !state.stop {
                state = self
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            // Let the writes of the next moment join this fsync; a stop ends the wait.
            if let Some(due) = last_sync.map(|at| at + SYNC_INTERVAL) {
                while !state.stop {
                    let left = due.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    state = self
                        .wake
                        .wait_timeout(state, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
            // Stopping with unsynced writes: the final flush in `Log`'s drop covers them.
            if state.stop {
                return;
            }
            state.dirty = false;
            let covers = state.written;
            drop(state);
            last_sync = Some(Instant::now());
            // Writes that land during this fsync set `dirty` again and share the next one.
            match db.flush_wal(true) {
                Ok(()) => {
                    let mut state = self.lock();
                    state.durable = state.durable.max(covers);
                    self.synced.notify_all();
                }
                Err(error) => {
                    warn!(%error, "fsync of the write-ahead log failed; retrying");
                    // Retried after the interval even if nothing more is written.
                    self.lock().dirty = true;
                }
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
