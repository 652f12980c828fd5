//! Backfill and anti-entropy: the `/plexus/sync/1` request-response protocol.
//!
//! Gossip is not a history source: a node that was offline or cut off misses messages for good.
//! So peers compare feed heads and fetch what they lack:
//!
//! 1. On every new connection, and every `backfill_interval`, a node reconciles the feed heads
//!    of each namespace it follows with the peer's (`Reconcile` rounds, driven by the node's
//!    reconciler, `node/reconcile.rs`, over [`plexus_protocol::reconcile`]); every feed head the
//!    peer lists in a range that differs goes to [`plan`]. The older `Heads { namespaces }`
//!    exchange (at most [`MAX_HEADS`] heads) is still served for peers that predate it.
//! 2. For each feed where the peer is ahead, the node requests `Range { from, to }` in batches
//!    of at most [`MAX_RANGE`] entries, at most [`MAX_IN_FLIGHT_PER_PEER`] requests per peer at
//!    a time. Where the peer has a *different* entry at a seq the node already holds, it fetches
//!    that one entry: it is a fork, and the proof must be formed and spread.
//! 3. Each `Entries` response is batch-verified before any of it is written, and written in one
//!    synced batch.
//!
//! Ranges of one feed are pipelined: [`plan`] asks for up to [`PIPELINED_RANGES_PER_FEED`]
//! consecutive ranges at once (a *window*), so the peer reads and sends the next ranges while
//! this node verifies and writes the current one, instead of one round trip per range. Each
//! range remembers how many seqs the other ranges of its window cover
//! ([`RangeRequest::lookahead`]);
//! when it completes, [`next_range`] asks for the range just past the window, so the window
//! slides forward with at most [`PIPELINED_RANGES_PER_FEED`] ranges of a feed outstanding. A
//! response cut short by [`RESPONSE_BYTE_BUDGET`] is completed by a request for the remainder,
//! which keeps its place in the window. The swarm task drops a range that overlaps one already
//! queued or in flight to the same peer, so an anti-entropy round during a backfill does not
//! fetch the same window twice.
//!
//! Out-of-order gossip (entry N+1 before N) triggers the same targeted range fetch.

use std::collections::{HashSet, VecDeque};

use plexus_crypto::{AgentId, Hash256};
use plexus_protocol::entry::check_name;
use plexus_protocol::{FeedHead, FeedKey, MAX_ENTRY_LEN};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::wire::WireAnswer;
pub use super::wire::{SyncRequest, SyncResponse, WireHead, WireRange};

/// Protocol name of the sync request-response protocol.
pub const SYNC_PROTOCOL: &str = "/plexus/sync/1";

/// Most entries requested or returned in one range: large enough that a backfill of 100,000
/// entries takes a few hundred round trips, small enough that a response stays a few MiB.
pub const MAX_RANGE: u64 = 512;

/// Most bytes of entries a responder puts in one response (at least one entry is always sent).
pub const RESPONSE_BYTE_BUDGET: usize = 4 << 20;

/// Largest sync response accepted by the codec: the budget plus one maximal entry and the
/// CBOR framing of the entries (a few bytes each: a `Ranges` answer of small entries may hold
/// some 20,000 of them, hence the 256 KiB).
pub const MAX_RESPONSE_BYTES: u64 = (RESPONSE_BYTE_BUDGET + MAX_ENTRY_LEN + 256 * 1024) as u64;

/// Largest sync request: a list of namespaces, one range, or [`MAX_RANGES_PER_FETCH`] ranges
/// (about 80 bytes each at most).
pub const MAX_REQUEST_BYTES: u64 = 16 * 1024;

/// Most ranges in one `Ranges` request. A fresh node backfilling many short feeds (one entry
/// each, say) would otherwise pay one round trip per feed; 128 ranges fill a request to about
/// 10 KiB, under [`MAX_REQUEST_BYTES`], and with [`MAX_IN_FLIGHT_PER_PEER`] requests in flight
/// keep 512 feeds on their way, what one reconciliation round can name.
pub const MAX_RANGES_PER_FETCH: usize = 128;

