//! Verifying an export file or a data directory.
//!
//! The pipeline, per batch of up to [`BATCH_ITEMS`] items:
//!
//! 1. *Framing* (sequential, cheap): [`cbor::item_len`] splits the byte stream into items
//!    without parsing them.
//! 2. *Checking* (parallel, on all cores): each worker decodes its slice of entries strictly,
//!    checks bodies against their signed hashes, and verifies the signatures with one
//!    `verify_batch` call per [`SIGNATURE_CHUNK`] entries, falling back to single verification
//!    to name the bad ones. Meanwhile another worker feeds the bytes to the export digest.
//! 3. *Chaining* (sequential, cheap): one [`ChainTracker`] per feed checks seq order, links,
//!    duplicates and forks, in file order.
//!
//! Memory is bounded by one batch of raw bytes plus one tracker per feed: it does not grow with
//! the length of the log.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::Path;
use std::time::Instant;

use plexus_crypto::{
    verify_batch_with_fallback, AgentId, AgentIdCache, BatchItem, Hash256, Sha256Stream,
};
use plexus_protocol::cbor;
use plexus_protocol::export::{classify, ExportHeader, ExportTrailer, ItemKind, MAX_FRAME_LEN};
use plexus_protocol::{ChainEvent, ChainTracker, Entry, EntryError, FeedKey, MAX_ENTRY_LEN};
use rayon::prelude::*;

use super::report::{Finding, FindingKind, Report, Verdict, MAX_FINDINGS};
use crate::store::{Log, StoreError};

/// Items handed to the parallel checking stage at once: enough to keep both cores busy for
/// tens of milliseconds, few enough to keep the batch's memory to a few megabytes.
pub const BATCH_ITEMS: usize = 16_384;

/// Bytes of entries held for one batch when verifying a data directory (a file is read in
/// [`READ_CHUNK`]s instead): keeps memory flat even for logs of maximal entries.
pub const BATCH_BYTES: usize = 8 << 20;

/// Entries per `verify_batch` call inside a worker (see `plexus_crypto::verify`).
pub const SIGNATURE_CHUNK: usize = 256;

/// Bytes read from the file per read call.
const READ_CHUNK: usize = 4 << 20;

/// How to verify.
#[derive(Debug, Default, Clone)]
pub struct VerifyOptions {
    /// When set, entries by any other author are reported.
    pub trusted_authors: Option<HashSet<AgentId>>,
}

/// Receives progress as the verifier advances (bytes for files, entries for data dirs).
pub trait Progress {
    fn advance(&self, amount: u64);
}

impl Progress for () {
    fn advance(&self, _amount: u64) {}
}

impl Progress for indicatif::ProgressBar {
    fn advance(&self, amount: u64) {
        self.inc(amount);
    }
}

/// Errors that stop an audit before it can judge anything.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("trusted keys file {path}, line {line}: {problem}")]
    TrustedKeys {
        path: String,
        line: usize,
        problem: String,
    },
}

