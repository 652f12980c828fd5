//! Locating damage in a data directory's log: when RocksDB refuses to read part of the log (a
//! block whose checksum does not match, a malformed file), the audit reads every feed entry by
//! entry and reports each run of unreadable seqs with RocksDB's account of the damage (the file
//! and the offset of the block), so the operator learns which entries are affected.

use plexus_protocol::FeedKey;

use super::report::{Finding, FindingKind};
use crate::store::{Log, StoreError};

/// Findings for the damage `error` revealed: one per run of unreadable seqs in each feed, or,
/// when the feed heads themselves cannot be read, one naming the error alone.
pub(super) fn locate_damage(log: &Log, error: &StoreError) -> Vec<Finding> {
    let heads = match log.heads() {
        Ok(heads) => heads,
        Err(heads_error) => {
            return vec![unlocated(format!(
                "{error}; the feed heads cannot be read either ({heads_error}), so the damaged \
                 entries cannot be listed"
            ))]
        }
    };
    let mut findings = Vec::new();
    for (feed, head) in heads {
        let mut run: Option<(u64, u64, String)> = None;
        for seq in 1..=head.seq {
            match log.entry_at(&feed, seq) {
                Err(problem @ (StoreError::Damaged(_) | StoreError::Corrupt(_))) => {
                    match &mut run {
                        Some((_, last, _)) => *last = seq,
                        None => run = Some((seq, seq, problem.to_string())),
                    }
                }
                _ => {
                    if let Some(done) = run.take() {
                        findings.push(located(&feed, done));
                    }
                }
            }
        }
        if let Some(done) = run.take() {
            findings.push(located(&feed, done));
        }
    }
    if findings.is_empty() {
        // The damage is outside the entries (an index of the log): say what RocksDB said.
        findings.push(unlocated(error.to_string()));
    }
    findings
}

fn located(feed: &FeedKey, (first, last, problem): (u64, u64, String)) -> Finding {
    let count = last - first + 1;
    Finding {
        kind: FindingKind::DamagedStorage,
        namespace: Some(feed.namespace.clone()),
        author: Some(feed.author),
        seq: Some(first),
        offset: None,
        detail: format!(
            "{count} stored entries (seq {first} to {last}) cannot be read: {problem}; the \
             other entries of the log were not chain-checked past the damage"
        ),
    }
}

fn unlocated(detail: String) -> Finding {
    Finding {
        kind: FindingKind::DamagedStorage,
        namespace: None,
        author: None,
        seq: None,
        offset: None,
        detail,
    }
}
