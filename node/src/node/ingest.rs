//! The ingest pipeline: the one way an entry from outside this node gets into its log.
//!
//! Gossip messages, sync responses and the API's submissions take the same steps:
//!
//! 1. **admission** ([`plexus_protocol::admit`], pure): size, decoding, route (topic or
//!    requested range), signature (one batch verification for everything taken together),
//!    body presence for live entries, body against its kind;
//! 2. **live checks** (gossip and submit): a replay of a stored entry is dropped before its
//!    author is charged; the author's ingress allowance (gossip); the clock-skew window; the
//!    author's quarantine;
//! 3. **the write** ([`Log::ingest_admitted`]): placement, policy, one atomic batch;
//! 4. **verdicts and follow-ups**: gossipsub is told Accept / Reject / Ignore in one command
//!    per batch, gaps are fetched from the sender, fork proofs are spread, and the node's
//!    change signal wakes the coordination view, which reads the log's journal (and nothing
//!    else).
//!
//! The worker thread drains what is queued (up to [`MAX_DRAIN`] events), groups consecutive
//! gossip messages into one batch, and pipelines: while one batch is written (step 3, one
//! thread), the next is admitted (step 1, every core). Sync requests from peers are served
//! by the sync server (`serve.rs`), on a thread and queue of their own.
//!
//! Gossip verdicts:
//!
//! | outcome                                         | verdict | and also                      |
//! |-------------------------------------------------|---------|-------------------------------|
//! | over the per-peer or per-author ingress rate    | Ignore  | counted in metrics (not journaled); backfill brings it later |
//! | oversized, malformed, wrong topic, bad signature, pruned body | Reject | rejection journal; a strike against the peer |
//! | unknown kind or bad body                        | Reject  | rejection journal (a newer version may know it: no strike) |
//! | refused by the governed namespace's policy      | Reject  | rejection journal with rule and policy version |
//! | a claim (or, when governed, any entry) outside the clock-skew window | Ignore | rejection journal (the forwarder's clock may differ) |
//! | accepted                                        | Accept  | stored, then forwarded by gossipsub |
//! | valid but its predecessors are missing          | Ignore  | held pending; gap fetched from the sender |
//! | duplicate                                       | Ignore  | (unless stored pruned: this copy completes it, Accept) |
//! | a fork                                          | Ignore  | proof stored and gossiped; author quarantined |
//! | by a quarantined author, or no room in pending  | Ignore  | rejection journal             |
//!
//! Undeniably invalid data is a strike against the sending peer:
//! [`super::limits::DEFAULT_STRIKES`] within a minute get it disconnected and blocked for ten
//! minutes. Verdicts are sent once the batch's write is in the log; nothing is forwarded
//! before it is stored. The write does not wait for an fsync (the store's group commit makes
//! received entries durable within moments); a submission is acknowledged after one.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use libp2p::gossipsub::{MessageAcceptance, MessageId};
use libp2p::PeerId;
use plexus_protocol::admit::{admit, admit_batch, Admitted, Refusal, Route};
use plexus_protocol::coord::{check_clock_skew, Arrival};
use plexus_protocol::FeedKey;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::limits::{Admission, Ingress};
use super::Shared;
use crate::clock::now_ms;
use crate::net::sync::{FetchedRange, RangeRequest, MAX_RANGE};
use crate::net::topics::{self, TopicKind};
use crate::net::{Command, GossipVerdict, NetEvent, NetworkHandle};
use crate::store::{IngestOutcome, Log, Offer, RejectReason, StoreError};

/// How long a peer that kept sending invalid data stays blocked: long enough to stop a
/// flood, short enough that a peer restarted with a fixed build comes back on its own.
const BLOCK_DURATION: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// Most events the worker takes from its queue per wake-up: a burst becomes a few batches
/// (one signature batch and one write each), while a sync response or heads answer queued
/// behind it waits for at most this many messages.
const MAX_DRAIN: usize = 1024;

/// The steps every input takes, shared by the worker (gossip, sync responses) and the API's
/// submit.
pub(crate) struct Pipeline {
    pub log: Arc<Log>,
    pub net: NetworkHandle,
    pub shared: Arc<Shared>,
    /// Edge limits: per-peer and per-author ingress rates, strikes.
    pub ingress: Arc<Mutex<Ingress>>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").field("log", &self.log).finish()
    }
}

/// The ingest worker: runs the [`Pipeline`] on what the swarm task hands it.
pub(crate) struct Worker {
    pub pipeline: Arc<Pipeline>,
    pub events: mpsc::Receiver<NetEvent>,
}

