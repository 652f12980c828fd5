//! The log's one write path: every entry, whether this node's own, gossiped, submitted or
//! fetched by backfill, is placed and written by [`Log::stage`] inside a [`Write`], and a
//! write is committed as one atomic `WriteBatch`. A single entry is a batch of one.
//!
//! For each entry, under the write lock and the governance lock, the store reads state and
//! `protocol::feed` decides (pure functions; the store applies the answers):
//! 1. what to do with it ([`decide`], from what this write did and the feed's head): a
//!    duplicate, a refusal following one of this write, the next entry, a stored entry (which
//!    may complete a pruned copy, [`completes`]), a fork rival ([`keep_fork_proof`]), or one
//!    to hold in `pending` (`feed::hold`, within the quotas);
//! 2. the namespace's policy: the full decision for the next entry, the part that needs no
//!    history for one that will wait in `pending`; a refused entry takes nothing, and what
//!    waits behind it in `pending` is refused with it;
//! 3. the change, staged in the batch: accepted (entries, ids, journal, and what now chains
//!    from `pending`), completed (a stored pruned copy gets its body), a fork proof, or held
//!    in `pending` within its bounds.
//!
//! Entries of one batch see each other: the newest accepted entry of each feed is its head for
//! the next. An entry at or below such an in-batch head (a replay or a rival of an entry not
//! yet committed), or of a feed with an entry held in `pending` in this batch, needs the
//! committed state, so the batch is committed first and the entry staged again against it.
//! So a batch ends in the state its entries reach one by one (property-tested).
//!
//! Received entries are written without an fsync of their own (the group commit of [`wal`]
//! makes them durable within moments); own appends return only once fsynced, and concurrent
//! own appends share one fsync ([`wal::Durability`]).

use std::collections::{HashMap, HashSet};
use std::sync::MutexGuard;

use plexus_crypto::{Hash256, Keypair};
use plexus_protocol::admit::{admit, admit_entries, Admitted, Route};
use plexus_protocol::coord::{Arrival, Body, BodyError, Reception};
use plexus_protocol::feed::{
    completes, decide, keep_fork_proof, refusal_of_successor, BatchState, Decision, FeedLookup,
};
use plexus_protocol::policy::Violation;
use plexus_protocol::{Draft, Entry, FeedHead, FeedKey, ForkProof, Kind};
use rocksdb::WriteBatch;

use super::governance::{Governor, Scope};
use super::parsed::parse_body;
use super::{
    entry_key, keys, Counters, IngestOutcome, Log, RejectReason, StoreError, CF_ENTRIES, CF_FORKS,
    CF_HEADS, CF_IDS, CF_JOURNAL, CF_PENDING, MAX_FORK_PROOFS, OWN_AGENT_SOURCE,
};

/// An admitted entry offered to the log, with its source: the rejection journal's `source`,
/// whose peer (`gossip:<peer>`, `sync:<peer>`) the entry's `pending` quota counts against.
#[derive(Debug, Clone)]
pub struct Offer {
    pub admitted: Admitted,
    pub source: String,
    /// How it arrived (live or history), recorded in the journal with the time it is stored.
    pub arrival: Arrival,
}

/// A write being built: the locks, the staged counters and batch, and what the batch's
/// entries already did.
struct Write<'a> {
    counters: MutexGuard<'a, Counters>,
    governor: MutexGuard<'a, Governor>,
    staged: Counters,
    batch: WriteBatch,
    /// The newest entry accepted in this batch, per feed: its head for later entries.
    tips: HashMap<FeedKey, FeedHead>,
    /// Entries accepted or held in this batch.
    in_batch: HashSet<Hash256>,
    /// Feeds with an entry held in `pending` in this batch: a later entry of the feed waits
    /// for the batch to be committed.
    held_feeds: HashSet<FeedKey>,
    /// Feeds whose next entry the policy refused in this batch, with that entry's id, so what
    /// follows it is refused too instead of waiting in `pending` for ever.
    refused_tips: HashMap<FeedKey, (Hash256, Violation)>,
    /// Entries the policy refused in this batch, so a second copy is refused, not re-judged.
    refused_ids: HashMap<Hash256, Violation>,
    /// Refusals to journal once the locks are released: bytes, what, and the source.
    to_journal: Vec<(Vec<u8>, Refused, String)>,
    /// Parsed bodies of the entries journaled in this batch, with their arrival numbers and
    /// lengths, for the view's hand-off once the batch is committed.
    parsed: Vec<(u64, usize, Body)>,
    /// Fork proofs' keys put in this batch: a second rival at the same position in one batch
    /// finds its proof here, not yet in RocksDB, and is neither stored again nor counted.
    fork_keys: HashSet<Vec<u8>>,
}

