//! Audit findings and the report, rendered for people (a summary) and machines (`--json`).

use std::fmt::Write as _;

use plexus_crypto::AgentId;
use serde::Serialize;

/// Findings kept in full; past this only the count grows, so a hopelessly corrupt file cannot
/// make the verifier's memory grow with its size.
pub const MAX_FINDINGS: usize = 10_000;

/// Findings printed in the human summary before "and N more".
const FINDINGS_SHOWN: usize = 50;

/// What kind of problem a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// Bytes that are not a canonical, well-formed entry (or header, or trailer).
    BadEncoding,
    /// An entry whose signature does not verify against its author.
    BadSignature,
    /// A body whose hash or length differs from the signed header.
    BodyMismatch,
    /// Entries missing from a feed.
    Gap,
    /// An entry whose `prev` does not name the entry before it.
    BrokenLink,
    /// An entry that appears after a later entry of its feed.
    OutOfOrder,
    /// The same entry twice.
    Duplicate,
    /// Two validly signed entries at the same feed position: the author equivocated.
    Fork,
    /// The file ends early.
    Truncated,
    /// An entry by an author not in the trusted list.
    UntrustedAuthor,
    /// The trailer's entry count differs from the entries in the file.
    CountMismatch,
    /// The file's bytes differ from what the exporter signed.
    DigestMismatch,
    /// The trailer's signature does not verify.
    BadTrailer,
    /// Bytes after the trailer.
    TrailingData,
    /// Part of a data directory's log that its storage cannot read back (a checksum or format
    /// check of RocksDB failed); data directories only.
    DamagedStorage,
    /// An entry of a governed namespace that its policy forbids (or a policy entry not signed
    /// by the trust root), found by re-deriving the decision.
    PolicyViolation,
}

/// One problem, located as precisely as the input allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_agent"
    )]
    pub author: Option<AgentId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Byte offset of the item in the file (absent when verifying a data directory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    pub detail: String,
}

/// The overall outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Every check passed.
    Verified,
    /// The log is intact but proves that one or more authors forked their feeds.
    Forked,
    /// Something is wrong with the log.
    Failed,
}

/// Everything an audit found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub source: String,
    pub verdict: Verdict,
    pub entries: u64,
    pub feeds: u64,
    pub authors: u64,
    pub signatures_checked: u64,
    pub pruned_bodies: u64,
    pub forks: u64,
    pub bytes: u64,
    #[serde(serialize_with = "serialize_agent")]
    pub exporter: Option<AgentId>,
    /// Whether a signed trailer was present and valid (files only).
    pub trailer_valid: Option<bool>,
    pub elapsed_ms: u64,
    pub entries_per_second: u64,
    pub findings_total: u64,
    pub findings: Vec<Finding>,
    /// Governed namespaces whose policy decisions were re-derived (from the trust roots given).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub governed_namespaces: Vec<String>,
    /// Entries of those namespaces whose decision was re-derived.
    pub policy_decisions: u64,
    /// Data directories only: the claims this node received late, a notice that never
    /// changes the verdict (an export holds no receptions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub late_claims: Option<super::late::LateNotice>,
}

impl Report {
    /// Adds the policy pass's results; any violation fails the audit.
    pub fn add_policy_audit(&mut self, namespaces: Vec<String>, audit: super::policy::PolicyAudit) {
        self.governed_namespaces = namespaces;
        self.policy_decisions = audit.decisions;
        if audit.violations == 0 {
            return;
        }
        self.findings_total += audit.violations;
        let room = MAX_FINDINGS.saturating_sub(self.findings.len());
        self.findings.extend(audit.findings.into_iter().take(room));
        self.verdict = Verdict::Failed;
    }

    /// Adds findings of storage damage; any fails the audit.
    pub fn add_damage(&mut self, findings: Vec<Finding>) {
        self.findings_total += findings.len() as u64;
        let room = MAX_FINDINGS.saturating_sub(self.findings.len());
        self.findings.extend(findings.into_iter().take(room));
        self.verdict = Verdict::Failed;
    }

