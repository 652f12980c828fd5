//! Reconciliation vectors (`tests/vectors/reconcile.json`, docs/PROTOCOL.md §8.2.1): item sets,
//! the fingerprints of given ranges of them, for each one-round case the request a requester
//! sends and the answer a responder must give, and a whole exchange round by round, each
//! message also as the bytes on the wire (the sync codec's CBOR).

use libp2p::futures::executor::block_on;
use libp2p::request_response::{cbor::codec::Codec, Codec as _};
use libp2p::StreamProtocol;
use plexus_crypto::sha256;
use plexus_node::net::reconcile::{encode_answers, encode_request, WireAnswer};
use plexus_node::net::sync::{SyncRequest, SyncResponse, SYNC_PROTOCOL};
use plexus_protocol::reconcile::{
    answer, fingerprint, fingerprint_of, Item, KeyRange, Leaf, RangeQuery, Session,
};
use serde_json::{json, Value};

use super::hex;

/// The namespace of every case.
pub const NAMESPACE: &str = "vectors";

/// `count` items with keys SHA-256("key" || i), sorted by key, seq `i + 1`, id SHA-256("id" || i).
pub fn items(count: u8) -> Vec<Item> {
    let mut items: Vec<Item> = (0..count)
        .map(|index| Item {
            key: sha256(&[b"key".as_slice(), &[index]].concat()).0,
            seq: u64::from(index) + 1,
            id: sha256(&[b"id".as_slice(), &[index]].concat()).0,
        })
        .collect();
    items.sort();
    items
}

/// The whole-space request of a requester holding `ours`, and the answer of a responder
/// holding `theirs`.
pub fn case(ours: &[Item], theirs: &[Item]) -> (SyncRequest, SyncResponse) {
    let query = RangeQuery {
        range: KeyRange::FULL,
        fingerprint: fingerprint_of(ours),
    };
    let mut store = VecStore(theirs.to_vec());
    let reply = match answer(&mut store, &query) {
        Ok(reply) => reply,
        Err(never) => match never {},
    };
    (
        encode_request(NAMESPACE, &[query]),
        SyncResponse::Reconciled {
            answers: encode_answers(&[reply]),
        },
    )
}

/// Generates the reconciliation vector document.
pub fn generate() -> Value {
    let forty = items(40);
    let mut forty_changed = forty.clone();
    if let Some(item) = forty_changed.get_mut(7) {
        item.seq += 1;
    }
    let three = items(3);
    let cases = [
        ("equal sets: one range, Equal", &forty, &forty),
        (
            "the responder holds 16 or fewer: Items",
            &Vec::new(),
            &three,
        ),
        (
            "the responder holds more than 16: Split into 16 by count",
            &Vec::new(),
            &forty,
        ),
        (
            "one head differs: Split, only the part holding it has another fingerprint",
            &forty,
            &forty_changed,
        ),
    ];
    let cases: Vec<Value> = cases
        .iter()
        .map(|(note, ours, theirs)| {
            let (request, response) = case(ours, theirs);
            json!({
                "note": note,
                "requester_items": items_json(ours),
                "responder_items": items_json(theirs),
                "request": request_json(&request),
                "request_cbor": hex(&wire_request(request.clone())),
                "answers": response_json(&response),
                "response_cbor": hex(&wire_response(response.clone())),
            })
        })
        .collect();
    json!({
        "namespace": NAMESPACE,
        "fingerprint_tag": "plexus/reconcile/1",
        "empty_fingerprint": hex(&fingerprint_of(&[]).0),
        "fingerprints": fingerprints_json(&forty),
        "cases": cases,
        "exchange": exchange_json(),
    })
}

