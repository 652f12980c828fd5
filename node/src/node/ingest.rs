//! The gossip judge and the ingest worker: what validates and stores what the network
//! delivers. The judge ([`FastJudge`]) runs on the swarm task and settles the common case on
//! the spot; the worker runs on its own thread and does everything else: gossip the judge
//! deferred, sync responses (batch-verified) and backfill planning. Peers' sync requests are
//! served by the sync server (`serve.rs`), on a thread and queue of its own.
//!
//! Gossip verdicts:
//!
//! | outcome                                         | verdict | and also                      |
//! |-------------------------------------------------|---------|-------------------------------|
//! | over the per-peer or per-author ingress rate    | Ignore  | counted in metrics (not journaled); backfill brings it later |
//! | oversized, malformed, wrong topic, bad signature, pruned body, unknown kind or bad body | Reject | rejection journal; peer score drops |
//! | refused by the governed namespace's policy      | Reject  | rejection journal with rule and policy version; peer score drops |
//! | a claim (or, when governed, any entry) outside the clock-skew window | Ignore | rejection journal (the forwarder's clock may differ) |
//! | accepted                                        | Accept  | stored and forwarded (see below) |
//! | valid but its predecessors are missing          | Ignore  | held pending; gap fetched from the sender |
//! | duplicate                                       | Ignore  | (unless stored pruned: this copy completes it, Accept) |
//! | a fork                                          | Ignore  | proof stored and gossiped; author quarantined |
//! | by a quarantined author, or unchainable         | Ignore  | rejection journal             |
//!
//! Undeniably invalid data (malformed, oversized, bad signature, pruned body, wrong topic, bad
//! fork proof) is also a strike against the sending peer: [`super::limits::DEFAULT_STRIKES`]
//! within a minute get it disconnected and blocked for ten minutes.
//!
//! The judge reports `Accept` once its write is in the log. The worker reports `Accept` as
//! soon as an entry is validated and known to extend its feed, just before its write is
//! committed, so gossipsub forwards it while the write completes. Neither waits for an fsync
//! (the store's group commit makes received entries durable shortly after). Nothing is
//! forwarded before it is validated; the change notification follows the write. (If the
//! worker's write then failed, peers would hold a valid entry this node lacks, which backfill
//! repairs.)

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use libp2p::gossipsub::{MessageAcceptance, MessageId};
use libp2p::PeerId;
use plexus_crypto::{verify_batch_parallel, BatchItem};
use plexus_protocol::coord::{check_body, check_clock_skew};
use plexus_protocol::{Entry, FeedKey, ForkProof, MAX_ENTRY_LEN};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use super::limits::{Admission, Ingress};
use super::Shared;
use crate::clock::now_ms;
use crate::coord::Coordinator;
use crate::net::sync::{self, RangeRequest, WireHead, MAX_RANGE};
use crate::net::topics::{self, TopicKind};
use crate::net::{Command, GossipJudge, Judgement, NetEvent, NetworkHandle, Prechecked};
use crate::store::{IngestOutcome, Log, RejectReason, StoreError};

/// How long a peer that kept sending invalid data stays blocked: long enough to stop a
/// flood, short enough that a peer restarted with a fixed build comes back on its own.
const BLOCK_DURATION: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// Largest fork proof accepted from gossip: two body-less envelopes and framing.
const MAX_FORK_PROOF_LEN: usize = 2 * 1024;

/// A sync response decoded and verified, waiting to be written ([`Worker::store_entries`]).
struct CheckedEntries {
    peer: PeerId,
    range: RangeRequest,
    /// Entries whose signatures verified, in response order.
    good: Vec<Entry>,
    /// Refused input, with the reason and detail its rejection record gets.
    refused: Vec<(Vec<u8>, RejectReason, String)>,
    now_ms: u64,
}

/// The rejection detail for a live entry that came without its body.
pub(crate) fn pruned_detail(entry: &Entry) -> String {
    let header = entry.header();
    format!(
        "entry seq {} of author {} arrived without its body (pruned); live entries (gossip, \
         submit) must carry their body, only history fetched by backfill may be pruned",
        header.seq, header.author
    )
}

