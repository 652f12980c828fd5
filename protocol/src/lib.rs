//! The Plexus protocol: entry format, canonical CBOR, feeds and forks, and the audit export
//! format, as pure logic.
//!
//! Nothing here does I/O or reads the clock: functions take bytes (and, where time matters, a
//! `now` passed in) and return decisions. Untrusted bytes never panic: the crate denies
//! `unwrap`, `expect`, indexing and `panic!` outside tests, and every decoder checks sizes before
//! parsing.
//!
//! - [`admit`]: the stateless checks every received entry passes before it may be stored.
//! - [`cbor`]: strict canonical CBOR (decode, re-encode, compare) and item framing.
//! - [`value`]: the canonical form of free-form JSON-like body data.
//! - [`kind`]: the closed set of entry kinds ([`Kind`]).
//! - [`body`]: every kind's body type, parsed and checked in one place ([`body::Body`]).
//! - [`entry`]: the signed entry, its encoding, id and signature input.
//! - [`feed`]: chains, placement of incoming entries, fork detection and proofs.
//! - [`coord`]: the coordination kinds and the deterministic view folded from them.
//! - [`policy`]: governed namespaces: policy entries and the pure accept/reject decision.
//! - [`export`]: the self-contained audit export file's header and signed trailer.
//! - [`reconcile`]: range-based set reconciliation of feed heads (fingerprints, splits, the
//!   initiator's state machine).

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod admit;
pub mod body;
pub mod cbor;
pub mod coord;
pub mod entry;
pub mod export;
pub mod feed;
pub mod kind;
pub mod policy;
pub mod reconcile;
pub mod value;

pub use entry::{Draft, Entry, EntryError, EntryView, Header, MAX_BODY_LEN, MAX_ENTRY_LEN};
pub use feed::{ChainEvent, ChainTracker, FeedHead, FeedKey, ForkProof, ForkProofError, Placement};
pub use kind::{Kind, UnknownKind};
