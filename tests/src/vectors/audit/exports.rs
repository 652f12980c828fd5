//! `exports.json`: whole audit export files (docs/PROTOCOL.md §6) with the findings a
//! verifier must report for each.

use ciborium::Value as C;
use plexus_crypto::{sha256, Keypair};
use plexus_protocol::export::{ExportHeader, ExportTrailer, TRAILER_DOMAIN};
use plexus_protocol::value::json_text_to_canonical;
use plexus_protocol::{cbor, Draft, Entry};
use serde_json::{json, Value};

use super::{feed, note, splice, NAMESPACE, SEED_EXPORTER, SEED_OTHER};
use crate::vectors::{hex, BASE_TIME_MS, SEED_A, SEED_B};

/// An export file under construction: its bytes so far.
#[derive(Debug, Default, Clone)]
struct ExportFile {
    bytes: Vec<u8>,
}

impl ExportFile {
    /// A file that starts with a header by `exporter` (created at the base time, count hint
    /// `count_hint`).
    fn with_header(exporter: &Keypair, count_hint: u64) -> ExportFile {
        let mut file = ExportFile::default();
        file.push(&header_bytes(exporter, BASE_TIME_MS, count_hint));
        file
    }

    /// Appends an item; returns its offset.
    fn push(&mut self, item: &[u8]) -> u64 {
        let offset = self.bytes.len() as u64;
        self.bytes.extend_from_slice(item);
        offset
    }

    /// Appends the trailer an honest exporter writes for `count` envelopes; returns its offset.
    fn sign(&mut self, exporter: &Keypair, count: u64) -> u64 {
        let trailer = ExportTrailer::sign(exporter, count, sha256(&self.bytes));
        self.push(&trailer.encode())
    }
}

fn header_bytes(exporter: &Keypair, created_ms: u64, count_hint: u64) -> Vec<u8> {
    ExportHeader {
        exporter: exporter.agent_id(),
        created_ms,
        entry_count: count_hint,
    }
    .encode()
}

/// An expected finding: its kind, the entry's position when the finding has one, the offset.
fn finding(kind: &str, position: Option<(&Keypair, u64)>, offset: u64) -> Value {
    match position {
        Some((author, seq)) => json!({
            "kind": kind, "namespace": NAMESPACE, "author": author.agent_id().to_string(),
            "seq": seq, "offset": offset,
        }),
        None => json!({ "kind": kind, "offset": offset }),
    }
}

/// The envelope of `entry` with the first signature byte flipped.
fn flip_signature(entry: &Entry) -> Vec<u8> {
    let mut bytes = entry.encode();
    let body_item = entry.body().map_or(1, |body| body.len() + 1);
    let at = bytes.len() - body_item - 64;
    bytes[at] ^= 0x01;
    bytes
}

/// The envelope of `entry` with its last body byte changed (same length, other hash).
fn flip_body(entry: &Entry) -> Vec<u8> {
    let mut bytes = entry.encode();
    if let Some(last) = bytes.last_mut() {
        *last ^= 0x01;
    }
    bytes
}

