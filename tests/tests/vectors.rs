//! Runs the implementation against the checked-in test vectors in `tests/vectors/`, and checks
//! that the vectors are what the generator produces (so a format change cannot slip in
//! unnoticed). Regenerate intentionally with `PLEXUS_WRITE_VECTORS=1`.

use plexus_crypto::{sha256, Keypair};
use plexus_protocol::value::json_text_to_canonical;
use plexus_protocol::Entry;
use plexus_tests::vectors::{generate, hex, unhex};
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
    let generated = generate();
    let path = vectors_path();
    if std::env::var_os("PLEXUS_WRITE_VECTORS").is_some() {
        let text = serde_json::to_string_pretty(&generated).unwrap() + "\n";
        std::fs::write(&path, text).unwrap();
    }
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    let stored: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        stored, generated,
        "tests/vectors/entries.json differs from what the implementation generates; if the \
         format change is intended, rerun with PLEXUS_WRITE_VECTORS=1"
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