/// One gossip message as the swarm task handed it.
struct GossipMessage {
    message_id: MessageId,
    peer: PeerId,
    topic: String,
    data: Vec<u8>,
    received: Instant,
}

/// A unit of the worker's work, in queue order.
enum Unit {
    Gossip(Vec<GossipMessage>),
    Entries {
        peer: PeerId,
        answered: Vec<FetchedRange>,
    },
    Other(NetEvent),
}

/// A batch after step 1, ready to be written.
enum Checked {
    Gossip(Vec<CheckedMessage>),
    Entries {
        peer: PeerId,
        ranges: Vec<CheckedRange>,
    },
}

/// One range of a sync response after step 1: each envelope with its admission.
struct CheckedRange {
    range: RangeRequest,
    items: Vec<(Vec<u8>, Result<Admitted, Refusal>)>,
}

/// What one range of a sync response achieved: the highest seq offered, and whether any of
/// it was stored or held pending.
#[derive(Debug, Clone, Copy, Default)]
struct RangeProgress {
    fetched_to: Option<u64>,
    moved: bool,
}

/// A gossip message after step 1.
struct CheckedMessage {
    message_id: MessageId,
    peer: PeerId,
    received: Instant,
    data: Vec<u8>,
    step: GossipStep,
}

enum GossipStep {
    /// Over the peer's ingress rate (already counted).
    Throttled,
    UnknownTopic(String),
    ForkProof {
        namespace: String,
    },
    Entry(Box<Result<Admitted, Refusal>>),
}

impl Worker {
    /// Handles events until the swarm task stops.
    pub fn run(mut self) {
        while let Some(first) = self.events.blocking_recv() {
            let units = self.drain(first);
            let mut ready: Option<Checked> = None;
            for unit in units {
                let unit = match unit {
                    Unit::Other(event) => {
                        // Heads and requests see the log as every earlier batch left it.
                        if let Some(checked) = ready.take() {
                            report(self.pipeline.settle(checked));
                        }
                        report(self.pipeline.handle_other(event));
                        continue;
                    }
                    unit => unit,
                };
                ready = Some(match ready.take() {
                    None => self.pipeline.check(unit),
                    // Write one batch while the next is admitted on the other cores.
                    Some(checked) => {
                        let (written, next) = rayon::join(
                            || self.pipeline.settle(checked),
                            || self.pipeline.check(unit),
                        );
                        report(written);
                        next
                    }
                });
            }
            if let Some(checked) = ready {
                report(self.pipeline.settle(checked));
            }
        }
        debug!("ingest worker stopped");
    }

    /// `first` and what else is queued now (at most [`MAX_DRAIN`] events), as units:
    /// consecutive gossip messages form one.
    fn drain(&mut self, first: NetEvent) -> Vec<Unit> {
        let mut units: Vec<Unit> = Vec::new();
        let mut next = Some(first);
        let mut taken = 0;
        while let Some(event) = next.take() {
            taken += 1;
            match event {
                NetEvent::Gossip {
                    message_id,
                    peer,
                    topic,
                    data,
                    received,
                } => {
                    let message = GossipMessage {
                        message_id,
                        peer,
                        topic,
                        data,
                        received,
                    };
                    match units.last_mut() {
                        Some(Unit::Gossip(batch)) => batch.push(message),
                        _ => units.push(Unit::Gossip(vec![message])),
                    }
                }
                NetEvent::Entries { peer, answered } => {
                    units.push(Unit::Entries { peer, answered })
                }
                other => units.push(Unit::Other(other)),
            }
            if taken < MAX_DRAIN {
                next = self.events.try_recv().ok();
            }
        }
        units
    }
}

impl Pipeline {
    /// Offers an entry submitted through the API, as gossip would (without the ingress
    /// rates, which are for peers); an accepted entry is durable when this returns.
    pub fn submit(&self, bytes: &[u8], source: &str) -> Result<IngestOutcome, StoreError> {
        let now = now_ms();
        let admitted = match admit(bytes, Route::Submit) {
            Ok(admitted) => admitted,
            Err(refusal) => return self.record_refusal(bytes, &refusal, source, now),
        };
        if let Some(outcome) = self.live_checks(&admitted, bytes, source, now, None)? {
            return Ok(outcome);
        }
        let offer = Offer {
            admitted,
            source: source.to_owned(),
            arrival: Arrival::Live,
        };
        let outcome = self
            .log
            .ingest_admitted(vec![offer], now)?
            .pop()
            .ok_or_else(|| StoreError::Corrupt("the log answered no outcome".into()))?;
        if matches!(
            outcome,
            IngestOutcome::Accepted { .. } | IngestOutcome::Fork { .. }
        ) {
            // The caller is told the entry is stored: make it durable first.
            self.log.sync()?;
            self.shared.changed();
        }
        Ok(outcome)
    }

