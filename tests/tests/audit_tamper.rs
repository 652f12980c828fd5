//! Tamper scenarios: every kind of damage to an export is caught and located precisely
//! (kind, author, seq and byte offset), and a clean export verifies.

use plexus_crypto::Keypair;
use plexus_node::audit::{verify_data_dir, FindingKind, Report, Verdict, VerifyOptions};
use plexus_protocol::{Draft, Entry};
use plexus_tests::fixtures::{
    entry_in, item_ranges, populated_log, reassemble, signature_offset, signed_chain, LogFixture,
};

/// Two authors with five entries each: items 1..=5 are one feed, 6..=10 the other.
fn fixture() -> LogFixture {
    populated_log(2, 5)
}

fn kinds(report: &Report) -> Vec<FindingKind> {
    report.findings.iter().map(|finding| finding.kind).collect()
}

/// Asserts that `report` has a finding of `kind` at exactly this entry and offset.
fn assert_located(report: &Report, kind: FindingKind, entry: &Entry, offset: usize) {
    let found = report.findings.iter().any(|finding| {
        finding.kind == kind
            && finding.author == Some(entry.header().author)
            && finding.seq == Some(entry.header().seq)
            && finding.offset == Some(offset as u64)
    });
    assert!(
        found,
        "expected {kind:?} at author {} seq {} offset {offset}, got {:#?}",
        entry.header().author,
        entry.header().seq,
        report.findings
    );
}

#[test]
fn a_clean_export_verifies() {
    let fixture = fixture();
    let (path, _) = fixture.export();
    let report = plexus_tests::fixtures::verify_path(&path);
    assert_eq!(report.verdict, Verdict::Verified, "{:#?}", report.findings);
    assert_eq!(report.entries, 10);
    assert_eq!(report.feeds, 2);
    assert_eq!(report.authors, 2);
    assert_eq!(report.signatures_checked, 10);
    assert_eq!(report.trailer_valid, Some(true));
    assert_eq!(report.exporter, Some(fixture.node_key.agent_id()));
    assert_eq!(report.exit_code(), 0);
}

#[test]
fn a_data_directory_verifies_in_place() {
    let fixture = fixture();
    let report = verify_data_dir(fixture.dir.path(), &VerifyOptions::default(), &()).unwrap();
    assert_eq!(report.verdict, Verdict::Verified, "{:#?}", report.findings);
    assert_eq!(report.entries, 10);
    assert_eq!(report.trailer_valid, None);
}

#[test]
fn a_bit_flipped_in_a_body_is_located() {
    let fixture = fixture();
    let (_, mut bytes) = fixture.export();
    let ranges = item_ranges(&bytes);
    let target = entry_in(&bytes, &ranges[3]);
    bytes[ranges[3].end - 1] ^= 0x04;
    let report = fixture.verify_bytes("body.plexus", &bytes);
    assert_eq!(report.verdict, Verdict::Failed);
    assert_located(&report, FindingKind::BodyMismatch, &target, ranges[3].start);
    // The chain is intact (the header is signed and unchanged); only the digest also differs.
    assert_eq!(
        kinds(&report),
        vec![FindingKind::BodyMismatch, FindingKind::DigestMismatch]
    );
}

#[test]
fn a_bit_flipped_in_a_signature_is_located() {
    let fixture = fixture();
    let (_, mut bytes) = fixture.export();
    let ranges = item_ranges(&bytes);
    let target = entry_in(&bytes, &ranges[7]);
    bytes[ranges[7].start + signature_offset(&target) + 5] ^= 0x10;
    let report = fixture.verify_bytes("signature.plexus", &bytes);
    assert_located(&report, FindingKind::BadSignature, &target, ranges[7].start);
    assert_eq!(
        kinds(&report),
        vec![FindingKind::BadSignature, FindingKind::DigestMismatch]
    );
}

