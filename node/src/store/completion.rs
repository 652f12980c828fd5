//! Completing a stored entry whose body was pruned, when a copy with the body arrives.
//!
//! A pruned entry (body `null`, `docs/PROTOCOL.md` §3.3) is valid: its id, signature and
//! chain do not depend on the body. Backfill may bring one into an open namespace (an export
//! keeps rivals pruned, a peer may have pruned), and until now the full copy that came later
//! was dropped as a duplicate, so that node never saw the claim or task it carries. Now the
//! full copy, once its body is checked against the signed hash and length (the decoder does
//! that) and against its kind, replaces the stored envelope under the same key, and a new
//! journal record points at it, so whatever follows the journal (the coordination view)
//! applies the entry with its body. The entry keeps its id, seq and place in the feed.

//!
//! The write itself is staged by the one write path (`write.rs`, `Log::complete_pruned`);
//! this module holds the lookups.

use plexus_crypto::Hash256;
use plexus_protocol::Entry;

use super::{decode_stored, Log, StoreError, CF_ENTRIES, CF_IDS};

impl Log {
    /// Whether the entry `id` is stored without its body (a point read; `false` if it is not
    /// stored at all).
    pub fn stored_without_body(&self, id: &Hash256) -> Result<bool, StoreError> {
        Ok(self
            .stored_key_and_entry(id)?
            .is_some_and(|(_, stored)| stored.body().is_none()))
    }

    /// The `entries` key and the stored copy of the entry `id`, if it is stored.
    pub(super) fn stored_key_and_entry(
        &self,
        id: &Hash256,
    ) -> Result<Option<(Vec<u8>, Entry)>, StoreError> {
        let Some(key) = self.db.get_cf(self.cf(CF_IDS), id.as_bytes())? else {
            return Ok(None);
        };
        let Some(bytes) = self.db.get_pinned_cf(self.cf(CF_ENTRIES), &key)? else {
            return Ok(None);
        };
        Ok(Some((key, decode_stored(&bytes)?)))
    }
}
