//! Range-based set reconciliation of feed heads (the technique of Negentropy / NIP-77 and
//! Willow's range-based sync), as pure logic: fingerprints, the responder's split rule and the
//! initiator's state machine. No I/O: both sides read their items through [`ItemStore`].
//!
//! The set reconciled is one namespace's feed heads. An [`Item`] is a feed's author key (32
//! bytes, the order key: bytewise, the order of the log's `heads` keys within a namespace), its
//! head seq and its head entry id. A [`KeyRange`] `[lower, upper)` holds the items whose key is
//! at least `lower` and below `upper` (`None`: no upper end).
//!
//! One round: the initiator sends up to [`MAX_RANGES_PER_REQUEST`] disjoint ranges in
//! ascending order, each with the [`Fingerprint`] of its own items there. For each, the
//! responder answers (see [`answer`]):
//! - `Equal` when its fingerprint is the same;
//! - `Items`, its items in the range, when it holds at most [`MAX_LEAF_ITEMS`] there;
//! - otherwise `Split`: its items cut into `min(SPLIT_FACTOR, ceil(n / MAX_LEAF_ITEMS))` parts
//!   of (nearly) equal count (so a range of at most 256 items splits into parts the next round
//!   lists, instead of 16 parts of one or two items each asked on their own), each part given
//!   by its upper bound (the key of the next part's first item; the last part ends where the
//!   range ends) and the responder's fingerprint of it.
//!
//! The initiator ([`Session`]) compares each part of a split with its own fingerprint there and
//! asks again for the parts that differ; the items answers it keeps ([`Leaf`]) name every feed
//! whose head differs within their range. Each split divides the responder's count by
//! [`SPLIT_FACTOR`], so a difference is found in about `log16(n)` rounds, and two equal sets
//! cost one round of one range whatever their size.
//!
//! Invariant: the ranges a session has pending or in flight are pairwise disjoint (each is a
//! part of one range that was split), so a request's ranges are always disjoint and the
//! responder scans each stored item at most twice per request. Everything a peer can make a
//! session hold is bounded: [`MAX_PENDING_RANGES`] ranges and [`MAX_ROUNDS`] rounds.

use std::ops::ControlFlow;

use plexus_crypto::Sha256Stream;

/// Length of an item's key (an author's public key).
pub const KEY_LEN: usize = 32;

/// Parts a responder cuts a differing range into. Sixteen (as Negentropy's reference) keeps a
/// split answer near 1 KiB and the depth of a 100,000-feed set at about four rounds.
pub const SPLIT_FACTOR: usize = 16;

/// Most items a responder lists instead of splitting (and the most an `Items` answer may hold):
/// listing 16 items (~1.3 KiB) costs about what one split answer does, and saves a round.
pub const MAX_LEAF_ITEMS: usize = 16;

/// Most ranges in one request (and answers in one response): a request stays under 4 KiB, a
/// response under 64 KiB, and one round names at most 512 feeds to fetch.
pub const MAX_RANGES_PER_REQUEST: usize = 32;

/// Most ranges a session holds waiting to be asked: a split adds at most [`SPLIT_FACTOR`] per
/// range answered, and an honest peer's depth-first descent of a million feeds holds a few
/// thousand. Past it the peer is splitting without end, and the session stops.
pub const MAX_PENDING_RANGES: usize = 8_192;

/// Most rounds in one session. The costliest honest session is a fresh node's: it asks every
/// range of the responder's split tree once, `R(n)` ranges for n feeds (between about n / 15
/// and n / 6, docs/PROTOCOL.md §8.2.1), [`MAX_RANGES_PER_REQUEST`] to a round: 393 rounds
/// for 100,000 feeds, 2,185 for a million. This allows a fresh node's session over up to
/// about 2.1 million feeds (the first n past it is 2,159,000, at 8,214 rounds) and stops a
/// peer that never ends.
pub const MAX_ROUNDS: u32 = 8_192;

/// Domain tag hashed first into every fingerprint.
pub const FINGERPRINT_TAG: &[u8] = b"plexus/reconcile/1";

/// Length of one item's encoding in a fingerprint: key, seq (big-endian) and id.
pub const ITEM_ENCODING_LEN: usize = KEY_LEN + 8 + 32;

/// An item's key: the author's public key bytes.
pub type Key = [u8; KEY_LEN];

/// One feed head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Item {
    pub key: Key,
    pub seq: u64,
    pub id: [u8; 32],
}

