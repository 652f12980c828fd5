//! What each fuzz target checks, one function per target: decoders of untrusted bytes must never
//! panic, must stay bounded, and where an encoder exists, decode -> encode -> decode must give
//! back the same value (and, for the canonical formats, the same bytes).
//!
//! The fuzz targets in `fuzz_targets/` call these with libFuzzer's input; the stable test
//! `protocol/tests/fuzz_corpus.rs` runs them over every committed corpus file, so a corpus file
//! that once crashed a decoder keeps being checked by the ordinary test suite. A failed property
//! panics: that is how libFuzzer learns of it.

use std::collections::HashMap;

/// The node's `/plexus/sync/1` message types, compiled from the node's own source file (which
/// depends on serde alone), so the `sync_codec` target decodes into exactly what the node
/// decodes into, without building the node.
#[allow(dead_code)]
#[path = "../../node/src/net/wire.rs"]
mod sync_wire;

use plexus_crypto::{
    verify_batch_parallel, verify_batch_with_fallback, AgentId, AgentIdCache, BatchItem, Keypair,
    Signature, PUBLIC_KEY_LEN, SIGNATURE_LEN,
};
use plexus_protocol::coord::Body;
use plexus_protocol::export::{classify, ExportHeader, ExportTrailer, ItemKind};
use plexus_protocol::feed::{place, Placement};
use plexus_protocol::policy::Policy;
use plexus_protocol::value::{self, MAX_VALUE_DEPTH};
use plexus_protocol::Kind;
use plexus_protocol::{cbor, ChainTracker, Entry, FeedHead, FeedKey, ForkProof, MAX_ENTRY_LEN};

/// One target's checks over one input; a failed property panics.
pub type Check = fn(&[u8]);

/// Every target, by name: the fuzz targets of `fuzz_targets/` and the corpus test's list.
pub const TARGETS: [(&str, Check); 11] = [
    ("entry", entry),
    ("cbor", cbor_canonical),
    ("export", export_stream),
    ("fork_proof", fork_proof),
    ("policy_body", policy_body),
    ("coord_body", coord_body),
    ("json_request", json_request),
    ("sync_response", sync_response),
    ("sync_codec", sync_codec),
    ("signature", signature),
    ("key_file", key_file),
];

/// `Entry::decode` and its variants: the cached and the in-place decoders agree with it; an
/// accepted envelope is canonical CBOR (what the reference decoder demands, so the fast path
/// accepts nothing more) and re-encodes to exactly its bytes; the lenient position reader
/// agrees with the strict decoder on what it accepts.
pub fn entry(data: &[u8]) {
    let mut cache = AgentIdCache::new();
    let kept = Entry::decode_keeping_header(data);
    assert_eq!(kept, Entry::decode_keeping_header_cached(data, &mut cache));
    let view = Entry::decode_view(data, &mut cache);
    assert_eq!(view.is_some(), matches!(kept, Ok((_, None))));
    let (entry, body_error) = match kept {
        Ok(decoded) => decoded,
        Err(_) => return,
    };
    let header = entry.header();
    assert_eq!(
        Entry::peek_position(data),
        Some((header.namespace.clone(), header.author, header.seq)),
        "the position reader disagrees with the decoder"
    );
    if body_error.is_some() {
        assert_eq!(entry.body(), None, "a body that fails its hash is dropped");
        return;
    }
    assert!(
        cbor::decode_canonical(data).is_ok(),
        "an accepted envelope is canonical CBOR"
    );
    assert_eq!(
        entry.encode(),
        data,
        "an accepted envelope re-encodes to itself"
    );
    assert_eq!(entry.encoded_len(), data.len());
    if let Some(view) = view {
        assert_eq!(view.to_entry(), entry);
        assert_eq!(view.id(), entry.id());
    }
    let stripped = entry.without_body();
    assert_eq!(Entry::decode(&stripped.encode()), Ok(stripped.clone()));
    assert_eq!(stripped.id(), entry.id(), "stripping the body keeps the id");
}