/// A feed's committed state, as [`decide`] reads it.
struct StoredFeed<'a> {
    log: &'a Log,
    feed: &'a FeedKey,
}

impl FeedLookup for StoredFeed<'_> {
    type Error = StoreError;

    fn stored_head(&mut self) -> Result<Option<FeedHead>, StoreError> {
        self.log.head(self.feed)
    }

    fn stored_id_at(&mut self, seq: u64) -> Result<Option<Hash256>, StoreError> {
        Ok(self.log.entry_at(self.feed, seq)?.map(|stored| stored.id()))
    }
}

/// A refusal the write path found.
enum Refused {
    Policy(Violation),
    PendingFull(String),
}

/// What [`Log::stage`] did with one entry.
enum Staged {
    Done(IngestOutcome),
    Refused(Refused),
    /// Its placement depends on entries of the uncommitted batch: commit, then stage again.
    AfterCommit,
}

impl Log {
    /// Offers admitted entries (gossip, submit, backfill) to the log and writes them in one
    /// atomic batch (more only when an entry needs an earlier one committed first). Outcomes
    /// come back in input order; refusals are in the rejection journal when this returns.
    pub fn ingest_admitted(
        &self,
        offers: Vec<Offer>,
        now_ms: u64,
    ) -> Result<Vec<IngestOutcome>, StoreError> {
        let mut outcomes = Vec::with_capacity(offers.len());
        let mut write = self.begin()?;
        for Offer {
            admitted,
            source,
            arrival,
        } in offers
        {
            let (entry, mut body) = admitted.into_parts();
            let reception = Reception {
                arrival,
                received_ms: now_ms,
            };
            let staged = match self.stage(&mut write, &entry, &mut body, &source, reception)? {
                Staged::AfterCommit => {
                    self.commit_write(&mut write)?;
                    self.stage(&mut write, &entry, &mut body, &source, reception)?
                }
                staged => staged,
            };
            outcomes.push(match staged {
                Staged::Done(outcome) => outcome,
                Staged::Refused(refused) => {
                    let outcome = refused.outcome();
                    write.to_journal.push((entry.encode(), refused, source));
                    outcome
                }
                // Committed just before: nothing of the batch is ahead of it any more.
                Staged::AfterCommit => {
                    return Err(StoreError::Corrupt(format!(
                        "entry seq {} of author {} cannot be placed after a commit",
                        entry.header().seq,
                        entry.header().author
                    )))
                }
            });
        }
        self.commit_write(&mut write)?;
        let to_journal = std::mem::take(&mut write.to_journal);
        drop(write);
        self.journal_refused(to_journal, now_ms)?;
        Ok(outcomes)
    }

    /// Offers one entry read from elsewhere (a file, a tool, a test) as history: admitted
    /// first (a refusal lands in the rejection journal), then written like any other.
    pub fn ingest(
        &self,
        bytes: &[u8],
        source: &str,
        now_ms: u64,
    ) -> Result<IngestOutcome, StoreError> {
        match admit(bytes, Route::History) {
            Ok(admitted) => {
                let offer = Offer {
                    admitted,
                    source: source.to_owned(),
                    arrival: Arrival::History,
                };
                self.ingest_admitted(vec![offer], now_ms)?
                    .pop()
                    .ok_or_else(|| StoreError::Corrupt("no outcome for one entry".into()))
            }
            Err(refusal) => {
                self.record_rejection(bytes, refusal.reason.into(), refusal.detail, source, now_ms)
            }
        }
    }