    /// Exit status for the CLI: 0 verified, 1 failed, 3 intact but forked.
    pub fn exit_code(&self) -> i32 {
        match self.verdict {
            Verdict::Verified => 0,
            Verdict::Failed => 1,
            Verdict::Forked => 3,
        }
    }

    /// The human summary.
    pub fn render_human(&self) -> String {
        let mut out = String::new();
        for finding in self.findings.iter().take(FINDINGS_SHOWN) {
            let _ = writeln!(out, "  {}", render_finding(finding));
        }
        let shown = self.findings.len().min(FINDINGS_SHOWN) as u64;
        if self.findings_total > shown {
            let _ = writeln!(
                out,
                "  ... and {} more (use --json to list {})",
                self.findings_total - shown,
                if self.findings_total > self.findings.len() as u64 {
                    format!("the first {}", self.findings.len())
                } else {
                    "them all".to_owned()
                }
            );
        }
        if !out.is_empty() {
            out.insert_str(0, "Findings:\n");
            out.push('\n');
        }
        let verdict = match self.verdict {
            Verdict::Verified => "VERIFIED",
            Verdict::Forked => "FORKED (log intact; authors equivocated)",
            Verdict::Failed => "FAILED",
        };
        let _ = writeln!(out, "{verdict}: {}", self.source);
        let _ = writeln!(
            out,
            "  {} entries in {} feeds by {} authors; {} signatures checked in {:.2} s ({} entries/s)",
            self.entries,
            self.feeds,
            self.authors,
            self.signatures_checked,
            self.elapsed_ms as f64 / 1000.0,
            self.entries_per_second
        );
        if !self.governed_namespaces.is_empty() {
            let violations = self
                .findings
                .iter()
                .filter(|finding| finding.kind == FindingKind::PolicyViolation)
                .count();
            let _ = writeln!(
                out,
                "  policy re-derived for {} entries in governed namespaces {}: {} violations",
                self.policy_decisions,
                self.governed_namespaces.join(", "),
                violations
            );
        }
        if self.pruned_bodies > 0 {
            let _ = writeln!(
                out,
                "  {} bodies pruned (their signed hashes were still checked through the chain)",
                self.pruned_bodies
            );
        }
        match (self.trailer_valid, self.exporter) {
            (Some(true), Some(exporter)) => {
                let _ = writeln!(out, "  export signed by {exporter}: trailer valid");
            }
            (Some(false), _) => {
                let _ = writeln!(out, "  export trailer missing or invalid");
            }
            _ => {}
        }
        let _ = writeln!(
            out,
            "  {} problems{}",
            self.findings_total,
            if self.forks > 0 {
                format!(", of which {} forks", self.forks)
            } else {
                String::new()
            }
        );
        if let Some(late) = &self.late_claims {
            out.push_str(&late.render_human());
        }
        out
    }
}

/// One finding as a line of text: kind, location, detail.
pub fn render_finding(finding: &Finding) -> String {
    let mut location = Vec::new();
    if let Some(namespace) = &finding.namespace {
        location.push(format!("namespace {namespace}"));
    }
    if let Some(author) = &finding.author {
        location.push(format!("author {author}"));
    }
    if let Some(seq) = finding.seq {
        location.push(format!("seq {seq}"));
    }
    if let Some(offset) = finding.offset {
        location.push(format!("byte {offset}"));
    }
    let kind = serde_json::to_value(finding.kind)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default();
    if location.is_empty() {
        format!("{kind}: {}", finding.detail)
    } else {
        format!("{kind} at {}: {}", location.join(", "), finding.detail)
    }
}

fn serialize_agent<S: serde::Serializer>(
    agent: &Option<AgentId>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match agent {
        Some(agent) => serializer.serialize_str(&agent.to_string()),
        None => serializer.serialize_none(),
    }
}
