//! Writing the audit export file.
//!
//! The file is written beside its destination as `NAME.partial`, fsynced, then renamed into
//! place: a reader never sees a half-written export under the final name. The partial file is
//! always created afresh (`O_CREAT | O_EXCL`, which never follows a symbolic link): a link
//! planted at that name is refused, so an export cannot be made to overwrite another file.
//!
//! Everything an export reads comes from one snapshot of the log ([`Log::snapshot`]), so a
//! node writing meanwhile cannot make it inconsistent. A data directory another process
//! writes is opened read-only ([`export_data_dir`]), and such an open can itself come out torn:
//! RocksDB reads the list of table files, then the write-ahead logs, and a writer that flushes
//! in between (every offline `plexus publish` does when it opens the log) has already deleted
//! the write-ahead log whose entries went into a table file the reader does not know. The
//! reader then holds entry N+1 of a feed without entry N. Since every feed is stored complete
//! from seq 1 to its head, such a hole can only be a torn read: the export stops, and
//! [`export_data_dir`] opens the log again, up to [`CONSISTENT_READ_ATTEMPTS`] times.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use plexus_crypto::{Hash256, Keypair, Sha256Stream};
use plexus_protocol::export::{ExportHeader, ExportTrailer};
use plexus_protocol::{Entry, ForkProof};

use crate::store::{split_entry_key, Log, LogSnapshot, StoreError};

/// How many times [`export_data_dir`] opens a log that another process writes before giving
/// up on a consistent read. A torn open needs a writer to flush in a window of milliseconds;
/// beside back-to-back offline writers 4 exports in 12 came out torn (issue 12), so ten
/// attempts fail together about once in 60,000 exports at that rate.
pub const CONSISTENT_READ_ATTEMPTS: u32 = 10;

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    pub path: PathBuf,
    pub entries: u64,
    pub fork_rivals: u64,
    pub bytes: u64,
    pub digest: Hash256,
}

/// Errors while exporting.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is a symbolic link; an export writes its partial file there itself and will not \
         follow a link: remove it and export again"
    )]
    PartialIsSymlink { path: PathBuf },
    /// The log as read has a hole in a feed, which a stored log never has: the read-only open
    /// raced a writer ([`export_data_dir`] retries).
    #[error(
        "the log read for the export was inconsistent (feed of author {author} in {namespace} \
         jumps from seq {after} to {seq}), because another process was writing to it{attempts}; \
         run the export again, or stop the writers first"
    )]
    Torn {
        namespace: String,
        author: String,
        after: u64,
        seq: u64,
        /// Empty, or how many opens were tried.
        attempts: String,
    },
}

/// Exports the log in `data_dir`, which other processes may be writing (a running node, or
/// offline `plexus publish` commands taking the directory's lock in turn): opens it read-only
/// and exports it, opening it again when the read came out torn (see the module
/// documentation), at most [`CONSISTENT_READ_ATTEMPTS`] times.
pub fn export_data_dir(
    data_dir: &Path,
    keypair: &Keypair,
    path: &Path,
    now_ms: u64,
) -> Result<ExportSummary, ExportError> {
    let mut attempt = 1;
    loop {
        let result = Log::open_read_only(data_dir)
            .map_err(ExportError::from)
            .and_then(|log| export_to_file(&log, keypair, path, now_ms));
        let retry = match &result {
            Err(ExportError::Torn { .. }) => true,
            // A table file compacted away between listing and opening it: the same race.
            Err(ExportError::Store(StoreError::Open { .. } | StoreError::Rocks(_))) => true,
            _ => false,
        };
        if !retry || attempt == CONSISTENT_READ_ATTEMPTS {
            return result.map_err(|error| match error {
                ExportError::Torn {
                    namespace,
                    author,
                    after,
                    seq,
                    ..
                } => ExportError::Torn {
                    namespace,
                    author,
                    after,
                    seq,
                    attempts: format!(" (tried {attempt} times)"),
                },
                other => other,
            });
        }
        attempt += 1;
    }
}

/// Envelopes of a log in export order: feeds by namespace then author, ascending seq, and each
/// fork's rival entry (body stripped) right after the stored entry at the same seq.
///
/// Entries and fork proofs are both keyed by (feed, seq), so the two column families are merged
/// as they are read: memory stays constant whatever the number of forks.
pub fn export_order<'a>(
    snapshot: &'a LogSnapshot<'a>,
) -> impl Iterator<Item = Result<Vec<u8>, StoreError>> + 'a {
    export_items(snapshot).map(|item| item.map(|(_, envelope)| envelope))
}