/// Most feed heads in one `Heads` response (about 120 bytes each on the wire).
pub const MAX_HEADS: usize = 10_000;

/// Most namespaces in one `Heads` request.
pub const MAX_NAMESPACES: usize = 64;

/// Fetch requests (`Range`, `Ranges`) outstanding to one peer at a time. A reconciliation
/// round, one at a time per peer, comes on top: [`MAX_OUTSTANDING_PER_PEER`] in all.
pub const MAX_IN_FLIGHT_PER_PEER: usize = 4;

/// Sync requests an honest node has outstanding to one peer at most: its fetches and the
/// round of its reconciliation session with that peer.
pub const MAX_OUTSTANDING_PER_PEER: usize = MAX_IN_FLIGHT_PER_PEER + 1;

/// Inbound sync requests one peer may have this node serve at once (queued, or answered and
/// not yet released); more are refused as busy at once. Twice what an honest peer has
/// outstanding: this node releases an answered request only when its swarm task handles the
/// "response sent" event, and by then the peer may have read the answer and sent its next
/// request. With four, as before, a round an honest peer sent beside its four fetches was
/// the fifth request and was refused, which ended its reconciliation session until the next
/// anti-entropy tick. A hostile peer holds no more than this many requests and
/// [`MAX_RESPONSE_BYTES_PER_PEER`] of answers.
pub const MAX_SERVED_PER_PEER: usize = 2 * MAX_OUTSTANDING_PER_PEER;

/// Bytes of sync responses one peer may hold on this node at once (answered but not yet read
/// by it): two full responses, so a peer that reads slowly holds 8 MiB, not 64 streams' worth.
pub const MAX_RESPONSE_BYTES_PER_PEER: usize = 2 * RESPONSE_BYTE_BUDGET;

/// Bytes of sync responses held on this node at once over all peers (64 MiB): what a node
/// may spend serving history, whatever many slow readers ask. Past it requests are refused
/// as busy, and peers try again at their next anti-entropy round.
pub const MAX_RESPONSE_BYTES_IN_FLIGHT: usize = 16 * RESPONSE_BYTE_BUDGET;

/// Inbound sync requests waiting for the node's sync server, over all peers. The server reads
/// the log on its own thread, so gossip never waits behind a backfill this node serves; past
/// this queue, requests are refused as busy.
pub const SERVE_QUEUE: usize = 256;

/// Range requests waiting for a free slot, per peer; more are dropped and found again at the
/// next anti-entropy round.
pub const MAX_QUEUED_PER_PEER: usize = 1024;

/// Consecutive ranges of one feed requested at once (the pipeline window). Equal to
/// [`MAX_IN_FLIGHT_PER_PEER`], so a single feed can keep every slot to a peer busy; with
/// [`MAX_RANGE`] it bounds what one feed can have in flight to 2,048 entries, well inside
/// `MAX_PENDING` should responses arrive out of order.
pub const PIPELINED_RANGES_PER_FEED: u64 = MAX_IN_FLIGHT_PER_PEER as u64;

/// A range to fetch from a peer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RangeRequest {
    pub feed: FeedKey,
    pub from_seq: u64,
    pub to_seq: u64,
    /// The peer's head seq for this feed when the range was planned: fetching continues until
    /// our head reaches it.
    pub target_seq: u64,
    /// Seqs after `to_seq` already requested by the other ranges of this range's window: once
    /// this range is complete, the next one starts at `to_seq + 1 + lookahead`. Zero for a
    /// range fetched on its own (a gap, a fork's entry).
    pub lookahead: u64,
}