/// The items with `lower <= key < upper`; `upper: None` has no upper end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyRange {
    pub lower: Key,
    pub upper: Option<Key>,
}

/// SHA-256 over [`FINGERPRINT_TAG`], each item's encoding (key, seq as u64 big-endian, id) in
/// ascending key order, and the item count as u64 big-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

/// One range of a request: the range and the initiator's fingerprint of its items there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeQuery {
    pub range: KeyRange,
    pub fingerprint: Fingerprint,
}

/// The responder's answer to one [`RangeQuery`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeAnswer {
    /// Same fingerprint: nothing differs here.
    Equal,
    /// All the responder's items in the range, in ascending key order.
    Items(Vec<Item>),
    /// The range cut in parts, in ascending order, each reaching to its `upper` bound.
    Split(Vec<Part>),
}

/// One part of a split range: it starts where the previous part ends (the first at the
/// range's lower bound) and ends below `upper`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub upper: Option<Key>,
    pub fingerprint: Fingerprint,
}

/// A range the responder listed: its items there, to compare with the initiator's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    pub range: KeyRange,
    pub items: Vec<Item>,
}

/// Read access to one side's items, in ascending key order.
pub trait ItemStore {
    type Error;
    /// Calls `visit` with each item in `range`, in ascending key order, until it breaks.
    fn visit(
        &mut self,
        range: &KeyRange,
        visit: &mut dyn FnMut(&Item) -> ControlFlow<()>,
    ) -> Result<(), Self::Error>;
}

/// Why a session stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError<E> {
    #[error("reading this node's feed heads: {0}")]
    Store(E),
    #[error("the peer answered {got} ranges to a request of {sent}; its answer is dropped")]
    AnswerCount { sent: usize, got: usize },
    #[error(
        "the peer listed {count} items in one range, over the limit of {MAX_LEAF_ITEMS}; \
         the session stops"
    )]
    TooManyItems { count: usize },
    #[error("the peer listed an item out of order or outside its range; the session stops")]
    ItemOutOfRange,
    #[error(
        "the peer split a range into {count} parts (2 to {SPLIT_FACTOR} are valid); \
         the session stops"
    )]
    BadPartCount { count: usize },
    #[error(
        "the peer split a range into parts that are empty, out of order or do not end where \
         the range ends; the session stops"
    )]
    BadParts,
    #[error(
        "the peer keeps splitting: over {MAX_PENDING_RANGES} ranges pending; the session \
         stops and the next anti-entropy round starts again"
    )]
    TooManyPending,
    #[error("the session passed {MAX_ROUNDS} rounds; the next anti-entropy round starts again")]
    TooManyRounds,
    #[error("an answer arrived with no request outstanding")]
    NothingOutstanding,
}

impl KeyRange {
    /// The whole key space.
    pub const FULL: KeyRange = KeyRange {
        lower: [0; KEY_LEN],
        upper: None,
    };

    /// Whether `key` lies in the range.
    pub fn contains(&self, key: &Key) -> bool {
        *key >= self.lower && self.upper.is_none_or(|upper| *key < upper)
    }

    /// Whether the range holds at least one possible key.
    pub fn is_nonempty(&self) -> bool {
        self.upper.is_none_or(|upper| self.lower < upper)
    }
}

impl Item {
    /// The item's encoding in a fingerprint ([`ITEM_ENCODING_LEN`] bytes).
    pub fn encoding(&self) -> [u8; ITEM_ENCODING_LEN] {
        let mut out = [0; ITEM_ENCODING_LEN];
        let (key, rest) = out.split_at_mut(KEY_LEN);
        key.copy_from_slice(&self.key);
        let (seq, id) = rest.split_at_mut(8);
        seq.copy_from_slice(&self.seq.to_be_bytes());
        id.copy_from_slice(&self.id);
        out
    }
}

/// Builds a [`Fingerprint`] from items fed in ascending key order.
#[derive(Debug, Clone)]
pub struct FingerprintBuilder {
    hasher: Sha256Stream,
    count: u64,
}

impl Default for FingerprintBuilder {
    fn default() -> Self {
        let mut hasher = Sha256Stream::new();
        hasher.update(FINGERPRINT_TAG);
        FingerprintBuilder { hasher, count: 0 }
    }
}