/// [`export_order`], with each stored entry's key (`None` for fork rivals).
type ExportItem = (Option<Box<[u8]>>, Vec<u8>);

fn export_items<'a>(
    snapshot: &'a LogSnapshot<'a>,
) -> impl Iterator<Item = Result<ExportItem, StoreError>> + 'a {
    let mut forks = snapshot.raw_forks().peekable();
    snapshot.raw_entries().flat_map(move |item| {
        let mut out: Vec<Result<ExportItem, StoreError>> = Vec::with_capacity(1);
        let (key, value) = match item {
            Ok(pair) => pair,
            Err(error) => return vec![Err(error)],
        };
        // Skip proofs for positions before this entry (a proof never lacks its entry, but a
        // damaged log must not stall the export).
        while let Some(Ok((fork_key, _))) = forks.peek() {
            if fork_key.as_ref() >= key.as_ref() {
                break;
            }
            forks.next();
        }
        let stored = Entry::decode(&value).map(|entry| entry.id());
        let mut rival = None;
        if let Some(Ok((fork_key, _))) = forks.peek() {
            if fork_key.as_ref() == key.as_ref() {
                if let Some(Ok((_, proof))) = forks.next() {
                    rival = Some(match ForkProof::decode(&proof) {
                        Ok(proof) => {
                            let (first, second) = proof.entries();
                            let rival = if stored.as_ref().ok() == Some(&first.id()) {
                                second
                            } else {
                                first
                            };
                            Ok((None, rival.encode()))
                        }
                        Err(error) => {
                            Err(StoreError::Corrupt(format!("stored fork proof: {error}")))
                        }
                    });
                }
            }
        }
        out.push(Ok((Some(key), value.into_vec())));
        out.extend(rival);
        out
    })
}

