//! The wire form of range-based reconciliation (`Reconcile` / `Reconciled` on
//! `/plexus/sync/1`), its checks, and what the swarm task tells the node's reconciler.
//!
//! The algorithm is [`plexus_protocol::reconcile`]; this module only converts its messages to
//! and from CBOR-friendly structs, refusing malformed ones with a reason, and counts what
//! reconciliation costs on the wire (`NetStatus::reconcile_*`).

use libp2p::PeerId;
use plexus_protocol::entry::check_name;
use plexus_protocol::reconcile::{
    Fingerprint, Item, Key, KeyRange, Part, RangeAnswer, RangeQuery, KEY_LEN, MAX_LEAF_ITEMS,
    MAX_RANGES_PER_REQUEST, SPLIT_FACTOR,
};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::sync::SyncRequest;
pub use super::wire::{WireAnswer, WireItem, WirePart, WireRangeQuery};

/// Requests and answers waiting for the node's reconciler, from the swarm task. Each event is
/// small; past this queue a start is dropped (the next anti-entropy round tries again) and a
/// session whose answer is dropped ends after [`SESSION_TIMEOUT_SECS`].
pub const RECONCILER_QUEUE: usize = 256;

/// A session waiting longer than this for an answer (lost to a full queue, a closed
/// connection) is dropped when the next one for the peer starts.
pub const SESSION_TIMEOUT_SECS: u64 = 60;

/// What the swarm task hands to the node's reconciler (see `node::reconcile`).
#[derive(Debug)]
pub enum ReconcileEvent {
    /// Start a session with `peer` over these namespaces (unless one is running).
    Start {
        peer: PeerId,
        namespaces: Vec<String>,
    },
    /// The peer's answers to the session's outstanding request; `None` when it refused or the
    /// request failed, which ends the session.
    Answers {
        peer: PeerId,
        answers: Option<Vec<WireAnswer>>,
    },
    /// The peer disconnected: forget its session.
    Gone { peer: PeerId },
}

/// What reconciling feed heads cost this node as initiator, since it started: sessions begun,
/// messages (requests sent and answers received) and their CBOR-encoded bytes, and of those
/// the rounds (requests) sent and their bytes, so that each direction can be told apart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileCost {
    pub sessions: u64,
    pub messages: u64,
    pub bytes: u64,
    /// Requests sent, one per round (a round refused as busy and sent again counts twice).
    #[serde(default)]
    pub rounds: u64,
    /// Bytes of the requests sent; the rest of `bytes` is the answers received.
    #[serde(default)]
    pub bytes_sent: u64,
}

/// Why a `Reconcile` request or answer is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("namespace: {0}")]
    Namespace(String),
    #[error("{count} ranges, over the limit of {MAX_RANGES_PER_REQUEST}")]
    TooManyRanges { count: usize },
    #[error("range {index}: {field} must be {KEY_LEN} bytes, got {len}")]
    BadLength {
        index: usize,
        field: &'static str,
        len: usize,
    },
    #[error(
        "range {index} is empty, overlaps the one before or follows an unbounded one; ranges \
         must be nonempty, disjoint and ascending"
    )]
    Unordered { index: usize },
    #[error("answer {index}: {what}")]
    BadAnswer { index: usize, what: String },
}

/// Builds a `Reconcile` request.
pub fn encode_request(namespace: &str, queries: &[RangeQuery]) -> SyncRequest {
    SyncRequest::Reconcile {
        namespace: namespace.to_owned(),
        ranges: queries
            .iter()
            .map(|query| WireRangeQuery {
                lower: ByteBuf::from(query.range.lower.to_vec()),
                upper: query.range.upper.map(|upper| ByteBuf::from(upper.to_vec())),
                fingerprint: ByteBuf::from(query.fingerprint.0.to_vec()),
            })
            .collect(),
    }
}

/// Checks a `Reconcile` request: a valid namespace, at most [`MAX_RANGES_PER_REQUEST`]
/// nonempty ranges, disjoint and ascending, with 32-byte bounds and fingerprints.
pub fn decode_request(
    namespace: &str,
    ranges: &[WireRangeQuery],
) -> Result<Vec<RangeQuery>, WireError> {
    check_name("namespace", namespace).map_err(|error| WireError::Namespace(error.to_string()))?;
    if ranges.len() > MAX_RANGES_PER_REQUEST {
        return Err(WireError::TooManyRanges {
            count: ranges.len(),
        });
    }
    let mut queries: Vec<RangeQuery> = Vec::with_capacity(ranges.len());
    for (index, wire) in ranges.iter().enumerate() {
        let lower = key(index, "lower", &wire.lower)?;
        let upper = wire
            .upper
            .as_ref()
            .map(|upper| key(index, "upper", upper))
            .transpose()?;
        let fingerprint = Fingerprint(key(index, "fingerprint", &wire.fingerprint)?);
        let range = KeyRange { lower, upper };
        let after_previous = queries
            .last()
            .is_none_or(|previous| previous.range.upper.is_some_and(|end| end <= lower));
        if !range.is_nonempty() || !after_previous {
            return Err(WireError::Unordered { index });
        }
        queries.push(RangeQuery { range, fingerprint });
    }
    Ok(queries)
}

