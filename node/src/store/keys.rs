//! Key layouts of the log's column families.
//!
//! Every key that belongs to a feed starts with the feed prefix
//! `namespace-length (1 byte) || namespace || author (32 bytes)`, so iterating a column family
//! in key order visits feeds by namespace, then author, then ascending seq (big-endian). That is
//! also the order of an audit export.

use plexus_crypto::{AgentId, Hash256, PUBLIC_KEY_LEN};
use plexus_protocol::coord::{Arrival, Reception};
use plexus_protocol::FeedKey;

/// The prefix shared by every key of one feed.
pub fn feed_prefix(feed: &FeedKey) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + feed.namespace.len() + PUBLIC_KEY_LEN + 8);
    // Namespaces are at most 64 bytes (checked by the protocol), so the length fits a byte.
    key.push(feed.namespace.len() as u8);
    key.extend_from_slice(feed.namespace.as_bytes());
    key.extend_from_slice(feed.author.as_bytes());
    key
}

/// Key of the entry at `seq` in a feed: the feed prefix and the seq in big-endian.
pub fn entry_key(feed: &FeedKey, seq: u64) -> Vec<u8> {
    let mut key = feed_prefix(feed);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// Key of a pending entry: the entry key of its seq plus its id, so rival entries waiting at
/// one seq each keep their own place.
pub fn pending_key(feed: &FeedKey, seq: u64, id: &Hash256) -> Vec<u8> {
    let mut key = entry_key(feed, seq);
    key.extend_from_slice(id.as_bytes());
    key
}

/// Splits an entry key (or any key that starts with one) into feed and seq.
pub fn split_entry_key(key: &[u8]) -> Option<(FeedKey, u64)> {
    let (&ns_len, rest) = key.split_first()?;
    let ns_len = usize::from(ns_len);
    let namespace = std::str::from_utf8(rest.get(..ns_len)?).ok()?.to_owned();
    let author = AgentId::from_slice(rest.get(ns_len..ns_len + PUBLIC_KEY_LEN)?).ok()?;
    let seq_bytes = rest.get(ns_len + PUBLIC_KEY_LEN..ns_len + PUBLIC_KEY_LEN + 8)?;
    let seq = u64::from_be_bytes(seq_bytes.try_into().ok()?);
    Some((FeedKey { namespace, author }, seq))
}

/// The seq of an entry key whose feed prefix is already known to be `prefix_len` bytes long,
/// without parsing the feed (which would decompress the author's key).
pub fn seq_after_prefix(key: &[u8], prefix_len: usize) -> Option<u64> {
    let seq_bytes = key.get(prefix_len..prefix_len.checked_add(8)?)?;
    Some(u64::from_be_bytes(seq_bytes.try_into().ok()?))
}

/// Splits a feed-prefix key (the heads column family) into its feed.
pub fn split_feed_prefix(key: &[u8]) -> Option<FeedKey> {
    let (&ns_len, rest) = key.split_first()?;
    let ns_len = usize::from(ns_len);
    if rest.len() != ns_len + PUBLIC_KEY_LEN {
        return None;
    }
    let namespace = std::str::from_utf8(rest.get(..ns_len)?).ok()?.to_owned();
    let author = AgentId::from_slice(rest.get(ns_len..)?).ok()?;
    Some(FeedKey { namespace, author })
}

/// A big-endian counter key (journal and rejection journal).
pub fn counter_key(counter: u64) -> [u8; 8] {
    counter.to_be_bytes()
}

/// A journal record's value: the entry's `entries` key, then how it arrived (one byte,
/// [`Arrival::code`]) and when (the receiving clock, Unix ms, 8 bytes big-endian).
pub fn journal_value(entry_key: &[u8], reception: Reception) -> Vec<u8> {
    let mut value = Vec::with_capacity(entry_key.len() + 9);
    value.extend_from_slice(entry_key);
    value.push(reception.arrival.code());
    value.extend_from_slice(&reception.received_ms.to_be_bytes());
    value
}

/// What a journal record's value names: an entry id (records written before they held keys),
/// or an entry key with its reception (`None` in records written before receptions were
/// recorded). `None` for a value of neither form.
pub fn split_journal_value(value: &[u8]) -> Option<JournalTarget<'_>> {
    if value.len() == plexus_crypto::HASH_LEN {
        return Some(JournalTarget::Id(Hash256::from_slice(value)?));
    }
    let key_len = 1 + usize::from(*value.first()?) + PUBLIC_KEY_LEN + 8;
    let key = value.get(..key_len)?;
    let reception = match value.get(key_len..)? {
        [] => None,
        [code, time @ ..] => Some(Reception {
            arrival: Arrival::from_code(*code)?,
            received_ms: u64::from_be_bytes(time.try_into().ok()?),
        }),
    };
    Some(JournalTarget::Key { key, reception })
}

/// What a journal record names (see [`split_journal_value`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JournalTarget<'a> {
    Id(Hash256),
    Key {
        key: &'a [u8],
        reception: Option<Reception>,
    },
}

/// Reads a big-endian counter key.
pub fn split_counter_key(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use plexus_crypto::Keypair;

    #[test]
    fn keys_round_trip_and_sort_by_feed_then_seq() {
        let author = Keypair::from_seed(&[1; 32]).agent_id();
        let feed = FeedKey {
            namespace: "ns".into(),
            author,
        };
        assert_eq!(
            split_entry_key(&entry_key(&feed, 7)),
            Some((feed.clone(), 7))
        );
        assert_eq!(split_feed_prefix(&feed_prefix(&feed)), Some(feed.clone()));
        assert!(entry_key(&feed, 2) < entry_key(&feed, 256));
        let other = FeedKey {
            namespace: "nt".into(),
            author,
        };
        assert!(entry_key(&feed, u64::MAX) < entry_key(&other, 1));
    }

    #[test]
    fn journal_values_of_every_generation_are_read() {
        let author = Keypair::from_seed(&[1; 32]).agent_id();
        let feed = FeedKey {
            namespace: "ns".into(),
            author,
        };
        let key = entry_key(&feed, 7);
        let reception = Reception {
            arrival: Arrival::History,
            received_ms: 1_767_225_600_000,
        };
        let current = journal_value(&key, reception);
        assert_eq!(
            split_journal_value(&current),
            Some(JournalTarget::Key {
                key: &key,
                reception: Some(reception)
            })
        );
        assert_eq!(
            split_journal_value(&key),
            Some(JournalTarget::Key {
                key: &key,
                reception: None
            })
        );
        let id = Hash256([9; 32]);
        assert_eq!(
            split_journal_value(id.as_bytes()),
            Some(JournalTarget::Id(id))
        );
        let mut unknown_arrival = current.clone();
        unknown_arrival[key.len()] = 7;
        assert_eq!(split_journal_value(&unknown_arrival), None);
        assert_eq!(split_journal_value(&current[..current.len() - 1]), None);
    }
}
