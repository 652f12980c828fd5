//! The backfill side of the ingest pipeline: a sync response's ranges written in one batch
//! (after admission, which the worker's `check` did), the next range of each feed asked
//! for, and peers' heads answers turned into fetches.

use libp2p::PeerId;
use plexus_protocol::coord::Arrival;
use tracing::warn;

use super::{CheckedRange, Pipeline, RangeProgress};
use crate::clock::now_ms;
use crate::net::sync::{self, WireHead};
use crate::net::Command;
use crate::store::{IngestOutcome, Offer, StoreError};

impl Pipeline {
    /// Steps 2-4 for a sync response: records what admission refused, writes the rest of
    /// every range in one batch, and asks for the next range of each feed.
    pub(super) fn settle_entries(
        &self,
        peer: PeerId,
        mut ranges: Vec<CheckedRange>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let source = format!("sync:{peer}");
        let mut offers = Vec::new();
        // For each offer, the index of its range in `ranges`.
        let mut offer_ranges = Vec::new();
        for (index, checked) in ranges.iter_mut().enumerate() {
            let quarantined = self.shared.is_quarantined(&checked.range.feed);
            for (bytes, answer) in checked.items.drain(..) {
                match answer {
                    Ok(_) if quarantined => {}
                    Ok(admitted) => {
                        offers.push(Offer {
                            admitted,
                            source: source.clone(),
                            arrival: Arrival::History,
                        });
                        offer_ranges.push(index);
                    }
                    Err(refusal) => {
                        self.record_refusal(&bytes, &refusal, &source, now)?;
                    }
                }
            }
        }
        // Per range: the highest seq offered, and whether anything was stored or held.
        let mut progress = vec![RangeProgress::default(); ranges.len()];
        for (offer, index) in offers.iter().zip(&offer_ranges) {
            if let Some(slot) = progress.get_mut(*index) {
                let seq = offer.admitted.entry().header().seq;
                slot.fetched_to = Some(slot.fetched_to.map_or(seq, |to: u64| to.max(seq)));
            }
        }
        let mut changed = false;
        for (outcome, index) in self
            .log
            .ingest_admitted(offers, now)?
            .into_iter()
            .zip(&offer_ranges)
        {
            let moved = match outcome {
                IngestOutcome::Accepted { forks, .. } => {
                    changed = true;
                    for proof in &forks {
                        self.on_fork(proof);
                    }
                    true
                }
                // Out of order within a pipelined window: its predecessors are on their way.
                IngestOutcome::Pending { .. } => true,
                IngestOutcome::Fork { proof } => {
                    self.on_fork(&proof);
                    false
                }
                _ => false,
            };
            if let Some(slot) = progress.get_mut(*index) {
                slot.moved |= moved;
            }
        }
        if changed {
            self.shared.changed();
        }
        let mut next_ranges = Vec::new();
        for (checked, progress) in ranges.iter().zip(progress) {
            if !progress.moved {
                continue;
            }
            let range = &checked.range;
            let head_seq = self.log.head(&range.feed)?.map_or(0, |head| head.seq);
            let next = sync::next_range(range, progress.fetched_to);
            next_ranges.extend(next.filter(|_| head_seq < range.target_seq));
        }
        if !next_ranges.is_empty() {
            let _ = self.net.blocking_send(Command::FetchMany {
                peer,
                ranges: next_ranges,
            });
        }
        Ok(())
    }

    pub(super) fn handle_heads(&self, peer: PeerId, heads: &[WireHead]) -> Result<(), StoreError> {
        let (theirs, malformed) = sync::decode_heads(heads);
        if malformed > 0 {
            warn!(%peer, malformed, "peer sent malformed feed heads");
        }
        crate::node::reconcile::fetch_what_differs(&self.log, &self.net, peer, &theirs)
    }
}