/// The strict CBOR decoder and the framer: an accepted item is exactly its canonical encoding,
/// the framer finds the same length, and a JSON-like value survives the trip through JSON.
pub fn cbor_canonical(data: &[u8]) {
    let framed = cbor::item_len(data);
    if let Ok(Some(len)) = framed {
        assert!(
            len <= data.len(),
            "the framer reports more bytes than it was given"
        );
    }
    let Ok(value) = cbor::decode_canonical(data) else {
        return;
    };
    assert_eq!(framed, Ok(Some(data.len())));
    assert_eq!(cbor::encode(&value), data, "an accepted item is canonical");
    if let Ok(json) = value::canonical_to_json(data) {
        assert_eq!(
            value::json_to_canonical(&json).as_deref(),
            Ok(data),
            "canonical body bytes survive a trip through JSON"
        );
    }
}

/// The export framer and verifier as `audit verify` runs them: split the file into CBOR items,
/// classify each, decode headers, trailers and entries, and stream entries through one chain
/// tracker per feed. Headers and trailers round-trip; trackers stay one per feed.
pub fn export_stream(data: &[u8]) {
    let mut trackers: HashMap<FeedKey, ChainTracker> = HashMap::new();
    let mut rest = data;
    let mut items = 0usize;
    while !rest.is_empty() {
        let len = match cbor::item_len(rest) {
            Ok(Some(len)) if len <= MAX_ENTRY_LEN && len > 0 => len,
            _ => break,
        };
        let Some((item, after)) = rest.split_at_checked(len) else {
            panic!("the framer reported {len} bytes of {}", rest.len());
        };
        rest = after;
        items += 1;
        match classify(item) {
            ItemKind::Header => {
                if let Ok(header) = ExportHeader::decode(item) {
                    assert_eq!(header.encode(), item, "an accepted header is canonical");
                }
            }
            ItemKind::Trailer => {
                if let Ok(trailer) = ExportTrailer::decode(item) {
                    assert_eq!(trailer.encode(), item, "an accepted trailer is canonical");
                    let _ = trailer.verify_signature();
                }
            }
            ItemKind::Entry | ItemKind::Unknown => match Entry::decode_keeping_header(item) {
                // The signature is not checked here: the tracker is fed as if it held, so the
                // fuzzer reaches the chain logic without forging Ed25519.
                Ok((entry, _)) => {
                    let header = entry.header();
                    trackers.entry(FeedKey::of(&entry)).or_default().observe(
                        header.seq,
                        header.prev,
                        entry.id(),
                    );
                }
                Err(_) => {
                    if let Some((namespace, author, seq)) = Entry::peek_position(item) {
                        let feed = FeedKey { namespace, author };
                        trackers.entry(feed).or_default().observe_unverified(seq);
                    }
                }
            },
        }
    }
    assert!(
        trackers.len() <= items,
        "more feeds tracked than items read"
    );
}

/// `ForkProof::decode`: an accepted proof is its canonical encoding and really proves a fork
/// (same feed and seq, different ids in ascending order, no bodies).
pub fn fork_proof(data: &[u8]) {
    let Ok(proof) = ForkProof::decode(data) else {
        return;
    };
    assert_eq!(proof.encode(), data, "an accepted proof is canonical");
    let (first, second) = proof.entries();
    assert!(first.id() < second.id());
    assert_eq!(FeedKey::of(first), FeedKey::of(second));
    assert_eq!(first.header().seq, second.header().seq);
    assert!(first.body().is_none() && second.body().is_none());
    assert!(first.verify_signature() && second.verify_signature());
}

/// `policy` bodies, as canonical CBOR (from the log) or JSON text (from the API): an accepted
/// body compiles into the policy the decision uses, and re-encodes to bytes that parse back to
/// the same body.
pub fn policy_body(data: &[u8]) {
    let Some(body) = parse_body(Kind::Policy.as_str(), data) else {
        return;
    };
    let Body::Policy(policy) = &body else {
        panic!("a policy entry parsed as {}", body.kind());
    };
    assert!(
        Policy::from_body(policy).is_ok(),
        "a valid policy body must compile"
    );
}

