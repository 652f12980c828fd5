//! Tests of range-based reconciliation: fingerprints, the split rule, and two random sets
//! reconciling to their exact symmetric difference in a logarithmic number of rounds.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;

use proptest::prelude::*;

use super::*;

/// A side's items, by key.
#[derive(Debug, Clone, Default)]
struct Store(BTreeMap<Key, Item>);

impl ItemStore for Store {
    type Error = Infallible;
    fn visit(
        &mut self,
        range: &KeyRange,
        visit: &mut dyn FnMut(&Item) -> ControlFlow<()>,
    ) -> Result<(), Infallible> {
        let upper = match range.upper {
            Some(upper) => std::ops::Bound::Excluded(upper),
            None => std::ops::Bound::Unbounded,
        };
        for item in self
            .0
            .range((std::ops::Bound::Included(range.lower), upper))
            .map(|(_, item)| item)
        {
            if visit(item).is_break() {
                break;
            }
        }
        Ok(())
    }
}

fn item(key_seed: u64, seq: u64) -> Item {
    let mut key = [0; KEY_LEN];
    key[..8].copy_from_slice(&key_seed.to_be_bytes());
    key[8] = 1;
    Item {
        key,
        seq,
        id: plexus_crypto::sha256(&[key_seed.to_be_bytes(), seq.to_be_bytes()].concat()).0,
    }
}

fn store(items: impl IntoIterator<Item = Item>) -> Store {
    Store(items.into_iter().map(|item| (item.key, item)).collect())
}

/// Runs a whole session of `ours` against `theirs`; returns the leaves and the rounds.
fn reconcile(ours: &mut Store, theirs: &mut Store) -> (Vec<Leaf>, u32) {
    let mut session = Session::new();
    let mut leaves = Vec::new();
    while let Some(request) = session.next_request(ours).unwrap() {
        assert!(request.len() <= MAX_RANGES_PER_REQUEST);
        assert!(
            request.windows(2).all(|pair| pair[0]
                .range
                .upper
                .is_some_and(|upper| upper <= pair[1].range.lower)),
            "a request's ranges are disjoint and ascending"
        );
        let answers: Vec<RangeAnswer> = request
            .iter()
            .map(|query| answer(theirs, query).unwrap())
            .collect();
        leaves.extend(session.handle_answers(answers, ours).unwrap().leaves);
    }
    assert!(session.is_done());
    (leaves, session.rounds())
}

/// What the leaves say differs: in each listed range, the items on one side only.
fn differences(ours: &Store, leaves: &[Leaf]) -> BTreeSet<Item> {
    let mut found = BTreeSet::new();
    for leaf in leaves {
        let theirs: BTreeSet<Item> = leaf.items.iter().copied().collect();
        let mut ours_in_range = ours.clone();
        let mut mine = BTreeSet::new();
        ours_in_range
            .visit(&leaf.range, &mut |item| {
                mine.insert(*item);
                ControlFlow::Continue(())
            })
            .unwrap();
        found.extend(theirs.symmetric_difference(&mine).copied());
    }
    found
}

/// Rounds a session may take: one per level of the responder's splits (each divides its count
/// by [`SPLIT_FACTOR`]), times one per difference (each round asks at least one range).
fn round_bound(their_count: usize, differing: usize) -> u32 {
    let mut levels = 1u32;
    let mut count = their_count;
    while count > MAX_LEAF_ITEMS {
        count = count.div_ceil(SPLIT_FACTOR);
        levels += 1;
    }
    levels * (differing as u32 + 1)
}

#[test]
fn equal_sets_cost_one_round_of_one_range() {
    let items: Vec<Item> = (0..100_000).map(|seed| item(seed, 1 + seed % 7)).collect();
    let mut ours = store(items.clone());
    let mut theirs = store(items);
    let mut session = Session::new();
    let request = session.next_request(&mut ours).unwrap().unwrap();
    assert_eq!(request.len(), 1);
    let answers = vec![answer(&mut theirs, &request[0]).unwrap()];
    assert_eq!(answers, vec![RangeAnswer::Equal]);
    assert!(session
        .handle_answers(answers, &mut ours)
        .unwrap()
        .leaves
        .is_empty());
    assert!(session.is_done());
}

#[test]
fn a_fresh_side_learns_every_item_of_a_large_set() {
    let items: Vec<Item> = (0..20_000).map(|seed| item(seed * 7919, 3)).collect();
    let mut ours = Store::default();
    let mut theirs = store(items.clone());
    let (leaves, rounds) = reconcile(&mut ours, &mut theirs);
    // 20,000 -> 1,250 -> 78 -> 15 or 16 items: two splits into 16, then 78 into 5 parts,
    // 16^2 * 5 = 1,280 listed ranges (not 16^3 = 4,096 of 4 or 5 items).
    assert_eq!(leaves.len(), 1_280);
    let learned: Vec<Item> = leaves.into_iter().flat_map(|leaf| leaf.items).collect();
    let mut learned_sorted = learned.clone();
    learned_sorted.sort();
    let mut expected = items;
    expected.sort();
    assert_eq!(learned_sorted, expected);
    // 1,280 listed and 273 split ranges, asked 32 a round; a level's last round may be short.
    assert!(rounds <= (1_280 + 273) / 32 + 4, "{rounds} rounds");
}