/// Reads a trusted-authors file: one agent id (64 hex digits) per line; blank lines and text
/// after `#` are ignored.
pub fn read_trusted_keys(path: &Path) -> Result<HashSet<AgentId>, VerifyError> {
    let text = std::fs::read_to_string(path).map_err(|source| VerifyError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let mut keys = HashSet::new();
    for (index, line) in text.lines().enumerate() {
        let content = line.split('#').next().unwrap_or_default().trim();
        if content.is_empty() {
            continue;
        }
        let key = content
            .parse::<AgentId>()
            .map_err(|error| VerifyError::TrustedKeys {
                path: path.display().to_string(),
                line: index + 1,
                problem: error.to_string(),
            })?;
        keys.insert(key);
    }
    Ok(keys)
}

/// Verifies an export file.
pub fn verify_file(
    path: &Path,
    options: &VerifyOptions,
    progress: &dyn Progress,
) -> Result<Report, VerifyError> {
    let io_error = |source| VerifyError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io_error)?;
    let file_len = file.metadata().map_err(io_error)?.len();
    let mut auditor = Auditor::new(path.display().to_string(), options);
    let mut buffer: Vec<u8> = Vec::with_capacity(READ_CHUNK * 2);
    // File offset of buffer[0].
    let mut base: u64 = 0;
    let mut eof = false;
    let mut stage = FileStage::ExpectHeader;
    // Set when the file cannot be read further (it was already reported).
    let mut halted = false;
    loop {
        while !eof && buffer.len() < READ_CHUNK {
            let start = buffer.len();
            buffer.resize(start + READ_CHUNK, 0);
            let read = file.read(&mut buffer[start..]).map_err(io_error)?;
            buffer.truncate(start + read);
            eof = read == 0;
        }
        let mut position = 0usize;
        let mut batch: Vec<(u64, std::ops::Range<usize>)> = Vec::new();
        let mut stop = false;
        while batch.len() < BATCH_ITEMS {
            let rest = &buffer[position..];
            if rest.is_empty() {
                break;
            }
            let offset = base + position as u64;
            if stage == FileStage::AfterTrailer {
                auditor.finding(file_finding(
                    FindingKind::TrailingData,
                    offset,
                    format!("{} bytes follow the signed trailer", file_len - offset),
                ));
                stop = true;
                break;
            }
            let len = match cbor::item_len(rest) {
                Ok(Some(len)) => len,
                Ok(None) if rest.len() > MAX_ENTRY_LEN + MAX_FRAME_LEN => {
                    auditor.finding(Finding {
                        kind: FindingKind::BadEncoding,
                        namespace: None,
                        author: None,
                        seq: None,
                        offset: Some(offset),
                        detail: format!(
                            "the item here is larger than the {MAX_ENTRY_LEN}-byte limit; cannot \
                             read past it"
                        ),
                    });
                    stop = true;
                    break;
                }
                Ok(None) if eof => {
                    auditor.finding(file_finding(
                        FindingKind::Truncated,
                        offset,
                        format!(
                            "the file ends inside an item ({} bytes present): it was truncated",
                            rest.len()
                        ),
                    ));
                    stop = true;
                    break;
                }
                Ok(None) => break,
                Err(error) => {
                    auditor.finding(file_finding(
                        FindingKind::BadEncoding,
                        offset,
                        format!("{error}; cannot read past it"),
                    ));
                    stop = true;
                    break;
                }
            };
            let item = position..position + len;
            let bytes = &buffer[item.clone()];
            let kind = classify(bytes);
            if kind == ItemKind::Entry && stage == FileStage::Entries {
                batch.push((offset, item));
                position += len;
                continue;
            }
            // Anything else ends the batch: check the entries before it first, in file order.
            if !batch.is_empty() {
                break;
            }
            match (kind, stage) {
                (ItemKind::Header, FileStage::ExpectHeader) => {
                    match ExportHeader::decode(bytes) {
                        Ok(header) => auditor.exporter = Some(header.exporter),
                        Err(error) => auditor.finding(file_finding(
                            FindingKind::BadEncoding,
                            offset,
                            format!("export header: {error}"),
                        )),
                    }
                    auditor.digest.update(bytes);
                    stage = FileStage::Entries;
                }
                (ItemKind::Trailer, FileStage::Entries) => {
                    auditor.check_trailer(bytes, offset);
                    stage = FileStage::AfterTrailer;
                }
                (_, FileStage::ExpectHeader) => {
                    auditor.finding(file_finding(
                        FindingKind::BadEncoding,
                        offset,
                        "the file does not start with a plexus audit export header".into(),
                    ));
                    stage = FileStage::Entries;
                    // Judge this item again as an entry.
                    continue;
                }
                _ if eof && position + len == buffer.len() => {
                    // The last item of the file should be the trailer.
                    auditor.trailer_valid = Some(false);
                    auditor.finding(file_finding(
                        FindingKind::BadTrailer,
                        offset,
                        "the last item is not a valid export trailer: it was damaged or replaced"
                            .into(),
                    ));
                    stage = FileStage::AfterTrailer;
                }
                _ => {
                    auditor.finding(file_finding(
                        FindingKind::BadEncoding,
                        offset,
                        "an item that is neither an entry nor the trailer".into(),
                    ));
                    auditor.digest.update(bytes);
                }
            }
            position += len;
        }
        let items: Vec<(Option<u64>, &[u8])> = batch
            .iter()
            .map(|(offset, range)| (Some(*offset), &buffer[range.clone()]))
            .collect();
        let digest_bytes = match (batch.first(), batch.last()) {
            (Some((_, first)), Some((_, last))) => &buffer[first.start..last.end],
            _ => &[][..],
        };
        auditor.check_batch(&items, digest_bytes);
        progress.advance(position as u64);
        buffer.drain(..position);
        base += position as u64;
        if stop {
            halted = true;
            break;
        }
        if eof && buffer.is_empty() {
            break;
        }
    }
    if stage != FileStage::AfterTrailer && !halted {
        auditor.finding(file_finding(
            FindingKind::Truncated,
            base,
            format!(
                "the file ends after {} entries without the signed trailer: it was truncated",
                auditor.entries
            ),
        ));
    }
    auditor.bytes = base + buffer.len() as u64;
    Ok(auditor.finish(true))
}

