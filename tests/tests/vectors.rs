//! Runs the implementation against the checked-in test vectors in `tests/vectors/`, and checks
//! that the vectors are what the generator produces (so a format change cannot slip in
//! unnoticed). Regenerate intentionally with `PLEXUS_WRITE_VECTORS=1`.

use std::collections::HashSet;
use std::path::PathBuf;

use libp2p::futures::executor::block_on;
use libp2p::futures::io::Cursor;
use libp2p::request_response::{cbor::codec::Codec, Codec as _};
use libp2p::StreamProtocol;
use plexus_crypto::{sha256, verify_batch_with_fallback, AgentId, BatchItem, Keypair, Signature};
use plexus_node::audit::{verify_file, VerifyOptions};
use plexus_node::net::reconcile::{decode_answers, decode_request, encode_answers, encode_request};
use plexus_node::net::sync::{SyncRequest, SyncResponse, SYNC_PROTOCOL};
use plexus_node::node::answer_ranges;
use plexus_protocol::reconcile::{answer, fingerprint_of, Item, KeyRange, Session};
use plexus_protocol::value::{canonical_to_json, json_text_to_canonical, json_to_canonical};
use plexus_protocol::{Entry, ForkProof};
use plexus_tests::vectors::audit::{
    generate_envelope_errors, generate_exports, generate_fork_proofs,
};
use plexus_tests::vectors::reconcile::{to_fetch, wire_request, wire_response, VecStore};
use plexus_tests::vectors::{self, generate, hex, unhex};
use serde_json::Value;

/// A vectors file of the checkout being tested. Looked up at run time: cargo may reuse a test
/// binary built from another checkout that shares the target directory, and that checkout's
/// path, baked in at compile time, may be gone.
fn vectors_path(name: &str) -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("vectors")
        .join(name)
}

fn load() -> Value {
    load_file("entries.json", generate())
}

/// Reads `tests/vectors/NAME`, which must equal what the generator produces (rewritten first
/// when `PLEXUS_WRITE_VECTORS` is set).
fn load_file(name: &str, generated: Value) -> Value {
    let path = vectors_path(name);
    if std::env::var_os("PLEXUS_WRITE_VECTORS").is_some() {
        let text = serde_json::to_string_pretty(&generated).unwrap() + "\n";
        std::fs::write(&path, text).unwrap();
    }
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    let stored: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        stored, generated,
        "tests/vectors/{name} differs from what the generator produces; if the format change \
         is intended, rerun with PLEXUS_WRITE_VECTORS=1"
    );
    stored
}

fn bytes(value: &Value, field: &str) -> Vec<u8> {
    unhex(value[field].as_str().unwrap()).unwrap()
}

#[test]
fn valid_vectors_decode_verify_and_reproduce() {
    let vectors = load();
    let valid = vectors["valid"].as_array().unwrap();
    assert!(valid.len() >= 4);
    for vector in valid {
        let name = vector["name"].as_str().unwrap();
        let envelope = bytes(vector, "envelope_hex");
        let entry = Entry::decode(&envelope).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(entry.verify_signature(), "{name}");
        assert_eq!(entry.encode(), envelope, "{name}: re-encoding");
        // The id is plain SHA-256 of the signed header bytes.
        let signed_header = bytes(vector, "signed_header_hex");
        assert_eq!(sha256(&signed_header).to_string(), vector["id"], "{name}");
        assert_eq!(entry.id().to_string(), vector["id"], "{name}");
        assert_eq!(
            hex(&entry.signing_input()),
            vector["signing_input_hex"],
            "{name}"
        );
        // Signatures are deterministic: the seed reproduces them.
        let seed: [u8; 32] = bytes(vector, "secret_seed_hex").try_into().unwrap();
        let keypair = Keypair::from_seed(&seed);
        assert_eq!(keypair.agent_id().to_string(), vector["author"], "{name}");
        assert_eq!(
            hex(&keypair.sign(&entry.signing_input()).0),
            vector["signature_hex"],
            "{name}"
        );
        let header = entry.header();
        assert_eq!(header.seq, vector["seq"].as_u64().unwrap(), "{name}");
        assert_eq!(header.body_hash.to_string(), vector["body_hash"], "{name}");
        if let Some(body) = vector["body_hex"].as_str() {
            assert_eq!(
                sha256(&unhex(body).unwrap()).to_string(),
                vector["body_hash"]
            );
        } else {
            assert_eq!(entry.body(), None, "{name}");
        }
    }
}