/// Answers to wire form.
pub fn encode_answers(answers: &[RangeAnswer]) -> Vec<WireAnswer> {
    answers
        .iter()
        .map(|answer| match answer {
            RangeAnswer::Equal => WireAnswer::Equal,
            RangeAnswer::Items(items) => WireAnswer::Items {
                items: items
                    .iter()
                    .map(|item| WireItem {
                        author: ByteBuf::from(item.key.to_vec()),
                        seq: item.seq,
                        id: ByteBuf::from(item.id.to_vec()),
                    })
                    .collect(),
            },
            RangeAnswer::Split(parts) => WireAnswer::Split {
                parts: parts
                    .iter()
                    .map(|part| WirePart {
                        upper: part.upper.map(|upper| ByteBuf::from(upper.to_vec())),
                        fingerprint: ByteBuf::from(part.fingerprint.0.to_vec()),
                    })
                    .collect(),
            },
        })
        .collect()
}

/// Answers from wire form; sizes are checked here, the rest by the session.
pub fn decode_answers(answers: Vec<WireAnswer>) -> Result<Vec<RangeAnswer>, WireError> {
    let mut decoded = Vec::with_capacity(answers.len().min(MAX_RANGES_PER_REQUEST));
    for (index, answer) in answers.into_iter().enumerate() {
        decoded.push(match answer {
            WireAnswer::Equal => RangeAnswer::Equal,
            WireAnswer::Items { items } if items.len() <= MAX_LEAF_ITEMS => RangeAnswer::Items(
                items
                    .iter()
                    .map(|item| {
                        Ok(Item {
                            key: key(index, "author", &item.author)?,
                            seq: item.seq,
                            id: key(index, "id", &item.id)?,
                        })
                    })
                    .collect::<Result<_, WireError>>()?,
            ),
            WireAnswer::Split { parts } if parts.len() <= SPLIT_FACTOR => RangeAnswer::Split(
                parts
                    .iter()
                    .map(|part| {
                        Ok(Part {
                            upper: part
                                .upper
                                .as_ref()
                                .map(|upper| key(index, "upper", upper))
                                .transpose()?,
                            fingerprint: Fingerprint(key(index, "fingerprint", &part.fingerprint)?),
                        })
                    })
                    .collect::<Result<_, WireError>>()?,
            ),
            _ => {
                return Err(WireError::BadAnswer {
                    index,
                    what: format!(
                        "over {MAX_LEAF_ITEMS} items or {SPLIT_FACTOR} parts in one answer"
                    ),
                })
            }
        });
    }
    Ok(decoded)
}

/// Bytes of a value once CBOR-encoded (as the sync codec sends it).
pub fn encoded_len(value: &impl Serialize) -> u64 {
    struct Counter(u64);
    impl std::io::Write for Counter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len() as u64;
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    let _ = ciborium::into_writer(value, &mut counter);
    counter.0
}

fn key(index: usize, field: &'static str, bytes: &[u8]) -> Result<Key, WireError> {
    Key::try_from(bytes).map_err(|_| WireError::BadLength {
        index,
        field,
        len: bytes.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(lower: u8, upper: Option<u8>) -> WireRangeQuery {
        WireRangeQuery {
            lower: ByteBuf::from(vec![lower; 32]),
            upper: upper.map(|upper| ByteBuf::from(vec![upper; 32])),
            fingerprint: ByteBuf::from(vec![0; 32]),
        }
    }

    #[test]
    fn malformed_requests_are_refused_with_where_and_why() {
        assert!(decode_request("ns", &[wire(0, Some(5)), wire(5, None)]).is_ok());
        assert_eq!(
            decode_request("ns", &[wire(0, Some(5)), wire(4, None)]),
            Err(WireError::Unordered { index: 1 })
        );
        assert_eq!(
            decode_request("ns", &[wire(0, None), wire(4, None)]),
            Err(WireError::Unordered { index: 1 })
        );
        assert_eq!(
            decode_request("ns", &[wire(5, Some(5))]),
            Err(WireError::Unordered { index: 0 })
        );
        let mut short = wire(0, None);
        short.fingerprint = ByteBuf::from(vec![0; 31]);
        assert_eq!(
            decode_request("ns", &[short]),
            Err(WireError::BadLength {
                index: 0,
                field: "fingerprint",
                len: 31
            })
        );
        let many: Vec<_> = (0..=MAX_RANGES_PER_REQUEST as u8)
            .map(|index| wire(index, Some(index + 1)))
            .collect();
        assert!(matches!(
            decode_request("ns", &many),
            Err(WireError::TooManyRanges { .. })
        ));
        assert!(matches!(
            decode_request("NS", &[wire(0, None)]),
            Err(WireError::Namespace(_))
        ));
    }

    #[test]
    fn oversized_answers_are_refused_before_they_are_used() {
        let item = WireItem {
            author: ByteBuf::from(vec![1; 32]),
            seq: 1,
            id: ByteBuf::from(vec![2; 32]),
        };
        let too_many = WireAnswer::Items {
            items: vec![item.clone(); MAX_LEAF_ITEMS + 1],
        };
        assert!(matches!(
            decode_answers(vec![WireAnswer::Equal, too_many]),
            Err(WireError::BadAnswer { index: 1, .. })
        ));
        let short_id = WireAnswer::Items {
            items: vec![WireItem {
                id: ByteBuf::from(vec![2; 3]),
                ..item
            }],
        };
        assert_eq!(
            decode_answers(vec![short_id]),
            Err(WireError::BadLength {
                index: 0,
                field: "id",
                len: 3
            })
        );
    }
}