/// Verifies a data directory's log in place (read-only; safe beside a running node).
pub fn verify_data_dir(
    data_dir: &Path,
    options: &VerifyOptions,
    progress: &dyn Progress,
) -> Result<Report, VerifyError> {
    let log = Log::open_read_only(data_dir)?;
    let mut auditor = Auditor::new(data_dir.display().to_string(), options);
    let mut pending: Vec<Vec<u8>> = Vec::with_capacity(BATCH_ITEMS);
    let flush = |auditor: &mut Auditor, pending: &mut Vec<Vec<u8>>| {
        let items: Vec<(Option<u64>, &[u8])> = pending
            .iter()
            .map(|bytes| (None, bytes.as_slice()))
            .collect();
        auditor.check_batch(&items, &[]);
        progress.advance(pending.len() as u64);
        pending.clear();
    };
    let mut pending_bytes = 0usize;
    for envelope in super::export::export_order(&log) {
        let envelope = envelope?;
        auditor.bytes += envelope.len() as u64;
        pending_bytes += envelope.len();
        pending.push(envelope);
        if pending.len() == BATCH_ITEMS || pending_bytes >= BATCH_BYTES {
            flush(&mut auditor, &mut pending);
            pending_bytes = 0;
        }
    }
    flush(&mut auditor, &mut pending);
    Ok(auditor.finish(false))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileStage {
    ExpectHeader,
    Entries,
    AfterTrailer,
}

/// The result of checking one item in the parallel stage.
enum Checked {
    Good {
        feed: FeedKey,
        seq: u64,
        prev: Option<Hash256>,
        id: Hash256,
        pruned: bool,
        /// The header and signature are good but the body does not match them.
        body_error: Option<EntryError>,
    },
    BadSignature {
        feed: FeedKey,
        seq: u64,
    },
    /// Not a valid entry; where it claims to be, if that much can be read.
    Undecodable(EntryError, Option<(String, AgentId, u64)>),
}

/// The sequential state of an audit.
struct Auditor<'a> {
    source: String,
    options: &'a VerifyOptions,
    started: Instant,
    trackers: HashMap<FeedKey, ChainTracker>,
    authors: HashSet<AgentId>,
    untrusted_reported: HashSet<AgentId>,
    findings: Vec<Finding>,
    findings_total: u64,
    forks: u64,
    entries: u64,
    signatures_checked: u64,
    pruned_bodies: u64,
    bytes: u64,
    exporter: Option<AgentId>,
    trailer_valid: Option<bool>,
    digest: Sha256Stream,
}