impl FingerprintBuilder {
    pub fn add(&mut self, item: &Item) {
        self.hasher.update(&item.encoding());
        self.count += 1;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn finish(mut self) -> Fingerprint {
        self.hasher.update(&self.count.to_be_bytes());
        Fingerprint(self.hasher.finish().0)
    }
}

/// The fingerprint of a list of items already in ascending key order.
pub fn fingerprint_of(items: &[Item]) -> Fingerprint {
    let mut builder = FingerprintBuilder::default();
    for item in items {
        builder.add(item);
    }
    builder.finish()
}

/// The fingerprint of `store`'s items in `range`.
pub fn fingerprint<S: ItemStore>(store: &mut S, range: &KeyRange) -> Result<Fingerprint, S::Error> {
    let mut builder = FingerprintBuilder::default();
    store.visit(range, &mut |item| {
        builder.add(item);
        ControlFlow::Continue(())
    })?;
    Ok(builder.finish())
}

/// The responder's answer to one range: `Equal`, its items (at most [`MAX_LEAF_ITEMS`]), or
/// `k = min(SPLIT_FACTOR, ceil(n / MAX_LEAF_ITEMS))` parts. Part `i` of `n` items holds items
/// `i*n/k .. (i+1)*n/k` (integer division), so each part holds at least one item. Reads the range at most twice, holding at
/// most [`MAX_LEAF_ITEMS`] + 1 items.
pub fn answer<S: ItemStore>(store: &mut S, query: &RangeQuery) -> Result<RangeAnswer, S::Error> {
    let mut builder = FingerprintBuilder::default();
    let mut first_items = Vec::with_capacity(MAX_LEAF_ITEMS + 1);
    store.visit(&query.range, &mut |item| {
        builder.add(item);
        if first_items.len() <= MAX_LEAF_ITEMS {
            first_items.push(*item);
        }
        ControlFlow::Continue(())
    })?;
    let count = builder.count();
    if builder.finish() == query.fingerprint {
        return Ok(RangeAnswer::Equal);
    }
    if count <= MAX_LEAF_ITEMS as u64 {
        return Ok(RangeAnswer::Items(first_items));
    }
    // Enough parts that each holds at most MAX_LEAF_ITEMS where that takes 16 or fewer.
    let factor = count
        .div_ceil(MAX_LEAF_ITEMS as u64)
        .min(SPLIT_FACTOR as u64);
    // The index of the first item of part `part`.
    let start_of = |part: u64| part * count / factor;
    let mut parts = Vec::with_capacity(SPLIT_FACTOR);
    let mut current = FingerprintBuilder::default();
    let mut index = 0u64;
    let mut part = 0u64;
    store.visit(&query.range, &mut |item| {
        if part + 1 < factor && index == start_of(part + 1) {
            let finished = std::mem::take(&mut current);
            parts.push(Part {
                upper: Some(item.key),
                fingerprint: finished.finish(),
            });
            part += 1;
        }
        current.add(item);
        index += 1;
        ControlFlow::Continue(())
    })?;
    parts.push(Part {
        upper: query.range.upper,
        fingerprint: current.finish(),
    });
    Ok(RangeAnswer::Split(parts))
}

/// What one round taught the initiator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoundOutcome {
    /// Ranges the peer listed; any feed whose head differs lies in one of them.
    pub leaves: Vec<Leaf>,
}

/// The initiator's side of one reconciliation: the ranges still to ask and the ones asked.
#[derive(Debug, Clone)]
pub struct Session {
    /// Ranges to ask, taken from the end (depth first, which keeps this short).
    pending: Vec<KeyRange>,
    in_flight: Vec<KeyRange>,
    rounds: u32,
}

impl Default for Session {
    fn default() -> Self {
        Session {
            pending: vec![KeyRange::FULL],
            in_flight: Vec::new(),
            rounds: 0,
        }
    }
}

impl Session {
    /// A session over the whole key space.
    pub fn new() -> Session {
        Session::default()
    }

    /// Rounds asked so far.
    pub fn rounds(&self) -> u32 {
        self.rounds
    }

    /// Whether every range is settled.
    pub fn is_done(&self) -> bool {
        self.pending.is_empty() && self.in_flight.is_empty()
    }

