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

use rocksdb::WriteBatch;

use plexus_crypto::Hash256;
use plexus_protocol::Entry;

use super::{
    decode_stored, keys, Counters, IngestOutcome, Log, StoreError, CF_ENTRIES, CF_IDS, CF_JOURNAL,
};

impl Log {
    /// Whether the entry `id` is stored without its body (a point read; `false` if it is not
    /// stored at all).
    pub fn stored_without_body(&self, id: &Hash256) -> Result<bool, StoreError> {
        Ok(self
            .stored_key_and_entry(id)?
            .is_some_and(|(_, stored)| stored.body().is_none()))
    }

    /// Replaces the stored, pruned copy of `entry` with `entry`, which carries the body (its
    /// body already checked against its kind). `None` when there is nothing to complete (not
    /// stored, stored with its body, or `entry` is pruned too). The caller holds the write
    /// lock (`counters`).
    pub(super) fn complete_pruned(
        &self,
        counters: &mut Counters,
        entry: &Entry,
    ) -> Result<Option<IngestOutcome>, StoreError> {
        if entry.body().is_none() {
            return Ok(None);
        }
        let id = entry.id();
        let Some((key, stored)) = self.stored_key_and_entry(&id)? else {
            return Ok(None);
        };
        if stored.body().is_some() {
            return Ok(None);
        }
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_ENTRIES), &key, entry.encode());
        batch.put_cf(
            self.cf(CF_JOURNAL),
            keys::counter_key(counters.next_arrival),
            &key,
        );
        self.commit(batch)?;
        counters.next_arrival += 1;
        Ok(Some(IngestOutcome::Accepted {
            id,
            released: 0,
            forks: Vec::new(),
        }))
    }

    /// The `entries` key and the stored copy of the entry `id`, if it is stored.
    fn stored_key_and_entry(&self, id: &Hash256) -> Result<Option<(Vec<u8>, Entry)>, StoreError> {
        let Some(key) = self.db.get_cf(self.cf(CF_IDS), id.as_bytes())? else {
            return Ok(None);
        };
        let Some(bytes) = self.db.get_pinned_cf(self.cf(CF_ENTRIES), &key)? else {
            return Ok(None);
        };
        Ok(Some((key, decode_stored(&bytes)?)))
    }
}