impl<'a> Auditor<'a> {
    fn new(source: String, options: &'a VerifyOptions) -> Self {
        Auditor {
            source,
            options,
            started: Instant::now(),
            trackers: HashMap::new(),
            authors: HashSet::new(),
            untrusted_reported: HashSet::new(),
            findings: Vec::new(),
            findings_total: 0,
            forks: 0,
            entries: 0,
            signatures_checked: 0,
            pruned_bodies: 0,
            bytes: 0,
            exporter: None,
            trailer_valid: None,
            digest: Sha256Stream::new(),
        }
    }

    fn finding(&mut self, finding: Finding) {
        if finding.kind == FindingKind::Fork {
            self.forks += 1;
        }
        self.findings_total += 1;
        if self.findings.len() < MAX_FINDINGS {
            self.findings.push(finding);
        }
    }

    /// Checks a batch of entry items: parallel decode and signature checks (with the digest
    /// computed beside them), then the sequential chain check.
    fn check_batch(&mut self, items: &[(Option<u64>, &[u8])], digest_bytes: &[u8]) {
        if items.is_empty() {
            return;
        }
        let digest = &mut self.digest;
        let (_, checked) = rayon::join(
            || digest.update(digest_bytes),
            || {
                items
                    .par_chunks(SIGNATURE_CHUNK)
                    .flat_map_iter(check_chunk)
                    .collect::<Vec<Checked>>()
            },
        );
        for ((offset, _), checked) in items.iter().zip(checked) {
            self.chain(*offset, checked);
        }
    }

    fn chain(&mut self, offset: Option<u64>, checked: Checked) {
        self.entries += 1;
        match checked {
            Checked::Undecodable(error, position) => {
                let detail = match error {
                    EntryError::Cbor(_) => format!("{error} (byte offsets within the entry)"),
                    _ => error.to_string(),
                };
                let (namespace, author, seq) = match position {
                    Some((namespace, author, seq)) => {
                        let feed = FeedKey {
                            namespace: namespace.clone(),
                            author,
                        };
                        self.trackers
                            .entry(feed)
                            .or_default()
                            .observe_unverified(seq);
                        (Some(namespace), Some(author), Some(seq))
                    }
                    None => (None, None, None),
                };
                self.finding(Finding {
                    kind: FindingKind::BadEncoding,
                    namespace,
                    author,
                    seq,
                    offset,
                    detail,
                });
            }
            Checked::BadSignature { feed, seq } => {
                self.signatures_checked += 1;
                self.finding(Finding {
                    kind: FindingKind::BadSignature,
                    namespace: Some(feed.namespace.clone()),
                    author: Some(feed.author),
                    seq: Some(seq),
                    offset,
                    detail: "the signature does not verify against the author's key: the entry \
                             was altered or signed by another key"
                        .into(),
                });
                self.trackers
                    .entry(feed)
                    .or_default()
                    .observe_unverified(seq);
            }
            Checked::Good {
                feed,
                seq,
                prev,
                id,
                pruned,
                body_error,
            } => {
                self.signatures_checked += 1;
                self.pruned_bodies += u64::from(pruned);
                self.authors.insert(feed.author);
                if let Some(error) = body_error {
                    self.finding(located(
                        FindingKind::BodyMismatch,
                        &feed,
                        seq,
                        offset,
                        format!("{error}: the body was altered after signing"),
                    ));
                }
                if let Some(trusted) = &self.options.trusted_authors {
                    if !trusted.contains(&feed.author)
                        && self.untrusted_reported.insert(feed.author)
                    {
                        self.finding(located(
                            FindingKind::UntrustedAuthor,
                            &feed,
                            seq,
                            offset,
                            "the author is not in the trusted keys list (reported once per author)"
                                .into(),
                        ));
                    }
                }
                let event = match self.trackers.get_mut(&feed) {
                    Some(tracker) => tracker.observe(seq, prev, id),
                    None => {
                        let mut tracker = ChainTracker::default();
                        let event = tracker.observe(seq, prev, id);
                        self.trackers.insert(feed.clone(), tracker);
                        event
                    }
                };
                let (kind, detail) = match event {
                    ChainEvent::Extends => return,
                    ChainEvent::Duplicate => (
                        FindingKind::Duplicate,
                        format!("entry {} appears a second time", id.short()),
                    ),
                    ChainEvent::Fork { other } => (
                        FindingKind::Fork,
                        format!(
                            "two validly signed entries at this seq: {other} and {id}; the author \
                             equivocated"
                        ),
                    ),
                    ChainEvent::Gap {
                        missing_from,
                        missing_to,
                    } => (
                        FindingKind::Gap,
                        if missing_from == missing_to {
                            format!("seq {missing_from} is missing before this entry")
                        } else {
                            format!("seqs {missing_from} to {missing_to} are missing before this entry")
                        },
                    ),
                    ChainEvent::BrokenLink { expected } => (
                        FindingKind::BrokenLink,
                        format!(
                            "prev is {} but the entry at seq {} is {}",
                            prev.map(|prev| prev.to_string()).unwrap_or_default(),
                            seq.saturating_sub(1),
                            expected
                                .iter()
                                .map(Hash256::to_string)
                                .collect::<Vec<_>>()
                                .join(" or ")
                        ),
                    ),
                    ChainEvent::OutOfOrder { after_seq } => (
                        FindingKind::OutOfOrder,
                        format!("appears after seq {after_seq} of the same feed: entries were reordered or spliced in"),
                    ),
                };
                self.finding(located(kind, &feed, seq, offset, detail));
            }
        }
    }

