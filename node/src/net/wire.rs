//! The messages of `/plexus/sync/1` as they go over the wire (CBOR through libp2p's
//! request-response codec, docs/PROTOCOL.md §8): plain serde structs and nothing else.
//!
//! Kept apart, with no dependency but serde and serde_bytes, so that the fuzz target
//! `sync_codec` (fuzz/src/checks.rs) compiles this very file and decodes untrusted bytes into
//! these types exactly as the node's codec does, without building the node (and RocksDB) under
//! a sanitizer. [`super::sync`] and [`super::reconcile`] re-export the types and hold their
//! methods and checks.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// A sync request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncRequest {
    /// "Which feeds do you have in these namespaces, and how far?"
    Heads { namespaces: Vec<String> },
    /// "Send me entries `from_seq..=to_seq` of this feed."
    Range {
        namespace: String,
        author: ByteBuf,
        from_seq: u64,
        to_seq: u64,
    },
    /// One round of range-based reconciliation of a namespace's feed heads: "here are my
    /// fingerprints of these ranges" (see [`super::reconcile`]).
    Reconcile {
        namespace: String,
        ranges: Vec<WireRangeQuery>,
    },
    /// "Send me these ranges of these feeds of one namespace": up to
    /// [`MAX_RANGES_PER_FETCH`] `Range` requests in one, answered by `RangeEntries`.
    Ranges {
        namespace: String,
        ranges: Vec<WireRange>,
    },
}

/// One range of a `Ranges` request: entries `from_seq..=to_seq` of the feed of `author`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireRange {
    pub author: ByteBuf,
    pub from_seq: u64,
    pub to_seq: u64,
}

/// A sync response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncResponse {
    Heads {
        heads: Vec<WireHead>,
    },
    /// Envelopes in ascending seq, starting at the requested `from_seq`.
    Entries {
        entries: Vec<ByteBuf>,
    },
    /// One answer per range of a `Reconcile` request, in order.
    Reconciled {
        answers: Vec<WireAnswer>,
    },
    /// The answer to `Ranges`: for each range answered, in request order, its envelopes in
    /// ascending seq from its `from_seq`. Lists stop at the response byte budget: the ranges
    /// after the last list were not answered (`Log::entries_ranges`, docs/PROTOCOL.md §8.2).
    RangeEntries {
        ranges: Vec<Vec<ByteBuf>>,
    },
    /// The request was malformed or could not be served.
    Refused {
        reason: String,
    },
}

/// One feed head on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireHead {
    pub namespace: String,
    pub author: ByteBuf,
    pub seq: u64,
    pub id: ByteBuf,
}

/// One range of a `Reconcile` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireRangeQuery {
    /// Inclusive lower bound: 32 bytes.
    pub lower: ByteBuf,
    /// Exclusive upper bound: 32 bytes, or null for the end of the key space.
    pub upper: Option<ByteBuf>,
    /// The requester's fingerprint of its items in the range: 32 bytes.
    pub fingerprint: ByteBuf,
}

/// The answer to one range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireAnswer {
    Equal,
    Items { items: Vec<WireItem> },
    Split { parts: Vec<WirePart> },
}

/// One feed head in an `Items` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireItem {
    pub author: ByteBuf,
    pub seq: u64,
    pub id: ByteBuf,
}

/// One part of a `Split` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WirePart {
    pub upper: Option<ByteBuf>,
    pub fingerprint: ByteBuf,
}