    /// Offers decoded entries as history (signatures verified in one batch), in one write:
    /// what benchmarks and tools that build entries in memory use.
    pub fn ingest_entries(
        &self,
        entries: Vec<Entry>,
        source: &str,
        now_ms: u64,
    ) -> Result<Vec<IngestOutcome>, StoreError> {
        let encoded: Vec<Vec<u8>> = entries.iter().map(Entry::encode).collect();
        let mut outcomes: Vec<Option<IngestOutcome>> = vec![None; entries.len()];
        let mut offers = Vec::with_capacity(entries.len());
        let mut offered = Vec::with_capacity(entries.len());
        for (index, answer) in admit_entries(entries).into_iter().enumerate() {
            match answer {
                Ok(admitted) => {
                    offered.push(index);
                    offers.push(Offer {
                        admitted,
                        source: source.to_owned(),
                        arrival: Arrival::History,
                    });
                }
                Err(refusal) => {
                    let bytes = encoded.get(index).map_or(&[][..], Vec::as_slice);
                    let outcome = self.record_rejection(
                        bytes,
                        refusal.reason.into(),
                        refusal.detail,
                        source,
                        now_ms,
                    )?;
                    if let Some(slot) = outcomes.get_mut(index) {
                        *slot = Some(outcome);
                    }
                }
            }
        }
        for (index, outcome) in offered
            .into_iter()
            .zip(self.ingest_admitted(offers, now_ms)?)
        {
            if let Some(slot) = outcomes.get_mut(index) {
                *slot = Some(outcome);
            }
        }
        Ok(outcomes.into_iter().flatten().collect())
    }

    /// Appends a new entry to `keypair`'s own feed in `namespace`, assigning seq and prev
    /// atomically, through the same write path as every other entry. Returns the stored entry
    /// once it is durable (fsynced, sharing the fsync with concurrent appends).
    pub fn append_own(
        &self,
        keypair: &Keypair,
        namespace: &str,
        kind: &str,
        body: Vec<u8>,
        timestamp_ms: u64,
    ) -> Result<Entry, StoreError> {
        // The one parse of the body: the policy and the view take this one.
        let parsed = parse_body(kind, &body)?;
        self.append_own_parsed(keypair, namespace, kind, body, parsed, timestamp_ms)
    }

    /// [`Log::append_own`] for a body built and checked already (from an agent's JSON, by
    /// `Body::from_json`): encoded here and never parsed; `kind` names its kind (an `x-` kind
    /// for an application body).
    pub fn append_own_body(
        &self,
        keypair: &Keypair,
        namespace: &str,
        kind: &str,
        body: Body,
        timestamp_ms: u64,
    ) -> Result<Entry, StoreError> {
        let named = Kind::parse(kind).map_err(BodyError::from)?;
        if named != body.kind() {
            return Err(BodyError::Shape {
                kind: kind.to_owned(),
                problem: format!("the body given is a {} body", body.kind()),
            }
            .into());
        }
        let bytes = body.encode()?;
        self.append_own_parsed(keypair, namespace, kind, bytes, body, timestamp_ms)
    }

    /// Signs and stores the next entry of `keypair`'s feed in `namespace`: a body of `kind`,
    /// its canonical bytes `body`, and those bytes parsed.
    fn append_own_parsed(
        &self,
        keypair: &Keypair,
        namespace: &str,
        kind: &str,
        body: Vec<u8>,
        parsed: Body,
        timestamp_ms: u64,
    ) -> Result<Entry, StoreError> {
        let mut parsed = Some(parsed);
        let mut write = self.begin()?;
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
        let reception = Reception {
            arrival: Arrival::Own,
            received_ms: timestamp_ms,
        };
        match self.stage(&mut write, &entry, &mut parsed, OWN_AGENT_SOURCE, reception)? {
            Staged::Done(IngestOutcome::Accepted { .. }) => {}
            // Decided before anything is written: a refused entry never takes a seq. Journalled
            // like anyone else's refusal, marked as our own agent's.
            Staged::Refused(Refused::Policy(violation)) => {
                drop(write);
                self.record_policy_rejection(
                    &entry.encode(),
                    &violation,
                    OWN_AGENT_SOURCE,
                    timestamp_ms,
                )?;
                return Err(violation.into());
            }
            _ => {
                return Err(StoreError::Corrupt(format!(
                    "own entry seq {} did not extend its feed",
                    entry.header().seq
                )))
            }
        }
        let ticket = self.commit_write(&mut write)?;
        drop(write);
        self.wait_durable(ticket)?;
        Ok(entry)
    }