    fn check_trailer(&mut self, bytes: &[u8], offset: u64) {
        let digest = self.digest.clone().finish();
        let trailer = match ExportTrailer::decode(bytes) {
            Ok(trailer) => trailer,
            Err(error) => {
                self.trailer_valid = Some(false);
                self.finding(file_finding(
                    FindingKind::BadTrailer,
                    offset,
                    format!("export trailer: {error}"),
                ));
                return;
            }
        };
        let mut valid = true;
        if !trailer.verify_signature() {
            valid = false;
            self.finding(file_finding(
                FindingKind::BadTrailer,
                offset,
                format!(
                    "the trailer's signature by {} does not verify",
                    trailer.exporter
                ),
            ));
        }
        if self
            .exporter
            .is_some_and(|exporter| exporter != trailer.exporter)
        {
            valid = false;
            self.finding(file_finding(
                FindingKind::BadTrailer,
                offset,
                "the trailer is signed by a different key than the header names".into(),
            ));
        }
        if trailer.entry_count != self.entries {
            valid = false;
            self.finding(file_finding(
                FindingKind::CountMismatch,
                offset,
                format!(
                    "the exporter signed for {} entries but the file holds {}: entries were \
                     dropped or added",
                    trailer.entry_count, self.entries
                ),
            ));
        }
        if trailer.digest != digest {
            valid = false;
            self.finding(file_finding(
                FindingKind::DigestMismatch,
                offset,
                format!(
                    "the file's content hashes to {digest} but the exporter signed {}: the file \
                     was altered after export",
                    trailer.digest
                ),
            ));
        }
        if let Some(trusted) = &self.options.trusted_authors {
            if !trusted.contains(&trailer.exporter) {
                valid = false;
                self.finding(file_finding(
                    FindingKind::BadTrailer,
                    offset,
                    format!(
                        "the export is signed by {}, which is not in the trusted keys list: \
                         anyone can re-sign a file with entries dropped from the end of a feed",
                        trailer.exporter
                    ),
                ));
            }
        }
        self.exporter = Some(trailer.exporter);
        self.trailer_valid = Some(valid);
    }