#[test]
fn a_bit_flipped_in_an_entry_header_is_located() {
    let fixture = fixture();
    let (_, mut bytes) = fixture.export();
    let ranges = item_ranges(&bytes);
    let target = entry_in(&bytes, &ranges[2]);
    // The timestamp is the last byte before the kind text ("x-note" = 0x66 then the text).
    let kind_at = bytes[ranges[2].clone()]
        .windows(7)
        .position(|window| window == b"\x66x-note")
        .unwrap();
    bytes[ranges[2].start + kind_at - 1] ^= 0x01;
    let report = fixture.verify_bytes("header.plexus", &bytes);
    assert_located(&report, FindingKind::BadSignature, &target, ranges[2].start);
    assert_eq!(
        kinds(&report),
        vec![FindingKind::BadSignature, FindingKind::DigestMismatch]
    );
}

#[test]
fn a_bit_flipped_in_the_export_header_is_caught() {
    let fixture = fixture();
    let (_, mut bytes) = fixture.export();
    let ranges = item_ranges(&bytes);
    // The last byte of the header is its entry-count hint.
    bytes[ranges[0].end - 1] ^= 0x01;
    let report = fixture.verify_bytes("export-header.plexus", &bytes);
    assert_eq!(report.verdict, Verdict::Failed);
    assert_eq!(kinds(&report), vec![FindingKind::DigestMismatch]);
    assert_eq!(report.findings[0].offset, Some(ranges[11].start as u64));
}

#[test]
fn reordered_entries_are_located() {
    let fixture = fixture();
    let (_, bytes) = fixture.export();
    let ranges = item_ranges(&bytes);
    let mut order: Vec<usize> = (0..ranges.len()).collect();
    order.swap(2, 3);
    let swapped = reassemble(&bytes, &ranges, &order);
    let report = fixture.verify_bytes("reordered.plexus", &swapped);
    let third = entry_in(&bytes, &ranges[3]);
    let second = entry_in(&bytes, &ranges[2]);
    // Seq 3 now comes first (seq 2 missing before it), then seq 2 out of order.
    let new_ranges = item_ranges(&swapped);
    assert_located(&report, FindingKind::Gap, &third, new_ranges[2].start);
    assert_located(
        &report,
        FindingKind::OutOfOrder,
        &second,
        new_ranges[3].start,
    );
    assert!(kinds(&report).contains(&FindingKind::DigestMismatch));
}

#[test]
fn a_dropped_entry_is_located() {
    let fixture = fixture();
    let (_, bytes) = fixture.export();
    let ranges = item_ranges(&bytes);
    let order: Vec<usize> = (0..ranges.len()).filter(|index| *index != 3).collect();
    let dropped = reassemble(&bytes, &ranges, &order);
    let report = fixture.verify_bytes("dropped.plexus", &dropped);
    let after = entry_in(&bytes, &ranges[4]);
    assert_located(
        &report,
        FindingKind::Gap,
        &after,
        item_ranges(&dropped)[3].start,
    );
    let gap = report
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::Gap)
        .unwrap();
    assert_eq!(gap.detail, "seq 3 is missing before this entry");
    assert!(kinds(&report).contains(&FindingKind::CountMismatch));
}

#[test]
fn the_last_entry_of_a_feed_dropped_is_caught_by_the_signed_count() {
    let fixture = fixture();
    let (_, bytes) = fixture.export();
    let ranges = item_ranges(&bytes);
    let order: Vec<usize> = (0..ranges.len()).filter(|index| *index != 10).collect();
    let report = fixture.verify_bytes("dropped-tail.plexus", &reassemble(&bytes, &ranges, &order));
    assert_eq!(
        kinds(&report),
        vec![FindingKind::CountMismatch, FindingKind::DigestMismatch]
    );
    assert!(report.findings[0]
        .detail
        .contains("signed for 10 entries but the file holds 9"));
}

