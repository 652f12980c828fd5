//! Runs the implementation against the checked-in test vectors in `tests/vectors/`, and checks
//! that the vectors are what the generator produces (so a format change cannot slip in
//! unnoticed). Regenerate intentionally with `PLEXUS_WRITE_VECTORS=1`.

use plexus_crypto::{sha256, verify_batch_with_fallback, AgentId, BatchItem, Keypair, Signature};
use plexus_protocol::value::{canonical_to_json, json_text_to_canonical, json_to_canonical};
use plexus_protocol::Entry;
use plexus_tests::vectors::{self, generate, hex, unhex};
use serde_json::Value;
use std::path::PathBuf;

/// The vectors file of the checkout being tested. Looked up at run time: cargo may reuse a test
/// binary built from another checkout that shares the target directory, and that checkout's
/// path, baked in at compile time, may be gone.
fn vectors_path() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("vectors/entries.json")
}

fn load() -> Value {
    load_vector_file("entries.json", generate())
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

/// Compares `tests/vectors/<file>` with what the generator produces (rewriting it first under
/// `PLEXUS_WRITE_VECTORS`), and returns it.
fn load_vector_file(file: &str, generated: Value) -> Value {
    let path = vectors_path().with_file_name(file);
    if std::env::var_os("PLEXUS_WRITE_VECTORS").is_some() {
        let text = serde_json::to_string_pretty(&generated).unwrap() + "\n";
        std::fs::write(&path, text).unwrap();
    }
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    let stored: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        stored, generated,
        "tests/vectors/{file} differs from what the implementation generates; if the change is \
         intended, rerun with PLEXUS_WRITE_VECTORS=1"
    );
    stored
}

#[test]
fn signature_vectors_give_one_verdict_single_and_batched() {
    let vectors = load_vector_file("signatures.json", vectors::signatures::generate());
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
    let vectors = load_vector_file("floats.json", vectors::floats::generate());
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