#[test]
fn invalid_vectors_fail_with_the_stated_error() {
    let vectors = load();
    let invalid = vectors["invalid"].as_array().unwrap();
    assert!(invalid.len() >= 10);
    for vector in invalid {
        let name = vector["name"].as_str().unwrap();
        let envelope = bytes(vector, "envelope_hex");
        let code = vector["error_code"].as_str().unwrap();
        match Entry::decode(&envelope) {
            Ok(entry) => {
                assert_eq!(
                    code, "bad-signature",
                    "{name}: decoded, so only the signature may fail"
                );
                assert!(!entry.verify_signature(), "{name}: must not verify");
            }
            Err(error) => {
                assert_eq!(error.code(), code, "{name}");
                assert_eq!(error.to_string(), vector["error"], "{name}");
            }
        }
    }
}

#[test]
fn body_vectors_are_canonical() {
    let vectors = load();
    for vector in vectors["bodies"].as_array().unwrap() {
        let canonical = json_text_to_canonical(vector["json"].as_str().unwrap()).unwrap();
        assert_eq!(hex(&canonical), vector["canonical_hex"]);
        assert_eq!(sha256(&canonical).to_string(), vector["sha256"]);
    }
}

#[test]
fn valid_vector_bodies_are_bodies_a_node_accepts() {
    // A vector whose body its kind does not allow (docs/PROTOCOL.md §9) would teach an
    // implementer to produce entries every node refuses.
    let vectors = load();
    for vector in vectors["valid"].as_array().unwrap() {
        let name = vector["name"].as_str().unwrap();
        let entry = Entry::decode(&bytes(vector, "envelope_hex")).unwrap();
        plexus_protocol::coord::check_body(&entry)
            .unwrap_or_else(|error| panic!("{name}: a node refuses this body: {error}"));
    }
}

#[test]
fn every_envelope_error_code_and_the_order_among_them() {
    let vectors = load_file("envelope-errors.json", generate_envelope_errors());
    let cases = vectors["envelopes"].as_array().unwrap();
    let mut codes = HashSet::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let envelope = bytes(case, "envelope_hex");
        let code = case["error_code"].as_str().unwrap();
        codes.insert(code.to_owned());
        match Entry::decode(&envelope) {
            Ok(entry) => {
                assert_eq!(code, "bad-signature", "{name}: decoded");
                assert!(!entry.verify_signature(), "{name}: must not verify");
            }
            Err(error) => {
                assert_eq!(error.code(), code, "{name}: {error}");
                assert_eq!(error.to_string(), case["error"], "{name}");
            }
        }
    }
    // Every code of docs/PROTOCOL.md §3.4 has at least one envelope.
    let fields = [
        "envelope",
        "header",
        "version",
        "namespace",
        "author",
        "seq",
        "prev",
        "timestamp",
        "kind",
        "body_hash",
        "body_len",
        "signature",
        "body",
    ];
    let mut expected: HashSet<String> = [
        "too-large",
        "truncated",
        "malformed-cbor",
        "too-deep",
        "non-canonical",
        "trailing-bytes",
        "unsorted-map",
        "unsupported-version",
        "body-len-mismatch",
        "body-hash-mismatch",
        "bad-signature",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    expected.extend(fields.iter().map(|field| format!("field:{field}")));
    let missing: Vec<_> = expected.difference(&codes).collect();
    assert!(missing.is_empty(), "no vector for {missing:?}");
}