    /// Step 1 for one unit: ingress per peer, topics, admission. Writes nothing.
    fn check(&self, unit: Unit) -> Checked {
        match unit {
            Unit::Gossip(messages) => Checked::Gossip(self.check_gossip(messages)),
            Unit::Entries { peer, answered } => {
                // Every range's entries in one signature batch, each on its own route.
                let seqs: Vec<_> = answered
                    .iter()
                    .map(|fetched| fetched.range.from_seq..=fetched.range.to_seq)
                    .collect();
                let inputs = answered.iter().zip(&seqs).flat_map(|(fetched, seqs)| {
                    let route = Route::Sync {
                        feed: &fetched.range.feed,
                        seqs,
                    };
                    fetched
                        .entries
                        .iter()
                        .map(move |bytes| (bytes.as_slice(), route))
                });
                let mut answers = admit_batch(inputs).into_iter();
                let ranges = answered
                    .into_iter()
                    .map(|fetched| CheckedRange {
                        items: fetched.entries.into_iter().zip(answers.by_ref()).collect(),
                        range: fetched.range,
                    })
                    .collect();
                Checked::Entries { peer, ranges }
            }
            // Never built: other events are handled in order by `handle_other`.
            Unit::Other(_) => Checked::Gossip(Vec::new()),
        }
    }

    fn check_gossip(&self, messages: Vec<GossipMessage>) -> Vec<CheckedMessage> {
        let now = Instant::now();
        let mut steps: Vec<Option<GossipStep>> = Vec::with_capacity(messages.len());
        let mut topics: Vec<Option<(String, String)>> = Vec::with_capacity(messages.len());
        {
            let mut ingress = lock_ingress(&self.ingress);
            for message in &messages {
                if ingress.admit_peer(message.peer, now) != Admission::Pass {
                    // Not journaled one by one: a flood must not become a flood of writes.
                    self.log.count_rejection(RejectReason::Throttled, "peer");
                    steps.push(Some(GossipStep::Throttled));
                    topics.push(None);
                    continue;
                }
                match topics::parse(&message.topic) {
                    None => {
                        steps.push(Some(GossipStep::UnknownTopic(message.topic.clone())));
                        topics.push(None);
                    }
                    Some(TopicKind::ForkProofs { namespace }) => {
                        steps.push(Some(GossipStep::ForkProof { namespace }));
                        topics.push(None);
                    }
                    Some(TopicKind::Entries { namespace, suffix }) => {
                        steps.push(None);
                        topics.push(Some((namespace, suffix)));
                    }
                }
            }
        }
        let inputs = messages.iter().zip(&topics).filter_map(|(message, topic)| {
            let (namespace, suffix) = topic.as_ref()?;
            Some((message.data.as_slice(), Route::Gossip { namespace, suffix }))
        });
        let mut admitted = admit_batch(inputs).into_iter();
        messages
            .into_iter()
            .zip(steps)
            .map(|(message, step)| CheckedMessage {
                message_id: message.message_id,
                peer: message.peer,
                received: message.received,
                data: message.data,
                step: step.unwrap_or_else(|| {
                    GossipStep::Entry(Box::new(admitted.next().unwrap_or_else(|| {
                        Err(Refusal {
                            reason: plexus_protocol::admit::RefusalReason::Malformed,
                            detail: "not admitted".into(),
                        })
                    })))
                }),
            })
            .collect()
    }

    /// Steps 2-4 for one checked batch.
    fn settle(&self, checked: Checked) -> Result<(), StoreError> {
        match checked {
            Checked::Gossip(messages) => self.settle_gossip(messages),
            Checked::Entries { peer, ranges } => self.settle_entries(peer, ranges),
        }
    }