/// Generates `exports.json`.
pub fn generate_exports() -> Value {
    let a = Keypair::from_seed(&SEED_A);
    let b = Keypair::from_seed(&SEED_B);
    let exporter = Keypair::from_seed(&SEED_EXPORTER);
    let other = Keypair::from_seed(&SEED_OTHER);
    let feed_a = feed(&a, 3, "a");
    let feed_b = feed(&b, 1, "b");
    let [a1, a2, a3] = [&feed_a[0], &feed_a[1], &feed_a[2]].map(Entry::encode);
    let b1 = feed_b[0].encode();
    // Export order: namespace, then author bytes.
    let a_first = a.agent_id().as_bytes() < b.agent_id().as_bytes();

    let mut cases: Vec<Value> = Vec::new();
    let mut case = |name: &str,
                    note: &str,
                    file: &ExportFile,
                    trusted: Option<Vec<&Keypair>>,
                    findings: Vec<Value>| {
        let verdict = if findings.is_empty() {
            "verified"
        } else if findings.iter().all(|finding| finding["kind"] == "fork") {
            "forked"
        } else {
            "failed"
        };
        let exit_code = match verdict {
            "verified" => 0,
            "forked" => 3,
            _ => 1,
        };
        let trusted: Option<Vec<String>> =
            trusted.map(|keys| keys.iter().map(|key| key.agent_id().to_string()).collect());
        cases.push(json!({
            "name": name,
            "note": note,
            "file_hex": hex(&file.bytes),
            "trusted_authors": trusted,
            "findings": findings,
            "verdict": verdict,
            "exit_code": exit_code,
        }));
    };

    // Valid files.
    let mut valid = ExportFile::with_header(&exporter, 4);
    let header = valid.bytes.clone();
    let (first_feed, second_feed) = if a_first {
        (vec![&a1, &a2, &a3], vec![&b1])
    } else {
        (vec![&b1], vec![&a1, &a2, &a3])
    };
    let mut b1_offset = 0;
    for item in first_feed.iter().chain(&second_feed) {
        let offset = valid.push(item);
        if **item == b1 {
            b1_offset = offset;
        }
    }
    let digest = sha256(&valid.bytes);
    let valid_trailer_offset = valid.sign(&exporter, 4);
    let trailer = valid.bytes[valid_trailer_offset as usize..].to_vec();
    let mut trailer_signing_input = TRAILER_DOMAIN.to_vec();
    trailer_signing_input.extend(cbor::encode(&C::Array(vec![
        C::Integer(4.into()),
        C::Bytes(digest.0.to_vec()),
        C::Bytes(exporter.agent_id().as_bytes().to_vec()),
    ])));
    case(
        "valid",
        "two feeds, namespace then author order",
        &valid,
        None,
        vec![],
    );
    let valid_details = json!({
        "exporter_seed_hex": hex(&SEED_EXPORTER),
        "exporter": exporter.agent_id().to_string(),
        "header_hex": hex(&header),
        "created_ms": BASE_TIME_MS,
        "count_hint": 4,
        "entry_count": 4,
        "digest": digest.to_string(),
        "trailer_domain_hex": hex(TRAILER_DOMAIN),
        "trailer_signing_input_hex": hex(&trailer_signing_input),
        "trailer_hex": hex(&trailer),
        "file_hex": hex(&valid.bytes),
    });

    let mut hint = ExportFile::default();
    hint.push(&header_bytes(&exporter, 0, 99));
    for item in [&a1, &a2, &a3] {
        hint.push(item);
    }
    hint.sign(&exporter, 3);
    case(
        "count hint and creation time are not checked",
        "header with created_ms 0 and count_hint 99 for 3 entries",
        &hint,
        None,
        vec![],
    );

    // Chain findings.
    let rival = note(&a, 2, Some(feed_a[0].id()), "a 2 rival").without_body();
    let mut forked = ExportFile::with_header(&exporter, 4);
    forked.push(&a1);
    forked.push(&a2);
    let rival_offset = forked.push(&rival.encode());
    forked.push(&a3);
    forked.sign(&exporter, 4);
    case(
        "fork",
        "a rival of seq 2 (body null) after the stored seq 2; seq 3 links to the stored one",
        &forked,
        None,
        vec![finding("fork", Some((&a, 2)), rival_offset)],
    );

    let mut gap = ExportFile::with_header(&exporter, 2);
    gap.push(&a1);
    let a3_offset = gap.push(&a3);
    gap.sign(&exporter, 2);
    case(
        "gap",
        "seq 2 left out, trailer re-signed",
        &gap,
        None,
        vec![finding("gap", Some((&a, 3)), a3_offset)],
    );

    let stranger = note(&a, 3, Some(sha256(b"elsewhere")), "a 3 elsewhere").encode();
    let mut broken = ExportFile::with_header(&exporter, 3);
    broken.push(&a1);
    broken.push(&a2);
    let stranger_offset = broken.push(&stranger);
    broken.sign(&exporter, 3);
    case(
        "broken link",
        "seq 3 names a prev that is not seq 2's id",
        &broken,
        None,
        vec![finding("broken-link", Some((&a, 3)), stranger_offset)],
    );

    let mut reordered = ExportFile::with_header(&exporter, 3);
    reordered.push(&a1);
    let a3_offset = reordered.push(&a3);
    let a2_offset = reordered.push(&a2);
    reordered.sign(&exporter, 3);
    case(
        "out of order",
        "seq 1, 3, 2",
        &reordered,
        None,
        vec![
            finding("gap", Some((&a, 3)), a3_offset),
            finding("out-of-order", Some((&a, 2)), a2_offset),
        ],
    );

    let mut duplicate = ExportFile::with_header(&exporter, 4);
    duplicate.push(&a1);
    duplicate.push(&a2);
    let again = duplicate.push(&a2);
    duplicate.push(&a3);
    duplicate.sign(&exporter, 4);
    case(
        "duplicate",
        "seq 2 twice",
        &duplicate,
        None,
        vec![finding("duplicate", Some((&a, 2)), again)],
    );

    // Entry findings, and what they do to the chain.
    let mut bad_signature = ExportFile::with_header(&exporter, 3);
    bad_signature.push(&a1);
    let at = bad_signature.push(&flip_signature(&feed_a[1]));
    bad_signature.push(&a3);
    bad_signature.sign(&exporter, 3);
    case(
        "bad signature",
        "seq 2's signature flipped: it keeps its position, seq 3's link is not judged",
        &bad_signature,
        None,
        vec![finding("bad-signature", Some((&a, 2)), at)],
    );

    let mut body = ExportFile::with_header(&exporter, 3);
    body.push(&a1);
    let at = body.push(&flip_body(&feed_a[1]));
    body.push(&a3);
    body.sign(&exporter, 3);
    case(
        "body mismatch",
        "seq 2's last body byte changed: its signed header is intact and takes its position",
        &body,
        None,
        vec![finding("body-mismatch", Some((&a, 2)), at)],
    );

    let mut both = flip_body(&feed_a[1]);
    let signature_at = both.len() - feed_a[1].body().map_or(1, |body| body.len() + 1) - 64;
    both[signature_at] ^= 0x01;
    let mut body_and_signature = ExportFile::with_header(&exporter, 3);
    body_and_signature.push(&a1);
    let at = body_and_signature.push(&both);
    body_and_signature.push(&a3);
    body_and_signature.sign(&exporter, 3);
    case(
        "body mismatch and bad signature",
        "seq 2 with both faults gets only bad-signature",
        &body_and_signature,
        None,
        vec![finding("bad-signature", Some((&a, 2)), at)],
    );

    let mut located = ExportFile::with_header(&exporter, 3);
    located.push(&a1);
    let at = located.push(&splice(&a2, &[0x8a, 0x01], &[0x8a, 0x18, 0x01]));
    located.push(&a3);
    located.sign(&exporter, 3);
    case(
        "undecodable entry, position readable",
        "seq 2's version written 0x18 0x01: located, it takes its position",
        &located,
        None,
        vec![finding("bad-encoding", Some((&a, 2)), at)],
    );

    let mut unlocated = ExportFile::with_header(&exporter, 3);
    unlocated.push(&a1);
    let at = unlocated.push(&splice(&a2, b"vectors", b"Vectors"));
    let a3_offset = unlocated.push(&a3);
    unlocated.sign(&exporter, 3);
    case(
        "undecodable entry, position unreadable",
        "seq 2's namespace made \"Vectors\" (not a valid name): not located, so seq 3 follows a gap",
        &unlocated,
        None,
        vec![
            finding("bad-encoding", None, at),
            finding("gap", Some((&a, 3)), a3_offset),
        ],
    );

    // An entry at the last possible seq, then damaged entries of its feed: no seq is
    // `last + 1` once `last` is 2^64 - 1, and a verifier that computed `last + 1` overflowed
    // (found while fuzzing the export verifier; docs/PROTOCOL.md §6.2).
    let at_last_seq = Entry::sign(
        &a,
        Draft {
            namespace: NAMESPACE.into(),
            seq: u64::MAX,
            prev: Some(feed_a[0].id()),
            timestamp_ms: BASE_TIME_MS,
            kind: "x-note".into(),
            body: json_text_to_canonical(&json!({ "text": "a last" }).to_string())
                .unwrap_or_else(|error| panic!("vector body must encode: {error}")),
        },
    )
    .unwrap_or_else(|error| panic!("vector entry must sign: {error}"))
    .encode();
    let mut last_seq = ExportFile::with_header(&exporter, 5);
    last_seq.push(&a1);
    let gap_at = last_seq.push(&at_last_seq);
    let damaged_last_at = last_seq.push(&splice(&at_last_seq, &[0x8a, 0x01], &[0x8a, 0x18, 0x01]));
    let damaged_two_at = last_seq.push(&splice(&a2, &[0x8a, 0x01], &[0x8a, 0x18, 0x01]));
    let two_at = last_seq.push(&a2);
    last_seq.sign(&exporter, 5);
    case(
        "entry at the last possible seq, then damaged entries of its feed",
        "seq 2^64 - 1 follows seq 1 (a gap); damaged copies of it and of seq 2 are located but \
         take no position (no seq is last + 1, nothing wraps to 0); seq 2 then comes out of order",
        &last_seq,
        None,
        vec![
            finding("gap", Some((&a, u64::MAX)), gap_at),
            finding("bad-encoding", Some((&a, u64::MAX)), damaged_last_at),
            finding("bad-encoding", Some((&a, 2)), damaged_two_at),
            finding("out-of-order", Some((&a, 2)), two_at),
        ],
    );

    // Items that are not entries.
    let mut unknown = ExportFile::with_header(&exporter, 3);
    unknown.push(&a1);
    let at = unknown.push(&cbor::encode(&C::Text("hello".into())));
    unknown.push(&a2);
    unknown.push(&a3);
    unknown.sign(&exporter, 3);
    case(
        "unknown item",
        "a text item between entries: reported, not counted, hashed",
        &unknown,
        None,
        vec![finding("bad-encoding", None, at)],
    );

    let mut not_well_formed = ExportFile::with_header(&exporter, 3);
    not_well_formed.push(&a1);
    let at = not_well_formed.push(&[0xff]);
    not_well_formed.push(&a2);
    not_well_formed.push(&a3);
    not_well_formed.sign(&exporter, 3);
    case(
        "not well-formed item",
        "a break byte: the verifier reports it and stops (nothing after it is reported)",
        &not_well_formed,
        None,
        vec![finding("bad-encoding", None, at)],
    );

    let mut too_long = ExportFile::with_header(&exporter, 3);
    too_long.push(&a1);
    let at = too_long.push(&cbor::encode(&C::Bytes(vec![0; 65_537])));
    too_long.push(&a2);
    too_long.push(&a3);
    too_long.sign(&exporter, 3);
    case(
        "item longer than any entry",
        "a 65,542-byte item (a byte string of 65,537 zeros): reported, and the verifier stops",
        &too_long,
        None,
        vec![finding("bad-encoding", None, at)],
    );

    // Headers.
    let mut headless = ExportFile::default();
    for item in [&a1, &a2, &a3] {
        headless.push(item);
    }
    headless.sign(&exporter, 3);
    case(
        "missing header",
        "the file starts with an entry, which is then judged as an entry",
        &headless,
        None,
        vec![finding("bad-encoding", None, 0)],
    );

    let mut version_two = ExportFile::default();
    version_two.push(&cbor::encode(&C::Array(vec![
        C::Text("plexus-audit".into()),
        C::Integer(2.into()),
        C::Bytes(exporter.agent_id().as_bytes().to_vec()),
        C::Integer(BASE_TIME_MS.into()),
        C::Integer(3.into()),
    ])));
    for item in [&a1, &a2, &a3] {
        version_two.push(item);
    }
    version_two.sign(&exporter, 3);
    case(
        "bad header",
        "a header of version 2: reported; the entries and trailer are still checked",
        &version_two,
        None,
        vec![finding("bad-encoding", None, 0)],
    );

    // Ends of files.
    let mut cut = ExportFile::with_header(&exporter, 3);
    cut.push(&a1);
    let at = cut.push(&a2[..10]);
    case(
        "truncated inside an item",
        "the file ends 10 bytes into seq 2",
        &cut,
        None,
        vec![finding("truncated", None, at)],
    );

    let mut no_trailer = ExportFile::with_header(&exporter, 3);
    for item in [&a1, &a2, &a3] {
        no_trailer.push(item);
    }
    let end = no_trailer.bytes.len() as u64;
    case(
        "no trailer",
        "the file ends after the last entry",
        &no_trailer,
        None,
        vec![finding("truncated", None, end)],
    );

    case(
        "empty file",
        "zero bytes",
        &ExportFile::default(),
        None,
        vec![finding("truncated", None, 0)],
    );

    // Trailers.
    let three = |exporter_of_header: &Keypair| {
        let mut file = ExportFile::with_header(exporter_of_header, 3);
        for item in [&a1, &a2, &a3] {
            file.push(item);
        }
        file
    };
    let mut count = three(&exporter);
    let at = count.sign(&exporter, 4);
    case(
        "count mismatch",
        "the trailer signs 4 entries for 3",
        &count,
        None,
        vec![finding("count-mismatch", None, at)],
    );

    let mut digest_mismatch = three(&exporter);
    let at =
        digest_mismatch.push(&ExportTrailer::sign(&exporter, 3, sha256(b"another file")).encode());
    case(
        "digest mismatch",
        "the trailer signs the digest of other bytes",
        &digest_mismatch,
        None,
        vec![finding("digest-mismatch", None, at)],
    );

    let mut forged_trailer = three(&exporter);
    let at = forged_trailer.sign(&exporter, 3);
    if let Some(last) = forged_trailer.bytes.last_mut() {
        *last ^= 0x01;
    }
    case(
        "trailer signature invalid",
        "the trailer's last signature byte flipped",
        &forged_trailer,
        None,
        vec![finding("bad-trailer", None, at)],
    );

    let mut other_signer = three(&exporter);
    let at = other_signer.sign(&other, 4);
    case(
        "trailer by another key, and its faults in order",
        "signed by a key other than the header's exporter, for 4 entries: bad-trailer, then count-mismatch",
        &other_signer,
        None,
        vec![
            finding("bad-trailer", None, at),
            finding("count-mismatch", None, at),
        ],
    );

    let mut malformed_trailer = three(&exporter);
    let at = malformed_trailer.push(&cbor::encode(&C::Array(vec![
        C::Text("plexus-audit-end".into()),
        C::Integer(3.into()),
        C::Bytes(vec![0; 31]),
        C::Bytes(exporter.agent_id().as_bytes().to_vec()),
        C::Bytes(vec![0; 64]),
    ])));
    case(
        "malformed trailer",
        "a trailer with a 31-byte digest: bad-trailer alone",
        &malformed_trailer,
        None,
        vec![finding("bad-trailer", None, at)],
    );

    let mut last_not_trailer = three(&exporter);
    let at = last_not_trailer.push(&[0x00]);
    case(
        "last item not a trailer",
        "the file ends with the item 0x00",
        &last_not_trailer,
        None,
        vec![finding("bad-trailer", None, at)],
    );

    let mut trailing = valid.clone();
    let at = trailing.push(&[0x00]);
    case(
        "trailing data",
        "one byte after the trailer",
        &trailing,
        None,
        vec![finding("trailing-data", None, at)],
    );

    // Trusted keys.
    case(
        "untrusted author and exporter",
        "trusted: author A only. Author B is reported once; the exporter is not trusted",
        &valid,
        Some(vec![&a]),
        vec![
            finding("untrusted-author", Some((&b, 1)), b1_offset),
            finding("bad-trailer", None, valid_trailer_offset),
        ],
    );
    case(
        "all trusted",
        "trusted: both authors and the exporter",
        &valid,
        Some(vec![&a, &b, &exporter]),
        vec![],
    );

    // Trust roots: a governed namespace with no policy, where only admins may post.
    let admin = Keypair::from_seed(&SEED_OTHER);
    let governed = Entry::sign(
        &a,
        Draft {
            namespace: "governed".into(),
            seq: 1,
            prev: None,
            timestamp_ms: BASE_TIME_MS,
            kind: "x-note".into(),
            body: vec![0xa0],
        },
    )
    .unwrap_or_else(|error| panic!("vector entry must sign: {error}"));
    let mut policy = ExportFile::with_header(&exporter, 1);
    let at = policy.push(&governed.encode());
    policy.sign(&exporter, 1);
    cases.push(json!({
        "name": "policy violation",
        "note": "trust root: namespace governed, admin the key of seed 0x44; author A posts there before any policy (rule no-policy)",
        "file_hex": hex(&policy.bytes),
        "trusted_authors": null,
        "trust_roots": { "governed": [admin.agent_id().to_string()] },
        "findings": [{
            "kind": "policy-violation", "namespace": "governed",
            "author": a.agent_id().to_string(), "seq": 1, "offset": at,
        }],
        "verdict": "failed",
        "exit_code": 1,
    }));

    json!({
        "description": "Audit export files (docs/PROTOCOL.md §6) with the findings a verifier must report, in order: kind, and where the finding has them namespace, author, seq; offset is the byte offset of the item. verdict and exit_code as in §6.2. trusted_authors, when not null, is the auditor's trusted keys list; trust_roots, when present, the governed namespaces and their admins (§10.5).",
        "valid": valid_details,
        "files": cases,
    })
}