#[test]
fn fork_proof_vectors() {
    let vectors = load_file("fork-proofs.json", generate_fork_proofs());
    let valid = &vectors["valid"];
    let proof = ForkProof::decode(&bytes(valid, "proof_hex")).unwrap();
    let (first, second) = proof.entries();
    assert_eq!(first.id().to_string(), valid["first_id"]);
    assert_eq!(second.id().to_string(), valid["second_id"]);
    assert_eq!(proof.feed().namespace, valid["namespace"].as_str().unwrap());
    assert_eq!(proof.feed().author.to_string(), valid["author"]);
    assert_eq!(proof.seq(), valid["seq"].as_u64().unwrap());
    assert_eq!(hex(&proof.encode()), valid["proof_hex"]);
    for case in vectors["invalid"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let error = ForkProof::decode(&bytes(case, "proof_hex"))
            .err()
            .unwrap_or_else(|| panic!("{name}: must be refused"));
        assert_eq!(error.code(), case["error_code"], "{name}: {error}");
    }
}

#[test]
fn export_file_vectors_give_the_stated_findings_and_verdicts() {
    let vectors = load_file("exports.json", generate_exports());
    let valid = &vectors["valid"];
    // The trailer signature is over the domain tag and [entry_count, digest, exporter].
    let trailer_input = bytes(valid, "trailer_signing_input_hex");
    assert!(trailer_input.starts_with(&bytes(valid, "trailer_domain_hex")));
    let seed: [u8; 32] = bytes(valid, "exporter_seed_hex").try_into().unwrap();
    let exporter = Keypair::from_seed(&seed);
    assert_eq!(exporter.agent_id().to_string(), valid["exporter"]);
    let trailer = bytes(valid, "trailer_hex");
    assert!(hex(&trailer).ends_with(&hex(&exporter.sign(&trailer_input).0)));
    let file = bytes(valid, "file_hex");
    assert!(file.starts_with(&bytes(valid, "header_hex")));
    assert!(file.ends_with(&trailer));
    assert_eq!(
        sha256(&file[..file.len() - trailer.len()]).to_string(),
        valid["digest"]
    );

    let dir = tempfile::tempdir().unwrap();
    for case in vectors["files"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let path = dir.path().join("export.plexus");
        std::fs::write(&path, bytes(case, "file_hex")).unwrap();
        let trusted_authors = case["trusted_authors"].as_array().map(|keys| {
            keys.iter()
                .map(|key| key.as_str().unwrap().parse::<AgentId>().unwrap())
                .collect::<HashSet<_>>()
        });
        let trust_roots = case["trust_roots"]
            .as_object()
            .map(|roots| {
                roots
                    .iter()
                    .map(|(namespace, admins)| {
                        let admins = admins.as_array().unwrap().iter();
                        let admins = admins.map(|admin| admin.as_str().unwrap().parse().unwrap());
                        (namespace.clone(), admins.collect())
                    })
                    .collect()
            })
            .unwrap_or_default();
        let options = VerifyOptions {
            trusted_authors,
            trust_roots,
            ..VerifyOptions::default()
        };
        let report = verify_file(&path, &options, &()).unwrap();
        let findings: Vec<Value> = report
            .findings
            .iter()
            .map(|finding| {
                let mut value = serde_json::json!({
                    "kind": serde_json::to_value(finding.kind).unwrap(),
                    "offset": finding.offset,
                });
                if let (Some(namespace), Some(author), Some(seq)) =
                    (&finding.namespace, finding.author, finding.seq)
                {
                    value["namespace"] = namespace.as_str().into();
                    value["author"] = author.to_string().into();
                    value["seq"] = seq.into();
                }
                value
            })
            .collect();
        assert_eq!(&Value::from(findings), &case["findings"], "{name}");
        assert_eq!(
            serde_json::to_value(report.verdict).unwrap(),
            case["verdict"],
            "{name}"
        );
        assert_eq!(
            i64::from(report.exit_code()),
            case["exit_code"].as_i64().unwrap(),
            "{name}"
        );
    }
}