    /// The next request: up to [`MAX_RANGES_PER_REQUEST`] pending ranges, ascending, each with
    /// this side's fingerprint. `None` when nothing is pending (or a request is outstanding).
    pub fn next_request<S: ItemStore>(
        &mut self,
        store: &mut S,
    ) -> Result<Option<Vec<RangeQuery>>, ReconcileError<S::Error>> {
        if !self.in_flight.is_empty() || self.pending.is_empty() {
            return Ok(None);
        }
        if self.rounds >= MAX_ROUNDS {
            return Err(ReconcileError::TooManyRounds);
        }
        let take = self.pending.len().min(MAX_RANGES_PER_REQUEST);
        let mut ranges = self.pending.split_off(self.pending.len() - take);
        ranges.sort_by_key(|range| range.lower);
        let mut queries = Vec::with_capacity(ranges.len());
        for range in &ranges {
            queries.push(RangeQuery {
                range: *range,
                fingerprint: fingerprint(store, range).map_err(ReconcileError::Store)?,
            });
        }
        self.in_flight = ranges;
        self.rounds += 1;
        Ok(Some(queries))
    }

    /// Takes the peer's answers to the outstanding request: keeps the listed ranges, and queues
    /// the parts of split ranges whose fingerprint differs from this side's. An invalid answer
    /// ends the session (the error says what the peer did).
    pub fn handle_answers<S: ItemStore>(
        &mut self,
        answers: Vec<RangeAnswer>,
        store: &mut S,
    ) -> Result<RoundOutcome, ReconcileError<S::Error>> {
        if self.in_flight.is_empty() {
            return Err(ReconcileError::NothingOutstanding);
        }
        let asked = std::mem::take(&mut self.in_flight);
        if answers.len() != asked.len() {
            self.pending.clear();
            return Err(ReconcileError::AnswerCount {
                sent: asked.len(),
                got: answers.len(),
            });
        }
        let mut outcome = RoundOutcome::default();
        for (range, answer) in asked.into_iter().zip(answers) {
            let result = match answer {
                RangeAnswer::Equal => Ok(()),
                RangeAnswer::Items(items) => check_items(&range, &items).map(|()| {
                    outcome.leaves.push(Leaf { range, items });
                }),
                RangeAnswer::Split(parts) => self.queue_differing_parts(&range, &parts, store),
            };
            if let Err(error) = result {
                self.pending.clear();
                return Err(error);
            }
        }
        Ok(outcome)
    }

    fn queue_differing_parts<S: ItemStore>(
        &mut self,
        range: &KeyRange,
        parts: &[Part],
        store: &mut S,
    ) -> Result<(), ReconcileError<S::Error>> {
        let part_ranges = split_ranges(range, parts)?;
        for (part_range, part) in part_ranges.into_iter().zip(parts) {
            let ours = fingerprint(store, &part_range).map_err(ReconcileError::Store)?;
            if ours != part.fingerprint {
                if self.pending.len() >= MAX_PENDING_RANGES {
                    return Err(ReconcileError::TooManyPending);
                }
                self.pending.push(part_range);
            }
        }
        Ok(())
    }
}

/// The ranges of a split's parts, checked: 2 to [`SPLIT_FACTOR`] nonempty parts in ascending
/// order, the last ending where `range` ends.
pub fn split_ranges<E>(
    range: &KeyRange,
    parts: &[Part],
) -> Result<Vec<KeyRange>, ReconcileError<E>> {
    if parts.len() < 2 || parts.len() > SPLIT_FACTOR {
        return Err(ReconcileError::BadPartCount { count: parts.len() });
    }
    let mut ranges = Vec::with_capacity(parts.len());
    let mut lower = range.lower;
    for (index, part) in parts.iter().enumerate() {
        let part_range = KeyRange {
            lower,
            upper: part.upper,
        };
        let last = index + 1 == parts.len();
        if !part_range.is_nonempty() || (last != (part.upper == range.upper)) {
            return Err(ReconcileError::BadParts);
        }
        ranges.push(part_range);
        match part.upper {
            Some(upper) => lower = upper,
            None if last => {}
            None => return Err(ReconcileError::BadParts),
        }
    }
    Ok(ranges)
}

/// Checks an `Items` answer: at most [`MAX_LEAF_ITEMS`], strictly ascending, inside `range`.
fn check_items<E>(range: &KeyRange, items: &[Item]) -> Result<(), ReconcileError<E>> {
    if items.len() > MAX_LEAF_ITEMS {
        return Err(ReconcileError::TooManyItems { count: items.len() });
    }
    let ascending = items.windows(2).all(|pair| match pair {
        [left, right] => left.key < right.key,
        _ => true,
    });
    if !ascending || !items.iter().all(|item| range.contains(&item.key)) {
        return Err(ReconcileError::ItemOutOfRange);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
