//! One namespace's feed heads as the item set of range-based reconciliation: a RocksDB
//! iterator over the `heads` family, from the range's lower bound to its upper one, so a
//! range costs a scan of the heads it holds and nothing else.

use std::ops::ControlFlow;

use plexus_crypto::PUBLIC_KEY_LEN;
use plexus_protocol::reconcile::{Item, ItemStore, Key, KeyRange};
use rocksdb::{Direction, IteratorMode};

use super::{decode_head, Log, StoreError, CF_HEADS};

/// The feed heads of one namespace, keyed by author (see [`plexus_protocol::reconcile`]).
#[derive(Debug, Clone, Copy)]
pub struct NamespaceHeads<'a> {
    pub log: &'a Log,
    pub namespace: &'a str,
}

impl ItemStore for NamespaceHeads<'_> {
    type Error = StoreError;

    fn visit(
        &mut self,
        range: &KeyRange,
        visit: &mut dyn FnMut(&Item) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        // The heads key of a feed is `namespace length || namespace || author`, so one
        // namespace's heads are contiguous and ordered by author.
        let mut prefix = Vec::with_capacity(1 + self.namespace.len() + PUBLIC_KEY_LEN);
        prefix.push(self.namespace.len() as u8);
        prefix.extend_from_slice(self.namespace.as_bytes());
        let mut start = prefix.clone();
        start.extend_from_slice(&range.lower);
        let iterator = self.log.db.iterator_cf(
            self.log.cf(CF_HEADS),
            IteratorMode::From(&start, Direction::Forward),
        );
        for entry in iterator {
            let (key, value) = entry?;
            let Some(author) = key.strip_prefix(prefix.as_slice()) else {
                break;
            };
            let key = Key::try_from(author)
                .map_err(|_| StoreError::Corrupt("unreadable feed head key".into()))?;
            if range.upper.is_some_and(|upper| key >= upper) {
                break;
            }
            let head = decode_head(&value)?;
            let item = Item {
                key,
                seq: head.seq,
                id: head.id.0,
            };
            if visit(&item).is_break() {
                break;
            }
        }
        Ok(())
    }
}