/// What fetching entries from peers cost this node since it started: `Range` and `Ranges`
/// requests sent, and the bytes of the envelopes that came back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchCost {
    pub requests: u64,
    pub bytes: u64,
}

/// A range a peer answered, with the envelopes it sent for it (not yet checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedRange {
    pub range: RangeRequest,
    pub entries: Vec<Vec<u8>>,
}

/// A validated `Range` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidRange {
    pub feed: FeedKey,
    pub from_seq: u64,
    pub to_seq: u64,
}

impl SyncResponse {
    /// About how many bytes the response takes in memory and on the wire (its entries or
    /// heads; the framing is small next to them).
    pub fn size(&self) -> usize {
        match self {
            SyncResponse::Heads { heads } => heads
                .iter()
                .map(|head| head.namespace.len() + head.author.len() + head.id.len() + 16)
                .sum(),
            SyncResponse::Entries { entries } => entries.iter().map(|entry| entry.len() + 8).sum(),
            SyncResponse::Reconciled { answers } => answers
                .iter()
                .map(|answer| match answer {
                    WireAnswer::Equal => 8,
                    WireAnswer::Items { items } => items.len() * 96,
                    WireAnswer::Split { parts } => parts.len() * 96,
                })
                .sum(),
            SyncResponse::RangeEntries { ranges } => {
                ranges.iter().flatten().map(|entry| entry.len() + 8).sum()
            }
            SyncResponse::Refused { reason } => reason.len(),
        }
    }
}

impl SyncRequest {
    /// Builds the `Range` request for a planned range.
    pub fn range(range: &RangeRequest) -> SyncRequest {
        SyncRequest::Range {
            namespace: range.feed.namespace.clone(),
            author: ByteBuf::from(range.feed.author.as_bytes().to_vec()),
            from_seq: range.from_seq,
            to_seq: range.to_seq,
        }
    }

    /// Builds the `Ranges` request for planned ranges of one namespace (the first range's; the
    /// caller batches ranges of one namespace only, see [`take_batch`]).
    pub fn ranges(ranges: &[RangeRequest]) -> SyncRequest {
        SyncRequest::Ranges {
            namespace: ranges
                .first()
                .map(|range| range.feed.namespace.clone())
                .unwrap_or_default(),
            ranges: ranges
                .iter()
                .map(|range| WireRange {
                    author: ByteBuf::from(range.feed.author.as_bytes().to_vec()),
                    from_seq: range.from_seq,
                    to_seq: range.to_seq,
                })
                .collect(),
        }
    }
}