/// The figures of docs/PROTOCOL.md §8.2.1 and [`MAX_ROUNDS`]: a fresh side learning 100,000
/// items asks the responder's whole split tree, `R(100,000) = 12,561` ranges (4,369 split,
/// 8,192 listed), 32 a round, so about 393 rounds, a twentieth of the bound.
#[test]
fn a_fresh_side_learns_100_000_items_well_within_the_round_bound() {
    let items: Vec<Item> = (0..100_000).map(|seed| item(seed * 7919, 1)).collect();
    let mut ours = Store::default();
    let mut theirs = store(items);
    let (leaves, rounds) = reconcile(&mut ours, &mut theirs);
    assert_eq!(leaves.len(), 8_192);
    assert_eq!(
        leaves.iter().map(|leaf| leaf.items.len()).sum::<usize>(),
        100_000
    );
    // At least 12,561 / 32 rounds; a level's last round may be short.
    assert!((393..=393 + 8).contains(&rounds), "{rounds} rounds");
    assert!(rounds * 20 < MAX_ROUNDS);
}

#[test]
fn one_changed_head_is_found_in_logarithmic_rounds() {
    let items: Vec<Item> = (0..100_000).map(|seed| item(seed, 5)).collect();
    let mut ours = store(items.clone());
    let mut changed = items;
    changed[77_777].seq = 6;
    let mut theirs = store(changed.clone());
    let (leaves, rounds) = reconcile(&mut ours, &mut theirs);
    let found = differences(&ours, &leaves);
    assert_eq!(
        found,
        BTreeSet::from([item(77_777, 5), changed[77_777]]),
        "both versions of the changed head"
    );
    // 100,000 -> 6,250 -> 391 -> 24 or 25 -> 12 or 13 items per range (25 split in two):
    // five rounds of one range each.
    assert_eq!(rounds, 5);
}

#[test]
fn a_split_cuts_by_count_and_covers_the_range() {
    let items: Vec<Item> = (0..40).map(|seed| item(seed, 1)).collect();
    let mut theirs = store(items.clone());
    let query = RangeQuery {
        range: KeyRange::FULL,
        fingerprint: fingerprint_of(&[]),
    };
    let RangeAnswer::Split(parts) = answer(&mut theirs, &query).unwrap() else {
        panic!("40 items are split");
    };
    // ceil(40 / 16) = 3 parts, each small enough to be listed next round.
    assert_eq!(parts.len(), 3);
    let ranges = split_ranges::<Infallible>(&KeyRange::FULL, &parts).unwrap();
    // Part i holds items i*40/3 .. (i+1)*40/3: 13 or 14 each, 40 in all.
    let mut total = 0;
    for (index, (range, part)) in ranges.iter().zip(&parts).enumerate() {
        let inside: Vec<Item> = items
            .iter()
            .copied()
            .filter(|item| range.contains(&item.key))
            .collect();
        assert_eq!(inside.len(), (index + 1) * 40 / 3 - index * 40 / 3);
        assert_eq!(fingerprint_of(&inside), part.fingerprint);
        total += inside.len();
    }
    assert_eq!(total, 40);
}

#[test]
fn a_fingerprint_is_sha256_over_tag_items_and_count() {
    let items = [item(1, 2), item(3, 4)];
    let mut bytes = FINGERPRINT_TAG.to_vec();
    for item in &items {
        bytes.extend_from_slice(&item.key);
        bytes.extend_from_slice(&item.seq.to_be_bytes());
        bytes.extend_from_slice(&item.id);
    }
    bytes.extend_from_slice(&2u64.to_be_bytes());
    assert_eq!(fingerprint_of(&items).0, plexus_crypto::sha256(&bytes).0);
}

