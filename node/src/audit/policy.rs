//! Re-deriving every policy decision of an export or data directory.
//!
//! Given the trust roots (which namespaces are governed, by which admins), the auditor
//! replays the governed namespaces through the same pure decision the nodes use
//! (`plexus_protocol::policy`): every entry the log holds was accepted by its node, so any
//! entry the decision refuses is reported as a [`FindingKind::PolicyViolation`], with the rule
//! and the policy version in force. Policy entries go through the same decision, so a policy
//! not signed by the trust root is reported too.
//!
//! Two passes over the input: the first learns every valid policy entry (an admin's policy may
//! sort after the feeds it governs), the second decides each entry in feed order, folding each
//! feed's history as a node would. Memory is the policy books and one small state per governed
//! feed. Signatures and chains are the main verifier's job; this pass only reads.
//!
//! The auditor judges with every policy in the log. A node that accepted an entry before a
//! policy forbidding it reached it (a partition, a race with an admin's change) is reported
//! too: the log then does hold an entry the policy forbids, which is what an auditor asks.

use std::path::Path;

use plexus_protocol::export::{classify, ItemKind};
use plexus_protocol::{cbor, Entry, FeedKey, MAX_ENTRY_LEN};

use super::report::{Finding, FindingKind, MAX_FINDINGS};
use super::verify::{fill, VerifyError};
use crate::store::{body_read_by_policy, Governor, Log, Scope, TrustRoots};

/// Bytes read from an export at a time.
const READ_CHUNK: usize = 1 << 20;

/// What the policy pass found.
#[derive(Debug, Clone, Default)]
pub struct PolicyAudit {
    /// Entries of governed namespaces whose decision was re-derived.
    pub decisions: u64,
    /// Every violation found, counted even past the findings kept.
    pub violations: u64,
    /// The first violations, at most [`MAX_FINDINGS`]: a log full of violations must not make
    /// the auditor's memory grow with its length.
    pub findings: Vec<Finding>,
}

/// Runs the policy pass over an export file.
pub fn audit_file(path: &Path, trust_roots: &TrustRoots) -> Result<PolicyAudit, VerifyError> {
    let mut learner = Learner::new(trust_roots);
    for_each_envelope(path, |_, bytes| learner.learn(bytes))?;
    let governor = learner.governor;
    let mut audit = Auditor::new(governor);
    for_each_envelope(path, |offset, bytes| audit.decide(bytes, Some(offset)))?;
    Ok(audit.finish())
}

/// Runs the policy pass over a data directory, read-only.
pub fn audit_data_dir(log: &Log, trust_roots: &TrustRoots) -> Result<PolicyAudit, VerifyError> {
    // Both passes read the same snapshot.
    let snapshot = log.snapshot();
    let mut learner = Learner::new(trust_roots);
    for envelope in super::export::export_order(&snapshot) {
        learner.learn(&envelope?);
    }
    let governor = learner.governor;
    let mut audit = Auditor::new(governor);
    for envelope in super::export::export_order(&snapshot) {
        audit.decide(&envelope?, None);
    }
    Ok(audit.finish())
}

struct Auditor {
    governor: Governor,
    /// Position reached in the current feed, to skip fork rivals (listed right after the
    /// stored entry at the same seq) and anything out of order.
    last: Option<(FeedKey, u64)>,
    audit: PolicyAudit,
}

impl Auditor {
    fn new(governor: Governor) -> Auditor {
        Auditor {
            governor,
            last: None,
            audit: PolicyAudit::default(),
        }
    }

    fn decide(&mut self, bytes: &[u8], offset: Option<u64>) {
        let Some((namespace, _, _)) = Entry::peek_position(bytes) else {
            return;
        };
        if !self.governor.is_governed(&namespace) {
            return;
        }
        let Ok(entry) = Entry::decode(bytes) else {
            // Reported by the main verifier.
            return;
        };
        let feed = FeedKey::of(&entry);
        let seq = entry.header().seq;
        if !first_at_position(&mut self.last, &feed, seq) {
            return;
        }
        self.audit.decisions += 1;
        // Parsed once for the decision and the fold that follows it.
        let body = body_read_by_policy(&entry);
        let verdict = self.governor.decide(&entry, body.as_ref(), Scope::Full);
        // A body pruned from the log (which the verifier accepts) leaves the body rules
        // undecidable here; nodes never store such entries in a governed namespace.
        let verdict = verdict.or_else(|violation| match violation.rule {
            plexus_protocol::policy::Rule::MissingBody => Ok(None),
            _ => Err(violation),
        });
        if let Err(violation) = verdict {
            let header = entry.header();
            let version = violation.policy_version.map_or_else(
                || "no policy".to_owned(),
                |version| format!("policy v{version}"),
            );
            self.audit.violations += 1;
            if self.audit.findings.len() >= MAX_FINDINGS {
                self.governor.observe(&entry, body.as_ref());
                return;
            }
            self.audit.findings.push(Finding {
                kind: FindingKind::PolicyViolation,
                namespace: Some(header.namespace.clone()),
                author: Some(header.author),
                seq: Some(seq),
                offset,
                detail: format!(
                    "accepted in violation of {version} ({}): {}",
                    violation.rule, violation.message
                ),
            });
        }
        // The node did accept it, so its feed moves on with it, as on the node.
        self.governor.observe(&entry, body.as_ref());
    }

