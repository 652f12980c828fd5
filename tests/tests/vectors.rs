//! Runs the implementation against the checked-in test vectors in `tests/vectors/`, and checks
//! that the vectors are what the generator produces (so a format change cannot slip in
//! unnoticed). Regenerate intentionally with `PLEXUS_WRITE_VECTORS=1`.

use std::collections::HashSet;
use std::path::PathBuf;

use plexus_crypto::{sha256, verify_batch_with_fallback, AgentId, BatchItem, Keypair, Signature};
use plexus_node::audit::{verify_file, VerifyOptions};
use plexus_protocol::value::{canonical_to_json, json_text_to_canonical, json_to_canonical};
use plexus_protocol::{Entry, ForkProof};
use plexus_tests::vectors::audit::{
    generate_envelope_errors, generate_exports, generate_fork_proofs,
};
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