/// Ranges of `items` (which must hold at least 40), with the items each holds and its
/// fingerprint: the whole space, inner ranges, one holding no item, and one unbounded above.
fn fingerprints_json(items: &[Item]) -> Value {
    let key = |index: usize| items.get(index).map_or([0; 32], |item| item.key);
    let ranges = [
        ("the whole space", KeyRange::FULL),
        (
            "items 10 to 19",
            KeyRange {
                lower: key(10),
                upper: Some(key(20)),
            },
        ),
        (
            "one item: from the key of item 5 to the key of item 6",
            KeyRange {
                lower: key(5),
                upper: Some(key(6)),
            },
        ),
        (
            "no item: from zero to the first key",
            KeyRange {
                lower: [0; 32],
                upper: Some(key(0)),
            },
        ),
        (
            "a lower bound between two keys (item 30's key plus one in its last byte), no upper end",
            KeyRange {
                lower: {
                    let mut lower = key(30);
                    lower[31] = lower[31].wrapping_add(1);
                    lower
                },
                upper: None,
            },
        ),
    ];
    let mut store = VecStore(items.to_vec());
    ranges
        .iter()
        .map(|(note, range)| {
            let held: Vec<Item> = items
                .iter()
                .filter(|item| range.contains(&item.key))
                .copied()
                .collect();
            let fingerprint = match fingerprint(&mut store, range) {
                Ok(fingerprint) => fingerprint,
                Err(never) => match never {},
            };
            json!({
                "note": note,
                "lower": hex(&range.lower),
                "upper": range.upper.as_ref().map(|upper| hex(upper)),
                "count": held.len(),
                "fingerprint": hex(&fingerprint.0),
            })
        })
        .collect()
}

/// The requester's and responder's items of the whole exchange: the responder holds 200
/// feeds; the requester lacks three of them, is behind on one and holds another entry at the
/// head of one more.
pub fn exchange_items() -> (Vec<Item>, Vec<Item>) {
    let theirs = items(200);
    let mut ours = theirs.clone();
    if let Some(item) = ours.get_mut(120) {
        item.seq -= 1;
    }
    if let Some(item) = ours.get_mut(180) {
        item.id = sha256(b"another entry").0;
    }
    for index in [150, 40, 3] {
        ours.remove(index);
    }
    (ours, theirs)
}

/// Runs a whole session of a requester holding `ours` against a responder holding `theirs`:
/// each round's request and response, and the ranges the responder listed.
pub fn exchange(ours: &[Item], theirs: &[Item]) -> (Vec<(SyncRequest, SyncResponse)>, Vec<Leaf>) {
    let mut requester = VecStore(ours.to_vec());
    let mut responder = VecStore(theirs.to_vec());
    let mut session = Session::new();
    let mut rounds = Vec::new();
    let mut leaves = Vec::new();
    loop {
        let queries = match session.next_request(&mut requester) {
            Ok(Some(queries)) => queries,
            Ok(None) => break,
            Err(error) => panic!("the vector session stopped: {error}"),
        };
        let answers: Vec<_> = queries
            .iter()
            .map(|query| match answer(&mut responder, query) {
                Ok(answer) => answer,
                Err(never) => match never {},
            })
            .collect();
        let outcome = session
            .handle_answers(answers.clone(), &mut requester)
            .unwrap_or_else(|error| panic!("the vector session stopped: {error}"));
        leaves.extend(outcome.leaves);
        rounds.push((
            encode_request(NAMESPACE, &queries),
            SyncResponse::Reconciled {
                answers: encode_answers(&answers),
            },
        ));
    }
    (rounds, leaves)
}

/// The feeds a requester holding `ours` fetches after the listed `leaves`: the listed items
/// it lacks, is behind on, or holds another entry for at that seq (with a different id at the
/// same seq, the fetch forms a fork proof).
pub fn to_fetch(ours: &[Item], leaves: &[Leaf]) -> Vec<Item> {
    leaves
        .iter()
        .flat_map(|leaf| &leaf.items)
        .filter(|theirs| {
            !ours.iter().any(|mine| {
                mine.key == theirs.key && mine.seq >= theirs.seq && mine.id == theirs.id
            })
        })
        .copied()
        .collect()
}

