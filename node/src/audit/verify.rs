//! Verifying an export file or a data directory.
//!
//! A pipeline of three stages, so that both cores check signatures nearly all the time:
//!
//! 1. *Framing* (calling thread): [`cbor::item_len`] splits the byte stream into items without
//!    parsing them, and up to [`BATCH_ITEMS`] consecutive entries are copied into a batch.
//!    The export digest is fed here too, in file order.
//! 2. *Checking* (`check.rs`: a checker thread driving the rayon pool, on all cores): each
//!    worker reads its chunk of entries in place with the strict decoder (`Entry::decode_view`;
//!    the reference decoder names what is wrong with the rare bad entry), checks bodies against
//!    their signed hashes, and verifies the signatures with one batch check (§6.3) per
//!    [`SIGNATURE_CHUNK`] entries, falling back to single verification to name the bad ones.
//! 3. *Chaining* (calling thread): one [`ChainTracker`] per feed checks seq order, links,
//!    duplicates and forks, in file order.
//!
//! While batch *k* is checked, the calling thread chains batch *k - 1* and frames batch *k + 1*.
//! Anything other than an entry (header, trailer, damage) first waits for the batches before it
//! to be chained, so findings come out in file order exactly as a sequential run reports them.
//!
//! Memory is bounded by the read buffer, at most three batches (one being checked, one queued,
//! one being chained) and one tracker per feed: it does not grow with the length of the log.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::Path;
use std::time::Instant;

use plexus_crypto::{AgentId, Hash256, Sha256Stream};
use plexus_protocol::cbor;
use plexus_protocol::export::{classify, ExportHeader, ExportTrailer, ItemKind};
use plexus_protocol::{ChainEvent, ChainTracker, EntryError, FeedKey, MAX_ENTRY_LEN};

pub use super::check::SIGNATURE_CHUNK;
use super::check::{with_pipeline, Checked};
use super::report::{Finding, FindingKind, Report, Verdict, MAX_FINDINGS};
use crate::store::{Log, StoreError, TrustRoots};

/// Items handed to the parallel checking stage at once: enough to keep both cores busy for
/// tens of milliseconds, few enough to keep a batch's memory to a few megabytes (at most three
/// batches are alive at once, see the module doc).
pub const BATCH_ITEMS: usize = 16_384;

/// Bytes of entries held for one batch when verifying a data directory (a file is read in
/// [`READ_CHUNK`]s instead): keeps memory flat even for logs of maximal entries.
pub const BATCH_BYTES: usize = 8 << 20;

/// Bytes read from the file per read call.
const READ_CHUNK: usize = 4 << 20;