    /// Takes the write lock and the governance state (rebuilt first if an earlier write did
    /// not settle it).
    fn begin(&self) -> Result<Write<'_>, StoreError> {
        let counters = self.lock_counters();
        let governor = self.settled_governor()?;
        Ok(Write {
            staged: counters.clone(),
            counters,
            governor,
            batch: WriteBatch::default(),
            tips: HashMap::new(),
            in_batch: HashSet::new(),
            held_feeds: HashSet::new(),
            refused_tips: HashMap::new(),
            refused_ids: HashMap::new(),
            to_journal: Vec::new(),
            parsed: Vec::new(),
            fork_keys: HashSet::new(),
        })
    }

    /// Places one entry and stages what it changes (see the module docs). `body` is the
    /// entry's body as parsed on its way in (`None`: pruned); the policy reads it, and it
    /// moves on to the view's hand-off if the entry is journaled.
    fn stage(
        &self,
        write: &mut Write<'_>,
        entry: &Entry,
        body: &mut Option<Body>,
        source: &str,
        reception: Reception,
    ) -> Result<Staged, StoreError> {
        let id = entry.id();
        let feed = FeedKey::of(entry);
        // What this write did is read here; what to do is decided by `protocol::feed`.
        let batch = BatchState {
            entry_written: write.in_batch.contains(&id),
            entry_refused: write.refused_ids.contains_key(&id),
            prev_refused: write
                .refused_tips
                .get(&feed)
                .is_some_and(|(refused_id, _)| entry.header().prev == Some(*refused_id)),
            feed_held: write.held_feeds.contains(&feed),
            feed_tip: write.tips.get(&feed).copied(),
        };
        let mut stored = StoredFeed {
            log: self,
            feed: &feed,
        };
        Ok(match decide(&batch, entry, &mut stored)? {
            Decision::Duplicate => Staged::Done(IngestOutcome::Duplicate { id }),
            Decision::RefusedAgain => match write.refused_ids.get(&id) {
                Some(violation) => Staged::Refused(Refused::Policy(violation.clone())),
                None => {
                    return Err(StoreError::Corrupt(
                        "a refusal of this write vanished".into(),
                    ))
                }
            },
            Decision::FollowsRefused => {
                let Some((_, violation)) = write.refused_tips.get(&feed) else {
                    return Err(StoreError::Corrupt(
                        "a refusal of this write vanished".into(),
                    ));
                };
                let follow = refusal_of_successor(entry, violation);
                write.refused_tips.insert(feed, (id, follow.clone()));
                Staged::Refused(Refused::Policy(follow))
            }
            Decision::AfterCommit => Staged::AfterCommit,
            Decision::Next => {
                if let Err(violation) = write.governor.decide(entry, body.as_ref(), Scope::Full) {
                    // What waits for this entry can never chain here now.
                    let mut purged = Vec::new();
                    self.purge_successors(write, &feed, entry, &violation, &mut purged)?;
                    for (waiting, why) in purged {
                        let refused = (waiting.encode(), Refused::Policy(why), source.to_owned());
                        write.to_journal.push(refused);
                    }
                    write.refused_tips.insert(feed, (id, violation.clone()));
                    write.refused_ids.insert(id, violation.clone());
                    return Ok(Staged::Refused(Refused::Policy(violation)));
                }
                let mut forks = Vec::new();
                self.accept_chain(write, entry, body.take(), reception, &mut forks)?;
                let released = self.release_pending(write, &feed, entry, &mut forks, source)?;
                Staged::Done(IngestOutcome::Accepted {
                    id,
                    released,
                    forks,
                })
            }
            Decision::Stored => match self.complete_pruned(write, entry, body, reception)? {
                Some(completed) => Staged::Done(completed),
                None => Staged::Done(IngestOutcome::Duplicate { id }),
            },
            Decision::Rival { .. } => {
                let seq = entry.header().seq;
                let stored = self.entry_at(&feed, seq)?.ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "entry seq {} of author {} vanished",
                        seq, feed.author
                    ))
                })?;
                match self.put_fork(write, stored, entry.clone())? {
                    Some(proof) => Staged::Done(IngestOutcome::Fork {
                        proof: Box::new(proof),
                    }),
                    // A proof for this position is already stored: one is enough.
                    None => Staged::Done(IngestOutcome::Duplicate { id }),
                }
            }
            // Ahead of the head, or naming a predecessor other than the head (the author
            // forked at the head's seq, and the other branch's entry is missing: fetching seq
            // `missing_from` from whoever sent it completes the proof). Held until it chains.
            Decision::Hold { missing_from } => {
                if let Err(violation) =
                    write
                        .governor
                        .decide(entry, body.as_ref(), Scope::Stateless)
                {
                    return Ok(Staged::Refused(Refused::Policy(violation)));
                }
                match self.hold(write, entry, missing_from, (source, reception))? {
                    Some(outcome) => {
                        write.in_batch.insert(id);
                        write.held_feeds.insert(feed);
                        Staged::Done(outcome)
                    }
                    None => Staged::Refused(Refused::PendingFull(
                        self.pending_full_detail(write, entry, source),
                    )),
                }
            }
        })
    }

    /// Commits the batch built so far (heads included), settles the counters, and starts
    /// the next batch. Returns the durability ticket of the write.
    fn commit_write(&self, write: &mut Write<'_>) -> Result<u64, StoreError> {
        let ticket = self.commit_staged(write)?;
        write.tips.clear();
        write.in_batch.clear();
        write.held_feeds.clear();
        Ok(ticket)
    }

    fn commit_staged(&self, write: &mut Write<'_>) -> Result<u64, StoreError> {
        let mut batch = std::mem::take(&mut write.batch);
        for (feed, (seq, id)) in write.staged.batch_heads.drain() {
            batch.put_cf(
                self.cf(CF_HEADS),
                keys::feed_prefix(&feed),
                encode_head(seq, &id),
            );
        }
        let parsed = std::mem::take(&mut write.parsed);
        // On failure `unsettled` stays set, and the next write rebuilds the state first.
        let ticket = self.commit(batch)?;
        write.governor.unsettled = false;
        // Only now do the arrival numbers name committed journal records.
        let mut bodies = self
            .parsed_bodies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (arrival, len, body) in parsed {
            bodies.leave(arrival, len, body);
        }
        drop(bodies);
        let staged = std::mem::take(&mut write.staged);
        *write.counters = staged.settled();
        self.publish_stats(&write.counters);
        write.staged = write.counters.clone();
        Ok(ticket)
    }

    /// Stages an entry that extends its feed, with its parsed body: entries, ids, the journal
    /// (with how and when the entry arrived), the feed's head; and settles entries waiting in
    /// `pending` at the same position (the same entry leaves `pending`, a different one
    /// becomes a fork proof, collected in `forks`).
    fn accept_chain(
        &self,
        write: &mut Write<'_>,
        entry: &Entry,
        body: Option<Body>,
        reception: Reception,
        forks: &mut Vec<ForkProof>,
    ) -> Result<(), StoreError> {
        let feed = FeedKey::of(entry);
        let seq = entry.header().seq;
        let key = entry_key(&feed, seq);
        write.governor.unsettled = true;
        write
            .batch
            .put_cf(self.cf(CF_ENTRIES), &key, entry.encode());
        write
            .batch
            .put_cf(self.cf(CF_IDS), entry.id().as_bytes(), &key);
        write
            .staged
            .batch_heads
            .insert(feed.clone(), (seq, entry.id()));
        write.staged.entries += 1;
        write.staged.feeds += u64::from(seq == 1);
        let arrival = self.journal_next(write, &key, reception);
        write.governor.observe(entry, body.as_ref());
        hand_to_view(write, arrival, entry, body);
        write.in_batch.insert(entry.id());
        write.tips.insert(
            feed.clone(),
            FeedHead {
                seq,
                id: entry.id(),
            },
        );
        if write.staged.pending == 0 {
            // Nothing waits anywhere: spare the lookup (one iterator per accepted entry).
            return Ok(());
        }
        for (pending_key, waiting) in self.pending_at(&write.staged, &feed, seq)? {
            write
                .staged
                .delete_pending(&mut write.batch, self.cf(CF_PENDING), &pending_key);
            if waiting.id() != entry.id() {
                if let Some(proof) = self.put_fork(write, entry.clone(), waiting)? {
                    forks.push(proof);
                }
            }
        }
        Ok(())
    }

    /// Stages the next journal record, naming the entry by its key (not its id: following the
    /// journal then takes one lookup, not two), and how and when it arrived (what decides
    /// whether a claim is late, `docs/PROTOCOL.md` §9.4).
    /// Returns the record's arrival number.
    fn journal_next(&self, write: &mut Write<'_>, key: &[u8], reception: Reception) -> u64 {
        let arrival = write.staged.next_arrival;
        write.batch.put_cf(
            self.cf(CF_JOURNAL),
            keys::counter_key(arrival),
            keys::journal_value(key, reception),
        );
        write.staged.next_arrival += 1;
        arrival
    }

    /// Adds the proof that `stored` and `rival` fork a feed, unless one is already stored for
    /// that position (one proof per position is enough, and keeps the family bounded by the
    /// log's size).
    fn put_fork(
        &self,
        write: &mut Write<'_>,
        stored: Entry,
        rival: Entry,
    ) -> Result<Option<ForkProof>, StoreError> {
        let feed = FeedKey::of(&stored);
        let key = entry_key(&feed, stored.header().seq);
        let proven = write.fork_keys.contains(&key)
            || self.db.get_pinned_cf(self.cf(CF_FORKS), &key)?.is_some();
        if !keep_fork_proof(proven, write.staged.forks, MAX_FORK_PROOFS) {
            return Ok(None);
        }
        let proof = ForkProof::new(stored, rival).map_err(|error| {
            StoreError::Corrupt(format!("fork proof from stored entries failed: {error}"))
        })?;
        write.batch.put_cf(self.cf(CF_FORKS), &key, proof.encode());
        write.fork_keys.insert(key);
        write.staged.any_forks = true;
        write.staged.forks += 1;
        Ok(Some(proof))
    }

    /// Replaces the stored, pruned copy of `entry` with `entry`, which carries the body, and
    /// journals it again, so whatever follows the journal applies it with its body. `None`
    /// when there is nothing to complete (stored with its body, or `entry` is pruned too).
    fn complete_pruned(
        &self,
        write: &mut Write<'_>,
        entry: &Entry,
        body: &mut Option<Body>,
        reception: Reception,
    ) -> Result<Option<IngestOutcome>, StoreError> {
        // A copy without its body completes nothing: spare the read.
        if entry.body().is_none() {
            return Ok(None);
        }
        let id = entry.id();
        let Some((key, stored)) = self.stored_key_and_entry(&id)? else {
            return Ok(None);
        };
        if !completes(entry.body().is_some(), stored.body().is_some()) {
            return Ok(None);
        }
        write
            .batch
            .put_cf(self.cf(CF_ENTRIES), &key, entry.encode());
        let arrival = self.journal_next(write, &key, reception);
        hand_to_view(write, arrival, entry, body.take());
        write.in_batch.insert(id);
        Ok(Some(IngestOutcome::Accepted {
            id,
            released: 0,
            forks: Vec::new(),
        }))
    }

    /// Journals the refusals a write found, after its locks are released.
    fn journal_refused(
        &self,
        refused: Vec<(Vec<u8>, Refused, String)>,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        for (bytes, refusal, source) in refused {
            match refusal {
                Refused::Policy(violation) => {
                    self.record_policy_rejection(&bytes, &violation, &source, now_ms)?
                }
                Refused::PendingFull(detail) => self.record_rejection(
                    &bytes,
                    RejectReason::PendingFull,
                    detail,
                    &source,
                    now_ms,
                )?,
            };
        }
        Ok(())
    }
}