    fn finish(self, is_file: bool) -> Report {
        let elapsed = self.started.elapsed();
        let only_forks = self
            .findings
            .iter()
            .all(|finding| finding.kind == FindingKind::Fork)
            && self.findings_total == self.findings.len() as u64;
        let verdict = if self.findings_total == 0 {
            Verdict::Verified
        } else if only_forks {
            Verdict::Forked
        } else {
            Verdict::Failed
        };
        let seconds = elapsed.as_secs_f64().max(1e-9);
        Report {
            source: self.source,
            verdict,
            entries: self.entries,
            feeds: self.trackers.len() as u64,
            authors: self.authors.len() as u64,
            signatures_checked: self.signatures_checked,
            pruned_bodies: self.pruned_bodies,
            forks: self.forks,
            bytes: self.bytes,
            exporter: self.exporter,
            trailer_valid: if is_file {
                Some(self.trailer_valid.unwrap_or(false))
            } else {
                None
            },
            elapsed_ms: elapsed.as_millis() as u64,
            entries_per_second: (self.entries as f64 / seconds) as u64,
            findings_total: self.findings_total,
            findings: self.findings,
        }
    }
}

/// Decodes a chunk of entries and verifies their signatures in one batch.
fn check_chunk(chunk: &[(Option<u64>, &[u8])]) -> Vec<Checked> {
    type Decoded = (Entry, Option<EntryError>, Vec<u8>);
    // An export groups entries by feed, so nearly every author key in a chunk is a repeat.
    let mut author_keys = AgentIdCache::new();
    let decoded: Vec<Result<Decoded, (EntryError, &[u8])>> = chunk
        .iter()
        .map(|(_, bytes)| {
            Entry::decode_keeping_header_cached(bytes, &mut author_keys)
                .map(|(entry, body_error)| {
                    let input = entry.signing_input();
                    (entry, body_error, input)
                })
                .map_err(|error| (error, *bytes))
        })
        .collect();
    let batch: Vec<BatchItem<'_>> = decoded
        .iter()
        .filter_map(|item| item.as_ref().ok())
        .map(|(entry, _, input)| BatchItem {
            author: &entry.header().author,
            message: input,
            signature: entry.signature(),
        })
        .collect();
    let bad: HashSet<usize> = verify_batch_with_fallback(&batch)
        .err()
        .map(|error| error.bad.into_iter().collect())
        .unwrap_or_default();
    let mut good_index = 0usize;
    decoded
        .into_iter()
        .map(|item| match item {
            Err((error, bytes)) => Checked::Undecodable(error, Entry::peek_position(bytes)),
            Ok((entry, body_error, _)) => {
                let index = good_index;
                good_index += 1;
                let header = entry.header();
                let feed = FeedKey {
                    namespace: header.namespace.clone(),
                    author: header.author,
                };
                if bad.contains(&index) {
                    Checked::BadSignature {
                        feed,
                        seq: header.seq,
                    }
                } else {
                    Checked::Good {
                        feed,
                        seq: header.seq,
                        prev: header.prev,
                        id: entry.id(),
                        pruned: entry.body().is_none() && body_error.is_none(),
                        body_error,
                    }
                }
            }
        })
        .collect()
}

fn located(
    kind: FindingKind,
    feed: &FeedKey,
    seq: u64,
    offset: Option<u64>,
    detail: String,
) -> Finding {
    Finding {
        kind,
        namespace: Some(feed.namespace.clone()),
        author: Some(feed.author),
        seq: Some(seq),
        offset,
        detail,
    }
}

fn file_finding(kind: FindingKind, offset: u64, detail: String) -> Finding {
    Finding {
        kind,
        namespace: None,
        author: None,
        seq: None,
        offset: Some(offset),
        detail,
    }
}