/// How to verify.
#[derive(Debug, Default, Clone)]
pub struct VerifyOptions {
    /// When set, entries by any other author are reported.
    pub trusted_authors: Option<HashSet<AgentId>>,
    /// Governed namespaces and their admins: every decision in them is re-derived, and a data
    /// directory's late claims in them are judged with their policy's clock-skew window.
    pub trust_roots: TrustRoots,
    /// The clock-skew window the node ran with (its `--clock-skew-ms`), for the late claims of
    /// a data directory in namespaces whose policy sets none (`None`: the default, 30 s).
    pub clock_skew_ms: Option<u64>,
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
    with_pipeline(|pipeline| {
        let mut buffer: Vec<u8> = Vec::with_capacity(READ_CHUNK * 2);
        // File offset of buffer[0].
        let mut base: u64 = 0;
        let mut eof = false;
        let mut stage = FileStage::ExpectHeader;
        // Set when the file cannot be read further (it was already reported).
        let mut halted = false;
        loop {
            fill(&mut file, &mut buffer, READ_CHUNK, &mut eof).map_err(io_error)?;
            let mut position = 0usize;
            let mut batch = pipeline.empty_batch();
            let mut stop = false;
            while batch.items.len() < BATCH_ITEMS {
                let rest = &buffer[position..];
                if rest.is_empty() {
                    break;
                }
                let offset = base + position as u64;
                if stage == FileStage::AfterTrailer {
                    pipeline.finish_pending(&mut |offset, checked| auditor.chain(offset, checked));
                    auditor.finding(file_finding(
                        FindingKind::TrailingData,
                        offset,
                        format!("{} bytes follow the signed trailer", file_len - offset),
                    ));
                    stop = true;
                    break;
                }
                // Framing is normative (docs/PROTOCOL.md §6.2): an item longer than any entry
                // stops the audit whether or not the read buffer happens to hold all of it.
                let framed = match cbor::item_len(rest) {
                    Ok(Some(len)) if len > MAX_ENTRY_LEN => Err(Unframed::TooLong),
                    Ok(Some(len)) => Ok(Some(len)),
                    Ok(None) if rest.len() > MAX_ENTRY_LEN => Err(Unframed::TooLong),
                    Ok(None) if eof => Err(Unframed::Truncated),
                    Ok(None) => Ok(None),
                    Err(error) => Err(Unframed::Malformed(error)),
                };
                let len = match framed {
                    Ok(Some(len)) => len,
                    Ok(None) => break,
                    Err(unframed) => {
                        pipeline
                            .finish_pending(&mut |offset, checked| auditor.chain(offset, checked));
                        let (kind, detail) = match unframed {
                            Unframed::TooLong => (
                                FindingKind::BadEncoding,
                                format!(
                                    "the item here is larger than the {MAX_ENTRY_LEN}-byte limit; \
                                     cannot read past it"
                                ),
                            ),
                            Unframed::Truncated => (
                                FindingKind::Truncated,
                                format!(
                                    "the file ends inside an item ({} bytes present): it was \
                                     truncated",
                                    rest.len()
                                ),
                            ),
                            Unframed::Malformed(error) => (
                                FindingKind::BadEncoding,
                                format!("{error}; cannot read past it"),
                            ),
                        };
                        auditor.finding(file_finding(kind, offset, detail));
                        stop = true;
                        break;
                    }
                };
                let item = position..position + len;
                let bytes = &buffer[item.clone()];
                let kind = classify(bytes);
                if kind == ItemKind::Entry && stage == FileStage::Entries {
                    batch.push(Some(offset), bytes);
                    position += len;
                    continue;
                }
                // Anything else ends the batch: check the entries before it first, in file
                // order.
                if !batch.items.is_empty() {
                    break;
                }
                pipeline.finish_pending(&mut |offset, checked| auditor.chain(offset, checked));
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
                    // The last item of the file, by its length (not by what the buffer holds).
                    _ if offset + len as u64 == file_len => {
                        // The last item of the file should be the trailer.
                        auditor.trailer_valid = Some(false);
                        auditor.finding(file_finding(
                            FindingKind::BadTrailer,
                            offset,
                            "the last item is not a valid export trailer: it was damaged or \
                             replaced"
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
            // The digest covers the entries in file order, before anything after them.
            auditor.digest.update(&batch.bytes);
            pipeline.submit(batch, &mut |offset, checked| auditor.chain(offset, checked));
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
        pipeline.finish_pending(&mut |offset, checked| auditor.chain(offset, checked));
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
        Ok::<(), VerifyError>(())
    })?;
    let mut report = auditor.finish(true);
    if !options.trust_roots.is_empty() {
        let audit = super::policy::audit_file(path, &options.trust_roots)?;
        report.add_policy_audit(options.trust_roots.keys().cloned().collect(), audit);
    }
    Ok(report)
}

/// Verifies a data directory's log in place (read-only; safe beside a running node).
pub fn verify_data_dir(
    data_dir: &Path,
    options: &VerifyOptions,
    progress: &dyn Progress,
) -> Result<Report, VerifyError> {
    let log = Log::open_read_only_with(data_dir, options.trust_roots.clone())?;
    let snapshot = log.snapshot();
    let mut auditor = Auditor::new(data_dir.display().to_string(), options);
    let mut damage = None;
    with_pipeline(|pipeline| {
        let mut batch = pipeline.empty_batch();
        for envelope in super::export::export_order(&snapshot) {
            let envelope = match envelope {
                Ok(envelope) => envelope,
                // RocksDB cannot read on past a damaged block: locate the damage below.
                Err(error @ StoreError::Damaged(_)) => {
                    damage = Some(error);
                    break;
                }
                Err(error) => return Err(error.into()),
            };
            auditor.bytes += envelope.len() as u64;
            batch.push(None, &envelope);
            if batch.items.len() == BATCH_ITEMS || batch.bytes.len() >= BATCH_BYTES {
                progress.advance(batch.items.len() as u64);
                pipeline.submit(batch, &mut |offset, checked| auditor.chain(offset, checked));
                batch = pipeline.empty_batch();
            }
        }
        progress.advance(batch.items.len() as u64);
        pipeline.submit(batch, &mut |offset, checked| auditor.chain(offset, checked));
        pipeline.finish_pending(&mut |offset, checked| auditor.chain(offset, checked));
        Ok::<(), VerifyError>(())
    })?;
    let mut report = auditor.finish(false);
    if let Some(error) = damage {
        report.add_damage(super::damage::locate_damage(&log, &error));
        return Ok(report);
    }
    if !options.trust_roots.is_empty() {
        let audit = super::policy::audit_data_dir(&log, &options.trust_roots)?;
        report.add_policy_audit(options.trust_roots.keys().cloned().collect(), audit);
    }
    let default_window_ms = options
        .clock_skew_ms
        .unwrap_or(plexus_protocol::coord::DEFAULT_CLOCK_SKEW_MS);
    report.late_claims = Some(super::late::late_claims(
        &log,
        default_window_ms,
        super::late::MAX_LATE_LISTED,
    )?);
    Ok(report)
}

/// Why the framing of an export file cannot go on past an offset.
enum Unframed {
    /// The item is longer than [`MAX_ENTRY_LEN`] (or not complete within that many bytes).
    TooLong,
    /// The file ends inside an item of at most [`MAX_ENTRY_LEN`] bytes.
    Truncated,
    /// Not well-formed CBOR: where the next item starts cannot be known.
    Malformed(cbor::CborError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileStage {
    ExpectHeader,
    Entries,
    AfterTrailer,
}

/// The sequential state of an audit.
struct Auditor<'a> {
    source: String,
    options: &'a VerifyOptions,
    started: Instant,
    trackers: HashMap<FeedKey, ChainTracker>,
    /// The feed of the previous entry and its tracker, held out of `trackers`: an export lists
    /// each feed's entries together, so most entries need no key allocation or hash lookup.
    current_feed: Option<(FeedKey, ChainTracker)>,
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
            current_feed: None,
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

    /// The chain tracker of a feed, created empty on first use.
    fn tracker(&mut self, namespace: &str, author: AgentId) -> &mut ChainTracker {
        let current = match self.current_feed.take() {
            Some((feed, tracker)) if feed.author == author && feed.namespace == namespace => {
                (feed, tracker)
            }
            other => {
                if let Some((feed, tracker)) = other {
                    self.trackers.insert(feed, tracker);
                }
                let feed = FeedKey {
                    namespace: namespace.to_owned(),
                    author,
                };
                let tracker = self.trackers.remove(&feed).unwrap_or_default();
                (feed, tracker)
            }
        };
        &mut self.current_feed.insert(current).1
    }

    fn chain(&mut self, offset: Option<u64>, checked: Checked) {
        self.entries += 1;
        match checked {
            Checked::Undecodable(error, position) => {
                let error = *error;
                let detail = match error {
                    EntryError::Cbor(_) => format!("{error} (byte offsets within the entry)"),
                    _ => error.to_string(),
                };
                let (namespace, author, seq) = match position {
                    Some((namespace, author, seq)) => {
                        self.tracker(&namespace, author).observe_unverified(seq);
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
            Checked::BadSignature {
                namespace,
                author,
                seq,
            } => {
                self.signatures_checked += 1;
                self.finding(Finding {
                    kind: FindingKind::BadSignature,
                    namespace: Some(namespace.to_string()),
                    author: Some(author),
                    seq: Some(seq),
                    offset,
                    detail: "the signature does not verify against the author's key: the entry \
                             was altered or signed by another key"
                        .into(),
                });
                self.tracker(&namespace, author).observe_unverified(seq);
            }
            Checked::Good {
                namespace,
                author,
                seq,
                prev,
                id,
                pruned,
                body_error,
            } => {
                self.signatures_checked += 1;
                self.pruned_bodies += u64::from(pruned);
                let feed = (&*namespace, author);
                self.authors.insert(author);
                if let Some(error) = body_error {
                    self.finding(located(
                        FindingKind::BodyMismatch,
                        feed,
                        seq,
                        offset,
                        format!("{error}: the body was altered after signing"),
                    ));
                }
                if let Some(trusted) = &self.options.trusted_authors {
                    if !trusted.contains(&author) && self.untrusted_reported.insert(author) {
                        self.finding(located(
                            FindingKind::UntrustedAuthor,
                            feed,
                            seq,
                            offset,
                            "the author is not in the trusted keys list (reported once per author)"
                                .into(),
                        ));
                    }
                }
                let event = self.tracker(&namespace, author).observe(seq, prev, id);
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
                    ChainEvent::BrokenLink {
                        expected,
                        expected_total,
                    } => (
                        FindingKind::BrokenLink,
                        format!(
                            "prev is {} but the entry at seq {} is {}{}",
                            prev.map(|prev| prev.to_string()).unwrap_or_default(),
                            seq.saturating_sub(1),
                            expected
                                .iter()
                                .map(Hash256::to_string)
                                .collect::<Vec<_>>()
                                .join(" or "),
                            match expected_total.saturating_sub(expected.len()) {
                                0 => String::new(),
                                more => format!(" (or one of {more} more rivals)"),
                            }
                        ),
                    ),
                    ChainEvent::OutOfOrder { after_seq } => (
                        FindingKind::OutOfOrder,
                        format!("appears after seq {after_seq} of the same feed: entries were reordered or spliced in"),
                    ),
                };
                self.finding(located(kind, feed, seq, offset, detail));
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

    fn finish(mut self, is_file: bool) -> Report {
        if let Some((feed, tracker)) = self.current_feed.take() {
            self.trackers.insert(feed, tracker);
        }
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
            governed_namespaces: Vec::new(),
            policy_decisions: 0,
            late_claims: None,
        }
    }
}

fn located(
    kind: FindingKind,
    (namespace, author): (&str, AgentId),
    seq: u64,
    offset: Option<u64>,
    detail: String,
) -> Finding {
    Finding {
        kind,
        namespace: Some(namespace.to_owned()),
        author: Some(author),
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

/// Reads from `file` until `buffer` holds at least `chunk` bytes or the file ends (then sets
/// `eof`): the framing loops of the verifier and the policy auditor work on whole items.
pub(super) fn fill(
    file: &mut std::fs::File,
    buffer: &mut Vec<u8>,
    chunk: usize,
    eof: &mut bool,
) -> std::io::Result<()> {
    while !*eof && buffer.len() < chunk {
        let start = buffer.len();
        buffer.resize(start + chunk, 0);
        let read = file.read(&mut buffer[start..])?;
        buffer.truncate(start + read);
        *eof = read == 0;
    }
    Ok(())
}