    fn finish(self) -> PolicyAudit {
        self.audit
    }
}

/// The first pass: learns every policy entry of a governed namespace that its node stored
/// (the admin check happens inside: a non-admin's policy is never learnt, and the second pass
/// reports it). Fork rivals, which follow the stored entry at the same position, are skipped:
/// no node stored them.
struct Learner {
    governor: Governor,
    last: Option<(FeedKey, u64)>,
}

impl Learner {
    fn new(trust_roots: &TrustRoots) -> Learner {
        Learner {
            governor: Governor::new(trust_roots),
            last: None,
        }
    }

    fn learn(&mut self, bytes: &[u8]) {
        let Some((namespace, author, seq)) = Entry::peek_position(bytes) else {
            return;
        };
        if !self.governor.is_governed(&namespace) {
            return;
        }
        let feed = FeedKey { namespace, author };
        if !first_at_position(&mut self.last, &feed, seq) {
            return;
        }
        if let Ok(entry) = Entry::decode(bytes) {
            if entry.kind() == Ok(plexus_protocol::Kind::Policy) && entry.verify_signature() {
                self.governor
                    .learn_policy(&entry, body_read_by_policy(&entry).as_ref());
            }
        }
    }
}

/// Whether (feed, seq) moves past the last position seen (in export order, feeds come whole
/// and in seq order; a second item at a seen position is a fork rival or a duplicate).
fn first_at_position(last: &mut Option<(FeedKey, u64)>, feed: &FeedKey, seq: u64) -> bool {
    if let Some((last_feed, last_seq)) = last {
        if last_feed == feed && seq <= *last_seq {
            return false;
        }
    }
    *last = Some((feed.clone(), seq));
    true
}

/// Calls `visit` with the offset and bytes of every entry of an export file. Framing errors
/// end the walk quietly: the main verifier reports them.
fn for_each_envelope(path: &Path, mut visit: impl FnMut(u64, &[u8])) -> Result<(), VerifyError> {
    let io_error = |source| VerifyError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io_error)?;
    let mut buffer: Vec<u8> = Vec::with_capacity(READ_CHUNK * 2);
    let mut base: u64 = 0;
    let mut eof = false;
    loop {
        fill(&mut file, &mut buffer, READ_CHUNK, &mut eof).map_err(io_error)?;
        let mut position = 0;
        loop {
            let rest = &buffer[position..];
            if rest.is_empty() {
                break;
            }
            match cbor::item_len(rest) {
                // The main verifier stops at an item longer than any entry; so does this pass.
                Ok(Some(len)) if len > MAX_ENTRY_LEN => return Ok(()),
                Ok(Some(len)) => {
                    let item = &rest[..len];
                    if classify(item) == ItemKind::Entry {
                        visit(base + position as u64, item);
                    }
                    position += len;
                }
                // An item longer than any entry is damage the main verifier reports; without
                // this stop the buffer could fill with it and never move on.
                Ok(None) if !eof && rest.len() <= MAX_ENTRY_LEN => break,
                Ok(None) | Err(_) => return Ok(()),
            }
        }
        buffer.drain(..position);
        base += position as u64;
        if eof && buffer.is_empty() {
            return Ok(());
        }
        if eof && position == 0 {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plexus_crypto::Keypair;
    use plexus_protocol::Draft;
    use std::collections::BTreeSet;

    #[test]
    fn violations_past_the_findings_cap_are_counted_but_not_kept() {
        // A governed namespace with no policy at all: every entry by a non-admin is a
        // `no-policy` violation. One more than the cap must not all be held in memory.
        let admin = Keypair::from_seed(&[1; 32]);
        let member = Keypair::from_seed(&[2; 32]);
        let trust_roots =
            TrustRoots::from([("gov".to_owned(), BTreeSet::from([admin.agent_id()]))]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("violations.plexus");
        let mut bytes = Vec::new();
        let mut prev = None;
        let total = MAX_FINDINGS as u64 + 5;
        for seq in 1..=total {
            let entry = Entry::sign(
                &member,
                Draft {
                    namespace: "gov".into(),
                    seq,
                    prev,
                    timestamp_ms: 1_000 + seq,
                    kind: "x-note".into(),
                    body: vec![0xf6],
                },
            )
            .unwrap();
            prev = Some(entry.id());
            bytes.extend_from_slice(&entry.encode());
        }
        std::fs::write(&path, &bytes).unwrap();
        let audit = audit_file(&path, &trust_roots).unwrap();
        assert_eq!(audit.decisions, total);
        assert_eq!(audit.violations, total);
        assert_eq!(audit.findings.len(), MAX_FINDINGS);
        assert_eq!(audit.findings[0].seq, Some(1));
    }

    #[test]
    fn an_item_longer_than_any_entry_ends_the_walk_instead_of_stalling_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("damaged.plexus");
        // A byte string that claims 4 MiB, followed by 2 MiB: larger than the read buffer.
        let mut bytes = vec![0x5a, 0x00, 0x40, 0x00, 0x00];
        bytes.resize(2 * READ_CHUNK, 0);
        std::fs::write(&path, &bytes).unwrap();
        let mut visited = 0;
        for_each_envelope(&path, |_, _| visited += 1).unwrap();
        assert_eq!(visited, 0);
    }
}