#[test]
fn a_duplicated_entry_is_located() {
    let fixture = fixture();
    let (_, bytes) = fixture.export();
    let ranges = item_ranges(&bytes);
    let mut order: Vec<usize> = (0..ranges.len()).collect();
    order.insert(5, 4);
    let duplicated = reassemble(&bytes, &ranges, &order);
    let report = fixture.verify_bytes("duplicated.plexus", &duplicated);
    let copy = entry_in(&bytes, &ranges[4]);
    assert_located(
        &report,
        FindingKind::Duplicate,
        &copy,
        item_ranges(&duplicated)[5].start,
    );
    assert!(kinds(&report).contains(&FindingKind::CountMismatch));
}

#[test]
fn a_truncated_file_is_located() {
    let fixture = fixture();
    let (_, bytes) = fixture.export();
    let ranges = item_ranges(&bytes);
    // Cut in the middle of the seventh entry.
    let cut = ranges[7].start + 40;
    let report = fixture.verify_bytes("truncated.plexus", &bytes[..cut]);
    assert_eq!(report.verdict, Verdict::Failed);
    let truncated = report
        .findings
        .iter()
        .find(|finding| finding.kind == FindingKind::Truncated)
        .unwrap();
    assert_eq!(truncated.offset, Some(ranges[7].start as u64));
    assert_eq!(report.entries, 6);
    assert_eq!(report.trailer_valid, Some(false));
}

#[test]
fn a_file_cut_at_an_entry_boundary_is_caught() {
    let fixture = fixture();
    let (_, bytes) = fixture.export();
    let ranges = item_ranges(&bytes);
    let report = fixture.verify_bytes("cut.plexus", &bytes[..ranges[8].end]);
    assert_eq!(kinds(&report), vec![FindingKind::Truncated]);
    assert!(report.findings[0]
        .detail
        .contains("without the signed trailer"));
    assert_eq!(report.findings[0].offset, Some(ranges[8].end as u64));
}

#[test]
fn an_entry_spliced_in_from_another_author_is_located() {
    let fixture = fixture();
    let (_, bytes) = fixture.export();
    let ranges = item_ranges(&bytes);
    let outsider = Keypair::generate();
    let foreign = signed_chain(&outsider, "audit", 3).pop().unwrap();
    let mut spliced = bytes[..ranges[3].start].to_vec();
    spliced.extend_from_slice(&foreign.encode());
    spliced.extend_from_slice(&bytes[ranges[3].start..]);
    let report = fixture.verify_bytes("spliced.plexus", &spliced);
    // The outsider's seq 3 appears with nothing before it in its feed.
    assert_located(&report, FindingKind::Gap, &foreign, ranges[3].start);
    assert!(kinds(&report).contains(&FindingKind::CountMismatch));

    // With a trusted key list, the outsider is also named as untrusted.
    let trusted = fixture.authors.iter().map(Keypair::agent_id).collect();
    let path = fixture.dir.path().join("spliced.plexus");
    let report = plexus_node::audit::verify_file(
        &path,
        &VerifyOptions {
            trusted_authors: Some(trusted),
            ..VerifyOptions::default()
        },
        &(),
    )
    .unwrap();
    assert_located(
        &report,
        FindingKind::UntrustedAuthor,
        &foreign,
        ranges[3].start,
    );
}

#[test]
fn an_entry_moved_from_another_feed_is_located() {
    let fixture = fixture();
    let (_, bytes) = fixture.export();
    let ranges = item_ranges(&bytes);
    // Move the second author's seq 2 (item 7) into the first feed, between its seq 2 and 3.
    let mut order: Vec<usize> = (0..ranges.len()).filter(|index| *index != 7).collect();
    order.insert(3, 7);
    let moved = reassemble(&bytes, &ranges, &order);
    let report = fixture.verify_bytes("moved.plexus", &moved);
    let entry = entry_in(&bytes, &ranges[7]);
    assert_located(
        &report,
        FindingKind::Gap,
        &entry,
        item_ranges(&moved)[3].start,
    );
}

