//! Fixtures: logs with known content, their exports, and ways to cut and splice export files.

use std::ops::Range;
use std::path::{Path, PathBuf};

use plexus_crypto::Keypair;
use plexus_node::audit::{self, Report, VerifyOptions};
use plexus_node::store::Log;
use plexus_protocol::value::json_text_to_canonical;
use plexus_protocol::{cbor, Draft, Entry};

/// A log on disk with the node's key and the authors whose feeds it holds.
#[derive(Debug)]
pub struct LogFixture {
    pub dir: tempfile::TempDir,
    pub log: Log,
    pub node_key: Keypair,
    pub authors: Vec<Keypair>,
}

/// Signs `count` chained entries for `author` in `namespace`, starting at seq 1.
pub fn signed_chain(author: &Keypair, namespace: &str, count: u64) -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    for seq in 1..=count {
        let body = json_text_to_canonical(&format!(r#"{{"n": {seq}, "note": "entry {seq}"}}"#))
            .unwrap_or_default();
        let entry = Entry::sign(
            author,
            Draft {
                namespace: namespace.into(),
                seq,
                prev: entries.last().map(Entry::id),
                timestamp_ms: 1_767_225_600_000 + seq,
                kind: "x-note".into(),
                body,
            },
        )
        .unwrap_or_else(|error| panic!("fixture entry must sign: {error}"));
        entries.push(entry);
    }
    entries
}

/// Feeds of one entry each in `namespace`, by `count` authors whose seeds hold `first_seed`
/// onwards (big-endian, then `0x5e`), signed on every core.
pub fn one_entry_feeds(namespace: &str, count: usize, first_seed: u64) -> Vec<Entry> {
    use rayon::prelude::*;
    (0..count as u64)
        .into_par_iter()
        .map(|index| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(first_seed + index).to_be_bytes());
            seed[8] = 0x5e;
            let author = Keypair::from_seed(&seed);
            signed_chain(&author, namespace, 1).remove(0)
        })
        .collect()
}

/// A log holding `entries_each` entries from each of `authors` authors (namespace "audit").
pub fn populated_log(authors: usize, entries_each: u64) -> LogFixture {
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("tempdir: {error}"));
    let log = Log::open(dir.path()).unwrap_or_else(|error| panic!("open log: {error}"));
    let authors: Vec<Keypair> = (0..authors).map(|_| Keypair::generate()).collect();
    for author in &authors {
        for entry in signed_chain(author, "audit", entries_each) {
            log.ingest(&entry.encode(), "fixture", 0)
                .unwrap_or_else(|error| panic!("ingest: {error}"));
        }
    }
    LogFixture {
        dir,
        log,
        node_key: Keypair::generate(),
        authors,
    }
}

impl LogFixture {
    /// Exports the log into the fixture's directory and returns the path and the bytes.
    pub fn export(&self) -> (PathBuf, Vec<u8>) {
        let path = self.dir.path().join("export.plexus");
        audit::export_to_file(&self.log, &self.node_key, &path, 1_767_225_600_000)
            .unwrap_or_else(|error| panic!("export: {error}"));
        let bytes = std::fs::read(&path).unwrap_or_else(|error| panic!("read export: {error}"));
        (path, bytes)
    }

    /// Writes `bytes` as a file next to the export and verifies it.
    pub fn verify_bytes(&self, name: &str, bytes: &[u8]) -> Report {
        let path = self.dir.path().join(name);
        std::fs::write(&path, bytes).unwrap_or_else(|error| panic!("write: {error}"));
        verify_path(&path)
    }
}

/// Verifies a file with default options.
pub fn verify_path(path: &Path) -> Report {
    audit::verify_file(path, &VerifyOptions::default(), &())
        .unwrap_or_else(|error| panic!("verify: {error}"))
}

/// The byte ranges of every item of a CBOR sequence (header, entries, trailer).
pub fn item_ranges(bytes: &[u8]) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let mut position = 0;
    while position < bytes.len() {
        let Ok(Some(len)) = cbor::item_len(&bytes[position..]) else {
            break;
        };
        ranges.push(position..position + len);
        position += len;
    }
    ranges
}

/// The decoded entry of an export item.
pub fn entry_in(bytes: &[u8], range: &Range<usize>) -> Entry {
    Entry::decode(&bytes[range.clone()]).unwrap_or_else(|error| panic!("decode item: {error}"))
}

/// Rebuilds a file from its items in a new order (indexes into `ranges`).
pub fn reassemble(bytes: &[u8], ranges: &[Range<usize>], order: &[usize]) -> Vec<u8> {
    order
        .iter()
        .flat_map(|index| bytes[ranges[*index].clone()].iter().copied())
        .collect()
}

/// Offset of the signature inside an entry item: it ends where the body item begins.
pub fn signature_offset(entry: &Entry) -> usize {
    let encoded = entry.encode();
    let body_item = encoded.len()
        - 1
        - plexus_protocol::cbor::item_len(&encoded[1..])
            .ok()
            .flatten()
            .unwrap_or(0);
    encoded.len() - body_item - 64
}