fn exchange_json() -> Value {
    let (ours, theirs) = exchange_items();
    let (rounds, leaves) = exchange(&ours, &theirs);
    let rounds: Vec<Value> = rounds
        .into_iter()
        .map(|(request, response)| {
            json!({
                "request": request_json(&request),
                "request_cbor": hex(&wire_request(request)),
                "answers": response_json(&response),
                "response_cbor": hex(&wire_response(response)),
            })
        })
        .collect();
    json!({
        "note": "the responder holds 200 feeds; the requester lacks 3, is one entry behind on \
                 one, and holds another entry at the head of one; rounds until nothing is \
                 pending, then what the requester fetches",
        "requester_items": items_json(&ours),
        "responder_items": items_json(&theirs),
        "rounds": rounds,
        "to_fetch": items_json(&to_fetch(&ours, &leaves)),
    })
}

/// The request as the sync codec writes it.
pub fn wire_request(request: SyncRequest) -> Vec<u8> {
    let mut bytes = libp2p::futures::io::Cursor::new(Vec::new());
    let protocol = StreamProtocol::new(SYNC_PROTOCOL);
    let mut codec = Codec::<SyncRequest, SyncResponse>::default();
    block_on(codec.write_request(&protocol, &mut bytes, request))
        .unwrap_or_else(|error| panic!("encoding a request: {error}"));
    bytes.into_inner()
}

/// The response as the sync codec writes it.
pub fn wire_response(response: SyncResponse) -> Vec<u8> {
    let mut bytes = libp2p::futures::io::Cursor::new(Vec::new());
    let protocol = StreamProtocol::new(SYNC_PROTOCOL);
    let mut codec = Codec::<SyncRequest, SyncResponse>::default();
    block_on(codec.write_response(&protocol, &mut bytes, response))
        .unwrap_or_else(|error| panic!("encoding a response: {error}"));
    bytes.into_inner()
}

/// Items as JSON objects (`key`, `seq`, `id`, hex).
pub fn items_json(items: &[Item]) -> Value {
    items
        .iter()
        .map(|item| json!({"key": hex(&item.key), "seq": item.seq, "id": hex(&item.id)}))
        .collect()
}

fn request_json(request: &SyncRequest) -> Value {
    let SyncRequest::Reconcile { namespace, ranges } = request else {
        return Value::Null;
    };
    let ranges: Vec<Value> = ranges
        .iter()
        .map(|range| {
            json!({
                "lower": hex(&range.lower),
                "upper": range.upper.as_ref().map(|upper| hex(upper)),
                "fingerprint": hex(&range.fingerprint),
            })
        })
        .collect();
    json!({"namespace": namespace, "ranges": ranges})
}

fn response_json(response: &SyncResponse) -> Value {
    let SyncResponse::Reconciled { answers } = response else {
        return Value::Null;
    };
    answers
        .iter()
        .map(|answer| match answer {
            WireAnswer::Equal => json!("Equal"),
            WireAnswer::Items { items } => json!({"Items": items
                .iter()
                .map(|item| json!({"author": hex(&item.author), "seq": item.seq, "id": hex(&item.id)}))
                .collect::<Vec<_>>()}),
            WireAnswer::Split { parts } => json!({"Split": parts
                .iter()
                .map(|part| json!({
                    "upper": part.upper.as_ref().map(|upper| hex(upper)),
                    "fingerprint": hex(&part.fingerprint),
                }))
                .collect::<Vec<_>>()}),
        })
        .collect()
}

/// Items in a vector sorted by key, as a responder's store.
#[derive(Debug)]
pub struct VecStore(pub Vec<Item>);

impl plexus_protocol::reconcile::ItemStore for VecStore {
    type Error = std::convert::Infallible;
    fn visit(
        &mut self,
        range: &KeyRange,
        visit: &mut dyn FnMut(&Item) -> std::ops::ControlFlow<()>,
    ) -> Result<(), Self::Error> {
        let start = self.0.partition_point(|item| item.key < range.lower);
        let held = self.0.get(start..).unwrap_or_default();
        for item in held.iter().take_while(|item| range.contains(&item.key)) {
            if visit(item).is_break() {
                break;
            }
        }
        Ok(())
    }
}