#[test]
fn an_entry_signed_with_the_wrong_key_is_located() {
    let fixture = fixture();
    let (_, bytes) = fixture.export();
    let ranges = item_ranges(&bytes);
    let victim = entry_in(&bytes, &ranges[2]);
    // An impostor signs an entry that claims to be the victim's seq 2.
    let impostor = Keypair::generate();
    let forged = Entry::sign(
        &impostor,
        Draft {
            namespace: victim.header().namespace.clone(),
            seq: 2,
            prev: victim.header().prev,
            timestamp_ms: victim.header().timestamp_ms,
            kind: "note".into(),
            body: b"forged".to_vec(),
        },
    )
    .unwrap();
    let mut forged_bytes = forged.encode();
    let at = forged_bytes
        .windows(32)
        .position(|window| window == impostor.agent_id().as_bytes())
        .unwrap();
    forged_bytes[at..at + 32].copy_from_slice(victim.header().author.as_bytes());
    let mut tampered = bytes[..ranges[2].start].to_vec();
    tampered.extend_from_slice(&forged_bytes);
    tampered.extend_from_slice(&bytes[ranges[2].end..]);
    let report = fixture.verify_bytes("wrong-key.plexus", &tampered);
    assert_located(&report, FindingKind::BadSignature, &victim, ranges[2].start);
}

#[test]
fn a_fork_is_reported_with_both_ids_and_its_own_verdict() {
    let fixture = fixture();
    let author = &fixture.authors[0];
    let original = fixture
        .log
        .entry_at(
            &plexus_protocol::FeedKey {
                namespace: "audit".into(),
                author: author.agent_id(),
            },
            3,
        )
        .unwrap()
        .unwrap();
    let rival = Entry::sign(
        author,
        Draft {
            namespace: "audit".into(),
            seq: 3,
            prev: original.header().prev,
            timestamp_ms: 5,
            kind: "x-note".into(),
            body: plexus_protocol::value::json_text_to_canonical("\"a different story\"").unwrap(),
        },
    )
    .unwrap();
    fixture.log.ingest(&rival.encode(), "test", 0).unwrap();
    let (path, bytes) = fixture.export();
    let report = plexus_tests::fixtures::verify_path(&path);
    assert_eq!(report.verdict, Verdict::Forked, "{:#?}", report.findings);
    assert_eq!(report.exit_code(), 3);
    assert_eq!(report.forks, 1);
    assert_eq!(report.entries, 11);
    let ranges = item_ranges(&bytes);
    let fork = &report.findings[0];
    assert_eq!(fork.kind, FindingKind::Fork);
    assert_eq!(fork.seq, Some(3));
    assert!(fork.detail.contains(&original.id().to_string()));
    assert!(fork.detail.contains(&rival.id().to_string()));
    // The rival is reported where it sits: right after the stored entry at seq 3.
    let rival_at = ranges
        .iter()
        .position(|range| {
            Entry::decode(&bytes[range.clone()]).is_ok_and(|entry| entry.id() == rival.id())
        })
        .unwrap();
    assert_eq!(fork.offset, Some(ranges[rival_at].start as u64));
    assert_eq!(entry_in(&bytes, &ranges[rival_at - 1]).id(), original.id());
}

#[test]
fn a_damaged_seq_does_not_derail_the_rest_of_the_feed() {
    let fixture = fixture();
    let (_, mut bytes) = fixture.export();
    let ranges = item_ranges(&bytes);
    let target = entry_in(&bytes, &ranges[2]);
    // Seq 2 becomes seq 18 (0x02 -> 0x12): the signature fails, the chain must not move.
    let seq_at = ranges[2].start + 1 + 1 + 1 + 6 + 34;
    assert_eq!(bytes[seq_at], 0x02);
    bytes[seq_at] = 0x12;
    let report = fixture.verify_bytes("damaged-seq.plexus", &bytes);
    assert_eq!(
        kinds(&report),
        vec![
            FindingKind::BadSignature,
            FindingKind::Gap,
            FindingKind::DigestMismatch
        ],
        "{:#?}",
        report.findings
    );
    assert_eq!(report.findings[0].seq, Some(18));
    assert_eq!(report.findings[0].author, Some(target.header().author));
    // Seq 3 follows seq 1 as far as the auditor can tell: seq 2 is reported missing there.
    assert_located(
        &report,
        FindingKind::Gap,
        &entry_in(&bytes, &ranges[3]),
        ranges[3].start,
    );
}