#[test]
fn invalid_answers_end_the_session_with_a_reason() {
    let mut ours = store((0..100).map(|seed| item(seed, 1)));
    let fresh = || {
        let mut session = Session::new();
        session.next_request(&mut store([])).unwrap();
        session
    };
    let mut session = fresh();
    assert!(matches!(
        session.handle_answers(vec![], &mut ours),
        Err(ReconcileError::AnswerCount { sent: 1, got: 0 })
    ));
    assert!(session.is_done());
    let too_many = (0..=MAX_LEAF_ITEMS as u64)
        .map(|seed| item(seed, 1))
        .collect();
    assert!(matches!(
        fresh().handle_answers(vec![RangeAnswer::Items(too_many)], &mut ours),
        Err(ReconcileError::TooManyItems { .. })
    ));
    let unordered = vec![item(2, 1), item(1, 1)];
    assert!(matches!(
        fresh().handle_answers(vec![RangeAnswer::Items(unordered)], &mut ours),
        Err(ReconcileError::ItemOutOfRange)
    ));
    let part = |upper| Part {
        upper,
        fingerprint: fingerprint_of(&[]),
    };
    // One part only: no progress.
    assert!(matches!(
        fresh().handle_answers(vec![RangeAnswer::Split(vec![part(None)])], &mut ours),
        Err(ReconcileError::BadPartCount { count: 1 })
    ));
    // An empty part (its upper bound is the range's lower bound).
    assert!(matches!(
        fresh().handle_answers(
            vec![RangeAnswer::Split(vec![
                part(Some([0; KEY_LEN])),
                part(None)
            ])],
            &mut ours
        ),
        Err(ReconcileError::BadParts)
    ));
    // Parts that stop short of the range's end.
    assert!(matches!(
        fresh().handle_answers(
            vec![RangeAnswer::Split(vec![
                part(Some(item(5, 1).key)),
                part(Some(item(9, 1).key))
            ])],
            &mut ours
        ),
        Err(ReconcileError::BadParts)
    ));
}

#[test]
fn a_peer_that_splits_forever_is_stopped_by_the_bounds() {
    // A hostile responder answers every range with sixteen parts that all differ, however
    // little the range holds: the session stops once too much is pending, holding no more.
    let key_of = |value: u128| {
        let mut key = [0; KEY_LEN];
        key[..16].copy_from_slice(&value.to_be_bytes());
        key
    };
    let mut ours = Store::default();
    let mut session = Session::new();
    let error = loop {
        let request = session.next_request(&mut ours).unwrap().unwrap();
        let answers = request
            .iter()
            .map(|query| {
                let lower = u128::from_be_bytes(query.range.lower[..16].try_into().unwrap());
                let upper = query.range.upper.map_or(u128::MAX, |upper| {
                    u128::from_be_bytes(upper[..16].try_into().unwrap())
                });
                let step = (upper - lower) / SPLIT_FACTOR as u128;
                let parts = (1..SPLIT_FACTOR as u128)
                    .map(|index| Part {
                        upper: Some(key_of(lower + index * step)),
                        fingerprint: Fingerprint([index as u8; 32]),
                    })
                    .chain([Part {
                        upper: query.range.upper,
                        fingerprint: Fingerprint([0xff; 32]),
                    }])
                    .collect();
                RangeAnswer::Split(parts)
            })
            .collect();
        if let Err(error) = session.handle_answers(answers, &mut ours) {
            break error;
        }
        assert!(session.pending.len() <= MAX_PENDING_RANGES);
    };
    assert!(matches!(error, ReconcileError::TooManyPending), "{error}");
    assert!(session.is_done(), "a stopped session holds nothing");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn two_random_sets_reconcile_to_their_exact_symmetric_difference(
        shared in proptest::collection::btree_set(0u64..1_000_000, 0..3_000),
        ours_only in proptest::collection::btree_set(1_000_000u64..1_100_000, 0..40),
        theirs_only in proptest::collection::btree_set(1_100_000u64..1_200_000, 0..40),
        changed in proptest::collection::btree_set(0usize..3_000, 0..20),
    ) {
        let shared: Vec<u64> = shared.into_iter().collect();
        let our_items: Vec<Item> = shared
            .iter()
            .chain(&ours_only)
            .map(|seed| item(*seed, 1))
            .collect();
        let mut their_items: Vec<Item> = shared
            .iter()
            .chain(&theirs_only)
            .map(|seed| item(*seed, 1))
            .collect();
        // Some shared feeds have a newer head on their side.
        for index in &changed {
            if let Some(item) = their_items.get_mut(*index % shared.len().max(1)) {
                if shared.contains(&u64::from_be_bytes(item.key[..8].try_into().unwrap())) {
                    item.seq = 2;
                    item.id = [7; 32];
                }
            }
        }
        let mut ours = store(our_items.clone());
        let mut theirs = store(their_items.clone());
        let (leaves, rounds) = reconcile(&mut ours, &mut theirs);
        let ours_set: BTreeSet<Item> = our_items.into_iter().collect();
        let theirs_set: BTreeSet<Item> = their_items.into_iter().collect();
        let expected: BTreeSet<Item> =
            ours_set.symmetric_difference(&theirs_set).copied().collect();
        prop_assert_eq!(differences(&ours, &leaves), expected.clone());
        let differing_keys: BTreeSet<Key> = expected.iter().map(|item| item.key).collect();
        prop_assert!(
            rounds <= round_bound(theirs_set.len(), differing_keys.len()),
            "{} rounds for {} items, {} differing", rounds, theirs_set.len(), differing_keys.len()
        );
        if expected.is_empty() {
            prop_assert_eq!(rounds, 1);
        }
    }
}
