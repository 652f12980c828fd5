//! The auditor's checking stage: batches of entries, the checker thread that hands them to the
//! rayon pool, and the per-chunk strict decode and batch signature check.
//!
//! [`with_pipeline`] starts a checker thread for the duration of one audit. The calling thread
//! [`Pipeline::submit`]s batches in file order and receives each batch's results, also in file
//! order, through the callback it passes; at most two batches are in flight (one being checked,
//! one queued), so the caller frames and chains while both cores check, and memory stays bounded.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::{mpsc, Arc};

use plexus_crypto::{verify_batch_with_fallback, AgentId, AgentIdCache, BatchItem, Hash256};
use plexus_protocol::{Entry, EntryError, EntryView};
use rayon::prelude::*;

/// Entries per batch signature check inside a worker (see `plexus_crypto::verify`).
pub const SIGNATURE_CHUNK: usize = 256;

/// The result of checking one item in the parallel stage.
pub enum Checked {
    Good {
        /// Shared by the entries of a chunk that are in the same namespace.
        namespace: Arc<str>,
        author: AgentId,
        seq: u64,
        prev: Option<Hash256>,
        id: Hash256,
        pruned: bool,
        /// The header and signature are good but the body does not match them.
        body_error: Option<Box<EntryError>>,
    },
    BadSignature {
        namespace: Arc<str>,
        author: AgentId,
        seq: u64,
    },
    /// Not a valid entry; where it claims to be, if that much can be read.
    Undecodable(Box<EntryError>, Option<(String, AgentId, u64)>),
}

/// Consecutive entries handed to the checking stage together, with their bytes.
#[derive(Default)]
pub struct Batch {
    /// The entries' bytes, back to back.
    pub bytes: Vec<u8>,
    /// Each entry: its file offset (none for a data directory) and its place in `bytes`.
    pub items: Vec<(Option<u64>, Range<usize>)>,
}

impl Batch {
    pub fn push(&mut self, offset: Option<u64>, entry: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(entry);
        self.items.push((offset, start..self.bytes.len()));
    }
}

/// The checking stage: a thread that hands each batch to the rayon pool and returns the
/// results in order, so the calling thread can frame and chain meanwhile.
pub struct Pipeline {
    batches: Option<mpsc::SyncSender<Batch>>,
    results: mpsc::Receiver<(Batch, Vec<Checked>)>,
    /// Batches sent and not yet chained (at most two: one checked, one queued).
    in_flight: usize,
    /// A checked batch's buffers, reused for the next one.
    spare: Option<Batch>,
}

/// Runs `work` with a [`Pipeline`] whose checker thread lives as long as the call.
pub fn with_pipeline<T>(work: impl FnOnce(&mut Pipeline) -> T) -> T {
    // Capacity one: the checker holds one batch and one more waits, which keeps both cores
    // busy while bounding memory to three batches.
    let (batch_sender, batch_receiver) = mpsc::sync_channel::<Batch>(1);
    let (result_sender, result_receiver) = mpsc::sync_channel(1);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            for batch in batch_receiver {
                let checked = check_batch(&batch);
                if result_sender.send((batch, checked)).is_err() {
                    break;
                }
            }
        });
        let mut pipeline = Pipeline {
            batches: Some(batch_sender),
            results: result_receiver,
            in_flight: 0,
            spare: None,
        };
        let result = work(&mut pipeline);
        // Closing the channel ends the checker thread; the scope waits for it.
        pipeline.batches = None;
        result
    })
}

impl Pipeline {
    /// An empty batch, reusing a chained batch's memory when there is one.
    pub fn empty_batch(&mut self) -> Batch {
        let mut batch = self.spare.take().unwrap_or_default();
        batch.bytes.clear();
        batch.items.clear();
        batch
    }

    /// Queues `batch` for checking, then chains the batch before it once that one is checked,
    /// so at most two batches are in flight.
    pub fn submit(&mut self, batch: Batch, chain: &mut dyn FnMut(Option<u64>, Checked)) {
        if batch.items.is_empty() {
            self.spare = Some(batch);
            return;
        }
        let Some(sender) = &self.batches else {
            return;
        };
        if sender.send(batch).is_err() {
            // The checker thread is gone (it panicked); the scope re-raises its panic.
            return;
        }
        self.in_flight += 1;
        while self.in_flight > 1 {
            self.chain_next(chain);
        }
    }

    /// Waits for every batch in flight and chains it: called before anything that must come
    /// after the entries already framed (a finding, the trailer, the end).
    pub fn finish_pending(&mut self, chain: &mut dyn FnMut(Option<u64>, Checked)) {
        while self.in_flight > 0 {
            self.chain_next(chain);
        }
    }

    fn chain_next(&mut self, chain: &mut dyn FnMut(Option<u64>, Checked)) {
        let Ok((batch, checked)) = self.results.recv() else {
            self.in_flight = 0;
            return;
        };
        self.in_flight -= 1;
        for ((offset, _), checked) in batch.items.iter().zip(checked) {
            chain(*offset, checked);
        }
        self.spare = Some(batch);
    }
}