impl Refused {
    /// The outcome reported for it (the same as the rejection journal's record).
    fn outcome(&self) -> IngestOutcome {
        match self {
            Refused::Policy(violation) => IngestOutcome::Rejected {
                reason: RejectReason::Policy,
                detail: violation.message.clone(),
            },
            Refused::PendingFull(detail) => IngestOutcome::Rejected {
                reason: RejectReason::PendingFull,
                detail: detail.clone(),
            },
        }
    }
}

/// Keeps the parsed body of the entry journaled as `arrival` for the view's hand-off, when
/// the view interprets its kind (no other body is ever asked for).
fn hand_to_view(write: &mut Write<'_>, arrival: u64, entry: &Entry, body: Option<Body>) {
    if let Some(body) = body.filter(|body| body.kind().is_coordination()) {
        let len = usize::try_from(entry.header().body_len).unwrap_or(usize::MAX);
        write.parsed.push((arrival, len, body));
    }
}

/// Parses the body of an entry read back from `pending` (where it waited as bytes) for what
/// its release needs: the policy and the view. An application body, which neither reads, is
/// not parsed.
fn body_of_waiting(entry: &Entry) -> Option<Body> {
    super::parsed::parse_stored_body(entry, |kind| kind != Kind::Application)
}

mod held;

/// A feed head as stored in the `heads` family: seq (big-endian), then the head's id.
pub(super) fn encode_head(seq: u64, id: &Hash256) -> Vec<u8> {
    let mut value = seq.to_be_bytes().to_vec();
    value.extend_from_slice(id.as_bytes());
    value
}