/// Every coordination body (`Body::parse` and `Body::from_json`): the first byte picks the
/// kind and the format, the rest is the body. An accepted body re-encodes and parses back the
/// same (`parse_body` checks it).
pub fn coord_body(data: &[u8]) {
    let Some((selector, rest)) = data.split_first() else {
        return;
    };
    let kinds: Vec<&str> = Kind::NAMED
        .iter()
        .map(|kind| kind.as_str())
        .chain(["x-application", "unknown-kind"])
        .collect();
    let kind = kinds
        .get(usize::from(*selector >> 1) % kinds.len())
        .copied()
        .unwrap_or("intent");
    let mut input = Vec::with_capacity(data.len());
    input.push(*selector & 1);
    input.extend_from_slice(rest);
    let _ = parse_body(kind, &input);
}

/// The strict JSON reader the HTTP API reads every request with: what it accepts is JSON to
/// serde_json too, and a body value it accepts survives a trip through canonical CBOR.
pub fn json_request(data: &[u8]) {
    let Ok(request) = value::parse_json_request(data, MAX_VALUE_DEPTH + 1) else {
        return;
    };
    assert!(
        serde_json::from_slice::<serde_json::Value>(data).is_ok(),
        "the strict reader accepted text that is not JSON"
    );
    let Ok(text) = std::str::from_utf8(data) else {
        panic!("the strict reader accepted bytes that are not UTF-8");
    };
    if let Ok(canonical) = value::json_text_to_canonical(text) {
        assert_eq!(value::json_to_canonical(&request).as_ref(), Ok(&canonical));
        assert_eq!(
            value::canonical_to_json(&canonical).as_ref(),
            Ok(&request),
            "a body value survives a trip through canonical CBOR"
        );
    }
}

/// What a node does with a sync `Entries` response (its decoding lives in `plexus-node`, on
/// libp2p's CBOR codec; this checks the protocol types it relies on): a sequence of envelopes,
/// each decoded strictly and placed against a simulated feed store, with forks turned into
/// proofs. Placement agrees with what the store holds.
pub fn sync_response(data: &[u8]) {
    let mut heads: HashMap<FeedKey, FeedHead> = HashMap::new();
    let mut stored: HashMap<(FeedKey, u64), Entry> = HashMap::new();
    let mut rest = data;
    while let Ok(Some(len)) = cbor::item_len(rest) {
        let Some((item, after)) = rest.split_at_checked(len).filter(|_| len > 0) else {
            panic!("the framer reported {len} bytes of {}", rest.len());
        };
        rest = after;
        let Ok(entry) = Entry::decode(item) else {
            continue;
        };
        let feed = FeedKey::of(&entry);
        let seq = entry.header().seq;
        let head = heads.get(&feed).copied();
        let at_seq = stored.get(&(feed.clone(), seq)).map(Entry::id);
        match place(head, at_seq, &entry) {
            Placement::Next => {
                assert_eq!(seq, head.map_or(0, |head| head.seq) + 1);
                heads.insert(
                    feed.clone(),
                    FeedHead {
                        seq,
                        id: entry.id(),
                    },
                );
                stored.insert((feed, seq), entry);
            }
            Placement::Duplicate => assert_eq!(at_seq, Some(entry.id())),
            Placement::Fork { stored: other } => {
                assert_ne!(other, entry.id());
                if let Some(rival) = stored.get(&(feed, seq)) {
                    // Unsigned fuzz input makes this an error, never a panic.
                    let _ = ForkProof::new(rival.clone(), entry);
                }
            }
            Placement::Ahead { missing_from } => assert!(missing_from <= seq),
            Placement::BrokenLink { head } => {
                assert_eq!(head.seq.checked_add(1), Some(seq));
                assert_ne!(entry.header().prev, Some(head.id));
            }
        }
    }
}

/// The node's sync codec (libp2p's request-response CBOR codec on `/plexus/sync/1`): the same
/// bytes read as a request and as a response with `cbor4ii::serde::from_slice`, the function
/// that codec decodes with, into the node's own types. An accepted message encodes (as the
/// codec's `to_vec` does) to bytes that decode back to it and encode again to the same bytes;
/// every envelope an accepted response carries goes through the strict entry decoder.
pub fn sync_codec(data: &[u8]) {
    if let Ok(request) = cbor4ii::serde::from_slice::<sync_wire::SyncRequest>(data) {
        round_trip(&request);
    }
    if let Ok(response) = cbor4ii::serde::from_slice::<sync_wire::SyncResponse>(data) {
        round_trip(&response);
        let envelopes: Vec<&[u8]> = match &response {
            sync_wire::SyncResponse::Entries { entries } => {
                entries.iter().map(|entry| entry.as_slice()).collect()
            }
            sync_wire::SyncResponse::RangeEntries { ranges } => ranges
                .iter()
                .flatten()
                .map(|entry| entry.as_slice())
                .collect(),
            _ => Vec::new(),
        };
        for envelope in envelopes {
            if let Ok(entry) = Entry::decode(envelope) {
                assert_eq!(
                    entry.encode(),
                    envelope,
                    "an accepted envelope re-encodes as itself"
                );
            }
        }
    }
}

