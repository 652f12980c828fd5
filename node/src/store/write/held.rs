//! The write path's side of `pending`: holding an entry whose predecessor is missing
//! (within the bound and the quotas of [`crate::store::pending`]), releasing what chains
//! once the gap is filled, and purging what waits behind an entry the policy refused.

use plexus_protocol::coord::{Arrival, Reception};
use plexus_protocol::feed::refusal_of_successor;
use plexus_protocol::policy::Violation;
use plexus_protocol::{Entry, FeedKey, ForkProof};

use super::{Refused, Write};
use crate::store::governance::Scope;
use crate::store::pending::{
    self, PendingMeta, PendingRefusal, MAX_PENDING_PER_AUTHOR, MAX_PENDING_PER_PEER,
};
use crate::store::{
    decode_stored, entry_key, keys, lock_index, Counters, IngestOutcome, Log, PendingEntry,
    StoreError, CF_PENDING,
};

impl Log {
    /// Moves pending entries that now chain onto `tip` into the batch, repeatedly. An entry
    /// the policy refuses leaves `pending` for the rejection journal, and the release stops
    /// there: nothing after it can chain.
    pub(super) fn release_pending(
        &self,
        write: &mut Write<'_>,
        feed: &FeedKey,
        tip: &Entry,
        forks: &mut Vec<ForkProof>,
        source: &str,
    ) -> Result<usize, StoreError> {
        let mut released = 0;
        let mut tip = tip.clone();
        while write.staged.pending > 0 {
            let next_seq = tip.header().seq + 1;
            let successor = self
                .pending_at(&write.staged, feed, next_seq)?
                .into_iter()
                .find(|(_, entry)| entry.header().prev == Some(tip.id()));
            // A pending entry on another branch stays: `accept_chain` turns it into a fork
            // proof once an entry at its seq is accepted.
            let Some((pending_key, entry)) = successor else {
                break;
            };
            let reception = self.pending_reception(write, &pending_key);
            write
                .staged
                .delete_pending(&mut write.batch, self.cf(CF_PENDING), &pending_key);
            let body = super::body_of_waiting(&entry);
            if let Err(violation) = write.governor.decide(&entry, body.as_ref(), Scope::Full) {
                let mut purged = Vec::new();
                self.purge_successors(write, feed, &entry, &violation, &mut purged)?;
                purged.push((entry, violation));
                for (waiting, why) in purged {
                    let refused = (waiting.encode(), Refused::Policy(why), source.to_owned());
                    write.to_journal.push(refused);
                }
                break;
            }
            self.accept_chain(write, &entry, body, reception, forks)?;
            tip = entry;
            released += 1;
        }
        Ok(released)
    }

    /// How and when the entry held in `pending` under `key` arrived: from this write's
    /// additions, else from the index (history at the log's opening when neither knows).
    pub(super) fn pending_reception(&self, write: &Write<'_>, key: &[u8]) -> Reception {
        let added = write
            .staged
            .added_pending
            .iter()
            .find(|(added, _)| &added[..] == key)
            .map(|(_, meta)| meta.reception());
        added
            .or_else(|| lock_index(&write.staged.pending_index).reception(key))
            .unwrap_or(Reception {
                arrival: Arrival::History,
                received_ms: crate::clock::now_ms(),
            })
    }

    /// Removes from `pending` every entry that descends from `refused` (which the policy
    /// refused, so they can never chain on this node), on every branch an equivocating author
    /// made behind it, adding each to `out`.
    pub(super) fn purge_successors(
        &self,
        write: &mut Write<'_>,
        feed: &FeedKey,
        refused: &Entry,
        violation: &Violation,
        out: &mut Vec<(Entry, Violation)>,
    ) -> Result<(), StoreError> {
        // Depth first; each pending entry has one parent, so none is visited twice.
        let mut parents = vec![(refused.header().seq, refused.id())];
        while let Some((seq, id)) = parents.pop() {
            if write.staged.pending == 0 {
                break;
            }
            for (key, entry) in self.pending_at(&write.staged, feed, seq + 1)? {
                if entry.header().prev == Some(id) {
                    write
                        .staged
                        .delete_pending(&mut write.batch, self.cf(CF_PENDING), &key);
                    parents.push((entry.header().seq, entry.id()));
                    let why = refusal_of_successor(&entry, violation);
                    out.push((entry, why));
                }
            }
        }
        Ok(())
    }

    /// Entries waiting in `pending` at one position of a feed, with their keys, less those
    /// the write being built deleted.
    pub(super) fn pending_at(
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

    /// Puts an entry whose predecessor is missing into `pending`, within the pending bound and
    /// the quotas of its author and of the peer it came from (`origin`: source and arrival
    /// time), after dropping expired entries; when `pending` is full, an entry of a feed the
    /// node holds evicts the oldest of a feed it does not hold ([`pending`]). `None` when it
    /// is not held (the reason in `pending_refusal`).
    pub(super) fn hold(
        &self,
        write: &mut Write<'_>,
        entry: &Entry,
        missing_from: u64,
        (source, reception): (&str, Reception),
    ) -> Result<Option<IngestOutcome>, StoreError> {
        let now_ms = reception.received_ms;
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
            arrival: reception.arrival,
            feed_held: self.head(&feed)?.is_some(),
        };
        let staged = &mut write.staged;
        let index_handle = std::sync::Arc::clone(&staged.pending_index);
        let index = lock_index(&index_handle);
        for expired in index.expired(now_ms) {
            staged.delete_pending(&mut write.batch, self.cf(CF_PENDING), &expired);
        }
        let in_batch = |same: &dyn Fn(&PendingMeta) -> bool| {
            staged
                .added_pending
                .iter()
                .filter(|(_, added)| same(added))
                .count()
        };
        let extra_author = in_batch(&|added| added.author == meta.author);
        let extra_peer = in_batch(&|added| meta.peer.is_some() && added.peer == meta.peer);
        let admission = index.admit(
            &meta,
            (staged.pending, self.max_pending),
            (extra_author, extra_peer),
            |key| staged.deleted_pending.contains(key),
        );
        drop(index);
        match admission {
            pending::Admission::Hold => {}
            pending::Admission::HoldEvicting(victim) => {
                staged.delete_pending(&mut write.batch, self.cf(CF_PENDING), &victim);
            }
            pending::Admission::Refuse(refusal) => {
                staged.pending_refusal = Some(refusal);
                return Ok(None);
            }
        }
        write
            .batch
            .put_cf(self.cf(CF_PENDING), &key, entry.encode());
        staged.pending += 1;
        staged.added_pending.push((key.into(), meta));
        Ok(Some(IngestOutcome::Pending { id, missing_from }))
    }

    /// The rejection detail for an entry `pending` had no room for.
    pub(super) fn pending_full_detail(
        &self,
        write: &mut Write<'_>,
        entry: &Entry,
        source: &str,
    ) -> String {
        let why = match write
            .staged
            .pending_refusal
            .take()
            .unwrap_or(PendingRefusal::Full)
        {
            PendingRefusal::Full => format!(
                "{} entries already wait for missing predecessors",
                self.max_pending
            ),
            PendingRefusal::AuthorQuota => format!(
                "its author already has {MAX_PENDING_PER_AUTHOR} entries waiting for missing \
                 predecessors"
            ),
            PendingRefusal::PeerQuota => format!(
                "{source} already sent {MAX_PENDING_PER_PEER} entries that wait for missing \
                 predecessors"
            ),
        };
        format!(
            "{why}; entry seq {} of author {} was not kept; backfill fetches it again once the \
             gap is filled",
            entry.header().seq,
            entry.header().author
        )
    }
}
