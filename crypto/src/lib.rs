//! Ed25519 identities, SHA-256 hashing, key-file text and (batch) signature verification.
//!
//! This crate is deliberately small and boring: newtypes over `ed25519-dalek` and `sha2`, and no
//! knowledge of the Plexus protocol. It does no I/O: key files are produced and parsed as text
//! here, and read or written by the node, which also enforces their permissions using
//! [`check_key_file_mode`].
//!
//! Invariants:
//! - An [`AgentId`] is always a valid, non-weak Ed25519 public key: the checks happen once, at
//!   construction, so batch verification never sees a small-order key.
//! - Secret material never appears in `Debug` output or error messages.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

#[cfg(any(test, feature = "crafted"))]
pub mod crafted;
mod hash;
mod identity;
mod verify;

pub use hash::{sha256, Hash256, Sha256Stream, HASH_LEN};
pub use identity::{
    check_key_file_mode, AgentId, AgentIdCache, IdentityError, Keypair, Signature,
    AGENT_ID_CACHE_SLOTS, KEY_FILE_HEADER, PUBLIC_KEY_LEN, SIGNATURE_LEN,
};
pub use verify::{
    verify_batch_parallel, verify_batch_with_fallback, BatchItem, VerifyError, BATCH_CHUNK,
};