/// Encodes `message` as the sync codec does and checks that it decodes back equal and encodes
/// again to the same bytes.
fn round_trip<T>(message: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let bytes = cbor4ii::serde::to_vec(Vec::new(), message).expect("a decoded message encodes");
    let again: T = cbor4ii::serde::from_slice(&bytes)
        .unwrap_or_else(|error| panic!("{message:?} encoded to bytes it cannot read: {error}"));
    assert_eq!(&again, message, "a sync message changed in a round trip");
    let bytes_again = cbor4ii::serde::to_vec(Vec::new(), &again).expect("encodes");
    assert_eq!(
        bytes, bytes_again,
        "a sync message's encoding is not stable"
    );
}

/// Ed25519 keys and signatures (`plexus-crypto`), laid out as 32 bytes of key, 64 of signature,
/// then the message: the cached key parser agrees with the plain one, an accepted key's hex
/// form parses back to it, and single, batch (alone and twice over) and parallel verification
/// give one verdict (docs/PROTOCOL.md §1: one rule on every path).
pub fn signature(data: &[u8]) {
    let Some((key, rest)) = data.split_at_checked(PUBLIC_KEY_LEN) else {
        return;
    };
    let Some((signature, message)) = rest.split_at_checked(SIGNATURE_LEN) else {
        return;
    };
    let author = AgentId::from_slice(key);
    let key_array: [u8; PUBLIC_KEY_LEN] = key.try_into().unwrap_or([0; PUBLIC_KEY_LEN]);
    assert_eq!(AgentIdCache::new().parse(&key_array), author);
    let Ok(author) = author else {
        return;
    };
    assert_eq!(author.to_string().parse::<AgentId>().as_ref(), Ok(&author));
    let Some(signature) = Signature::from_slice(signature) else {
        panic!("a 64-byte signature was refused");
    };
    let item = BatchItem {
        author: &author,
        message,
        signature: &signature,
    };
    let single = author.verify(message, &signature);
    assert_eq!(verify_batch_with_fallback(&[item]).is_ok(), single);
    assert_eq!(verify_batch_parallel(&[item]).is_ok(), single);
    let twice = verify_batch_with_fallback(&[item, item]);
    let expected_bad = if single { vec![] } else { vec![0, 1] };
    assert_eq!(
        twice.err().map(|error| error.bad).unwrap_or_default(),
        expected_bad
    );
}

/// Key file text (`Keypair::from_key_file_text`): a file it accepts renders back to text that
/// parses to the same key.
pub fn key_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(keypair) = Keypair::from_key_file_text(text) else {
        return;
    };
    let again = Keypair::from_key_file_text(&keypair.to_key_file_text());
    assert_eq!(
        again.map(|again| again.agent_id()).ok(),
        Some(keypair.agent_id())
    );
}

/// Parses a body of `kind` from `data`: a first byte of 0 means canonical CBOR follows, any
/// other JSON text. An accepted body must re-encode to bytes that parse back to it.
fn parse_body(kind: &str, data: &[u8]) -> Option<Body> {
    let (format, rest) = data.split_first()?;
    let body = if *format == 0 {
        Body::parse(kind, rest).ok()?
    } else {
        let json = value::parse_json_request(rest, MAX_VALUE_DEPTH).ok()?;
        Body::from_json(kind, json).ok()?
    };
    let encoded = body.encode().unwrap_or_else(|error| {
        panic!("an accepted {kind} body does not encode: {error}");
    });
    assert_eq!(
        Body::parse(kind, &encoded).as_ref(),
        Ok(&body),
        "an accepted {kind} body parses back from its encoding"
    );
    Some(body)
}