    fn settle_gossip(&self, messages: Vec<CheckedMessage>) -> Result<(), StoreError> {
        let now = now_ms();
        let mut verdicts = Vec::with_capacity(messages.len());
        let mut offers = Vec::new();
        // For each offer: its verdict's index, the sender, and the entry's feed and seq.
        let mut offered: Vec<(usize, PeerId, FeedKey, u64)> = Vec::new();
        for message in messages {
            let source = format!("gossip:{}", message.peer);
            let acceptance = match message.step {
                GossipStep::Throttled => MessageAcceptance::Ignore,
                GossipStep::UnknownTopic(topic) => {
                    let detail = format!("message on unknown topic {topic:?}");
                    self.log.record_rejection(
                        &message.data,
                        RejectReason::WrongTopic,
                        detail,
                        &source,
                        now,
                    )?;
                    MessageAcceptance::Reject
                }
                GossipStep::ForkProof { namespace } => {
                    let acceptance =
                        self.handle_fork_proof(message.peer, &namespace, &message.data, &source)?;
                    if acceptance == MessageAcceptance::Reject {
                        self.strike(message.peer);
                    }
                    acceptance
                }
                GossipStep::Entry(answer) => match *answer {
                    Err(refusal) => {
                        self.record_refusal(&message.data, &refusal, &source, now)?;
                        if refusal.reason.is_invalid_data() {
                            self.strike(message.peer);
                        }
                        MessageAcceptance::Reject
                    }
                    Ok(admitted) => match self.live_checks(
                        &admitted,
                        &message.data,
                        &source,
                        now,
                        Some(message.peer),
                    )? {
                        Some(outcome) => verdict_of(&outcome),
                        None => {
                            let header = admitted.entry().header();
                            let feed = FeedKey::of(admitted.entry());
                            offered.push((verdicts.len(), message.peer, feed, header.seq));
                            offers.push(Offer {
                                admitted,
                                source,
                                arrival: Arrival::Live,
                            });
                            // Set from the write's outcome below.
                            MessageAcceptance::Ignore
                        }
                    },
                },
            };
            verdicts.push(GossipVerdict {
                message_id: message.message_id,
                peer: message.peer,
                acceptance,
                received: message.received,
            });
        }
        let outcomes = self.log.ingest_admitted(offers, now)?;
        let mut changed = false;
        for ((index, peer, feed, seq), outcome) in offered.into_iter().zip(outcomes) {
            changed |= matches!(outcome, IngestOutcome::Accepted { .. });
            self.follow_up(&outcome, peer, feed, seq)?;
            if let Some(verdict) = verdicts.get_mut(index) {
                verdict.acceptance = verdict_of(&outcome);
            }
        }
        if changed {
            self.shared.changed();
        }
        if !verdicts.is_empty() {
            let _ = self.net.blocking_send(Command::Validate(verdicts));
        }
        Ok(())
    }

    /// Step 2: what only live entries are checked for. `Some` is the outcome when the entry
    /// goes no further (a replay, throttled, outside the clock-skew window, quarantined);
    /// `peer`: the gossip sender, whose author allowance is charged.
    fn live_checks(
        &self,
        admitted: &Admitted,
        bytes: &[u8],
        source: &str,
        now: u64,
        peer: Option<PeerId>,
    ) -> Result<Option<IngestOutcome>, StoreError> {
        let entry = admitted.entry();
        let header = entry.header();
        let id = entry.id();
        // A replay of a stored entry is dropped before it is charged to its author, so
        // replaying someone's old entries cannot use up their allowance; unless the stored
        // copy lacks its body, which this copy completes.
        if self.log.contains(&id)? && !self.log.stored_without_body(&id)? {
            return Ok(Some(IngestOutcome::Duplicate { id }));
        }
        if peer.is_some()
            && lock_ingress(&self.ingress).admit_author(header.author, Instant::now())
                != Admission::Pass
        {
            self.log.count_rejection(RejectReason::Throttled, "author");
            return Ok(Some(IngestOutcome::Rejected {
                reason: RejectReason::Throttled,
                detail: format!("author {} is over its ingress rate", header.author),
            }));
        }
        let (window, governed) = self.log.clock_skew_for(entry, self.shared.clock_skew_ms);
        if let Err(error) = check_clock_skew(entry, now, window, governed) {
            // Not the forwarding peer's fault (its clock may differ from ours): no penalty.
            let detail = format!(
                "entry seq {} of author {}: {error}",
                header.seq, header.author
            );
            let outcome =
                self.log
                    .record_rejection(bytes, RejectReason::ClockSkew, detail, source, now)?;
            return Ok(Some(outcome));
        }
        if self.shared.is_quarantined(&FeedKey::of(entry)) {
            let detail = format!(
                "author {} is quarantined for forking in {}",
                header.author, header.namespace
            );
            let outcome =
                self.log
                    .record_rejection(bytes, RejectReason::Quarantined, detail, source, now)?;
            return Ok(Some(outcome));
        }
        Ok(None)
    }

