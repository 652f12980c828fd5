//! The swarm task's side of fetching many feeds at once: a `Ranges` answer is split into the
//! ranges it answered (handed to the ingest worker) and those it left for later (queued again),
//! and a peer that cannot serve `Ranges` is asked one `Range` request per range instead.

use libp2p::PeerId;
use serde_bytes::ByteBuf;
use tracing::{debug, warn};

use super::SwarmTask;
use crate::net::{FetchedRange, NetEvent, RangeRequest};

impl SwarmTask {
    /// Takes a `Ranges` answer: 1 to as many lists as ranges were asked, the first lists
    /// answering the first ranges. The ranges past the last list (cut by the peer's response
    /// budget) are queued again; an answer with no list or too many is dropped (its ranges are
    /// found again at the next anti-entropy round).
    pub(super) fn on_range_entries(
        &mut self,
        peer: PeerId,
        ranges: Vec<RangeRequest>,
        lists: Vec<Vec<ByteBuf>>,
    ) -> Option<NetEvent> {
        if lists.is_empty() || lists.len() > ranges.len() {
            warn!(
                %peer,
                asked = ranges.len(),
                answered = lists.len(),
                "peer answered a ranges request with a wrong number of lists; answer dropped"
            );
            return None;
        }
        let mut ranges = ranges.into_iter();
        let answered: Vec<FetchedRange> = ranges
            .by_ref()
            .zip(lists)
            .map(|(range, entries)| FetchedRange {
                range,
                entries: entries.into_iter().map(ByteBuf::into_vec).collect(),
            })
            .collect();
        for fetched in &answered {
            self.entries_fetched += fetched.entries.len() as u64;
            self.fetch_cost.bytes += fetched
                .entries
                .iter()
                .map(|entry| entry.len() as u64)
                .sum::<u64>();
        }
        // Forgotten when the answer came in (`finish_request`), so none overlaps itself.
        for range in ranges {
            self.enqueue_fetch(peer, range);
        }
        self.pump(peer);
        Some(NetEvent::Entries { peer, answered })
    }

    /// A `Ranges` request failed: the peer may be of a version that cannot decode one (it
    /// resets the stream). Its ranges are queued again, once, and from now on the peer is
    /// asked one range per request; a later failure loses its ranges until the next
    /// anti-entropy round, as a failed `Range` does, so a peer that fails every request
    /// cannot keep this node re-sending them.
    pub(super) fn on_ranges_failed(&mut self, peer: PeerId, ranges: Vec<RangeRequest>) {
        let Some(sync) = self.peers.get_mut(&peer) else {
            return;
        };
        if sync.single_ranges {
            return;
        }
        sync.single_ranges = true;
        debug!(%peer, "a ranges request failed; asking this peer one range per request");
        for range in ranges {
            self.enqueue_fetch(peer, range);
        }
        self.pump(peer);
    }
}