/// Why a peer's `Range` request is refused; the text goes back to the peer in
/// `SyncResponse::Refused`.
#[derive(Debug, thiserror::Error)]
pub enum RangeError {
    #[error("{0}")]
    Namespace(#[source] plexus_protocol::EntryError),
    #[error("author: {0}")]
    Author(#[source] plexus_crypto::IdentityError),
    #[error("bad range {from_seq}..={to_seq}: seqs start at 1 and must ascend")]
    Seqs { from_seq: u64, to_seq: u64 },
}

/// Why a peer's `Ranges` request is refused; the text goes back to the peer in
/// `SyncResponse::Refused`, after `bad ranges request: `.
#[derive(Debug, thiserror::Error)]
pub enum RangesError {
    #[error("{count} ranges; a request names 1 to {MAX_RANGES_PER_FETCH}")]
    Count { count: usize },
    #[error("range {index}: {source}")]
    Range {
        index: usize,
        #[source]
        source: RangeError,
    },
}

/// Checks a `Range` request from a peer; the error says what is wrong.
pub fn validate_range(
    namespace: &str,
    author: &[u8],
    from_seq: u64,
    to_seq: u64,
) -> Result<ValidRange, RangeError> {
    check_name("namespace", namespace).map_err(RangeError::Namespace)?;
    let author = AgentId::from_slice(author).map_err(RangeError::Author)?;
    if from_seq == 0 || to_seq < from_seq {
        return Err(RangeError::Seqs { from_seq, to_seq });
    }
    Ok(ValidRange {
        feed: FeedKey {
            namespace: namespace.to_owned(),
            author,
        },
        from_seq,
        to_seq: to_seq.min(from_seq.saturating_add(MAX_RANGE - 1)),
    })
}

/// Checks a `Ranges` request from a peer: 1 to [`MAX_RANGES_PER_FETCH`] ranges, each valid
/// as a `Range` request (and capped the same way); the error names the first bad range.
pub fn validate_ranges(
    namespace: &str,
    ranges: &[WireRange],
) -> Result<Vec<ValidRange>, RangesError> {
    if ranges.is_empty() || ranges.len() > MAX_RANGES_PER_FETCH {
        return Err(RangesError::Count {
            count: ranges.len(),
        });
    }
    ranges
        .iter()
        .enumerate()
        .map(|(index, range)| {
            validate_range(namespace, &range.author, range.from_seq, range.to_seq)
                .map_err(|source| RangesError::Range { index, source })
        })
        .collect()
}

/// Takes the ranges of the next `Ranges` request from the front of a peer's queue: ranges of
/// the first one's namespace, at most one per feed (the ranges of a feed's pipeline window go
/// in separate requests, so the peer keeps sending one while this node writes another), at
/// most [`MAX_RANGES_PER_FETCH`]; it stops at the first range that does not fit, so ranges
/// keep their queue order.
pub fn take_batch(queue: &mut VecDeque<RangeRequest>) -> Vec<RangeRequest> {
    let mut batch: Vec<RangeRequest> = Vec::new();
    let mut authors = HashSet::new();
    while let Some(next) = queue.front() {
        let fits = batch.len() < MAX_RANGES_PER_FETCH
            && batch
                .first()
                .is_none_or(|first| first.feed.namespace == next.feed.namespace)
            && !authors.contains(&next.feed.author);
        if !fits {
            break;
        }
        authors.insert(next.feed.author);
        batch.extend(queue.pop_front());
    }
    batch
}

/// Decodes a peer's head list, dropping malformed items (they are reported by count).
pub fn decode_heads(heads: &[WireHead]) -> (Vec<(FeedKey, FeedHead)>, usize) {
    let mut good = Vec::with_capacity(heads.len());
    let mut bad = 0;
    for head in heads.iter().take(MAX_HEADS) {
        let author = AgentId::from_slice(&head.author);
        let id = Hash256::from_slice(&head.id);
        match (check_name("namespace", &head.namespace), author, id) {
            (Ok(()), Ok(author), Some(id)) if head.seq > 0 => good.push((
                FeedKey {
                    namespace: head.namespace.clone(),
                    author,
                },
                FeedHead { seq: head.seq, id },
            )),
            _ => bad += 1,
        }
    }
    (good, bad + heads.len().saturating_sub(MAX_HEADS))
}

/// Plans what to fetch given a peer's heads and a lookup of ours. `id_at` returns our id at a
/// seq of a feed (used to spot forks where the peer is not ahead).
pub fn plan(
    theirs: &[(FeedKey, FeedHead)],
    mut our_head: impl FnMut(&FeedKey) -> Option<FeedHead>,
    mut id_at: impl FnMut(&FeedKey, u64) -> Option<Hash256>,
) -> Vec<RangeRequest> {
    let mut ranges = Vec::new();
    for (feed, their) in theirs {
        let ours = our_head(feed);
        let our_seq = ours.map_or(0, |head| head.seq);
        if their.seq > our_seq {
            ranges.extend(window(feed, our_seq + 1, their.seq));
        } else if id_at(feed, their.seq).is_some_and(|id| id != their.id) {
            // Same seq, different entry: fetch theirs to form the fork proof.
            ranges.push(RangeRequest {
                feed: feed.clone(),
                from_seq: their.seq,
                to_seq: their.seq,
                target_seq: their.seq,
                lookahead: 0,
            });
        }
    }
    ranges
}

/// What to request after a response to `range` whose last entry had seq `fetched_to` (`None`
/// for an empty response) was stored or held: the rest of the range if the response was cut
/// short, otherwise the range just past the window, if the peer's head is beyond it.
pub fn next_range(range: &RangeRequest, fetched_to: Option<u64>) -> Option<RangeRequest> {
    let fetched_to = fetched_to?;
    if fetched_to < range.from_seq || fetched_to > range.to_seq {
        return None;
    }
    let from_seq = if fetched_to < range.to_seq {
        fetched_to + 1
    } else {
        range.to_seq.checked_add(1 + range.lookahead)?
    };
    if from_seq > range.target_seq {
        return None;
    }
    let to_seq = if fetched_to < range.to_seq {
        range.to_seq
    } else {
        range.target_seq.min(from_seq.saturating_add(MAX_RANGE - 1))
    };
    Some(RangeRequest {
        feed: range.feed.clone(),
        from_seq,
        to_seq,
        target_seq: range.target_seq,
        lookahead: range.lookahead,
    })
}

/// The first window of ranges fetching `from_seq..=target_seq` of a feed: up to
/// [`PIPELINED_RANGES_PER_FEED`] consecutive ranges of [`MAX_RANGE`] entries.
fn window(feed: &FeedKey, from_seq: u64, target_seq: u64) -> Vec<RangeRequest> {
    let mut ranges = Vec::new();
    let mut start = from_seq;
    while start <= target_seq && (ranges.len() as u64) < PIPELINED_RANGES_PER_FEED {
        let end = target_seq.min(start.saturating_add(MAX_RANGE - 1));
        ranges.push(RangeRequest {
            feed: feed.clone(),
            from_seq: start,
            to_seq: end,
            target_seq,
            lookahead: 0,
        });
        start = end.saturating_add(1);
    }
    // Each range is followed by the other ranges of the window, all full but the last (which
    // ends at the target and has no successor): each slot of the window advances by the
    // window's width.
    let lookahead = (ranges.len() as u64).saturating_sub(1) * MAX_RANGE;
    for range in &mut ranges {
        range.lookahead = lookahead;
    }
    ranges
}

/// Heads to wire form.
pub fn encode_heads(heads: &[(FeedKey, FeedHead)]) -> Vec<WireHead> {
    heads
        .iter()
        .take(MAX_HEADS)
        .map(|(feed, head)| WireHead {
            namespace: feed.namespace.clone(),
            author: ByteBuf::from(feed.author.as_bytes().to_vec()),
            seq: head.seq,
            id: ByteBuf::from(head.id.as_bytes().to_vec()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use plexus_crypto::{sha256, Keypair};

    fn feed(seed: u8) -> FeedKey {
        FeedKey {
            namespace: "ns".into(),
            author: Keypair::from_seed(&[seed; 32]).agent_id(),
        }
    }

    #[test]
    fn plan_fetches_what_is_missing_in_bounded_ranges() {
        let ahead = feed(1);
        let equal = feed(2);
        let forked = feed(3);
        let theirs = vec![
            (
                ahead.clone(),
                FeedHead {
                    seq: 2000,
                    id: sha256(b"a"),
                },
            ),
            (
                equal.clone(),
                FeedHead {
                    seq: 5,
                    id: sha256(b"same"),
                },
            ),
            (
                forked.clone(),
                FeedHead {
                    seq: 3,
                    id: sha256(b"theirs"),
                },
            ),
        ];
        let ranges = plan(
            &theirs,
            |feed| match feed.author {
                a if a == ahead.author => Some(FeedHead {
                    seq: 10,
                    id: sha256(b"x"),
                }),
                _ => Some(FeedHead {
                    seq: 5,
                    id: sha256(b"same"),
                }),
            },
            |feed, _| {
                if feed.author == forked.author {
                    Some(sha256(b"ours"))
                } else {
                    Some(sha256(b"same"))
                }
            },
        );
        // 1,990 missing entries: a window of four ranges, the last one short.
        let window = |from_seq, to_seq| RangeRequest {
            feed: ahead.clone(),
            from_seq,
            to_seq,
            target_seq: 2000,
            lookahead: 3 * MAX_RANGE,
        };
        assert_eq!(
            ranges,
            vec![
                window(11, 10 + MAX_RANGE),
                window(11 + MAX_RANGE, 10 + 2 * MAX_RANGE),
                window(11 + 2 * MAX_RANGE, 10 + 3 * MAX_RANGE),
                window(11 + 3 * MAX_RANGE, 2000),
                RangeRequest {
                    feed: forked,
                    from_seq: 3,
                    to_seq: 3,
                    target_seq: 3,
                    lookahead: 0,
                },
            ]
        );
    }

    /// Plays a backfill of `target` entries against a peer that cuts responses at
    /// `per_response` entries, completing the oldest outstanding range first; returns every
    /// seq fetched, sorted, and the most ranges ever outstanding at once.
    fn play_backfill(target: u64, per_response: u64) -> (Vec<u64>, usize) {
        let mut outstanding: std::collections::VecDeque<RangeRequest> = plan(
            &[(
                feed(1),
                FeedHead {
                    seq: target,
                    id: sha256(b"head"),
                },
            )],
            |_| None,
            |_, _| None,
        )
        .into();
        let mut fetched = Vec::new();
        let mut most = outstanding.len();
        while let Some(range) = outstanding.pop_front() {
            let last = range.to_seq.min(range.from_seq + per_response - 1);
            fetched.extend(range.from_seq..=last);
            outstanding.extend(next_range(&range, Some(last)));
            most = most.max(outstanding.len());
        }
        fetched.sort_unstable();
        (fetched, most)
    }

    #[test]
    fn a_pipelined_backfill_fetches_every_seq_once_within_the_window() {
        for (target, per_response) in [
            (1, 512),
            (100, 512),
            (2048, 512),
            (2049, 512),
            (100_000, 512),
            (100_000, 100),
            (5_000, 1),
        ] {
            let (fetched, most) = play_backfill(target, per_response);
            assert_eq!(
                fetched,
                (1..=target).collect::<Vec<_>>(),
                "target {target}, {per_response} entries per response"
            );
            assert!(
                most as u64 <= PIPELINED_RANGES_PER_FEED,
                "{most} outstanding"
            );
        }
    }

    #[test]
    fn nothing_follows_an_empty_or_unrelated_response() {
        let range = RangeRequest {
            feed: feed(1),
            from_seq: 10,
            to_seq: 20,
            target_seq: 100,
            lookahead: 0,
        };
        assert_eq!(next_range(&range, None), None);
        assert_eq!(next_range(&range, Some(9)), None);
        assert_eq!(next_range(&range, Some(21)), None);
        let single = RangeRequest {
            to_seq: 10,
            target_seq: 10,
            ..range
        };
        assert_eq!(next_range(&single, Some(10)), None);
    }

    #[test]
    fn range_requests_are_validated_and_capped() {
        let author = Keypair::from_seed(&[1; 32]).agent_id();
        let range = validate_range("ns", author.as_bytes(), 1, 1_000_000).unwrap();
        assert_eq!(range.to_seq, MAX_RANGE);
        assert!(matches!(
            validate_range("NS", author.as_bytes(), 1, 2),
            Err(RangeError::Namespace(_))
        ));
        assert!(validate_range("ns", &[0; 5], 1, 2)
            .unwrap_err()
            .to_string()
            .starts_with("author: "));
        let backwards = validate_range("ns", author.as_bytes(), 5, 2).unwrap_err();
        assert_eq!(
            backwards.to_string(),
            "bad range 5..=2: seqs start at 1 and must ascend"
        );
        assert!(validate_range("ns", author.as_bytes(), 0, 2).is_err());
    }

    #[test]
    fn a_batch_takes_one_namespace_and_one_range_per_feed_in_queue_order() {
        let range = |seed: u8, namespace: &str, from_seq: u64| RangeRequest {
            feed: FeedKey {
                namespace: namespace.into(),
                ..feed(seed)
            },
            from_seq,
            to_seq: from_seq,
            target_seq: from_seq,
            lookahead: 0,
        };
        let mut queue: VecDeque<RangeRequest> = [
            range(1, "ns", 1),
            range(2, "ns", 1),
            // A second range of feed 1 (its window's next): the batch stops before it.
            range(1, "ns", 2),
            range(3, "ns", 1),
        ]
        .into();
        assert_eq!(
            take_batch(&mut queue),
            vec![range(1, "ns", 1), range(2, "ns", 1)]
        );
        assert_eq!(
            take_batch(&mut queue),
            vec![range(1, "ns", 2), range(3, "ns", 1)]
        );
        assert!(take_batch(&mut queue).is_empty());
        // Another namespace ends a batch; a long queue is cut at the limit.
        let mut queue: VecDeque<RangeRequest> = (0..200u8)
            .map(|seed| range(seed, "ns", 1))
            .chain([range(1, "other", 1)])
            .collect();
        assert_eq!(take_batch(&mut queue).len(), MAX_RANGES_PER_FETCH);
        assert_eq!(take_batch(&mut queue).len(), 200 - MAX_RANGES_PER_FETCH);
        assert_eq!(take_batch(&mut queue), vec![range(1, "other", 1)]);
    }

    #[test]
    fn ranges_requests_are_validated_naming_the_first_bad_range() {
        let author = Keypair::from_seed(&[1; 32]).agent_id();
        let wire = |from_seq, to_seq| WireRange {
            author: ByteBuf::from(author.as_bytes().to_vec()),
            from_seq,
            to_seq,
        };
        let valid = validate_ranges("ns", &[wire(1, 3), wire(5, u64::MAX)]).unwrap();
        assert_eq!(
            valid[1].to_seq,
            5 + MAX_RANGE - 1,
            "capped as a Range request is"
        );
        assert_eq!(
            validate_ranges("ns", &[]).unwrap_err().to_string(),
            format!("0 ranges; a request names 1 to {MAX_RANGES_PER_FETCH}")
        );
        let too_many = vec![wire(1, 1); MAX_RANGES_PER_FETCH + 1];
        assert!(matches!(
            validate_ranges("ns", &too_many),
            Err(RangesError::Count { .. })
        ));
        assert_eq!(
            validate_ranges("ns", &[wire(1, 3), wire(4, 2), wire(0, 1)])
                .unwrap_err()
                .to_string(),
            "range 1: bad range 4..=2: seqs start at 1 and must ascend"
        );
        let short_author = WireRange {
            author: ByteBuf::from(vec![7; 31]),
            from_seq: 1,
            to_seq: 1,
        };
        assert!(validate_ranges("ns", &[short_author])
            .unwrap_err()
            .to_string()
            .starts_with("range 0: author: "));
    }

    #[test]
    fn malformed_heads_are_dropped_and_counted() {
        let good = encode_heads(&[(
            feed(1),
            FeedHead {
                seq: 3,
                id: sha256(b"x"),
            },
        )]);
        let mut heads = good.clone();
        heads.push(WireHead {
            namespace: "ns".into(),
            author: ByteBuf::from(vec![1, 2, 3]),
            seq: 1,
            id: ByteBuf::from(vec![0; 32]),
        });
        let (decoded, bad) = decode_heads(&heads);
        assert_eq!(decoded.len(), 1);
        assert_eq!(bad, 1);
    }
}