/// Logs a failed event: a storage failure is serious but must not kill the node.
fn report(result: Result<(), StoreError>) {
    if let Err(error) = result {
        warn!(%error, "ingest worker: storage error");
    }
}

pub(crate) struct Worker {
    pub log: Arc<Log>,
    pub net: NetworkHandle,
    pub events: mpsc::Receiver<NetEvent>,
    pub shared: Arc<Shared>,
    /// Edge limits, shared with the [`FastJudge`] on the swarm task.
    pub ingress: Arc<Mutex<Ingress>>,
}

/// The node's [`GossipJudge`]: settles on the swarm task, without a hand-off, the gossip
/// messages that need no more than reads, a signature check and one write that cannot stall:
/// over-rate messages (`Ignore`), replays of stored entries (`Ignore`) and valid entries that
/// extend their feeds (stored with [`Log::try_append_next`], then `Accept`). Everything else
/// (anything to journal, a strike, a gap, a fork, a policy refusal, a busy lock) is deferred
/// to the worker, with what was already checked. The checks are the worker's
/// (`Worker::handle_gossip_entry`); the one difference in order, charging the author's
/// allowance after the clock-skew and quarantine checks rather than before, cannot change a
/// verdict: those cases are deferred uncharged and the worker charges them. So the outcome is
/// the same on either path.
///
/// Why: with the verdict made on the ingest thread, every hop paid two cross-thread wake-ups
/// before forwarding, which on a busy machine cost more than the validation itself.
pub(crate) struct FastJudge {
    pub log: Arc<Log>,
    pub shared: Arc<Shared>,
    /// Offered each entry the judge stores, so the view takes it without a journal read.
    pub coord: Arc<Coordinator>,
    pub ingress: Arc<Mutex<Ingress>>,
}

impl Worker {
    /// Handles events until the swarm task stops.
    ///
    /// Sync responses are pipelined: while one verified response is written, the next one
    /// queued is decoded and verified on the other cores, so a backfill keeps every core busy
    /// instead of alternating between verifying (parallel) and writing (one thread). Any other
    /// event first waits for the pending write, so it sees the log as it would without the
    /// pipeline.
    pub fn run(mut self) {
        let mut ready: Option<CheckedEntries> = None;
        loop {
            let event = match ready.take() {
                None => self.events.blocking_recv(),
                Some(checked) => match self.events.try_recv() {
                    Ok(NetEvent::Entries {
                        peer,
                        range,
                        entries,
                    }) => {
                        let (stored, next) = rayon::join(
                            || self.store_entries(checked),
                            || self.check_entries(peer, range, entries),
                        );
                        report(stored);
                        ready = Some(next);
                        continue;
                    }
                    next => {
                        report(self.store_entries(checked));
                        match next {
                            Ok(event) => Some(event),
                            Err(mpsc::error::TryRecvError::Empty) => continue,
                            Err(mpsc::error::TryRecvError::Disconnected) => None,
                        }
                    }
                },
            };
            let Some(event) = event else { break };
            let result = match event {
                NetEvent::Gossip {
                    message_id,
                    peer,
                    topic,
                    data,
                    prechecked,
                } => self.handle_gossip(message_id, peer, &topic, &data, prechecked),
                // Only when no sync server is attached (the node always attaches one).
                NetEvent::SyncRequest {
                    peer,
                    request_id,
                    request,
                    channel,
                } => super::serve::answer(&self.log, &self.net, peer, request_id, request, channel),
                NetEvent::Heads { peer, heads } => self.handle_heads(peer, &heads),
                NetEvent::Entries {
                    peer,
                    range,
                    entries,
                } => {
                    ready = Some(self.check_entries(peer, range, entries));
                    Ok(())
                }
            };
            report(result);
        }
        debug!("ingest worker stopped");
    }