#[test]
fn signature_vectors_give_one_verdict_single_and_batched() {
    let vectors = load_file("signatures.json", vectors::signatures::generate());
    let single = vectors["single"].as_array().unwrap();
    assert!(single.len() >= 12);
    let mut parsed = Vec::new();
    for vector in single {
        let name = vector["name"].as_str().unwrap();
        let key: [u8; 32] = bytes(vector, "public_key_hex").try_into().unwrap();
        let signature = Signature::from_slice(&bytes(vector, "signature_hex")).unwrap();
        let message = bytes(vector, "message_hex");
        let author = AgentId::from_bytes(&key).ok();
        let verdict = author.is_some_and(|author| author.verify(&message, &signature));
        assert_eq!(verdict, vector["valid"].as_bool().unwrap(), "{name}");
        parsed.push((author, message, signature));
    }
    for batch in vectors["batches"].as_array().unwrap() {
        let name = batch["name"].as_str().unwrap();
        let cases: Vec<usize> = batch["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|index| index.as_u64().unwrap() as usize)
            .collect();
        let items: Vec<BatchItem<'_>> = cases
            .iter()
            .map(|case| {
                let (author, message, signature) = &parsed[*case];
                BatchItem {
                    author: author.as_ref().expect("batches hold valid keys only"),
                    message,
                    signature,
                }
            })
            .collect();
        let bad: Vec<u64> = verify_batch_with_fallback(&items)
            .err()
            .map(|error| error.bad.into_iter().map(|index| index as u64).collect())
            .unwrap_or_default();
        let expected: Vec<u64> = batch["bad"]
            .as_array()
            .unwrap()
            .iter()
            .map(|index| index.as_u64().unwrap())
            .collect();
        assert_eq!(bad, expected, "{name}");
        // The batch verdict is the single verdicts, item by item.
        let single_bad: Vec<u64> = cases
            .iter()
            .enumerate()
            .filter(|(_, case)| !single[**case]["valid"].as_bool().unwrap())
            .map(|(position, _)| position as u64)
            .collect();
        assert_eq!(bad, single_bad, "{name}");
    }
}

#[test]
fn float_vectors_are_canonical_and_refusals_are_named() {
    let vectors = load_file("floats.json", vectors::floats::generate());
    for vector in vectors["valid"].as_array().unwrap() {
        let text = vector["json"].as_str().unwrap();
        let canonical = json_text_to_canonical(text).unwrap();
        assert_eq!(hex(&canonical), vector["canonical_hex"], "{text}");
        // The canonical bytes decode as a body and encode back to themselves.
        let json = canonical_to_json(&canonical).unwrap();
        assert_eq!(json_to_canonical(&json).unwrap(), canonical, "{text}");
    }
    for vector in vectors["refused_json"].as_array().unwrap() {
        let text = vector["json"].as_str().unwrap();
        let error = json_text_to_canonical(text).unwrap_err();
        assert_eq!(
            vectors::floats::error_kind(&error),
            vector["error"],
            "{text}"
        );
        assert_eq!(error.field(), vector["field"].as_str(), "{text}");
    }
    for vector in vectors["refused_cbor"].as_array().unwrap() {
        let cbor = bytes(vector, "cbor_hex");
        assert_eq!(vector["refused"], true, "{}", vector["note"]);
        assert!(canonical_to_json(&cbor).is_err(), "{}", vector["note"]);
    }
}

#[test]
fn late_claim_vectors_give_the_stated_flag() {
    let document = load_file("late-claims.json", vectors::late::generate());
    let cases = document["vectors"].as_array().unwrap();
    assert!(cases.iter().any(|vector| vector["late"] == true));
    assert!(cases.iter().any(|vector| vector["late"] == false));
    for vector in cases {
        let entry = Entry::decode(&bytes(vector, "envelope_hex")).unwrap();
        let header = entry.header();
        assert_eq!(header.kind, vector["kind"], "{}", vector["note"]);
        assert_eq!(
            header.timestamp_ms, vector["timestamp_ms"],
            "{}",
            vector["note"]
        );
        let reception = plexus_protocol::coord::Reception {
            arrival: vectors::late::arrival_named(vector["arrival"].as_str().unwrap()).unwrap(),
            received_ms: vector["received_ms"].as_u64().unwrap(),
        };
        let window_ms = vector["window_ms"].as_u64().unwrap();
        assert_eq!(
            plexus_protocol::coord::is_late(
                &header.kind,
                header.timestamp_ms,
                reception,
                window_ms
            ),
            vector["late"],
            "{}",
            vector["note"]
        );
    }
}

/// A sync request from the bytes the codec reads off the wire.
fn read_sync_request(wire: &[u8]) -> SyncRequest {
    let mut codec = Codec::<SyncRequest, SyncResponse>::default();
    let protocol = StreamProtocol::new(SYNC_PROTOCOL);
    block_on(codec.read_request(&protocol, &mut Cursor::new(wire.to_vec()))).unwrap()
}

/// A sync response from the bytes the codec reads off the wire.
fn read_sync_response(wire: &[u8]) -> SyncResponse {
    let mut codec = Codec::<SyncRequest, SyncResponse>::default();
    let protocol = StreamProtocol::new(SYNC_PROTOCOL);
    block_on(codec.read_response(&protocol, &mut Cursor::new(wire.to_vec()))).unwrap()
}

fn key_of(value: &Value) -> [u8; 32] {
    unhex(value.as_str().unwrap()).unwrap().try_into().unwrap()
}

fn parse_items(value: &Value) -> Vec<Item> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|item| Item {
            key: key_of(&item["key"]),
            seq: item["seq"].as_u64().unwrap(),
            id: key_of(&item["id"]),
        })
        .collect()
}