/// Exports the whole log to `path` as of one snapshot, signing the trailer with the node's key.
///
/// The file is written as `NAME.partial`, fsynced, renamed into place and its directory
/// fsynced, so a reported export survives a crash; on any error the partial file is removed.
/// A hole in a feed stops the export with [`ExportError::Torn`].
pub fn export_to_file(
    log: &Log,
    keypair: &Keypair,
    path: &Path,
    now_ms: u64,
) -> Result<ExportSummary, ExportError> {
    let partial = partial_path(path);
    let result = write_export(log, keypair, &partial, now_ms).and_then(|summary| {
        let io_error = |source| ExportError::Io {
            path: path.to_path_buf(),
            source,
        };
        std::fs::rename(&partial, path).map_err(io_error)?;
        let directory = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        std::fs::File::open(directory)
            .and_then(|dir| dir.sync_all())
            .map_err(io_error)?;
        Ok(ExportSummary {
            path: path.to_path_buf(),
            ..summary
        })
    });
    // A partial file we did not create (a planted link) is not ours to remove.
    if result.is_err() && !matches!(result, Err(ExportError::PartialIsSymlink { .. })) {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// Creates `partial` as a new file, never through a symbolic link. A regular file left there
/// by an export that crashed is replaced; a link (or anything else) is refused.
fn create_partial(partial: &Path) -> Result<std::fs::File, ExportError> {
    let io_error = |source| ExportError::Io {
        path: partial.to_path_buf(),
        source,
    };
    match std::fs::symlink_metadata(partial) {
        Ok(metadata) if metadata.file_type().is_symlink() => {
            return Err(ExportError::PartialIsSymlink {
                path: partial.to_path_buf(),
            })
        }
        Ok(metadata) if metadata.is_file() => std::fs::remove_file(partial).map_err(io_error)?,
        _ => {}
    }
    // `create_new` is O_CREAT | O_EXCL: if a link appeared since the check, this fails rather
    // than writing through it.
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(partial)
        .map_err(|source| match std::fs::symlink_metadata(partial) {
            Ok(metadata) if metadata.file_type().is_symlink() => ExportError::PartialIsSymlink {
                path: partial.to_path_buf(),
            },
            _ => io_error(source),
        })
}

fn write_export(
    log: &Log,
    keypair: &Keypair,
    partial: &Path,
    now_ms: u64,
) -> Result<ExportSummary, ExportError> {
    let io_error = |source| ExportError::Io {
        path: partial.to_path_buf(),
        source,
    };
    let snapshot = log.snapshot();
    let (stored_entries, stored_forks) = snapshot.counts()?;
    let file = create_partial(partial)?;
    let mut writer = HashingWriter {
        inner: BufWriter::with_capacity(1 << 20, file),
        digest: Sha256Stream::new(),
        bytes: 0,
    };
    let header = ExportHeader {
        exporter: keypair.agent_id(),
        created_ms: now_ms,
        entry_count: stored_entries + stored_forks,
    };
    writer.write_all(&header.encode()).map_err(io_error)?;
    let mut count = 0u64;
    let mut holes = HoleCheck::default();
    for item in export_items(&snapshot) {
        let (key, envelope) = item?;
        if let Some(key) = key {
            holes.check(&key)?;
        }
        writer.write_all(&envelope).map_err(io_error)?;
        count += 1;
    }
    let digest = writer.digest.clone().finish();
    let trailer = ExportTrailer::sign(keypair, count, digest);
    writer.write_all(&trailer.encode()).map_err(io_error)?;
    let bytes = writer.bytes;
    let file = writer
        .inner
        .into_inner()
        .map_err(|error| io_error(error.into_error()))?;
    file.sync_all().map_err(io_error)?;
    let fork_rivals = count.saturating_sub(stored_entries);
    Ok(ExportSummary {
        path: partial.to_path_buf(),
        entries: count - fork_rivals,
        fork_rivals,
        bytes,
        digest,
    })
}

/// Finds a hole in a feed from the stored entries' keys (feed prefix, then seq in big-endian)
/// as the export passes: each feed starts at seq 1 and goes up by one.
#[derive(Debug, Default)]
struct HoleCheck {
    last_prefix: Vec<u8>,
    last_seq: u64,
}

impl HoleCheck {
    fn check(&mut self, key: &[u8]) -> Result<(), ExportError> {
        let Some(split) = key.len().checked_sub(8) else {
            return Ok(());
        };
        let (prefix, seq_bytes) = key.split_at(split);
        let seq = u64::from_be_bytes(seq_bytes.try_into().unwrap_or_default());
        let after = if prefix == self.last_prefix.as_slice() {
            self.last_seq
        } else {
            0
        };
        if seq != after + 1 {
            // Only an unreadable key lacks a feed; the verifier reports what such a log holds.
            if let Some((feed, _)) = split_entry_key(key) {
                return Err(ExportError::Torn {
                    namespace: feed.namespace,
                    author: feed.author.to_string(),
                    after,
                    seq,
                    attempts: String::new(),
                });
            }
        }
        if prefix != self.last_prefix.as_slice() {
            self.last_prefix = prefix.to_vec();
        }
        self.last_seq = seq;
        Ok(())
    }
}

fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

/// Counts and hashes everything written through it.
struct HashingWriter<W: Write> {
    inner: W,
    digest: Sha256Stream,
    bytes: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(buf)?;
        let written_bytes = buf.get(..written).unwrap_or_default();
        self.digest.update(written_bytes);
        self.bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlink_planted_at_the_partial_name_is_refused_and_its_target_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(&dir.path().join("data")).unwrap();
        let keypair = Keypair::from_seed(&[9; 32]);
        let victim = dir.path().join("victim.txt");
        std::fs::write(&victim, b"precious").unwrap();
        let destination = dir.path().join("out.plexus");
        std::os::unix::fs::symlink(&victim, partial_path(&destination)).unwrap();

        let result = export_to_file(&log, &keypair, &destination, 1_000);

        assert!(
            matches!(result, Err(ExportError::PartialIsSymlink { .. })),
            "{result:?}"
        );
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(!destination.exists());
        assert!(std::fs::symlink_metadata(partial_path(&destination))
            .unwrap()
            .file_type()
            .is_symlink());
    }

    #[test]
    fn a_partial_file_left_by_a_crashed_export_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(&dir.path().join("data")).unwrap();
        let keypair = Keypair::from_seed(&[9; 32]);
        let destination = dir.path().join("out.plexus");
        std::fs::write(partial_path(&destination), b"half an export").unwrap();

        let summary = export_to_file(&log, &keypair, &destination, 1_000).unwrap();

        assert_eq!(summary.entries, 0);
        assert!(!partial_path(&destination).exists());
        let written = std::fs::read(&destination).unwrap();
        assert_eq!(written.len() as u64, summary.bytes);
    }
}