#[test]
fn a_non_canonical_entry_is_located_by_author_and_seq() {
    let fixture = fixture();
    let (_, bytes) = fixture.export();
    let ranges = item_ranges(&bytes);
    let target = entry_in(&bytes, &ranges[4]);
    // Re-encode seq 4 with a one-byte argument: 0x04 -> 0x18 0x04.
    let seq_at = ranges[4].start + 1 + 1 + 1 + 6 + 34;
    assert_eq!(bytes[seq_at], 0x04);
    let mut damaged = bytes[..seq_at].to_vec();
    damaged.extend_from_slice(&[0x18, 0x04]);
    damaged.extend_from_slice(&bytes[seq_at + 1..]);
    let report = fixture.verify_bytes("non-canonical.plexus", &damaged);
    assert_located(&report, FindingKind::BadEncoding, &target, ranges[4].start);
    assert!(report.findings[0].detail.contains("non-canonical"));
    // The next entry is not flagged: the damaged one still held its position.
    assert_eq!(
        kinds(&report),
        vec![FindingKind::BadEncoding, FindingKind::DigestMismatch]
    );
}

#[test]
fn an_export_signed_by_an_untrusted_key_is_flagged_when_keys_are_given() {
    let fixture = fixture();
    let (path, _) = fixture.export();
    let mut trusted: std::collections::HashSet<_> =
        fixture.authors.iter().map(Keypair::agent_id).collect();
    let options = VerifyOptions {
        trusted_authors: Some(trusted.clone()),
        ..VerifyOptions::default()
    };
    let report = plexus_node::audit::verify_file(&path, &options, &()).unwrap();
    assert_eq!(kinds(&report), vec![FindingKind::BadTrailer]);
    assert!(report.findings[0]
        .detail
        .contains("not in the trusted keys list"));
    trusted.insert(fixture.node_key.agent_id());
    let options = VerifyOptions {
        trusted_authors: Some(trusted),
        ..VerifyOptions::default()
    };
    let report = plexus_node::audit::verify_file(&path, &options, &()).unwrap();
    assert_eq!(report.verdict, Verdict::Verified, "{:#?}", report.findings);
}

#[test]
fn data_after_the_trailer_and_a_damaged_trailer_are_named() {
    let fixture = fixture();
    let (_, bytes) = fixture.export();
    let ranges = item_ranges(&bytes);
    let mut extended = bytes.clone();
    extended.extend_from_slice(&[0xff; 10]);
    let report = fixture.verify_bytes("extended.plexus", &extended);
    assert_eq!(kinds(&report), vec![FindingKind::TrailingData]);
    assert_eq!(report.findings[0].offset, Some(bytes.len() as u64));
    assert!(report.findings[0].detail.starts_with("10 bytes"));

    let mut damaged = bytes.clone();
    damaged[ranges[11].start + 3] ^= 0x20; // inside the trailer's tag text
    let report = fixture.verify_bytes("damaged-trailer.plexus", &damaged);
    assert_eq!(kinds(&report), vec![FindingKind::BadTrailer]);
    assert_eq!(report.findings[0].offset, Some(ranges[11].start as u64));
}

#[test]
fn garbage_files_are_reported_not_panicked_on() {
    let fixture = fixture();
    for (name, bytes) in [
        ("empty", Vec::new()),
        ("text", b"hello, this is not an export\n".to_vec()),
        ("zeros", vec![0u8; 100_000]),
        ("indefinite", vec![0x9f; 10]),
    ] {
        let report = fixture.verify_bytes(name, &bytes);
        assert_eq!(report.verdict, Verdict::Failed, "{name}");
        assert!(report.findings_total > 0, "{name}");
    }
}
