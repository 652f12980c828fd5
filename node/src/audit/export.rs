//! Writing the audit export file.
//!
//! The file is written beside its destination as `NAME.partial`, fsynced, then renamed into
//! place: a reader never sees a half-written export under the final name.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use plexus_crypto::{Hash256, Keypair, Sha256Stream};
use plexus_protocol::export::{ExportHeader, ExportTrailer};
use plexus_protocol::Entry;

use crate::store::{self, Log, StoreError};

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
}

/// Envelopes of a log in export order: feeds by namespace then author, ascending seq, and each
/// fork's rival entry (body stripped) right after the stored entry at the same seq.
pub fn export_order(
    log: &Log,
) -> Result<impl Iterator<Item = Result<Vec<u8>, StoreError>> + '_, StoreError> {
    // Forks are rare: keeping their rivals in memory is bounded by the number of fork proofs.
    let mut rivals: BTreeMap<Vec<u8>, Vec<Vec<u8>>> = BTreeMap::new();
    for proof in log.forks()? {
        let feed = proof.feed();
        let seq = proof.seq();
        let stored = log.entry_at(&feed, seq)?.map(|entry| entry.id());
        let (first, second) = proof.entries();
        let rival: &Entry = if Some(first.id()) == stored {
            second
        } else {
            first
        };
        rivals
            .entry(store::entry_key(&feed, seq))
            .or_default()
            .push(rival.encode());
    }
    Ok(log.raw_entries().flat_map(move |item| {
        let mut out: Vec<Result<Vec<u8>, StoreError>> = Vec::with_capacity(1);
        match item {
            Ok((key, value)) => {
                out.push(Ok(value.into_vec()));
                if let Some(extra) = rivals.remove(key.as_ref()) {
                    out.extend(extra.into_iter().map(Ok));
                }
            }
            Err(error) => out.push(Err(error)),
        }
        out
    }))
}

/// Exports the whole log to `path`, signing the trailer with the node's key.
pub fn export_to_file(
    log: &Log,
    keypair: &Keypair,
    path: &Path,
    now_ms: u64,
) -> Result<ExportSummary, ExportError> {
    let partial = partial_path(path);
    let io_error = |source| ExportError::Io {
        path: partial.clone(),
        source,
    };
    let stats = log.stats()?;
    let file = std::fs::File::create(&partial).map_err(io_error)?;
    let mut writer = HashingWriter {
        inner: BufWriter::with_capacity(1 << 20, file),
        digest: Sha256Stream::new(),
        bytes: 0,
    };
    let fork_rivals = log.forks()?.len() as u64;
    let header = ExportHeader {
        exporter: keypair.agent_id(),
        created_ms: now_ms,
        entry_count: stats.entries + fork_rivals,
    };
    writer.write_all(&header.encode()).map_err(io_error)?;
    let mut count = 0u64;
    for envelope in export_order(log)? {
        writer.write_all(&envelope?).map_err(io_error)?;
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
    std::fs::rename(&partial, path).map_err(|source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(ExportSummary {
        path: path.to_path_buf(),
        entries: count - fork_rivals.min(count),
        fork_rivals,
        bytes,
        digest,
    })
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