    /// Step 4 for a gossiped entry: fetch the gap it shows, spread fork proofs.
    fn follow_up(
        &self,
        outcome: &IngestOutcome,
        peer: PeerId,
        feed: FeedKey,
        seq: u64,
    ) -> Result<(), StoreError> {
        match outcome {
            IngestOutcome::Accepted { forks, .. } => {
                for proof in forks {
                    self.on_fork(proof);
                }
            }
            // Not forwarded until it chains: peers fetch it by backfill once it does.
            IngestOutcome::Pending { missing_from, .. } => {
                self.fetch_gap(peer, feed, *missing_from, seq)
            }
            // No room to hold it, but the gap it shows is still fetched: the fetched entries
            // arrive in order, which needs no room in `pending`.
            IngestOutcome::Rejected {
                reason: RejectReason::PendingFull,
                ..
            } => {
                let missing_from = self.log.head(&feed)?.map_or(1, |head| head.seq + 1);
                self.fetch_gap(peer, feed, missing_from, seq);
            }
            IngestOutcome::Fork { proof } => self.on_fork(proof),
            IngestOutcome::Duplicate { .. } | IngestOutcome::Rejected { .. } => {}
        }
        Ok(())
    }

    /// Events that are not batches: heads answers, and sync requests when no sync server is
    /// attached (the node always attaches one).
    fn handle_other(&self, event: NetEvent) -> Result<(), StoreError> {
        match event {
            NetEvent::SyncRequest {
                peer,
                request_id,
                request,
                channel,
            } => super::serve::answer(&self.log, &self.net, peer, request_id, request, channel),
            NetEvent::Heads { peer, heads } => self.handle_heads(peer, &heads),
            NetEvent::Gossip { .. } | NetEvent::Entries { .. } => Ok(()),
        }
    }

    /// Records an input admission refused; returns the outcome.
    fn record_refusal(
        &self,
        bytes: &[u8],
        refusal: &Refusal,
        source: &str,
        now: u64,
    ) -> Result<IngestOutcome, StoreError> {
        self.log.record_rejection(
            bytes,
            refusal.reason.into(),
            refusal.detail.clone(),
            source,
            now,
        )
    }

    /// Counts invalid data from `peer`; enough of it within a minute gets the peer
    /// disconnected and blocked for [`BLOCK_DURATION`].
    fn strike(&self, peer: PeerId) {
        if lock_ingress(&self.ingress).strike(peer, Instant::now()) {
            let _ = self.net.blocking_send(Command::BlockFor {
                peer,
                duration: BLOCK_DURATION,
            });
        }
    }

    /// Asks `peer`, which sent entry `seq` of `feed`, for the entries from `missing_from`
    /// before it (one range at most; backfill continues from there).
    fn fetch_gap(&self, peer: PeerId, feed: FeedKey, missing_from: u64, seq: u64) {
        if missing_from >= seq {
            return;
        }
        let range = RangeRequest {
            feed,
            from_seq: missing_from,
            to_seq: (seq - 1).min(missing_from + MAX_RANGE - 1),
            target_seq: seq,
            lookahead: 0,
        };
        let _ = self.net.blocking_send(Command::Fetch {
            peer,
            range: Box::new(range),
        });
    }
}

/// The gossip verdict for an entry's outcome: accepted entries are forwarded; what any honest
/// node refuses too (invalid data, a policy refusal) is rejected; the rest (duplicates,
/// gaps, forks, what depends on this node's clock, quarantine list or room) is ignored.
fn verdict_of(outcome: &IngestOutcome) -> MessageAcceptance {
    match outcome {
        IngestOutcome::Accepted { .. } => MessageAcceptance::Accept,
        IngestOutcome::Rejected { reason, .. } => match reason {
            RejectReason::Malformed
            | RejectReason::BadSignature
            | RejectReason::WrongTopic
            | RejectReason::PrunedBody
            | RejectReason::BadBody
            | RejectReason::Policy => MessageAcceptance::Reject,
            RejectReason::PendingFull
            | RejectReason::Quarantined
            | RejectReason::ClockSkew
            | RejectReason::Throttled => MessageAcceptance::Ignore,
        },
        IngestOutcome::Duplicate { .. }
        | IngestOutcome::Pending { .. }
        | IngestOutcome::Fork { .. } => MessageAcceptance::Ignore,
    }
}

/// Logs a failed step: a storage failure is serious but must not kill the node.
fn report(result: Result<(), StoreError>) {
    if let Err(error) = result {
        warn!(%error, "ingest worker: storage error");
    }
}

/// The ingress limits (a poisoned lock holds only counters, safe to keep using).
fn lock_ingress(ingress: &Mutex<Ingress>) -> MutexGuard<'_, Ingress> {
    ingress.lock().unwrap_or_else(PoisonError::into_inner)
}

mod forks;
mod history;
#[cfg(test)]
mod tests;
