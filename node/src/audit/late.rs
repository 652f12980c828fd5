//! Claims a node received late (`docs/PROTOCOL.md` §9.4), read back from its data directory's
//! journal: the notice `plexus audit verify DATA_DIR` prints after its verdict, and the marks
//! of `plexus audit replay DATA_DIR`.
//!
//! Lateness is a per-node annotation (when this node received a claim), not a property of the
//! signed log, so it is never a finding: the same entries verify the same on every node. An
//! export holds no receptions, so nothing here applies to export files.

use std::collections::HashSet;
use std::fmt::Write as _;

use plexus_crypto::Hash256;
use plexus_protocol::coord::{is_late, parse_entry_id, Body, Reception};
use plexus_protocol::Entry;
use serde::Serialize;

use crate::store::{Log, StoreError};

/// Late claims kept in a report in full; past this only the count grows, so a flood of
/// back-dated claims cannot make the verifier's memory grow with it.
pub const MAX_LATE_LISTED: usize = 10_000;

/// Late claims printed by the human summary before "and N more".
const LATE_SHOWN: usize = 50;

/// One claim (`intent`, `intent.renew` or `intent.release`) this node received late.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LateClaim {
    /// The late entry's id (the claim itself, or the renewal or release).
    #[serde(rename = "entry_id", serialize_with = "serialize_hash")]
    pub id: Hash256,
    pub namespace: String,
    /// The claimed resource (`None`: the claim's body is pruned or not stored here).
    pub resource: Option<String>,
    pub kind: String,
    /// The claim: this entry for an `intent`, the claim it names for a renewal or release.
    pub claim_id: String,
    pub author: String,
    pub timestamp_ms: u64,
    pub received_ms: u64,
    /// How long after its timestamp this node received it.
    pub late_by_ms: u64,
    /// The clock-skew window it was judged with (the namespace's policy, or the node's).
    pub window_ms: u64,
    /// How it arrived: always `history` (a backfill or a file) for a late claim.
    pub received_via: &'static str,
}

/// The late claims of one data directory, as `audit verify` reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LateNotice {
    /// How many claims are late (the list may stop at [`MAX_LATE_LISTED`]).
    pub total: u64,
    /// The window used in namespaces whose policy sets none (the node's `--clock-skew-ms`).
    pub default_window_ms: u64,
    pub claims: Vec<LateClaim>,
}

/// The claims `log`'s node received late, in the order it received them, each once, judged
/// with the window of the policy in force at its timestamp (for the governed namespaces the
/// log was opened with) or `default_window_ms`. At most `limit` are listed; all are counted.
pub fn late_claims(
    log: &Log,
    default_window_ms: u64,
    limit: usize,
) -> Result<LateNotice, StoreError> {
    let mut notice = LateNotice {
        default_window_ms,
        ..LateNotice::default()
    };
    // A completed entry is journaled twice; it is late if either record is (as on the node).
    let mut seen: HashSet<Hash256> = HashSet::new();
    for item in log.journal(0) {
        let item = item?;
        let Some(reception) = item.reception else {
            continue;
        };
        let entry = &item.entry;
        let header = entry.header();
        let (window_ms, _) = log.clock_skew_for(entry, default_window_ms);
        if !is_late(&header.kind, header.timestamp_ms, reception, window_ms)
            || !seen.insert(entry.id())
        {
            continue;
        }
        notice.total += 1;
        if notice.claims.len() < limit {
            notice
                .claims
                .push(describe(log, entry, reception, window_ms)?);
        }
    }
    Ok(notice)
}

/// A late entry with its claim and resource looked up.
fn describe(
    log: &Log,
    entry: &Entry,
    reception: Reception,
    window_ms: u64,
) -> Result<LateClaim, StoreError> {
    let header = entry.header();
    let body = entry
        .body()
        .and_then(|bytes| Body::parse(&header.kind, bytes).ok());
    let (claim_id, resource) = match body {
        Some(Body::Intent(intent)) => (entry.id().to_string(), Some(intent.resource)),
        Some(Body::IntentRenew(plexus_protocol::coord::IntentRenew { claim, .. }))
        | Some(Body::IntentRelease(plexus_protocol::coord::IntentRelease { claim })) => {
            let resource = match parse_entry_id(&claim) {
                Some(id) => log
                    .entry_by_id(&id)?
                    .and_then(|claimed| claimed.body().map(<[u8]>::to_vec))
                    .and_then(|bytes| match Body::parse("intent", &bytes) {
                        Ok(Body::Intent(intent)) => Some(intent.resource),
                        _ => None,
                    }),
                None => None,
            };
            (claim, resource)
        }
        _ => (entry.id().to_string(), None),
    };
    Ok(LateClaim {
        id: entry.id(),
        namespace: header.namespace.clone(),
        resource,
        kind: header.kind.clone(),
        claim_id,
        author: header.author.to_string(),
        timestamp_ms: header.timestamp_ms,
        received_ms: reception.received_ms,
        late_by_ms: reception.received_ms.saturating_sub(header.timestamp_ms),
        window_ms,
        received_via: reception.arrival.as_str(),
    })
}

impl LateNotice {
    /// The notice as text, printed after the verdict (nothing when no claim is late).
    pub fn render_human(&self) -> String {
        let mut out = String::new();
        if self.total == 0 {
            return out;
        }
        let _ = writeln!(
            out,
            "\nNotice (not a finding): this node received {} claim{} late, by backfill or from a \
             file more than the clock-skew window after its timestamp. Lateness is this node's \
             own record of when it received each claim, not a property of the signed log, so \
             it does not change the verdict; the claims count in the lease order like any other \
             and were made across a partition longer than the window, or back-dated \
             (docs/PROTOCOL.md §9.4):",
            self.total,
            if self.total == 1 { "" } else { "s" }
        );
        for claim in self.claims.iter().take(LATE_SHOWN) {
            let _ = writeln!(
                out,
                "  LATE namespace {}, resource {}: {} {} by {}, claim {}, arrived by {} {} s \
                 after its timestamp (window {} s)",
                claim.namespace,
                claim
                    .resource
                    .as_deref()
                    .unwrap_or("(unknown: body not stored)"),
                claim.kind,
                short(&claim.id.to_string()),
                short(&claim.author),
                short(&claim.claim_id),
                if claim.received_via == "history" {
                    "backfill or file (history)"
                } else {
                    claim.received_via
                },
                claim.late_by_ms / 1000,
                claim.window_ms as f64 / 1000.0
            );
        }
        let shown = self.claims.len().min(LATE_SHOWN) as u64;
        if self.total > shown {
            let _ = writeln!(
                out,
                "  ... and {} more (use --json to list {})",
                self.total - shown,
                if self.total > self.claims.len() as u64 {
                    format!("the first {}", self.claims.len())
                } else {
                    "them all".to_owned()
                }
            );
        }
        out
    }
}

fn short(text: &str) -> &str {
    &text[..12.min(text.len())]
}

fn serialize_hash<S: serde::Serializer>(hash: &Hash256, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&hash.to_string())
}