/// The fingerprint as §8.2.1 defines it, written out: SHA-256 of the tag, each item's key,
/// seq (u64 big-endian) and id, and the count (u64 big-endian).
fn fingerprint_by_the_text(items: &[Item]) -> String {
    let mut input = b"plexus/reconcile/1".to_vec();
    for item in items {
        input.extend_from_slice(&item.key);
        input.extend_from_slice(&item.seq.to_be_bytes());
        input.extend_from_slice(&item.id);
    }
    input.extend_from_slice(&(items.len() as u64).to_be_bytes());
    hex(&sha256(&input).0)
}

#[test]
fn reconcile_vectors_fingerprints_answers_and_a_whole_exchange() {
    let vectors = load_file("reconcile.json", vectors::reconcile::generate());
    assert_eq!(vectors["empty_fingerprint"], fingerprint_by_the_text(&[]));
    let namespace = vectors["namespace"].as_str().unwrap();

    // Fingerprints of given ranges of the forty items of the cases.
    let forty = parse_items(&vectors["cases"][2]["responder_items"]);
    assert_eq!(forty.len(), 40);
    for vector in vectors["fingerprints"].as_array().unwrap() {
        let note = vector["note"].as_str().unwrap();
        let range = KeyRange {
            lower: key_of(&vector["lower"]),
            upper: (!vector["upper"].is_null()).then(|| key_of(&vector["upper"])),
        };
        let held: Vec<Item> = forty
            .iter()
            .filter(|item| range.contains(&item.key))
            .copied()
            .collect();
        assert_eq!(
            held.len() as u64,
            vector["count"].as_u64().unwrap(),
            "{note}"
        );
        assert_eq!(
            vector["fingerprint"],
            fingerprint_by_the_text(&held),
            "{note}"
        );
        assert_eq!(
            hex(&fingerprint_of(&held).0),
            vector["fingerprint"],
            "{note}"
        );
    }

    // One round each: the request read off the wire, answered from the responder's items,
    // gives the stated response bytes.
    for case in vectors["cases"].as_array().unwrap() {
        let note = case["note"].as_str().unwrap();
        let ours = parse_items(&case["requester_items"]);
        let theirs = parse_items(&case["responder_items"]);
        let SyncRequest::Reconcile {
            namespace: asked,
            ranges,
        } = read_sync_request(&bytes(case, "request_cbor"))
        else {
            panic!("{note}: not a Reconcile request");
        };
        assert_eq!(asked, namespace, "{note}");
        let queries = decode_request(&asked, &ranges).unwrap();
        assert_eq!(queries.len(), 1, "{note}");
        assert_eq!(
            hex(&queries[0].fingerprint.0),
            fingerprint_by_the_text(&ours),
            "{note}"
        );
        let mut responder = VecStore(theirs);
        let answers: Vec<_> = queries
            .iter()
            .map(|query| answer(&mut responder, query).unwrap())
            .collect();
        let response = SyncResponse::Reconciled {
            answers: encode_answers(&answers),
        };
        assert_eq!(
            hex(&wire_response(response)),
            case["response_cbor"],
            "{note}"
        );
    }

    // The whole exchange, replayed by a requester: it sends the stated requests, takes the
    // stated answers, stops when they are done and fetches the stated feeds.
    let exchange = &vectors["exchange"];
    let ours = parse_items(&exchange["requester_items"]);
    let mut requester = VecStore(ours.clone());
    let mut session = Session::new();
    let mut leaves = Vec::new();
    let rounds = exchange["rounds"].as_array().unwrap();
    assert!(rounds.len() >= 2, "the exchange splits at least once");
    for (index, round) in rounds.iter().enumerate() {
        let queries = session.next_request(&mut requester).unwrap().unwrap();
        assert_eq!(
            hex(&wire_request(encode_request(namespace, &queries))),
            round["request_cbor"],
            "round {index}"
        );
        let SyncResponse::Reconciled { answers } =
            read_sync_response(&bytes(round, "response_cbor"))
        else {
            panic!("round {index}: not a Reconciled response");
        };
        let outcome = session
            .handle_answers(decode_answers(answers).unwrap(), &mut requester)
            .unwrap();
        leaves.extend(outcome.leaves);
    }
    assert!(session.next_request(&mut requester).unwrap().is_none());
    assert!(session.is_done());
    let fetched = to_fetch(&ours, &leaves);
    assert_eq!(fetched, parse_items(&exchange["to_fetch"]));
    // The three missing feeds, the one behind and the one with another entry at its head.
    assert_eq!(fetched.len(), 5);
}

#[test]
fn ranges_vectors_are_answered_as_stated() {
    let vectors = load_file("ranges.json", vectors::ranges::generate());
    let held: Vec<Entry> = vectors["held"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| Entry::decode(&bytes(entry, "envelope_hex")).unwrap())
        .collect();
    let (_dir, log) = vectors::ranges::log_holding(held);
    let cases = vectors["cases"].as_array().unwrap();
    assert!(cases.len() >= 5);
    for case in cases {
        let note = case["note"].as_str().unwrap();
        let SyncRequest::Ranges { namespace, ranges } =
            read_sync_request(&bytes(case, "request_cbor"))
        else {
            panic!("{note}: not a Ranges request");
        };
        let response = answer_ranges(&log, &namespace, &ranges).unwrap();
        assert_eq!(
            hex(&wire_response(response.clone())),
            case["response_cbor"],
            "{note}"
        );
        assert_eq!(
            read_sync_response(&bytes(case, "response_cbor")),
            response,
            "{note}"
        );
    }
}