/// Checks a batch on all cores: [`check_chunk`] on every [`SIGNATURE_CHUNK`] entries.
fn check_batch(batch: &Batch) -> Vec<Checked> {
    batch
        .items
        .par_chunks(SIGNATURE_CHUNK)
        .flat_map_iter(|chunk| check_chunk(&batch.bytes, chunk))
        .collect()
}

/// An entry of a chunk as decoded: read in place when valid, otherwise decoded by the
/// reference decoder to learn exactly what is wrong.
enum Decoded<'a> {
    View(EntryView<'a>),
    /// Good header and signature fields, but (in practice) a body that does not match them.
    Owned(Entry, Option<EntryError>),
    Undecodable(EntryError, &'a [u8]),
}

/// The last namespace seen in a chunk, shared by the entries that follow in it.
#[derive(Default)]
struct SharedNamespace(Option<Arc<str>>);

impl SharedNamespace {
    fn get(&mut self, namespace: &str) -> Arc<str> {
        match &self.0 {
            Some(shared) if &**shared == namespace => shared.clone(),
            _ => self.0.insert(Arc::from(namespace)).clone(),
        }
    }
}

/// Decodes a chunk of entries (each a range of `bytes`) and verifies their signatures in one
/// batch.
fn check_chunk(bytes: &[u8], chunk: &[(Option<u64>, Range<usize>)]) -> Vec<Checked> {
    // An export groups entries by feed, so nearly every author key in a chunk is a repeat.
    let mut author_keys = AgentIdCache::new();
    let decoded: Vec<Decoded<'_>> = chunk
        .iter()
        .map(|(_, range)| {
            let item = bytes.get(range.clone()).unwrap_or_default();
            if let Some(view) = Entry::decode_view(item, &mut author_keys) {
                return Decoded::View(view);
            }
            match Entry::decode_keeping_header_cached(item, &mut author_keys) {
                Ok((entry, body_error)) => Decoded::Owned(entry, body_error),
                Err(error) => Decoded::Undecodable(error, item),
            }
        })
        .collect();
    // Every signing input in one buffer rather than one allocation per entry.
    let mut inputs = Vec::with_capacity(chunk.len() * 256);
    let mut input_ends = Vec::with_capacity(chunk.len());
    for item in &decoded {
        match item {
            Decoded::View(view) => view.append_signing_input(&mut inputs),
            Decoded::Owned(entry, _) => inputs.extend_from_slice(&entry.signing_input()),
            Decoded::Undecodable(..) => continue,
        }
        input_ends.push(inputs.len());
    }
    let signers = decoded.iter().filter_map(|item| match item {
        Decoded::View(view) => Some((&view.author, &view.signature)),
        Decoded::Owned(entry, _) => Some((&entry.header().author, entry.signature())),
        Decoded::Undecodable(..) => None,
    });
    let mut start = 0;
    let batch: Vec<BatchItem<'_>> = signers
        .zip(&input_ends)
        .map(|((author, signature), end)| {
            let message = inputs.get(start..*end).unwrap_or_default();
            start = *end;
            BatchItem {
                author,
                message,
                signature,
            }
        })
        .collect();
    let bad: HashSet<usize> = verify_batch_with_fallback(&batch)
        .err()
        .map(|error| error.bad.into_iter().collect())
        .unwrap_or_default();
    let mut namespaces = SharedNamespace::default();
    let mut signed_index = 0usize;
    let mut judge = |namespace: &str,
                     author: AgentId,
                     seq: u64,
                     prev: Option<Hash256>,
                     id: Hash256,
                     pruned: bool,
                     body_error: Option<EntryError>| {
        let namespace = namespaces.get(namespace);
        let index = signed_index;
        signed_index += 1;
        if bad.contains(&index) {
            Checked::BadSignature {
                namespace,
                author,
                seq,
            }
        } else {
            Checked::Good {
                namespace,
                author,
                seq,
                prev,
                id,
                pruned,
                body_error: body_error.map(Box::new),
            }
        }
    };
    decoded
        .into_iter()
        .map(|item| match item {
            Decoded::View(view) => judge(
                view.namespace,
                view.author,
                view.seq,
                view.prev,
                view.id(),
                view.body.is_none(),
                None,
            ),
            Decoded::Owned(entry, body_error) => {
                let header = entry.header();
                let pruned = entry.body().is_none() && body_error.is_none();
                judge(
                    &header.namespace,
                    header.author,
                    header.seq,
                    header.prev,
                    entry.id(),
                    pruned,
                    body_error,
                )
            }
            Decoded::Undecodable(error, bytes) => {
                Checked::Undecodable(Box::new(error), Entry::peek_position(bytes))
            }
        })
        .collect()
}