    fn handle_gossip(
        &self,
        message_id: MessageId,
        peer: PeerId,
        topic: &str,
        data: &[u8],
        prechecked: Prechecked,
    ) -> Result<(), StoreError> {
        let source = format!("gossip:{peer}");
        if !prechecked.peer_admitted
            && lock_ingress(&self.ingress).admit_peer(peer, Instant::now()) != Admission::Pass
        {
            // Not journaled one by one: a flood must not become a flood of writes.
            self.log.count_rejection(RejectReason::Throttled, "peer");
            self.report(message_id, peer, MessageAcceptance::Ignore);
            return Ok(());
        }
        let mut reported = false;
        let report_early = || {
            reported = true;
            self.report(message_id.clone(), peer, MessageAcceptance::Accept);
        };
        let acceptance = match topics::parse(topic) {
            None => {
                let detail = format!("message on unknown topic {topic:?}");
                self.log.record_rejection(
                    data,
                    RejectReason::WrongTopic,
                    detail,
                    &source,
                    now_ms(),
                )?;
                MessageAcceptance::Reject
            }
            Some(TopicKind::ForkProofs { namespace }) => {
                let acceptance = self.handle_fork_proof(peer, &namespace, data, &source)?;
                if acceptance == MessageAcceptance::Reject {
                    self.strike(peer);
                }
                acceptance
            }
            Some(TopicKind::Entries { namespace, suffix }) => self.handle_gossip_entry(
                peer,
                &namespace,
                &suffix,
                data,
                &source,
                prechecked,
                report_early,
            )?,
        };
        if !reported {
            self.report(message_id, peer, acceptance);
        }
        Ok(())
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

    fn report(&self, message_id: MessageId, peer: PeerId, acceptance: MessageAcceptance) {
        let _ = self.net.blocking_send(Command::Validate {
            message_id,
            peer,
            acceptance,
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn handle_gossip_entry(
        &self,
        peer: PeerId,
        namespace: &str,
        suffix: &str,
        data: &[u8],
        source: &str,
        prechecked: Prechecked,
        accept_before_sync: impl FnOnce(),
    ) -> Result<MessageAcceptance, StoreError> {
        let now = now_ms();
        let reject = |reason, detail: String| -> Result<MessageAcceptance, StoreError> {
            self.log
                .record_rejection(data, reason, detail, source, now)?;
            // Bad bodies (perhaps a kind a newer version knows) and policy refusals (perhaps a
            // policy the sender had not heard of yet) cost score only; undeniably invalid data
            // also counts towards a block.
            if reason != RejectReason::BadBody {
                self.strike(peer);
            }
            Ok(MessageAcceptance::Reject)
        };
        if data.len() > MAX_ENTRY_LEN {
            return reject(
                RejectReason::Malformed,
                format!(
                    "{} bytes, over the {MAX_ENTRY_LEN}-byte entry limit",
                    data.len()
                ),
            );
        }
        let entry = match Entry::decode(data) {
            Ok(entry) => entry,
            Err(error) => return reject(RejectReason::Malformed, error.to_string()),
        };
        let header = entry.header();
        if header.namespace != namespace || topics::kind_suffix(&header.kind) != suffix {
            let detail = format!(
                "entry of namespace {} and kind {} arrived on the topic for {namespace}/{suffix}",
                header.namespace, header.kind
            );
            return reject(RejectReason::WrongTopic, detail);
        }
        if !prechecked
            .signature
            .unwrap_or_else(|| entry.verify_signature())
        {
            let detail = format!(
                "signature does not verify for author {} seq {}",
                header.author, header.seq
            );
            return reject(RejectReason::BadSignature, detail);
        }
        if entry.body().is_none() {
            return reject(RejectReason::PrunedBody, pruned_detail(&entry));
        }
        if let Err(error) = check_body(&entry) {
            let detail = format!(
                "entry seq {} of author {}: {error}",
                header.seq, header.author
            );
            return reject(RejectReason::BadBody, detail);
        }
        // A replay of a stored entry is dropped before it is charged to its author, so
        // replaying someone's old entries cannot use up their allowance; unless the stored
        // copy lacks its body, which this copy completes.
        if self.log.contains(&entry.id())? && !self.log.stored_without_body(&entry.id())? {
            return Ok(MessageAcceptance::Ignore);
        }
        if !prechecked.author_admitted
            && lock_ingress(&self.ingress).admit_author(header.author, Instant::now())
                != Admission::Pass
        {
            self.log.count_rejection(RejectReason::Throttled, "author");
            return Ok(MessageAcceptance::Ignore);
        }
        let (window, governed) = self.log.clock_skew_for(&entry, self.shared.clock_skew_ms);
        if let Err(error) = check_clock_skew(&entry, now, window, governed) {
            // Not the forwarding peer's fault (its clock may differ from ours): no penalty.
            let detail = format!(
                "entry seq {} of author {}: {error}",
                header.seq, header.author
            );
            self.log
                .record_rejection(data, RejectReason::ClockSkew, detail, source, now)?;
            return Ok(MessageAcceptance::Ignore);
        }
        let feed = FeedKey::of(&entry);
        if self.shared.is_quarantined(&feed) {
            let detail = format!(
                "author {} is quarantined for forking in {namespace}",
                header.author
            );
            self.log
                .record_rejection(data, RejectReason::Quarantined, detail, source, now)?;
            return Ok(MessageAcceptance::Ignore);
        }
        let seq = header.seq;
        // A valid entry that extends its feed is forwarded while its write is synced.
        let outcome =
            self.log
                .ingest_verified_then(entry, data, source, now, accept_before_sync)?;
        Ok(match outcome {
            IngestOutcome::Accepted { forks, .. } => {
                self.shared.changed();
                for proof in &forks {
                    self.on_fork(proof);
                }
                MessageAcceptance::Accept
            }
            IngestOutcome::Duplicate { .. } => MessageAcceptance::Ignore,
            IngestOutcome::Pending { missing_from, .. } => {
                self.fetch_gap(peer, feed, missing_from, seq);
                // Not forwarded until it chains: peers fetch it by backfill once it does.
                MessageAcceptance::Ignore
            }
            // No room to hold it, but the gap it shows is still fetched: the fetched entries
            // arrive in order, which needs no room in `pending`.
            IngestOutcome::Rejected {
                reason: RejectReason::PendingFull,
                ..
            } => {
                let missing_from = self.log.head(&feed)?.map_or(1, |head| head.seq + 1);
                self.fetch_gap(peer, feed, missing_from, seq);
                MessageAcceptance::Ignore
            }
            IngestOutcome::Fork { proof } => {
                self.on_fork(&proof);
                MessageAcceptance::Ignore
            }
            // The forwarding peer should have refused it too: policy is agreed by every node.
            IngestOutcome::Rejected {
                reason: RejectReason::Policy,
                ..
            } => MessageAcceptance::Reject,
            IngestOutcome::Rejected { .. } => MessageAcceptance::Ignore,
        })
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

    /// A fork proof from gossip: within the peer's allowance, checked, and kept (quarantining
    /// its author and forwarding it) only when it is about a feed this node holds
    /// ([`Log::store_fork_proof`]); anything else is ignored without penalty, since an honest
    /// peer holding that feed forwards it rightly.
    fn handle_fork_proof(
        &self,
        peer: PeerId,
        namespace: &str,
        data: &[u8],
        source: &str,
    ) -> Result<MessageAcceptance, StoreError> {
        if lock_ingress(&self.ingress).admit_fork_proof(peer, Instant::now()) != Admission::Pass {
            self.log
                .count_rejection(RejectReason::Throttled, "fork-proof");
            return Ok(MessageAcceptance::Ignore);
        }
        let now = now_ms();
        if data.len() > MAX_FORK_PROOF_LEN {
            let detail = format!(
                "fork proof of {} bytes, over {MAX_FORK_PROOF_LEN}",
                data.len()
            );
            self.log
                .record_rejection(data, RejectReason::Malformed, detail, source, now)?;
            return Ok(MessageAcceptance::Reject);
        }
        let proof = match ForkProof::decode(data) {
            Ok(proof) if proof.feed().namespace == namespace => proof,
            Ok(_) => {
                let detail = "fork proof about another namespace".to_owned();
                self.log
                    .record_rejection(data, RejectReason::WrongTopic, detail, source, now)?;
                return Ok(MessageAcceptance::Reject);
            }
            Err(error) => {
                self.log.record_rejection(
                    data,
                    RejectReason::Malformed,
                    format!("invalid fork proof: {error}"),
                    source,
                    now,
                )?;
                return Ok(MessageAcceptance::Reject);
            }
        };
        if self.log.store_fork_proof(&proof)? {
            self.quarantine(&proof);
            self.shared.changed();
            Ok(MessageAcceptance::Accept)
        } else {
            Ok(MessageAcceptance::Ignore)
        }
    }

    /// A fork found here: quarantine the author and tell every honest node.
    fn on_fork(&self, proof: &ForkProof) {
        warn!(author = %proof.feed().author, seq = proof.seq(), "fork detected");
        self.quarantine(proof);
        self.shared.changed();
        let (reply, _) = oneshot::channel();
        let _ = self.net.blocking_send(Command::Publish {
            topic: topics::fork_topic(&proof.feed().namespace),
            data: proof.encode(),
            reply,
        });
    }

    fn quarantine(&self, proof: &ForkProof) {
        if self.shared.quarantine_forkers {
            self.shared.quarantine(proof.feed());
        }
    }

    fn handle_heads(&self, peer: PeerId, heads: &[WireHead]) -> Result<(), StoreError> {
        let (theirs, malformed) = sync::decode_heads(heads);
        if malformed > 0 {
            warn!(%peer, malformed, "peer sent malformed feed heads");
        }
        super::reconcile::fetch_what_differs(&self.log, &self.net, peer, &theirs)
    }

    /// The first stage of storing a sync response: decodes and verifies it, writing nothing.
    fn check_entries(
        &self,
        peer: PeerId,
        range: RangeRequest,
        entries: Vec<Vec<u8>>,
    ) -> CheckedEntries {
        let mut refused = Vec::new();
        let mut decoded = Vec::with_capacity(entries.len());
        for bytes in entries {
            match Entry::decode(&bytes) {
                Ok(entry)
                    if FeedKey::of(&entry) == range.feed
                        && (range.from_seq..=range.to_seq).contains(&entry.header().seq) =>
                {
                    decoded.push(entry)
                }
                Ok(_) => {
                    let detail = format!(
                        "sync response holds an entry outside the requested range {}..={}",
                        range.from_seq, range.to_seq
                    );
                    refused.push((bytes, RejectReason::Malformed, detail));
                }
                Err(error) => refused.push((bytes, RejectReason::Malformed, error.to_string())),
            }
        }
        // Verify the whole response before writing any of it.
        let inputs: Vec<Vec<u8>> = decoded.iter().map(Entry::signing_input).collect();
        let items: Vec<BatchItem<'_>> = decoded
            .iter()
            .zip(&inputs)
            .map(|(entry, input)| BatchItem {
                author: &entry.header().author,
                message: input,
                signature: entry.signature(),
            })
            .collect();
        let bad = verify_batch_parallel(&items)
            .err()
            .map(|error| error.bad)
            .unwrap_or_default();
        drop(items);
        let mut good = Vec::with_capacity(decoded.len());
        for (index, entry) in decoded.into_iter().enumerate() {
            if bad.contains(&index) {
                let detail = format!(
                    "signature does not verify for author {} seq {}",
                    entry.header().author,
                    entry.header().seq
                );
                refused.push((entry.encode(), RejectReason::BadSignature, detail));
            } else {
                good.push(entry);
            }
        }
        CheckedEntries {
            peer,
            range,
            good,
            refused,
            now_ms: now_ms(),
        }
    }

    /// The second stage: records what [`Worker::check_entries`] refused, writes the rest, and
    /// asks for the next range of the feed.
    fn store_entries(&self, checked: CheckedEntries) -> Result<(), StoreError> {
        let CheckedEntries {
            peer,
            range,
            good,
            refused,
            now_ms: now,
        } = checked;
        let source = format!("sync:{peer}");
        for (bytes, reason, detail) in refused {
            self.log
                .record_rejection(&bytes, reason, detail, &source, now)?;
        }
        if self.shared.is_quarantined(&range.feed) {
            return Ok(());
        }
        let fetched_to = good.iter().map(|entry| entry.header().seq).max();
        let (mut progressed, mut held) = (false, false);
        for outcome in self.log.ingest_verified_batch(good, &source, now)? {
            match outcome {
                IngestOutcome::Accepted { forks, .. } => {
                    progressed = true;
                    for proof in &forks {
                        self.on_fork(proof);
                    }
                }
                // Out of order within a pipelined window: its predecessors are on their way.
                IngestOutcome::Pending { .. } => held = true,
                IngestOutcome::Fork { proof } => self.on_fork(&proof),
                _ => {}
            }
        }
        if progressed {
            self.shared.changed();
        }
        if progressed || held {
            let head_seq = self.log.head(&range.feed)?.map_or(0, |head| head.seq);
            let next = sync::next_range(&range, fetched_to);
            if let Some(next) = next.filter(|_| head_seq < range.target_seq) {
                let _ = self.net.blocking_send(Command::Fetch {
                    peer,
                    range: Box::new(next),
                });
            }
        }
        Ok(())
    }
}

impl GossipJudge for FastJudge {
    fn judge(&mut self, peer: PeerId, topic: &str, data: &[u8]) -> Judgement {
        let mut done = Prechecked::default();
        if let Err(verdict) = self.charge(done, "peer", |ingress| {
            ingress.admit_peer(peer, Instant::now())
        }) {
            return verdict;
        }
        done.peer_admitted = true;
        let Some(TopicKind::Entries { namespace, suffix }) = topics::parse(topic) else {
            return Judgement::Defer(done);
        };
        if data.len() > MAX_ENTRY_LEN {
            return Judgement::Defer(done);
        }
        let Ok(entry) = Entry::decode(data) else {
            return Judgement::Defer(done);
        };
        let header = entry.header();
        if header.namespace != namespace || topics::kind_suffix(&header.kind) != suffix {
            return Judgement::Defer(done);
        }
        // A bad signature is the worker's to record and strike, without checking it again.
        let valid = entry.verify_signature();
        done.signature = Some(valid);
        if !valid {
            return Judgement::Defer(done);
        }
        // A pruned body is the worker's to record and strike; so is completing a stored
        // pruned copy with this one.
        if entry.body().is_none() || check_body(&entry).is_err() {
            return Judgement::Defer(done);
        }
        match self.log.contains(&entry.id()) {
            Ok(true) => {
                return match self.log.stored_without_body(&entry.id()) {
                    Ok(false) => Judgement::Decided(MessageAcceptance::Ignore),
                    Ok(true) | Err(_) => Judgement::Defer(done),
                }
            }
            Ok(false) => {}
            Err(_) => return Judgement::Defer(done),
        }
        // What the worker would journal is left to it, before the author is charged.
        let Some((window, governed)) = self
            .log
            .try_clock_skew_for(&entry, self.shared.clock_skew_ms)
        else {
            return Judgement::Defer(done);
        };
        if check_clock_skew(&entry, now_ms(), window, governed).is_err()
            || self.shared.is_quarantined(&FeedKey::of(&entry))
        {
            return Judgement::Defer(done);
        }
        let author = header.author;
        if let Err(verdict) = self.charge(done, "author", |ingress| {
            ingress.admit_author(author, Instant::now())
        }) {
            return verdict;
        }
        done.author_admitted = true;
        match self.log.try_append_next(&entry) {
            Ok(Some(arrival)) => {
                self.coord.offer(&entry, arrival, now_ms());
                self.shared.changed();
                Judgement::Decided(MessageAcceptance::Accept)
            }
            Ok(None) | Err(_) => Judgement::Defer(done),
        }
    }
}

impl FastJudge {
    /// Charges one ingress allowance (`which`: "peer" or "author") without waiting. `Err`
    /// holds the verdict when it cannot be charged: deferred while the limits are locked, and
    /// ignored (counted as throttled) when over the rate.
    fn charge(
        &self,
        done: Prechecked,
        which: &str,
        admit: impl FnOnce(&mut Ingress) -> Admission,
    ) -> Result<(), Judgement> {
        let Ok(mut ingress) = self.ingress.try_lock() else {
            return Err(Judgement::Defer(done));
        };
        if admit(&mut ingress) != Admission::Pass {
            drop(ingress);
            self.log.count_rejection(RejectReason::Throttled, which);
            return Err(Judgement::Decided(MessageAcceptance::Ignore));
        }
        Ok(())
    }
}

/// The ingress limits, shared by the worker and the judge (a poisoned lock holds only
/// counters, safe to keep using).
fn lock_ingress(ingress: &Mutex<Ingress>) -> MutexGuard<'_, Ingress> {
    ingress.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use plexus_crypto::Keypair;
    use plexus_protocol::value::json_text_to_canonical;
    use plexus_protocol::Draft;
    use tokio::sync::watch;

    use super::*;
    use crate::node::limits::IngressLimits;

    /// `count` entries of `author`'s feed in namespace `ns`, linked.
    fn chain(author: &Keypair, count: u64) -> Vec<Entry> {
        let mut entries: Vec<Entry> = Vec::new();
        for seq in 1..=count {
            let draft = Draft {
                namespace: "ns".into(),
                seq,
                prev: entries.last().map(Entry::id),
                timestamp_ms: 1_767_225_600_000 + seq,
                kind: "x-note".into(),
                body: json_text_to_canonical(&format!("{{\"n\": {seq}}}")).unwrap(),
            };
            entries.push(Entry::sign(author, draft).unwrap());
        }
        entries
    }

    #[test]
    fn pipelined_sync_responses_are_verified_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(Log::open(dir.path()).unwrap());
        let chain = chain(&Keypair::generate(), 8);
        let feed = FeedKey::of(&chain[0]);
        let range = |from_seq, to_seq| RangeRequest {
            feed: feed.clone(),
            from_seq,
            to_seq,
            target_seq: 8,
            lookahead: 0,
        };
        // Seq 3 of the first response carries a signature with one bit flipped.
        let mut tampered = chain[2].encode();
        let signature = chain[2].signature().0;
        let at = tampered
            .windows(signature.len())
            .position(|window| window == signature)
            .unwrap();
        tampered[at] ^= 0x01;
        let peer = PeerId::random();
        // Both responses are queued before the worker starts, so the second is verified while
        // the first is written.
        let (events_tx, events) = mpsc::channel(4);
        for (range, entries) in [
            (
                range(1, 4),
                vec![
                    chain[0].encode(),
                    chain[1].encode(),
                    tampered.clone(),
                    chain[3].encode(),
                ],
            ),
            (range(5, 8), chain[4..].iter().map(Entry::encode).collect()),
        ] {
            events_tx
                .try_send(NetEvent::Entries {
                    peer,
                    range,
                    entries,
                })
                .unwrap();
        }
        drop(events_tx);
        let (commands, _commands_rx) = mpsc::channel(16);
        let worker = Worker {
            log: Arc::clone(&log),
            net: NetworkHandle::new(commands, PeerId::random()),
            events,
            shared: Arc::new(Shared {
                quarantine_forkers: true,
                clock_skew_ms: plexus_protocol::coord::DEFAULT_CLOCK_SKEW_MS,
                quarantined: Mutex::new(Default::default()),
                changes: watch::channel(0).0,
                gossip_failures: Default::default(),
            }),
            ingress: Arc::new(Mutex::new(Ingress::new(IngressLimits::default()))),
        };
        // Returns once both responses are handled and the channel is closed.
        worker.run();

        // Seqs 1 and 2 are stored; the tampered seq 3 is refused, on the record with its
        // source; what follows it waits for the genuine seq 3.
        assert_eq!(log.head(&feed).unwrap().map(|head| head.seq), Some(2));
        let rejections = log.rejections().unwrap();
        assert_eq!(rejections.len(), 1);
        assert_eq!(rejections[0].reason, "bad-signature");
        assert_eq!(rejections[0].source, format!("sync:{peer}"));
        assert_eq!(rejections[0].input_hash, plexus_crypto::sha256(&tampered));
        assert_eq!(log.stats().unwrap().pending, 5);
        assert!(matches!(
            log.ingest(&chain[2].encode(), "test", 0).unwrap(),
            IngestOutcome::Accepted { released: 5, .. }
        ));
        assert_eq!(log.head(&feed).unwrap().map(|head| head.seq), Some(8));
    }
}
