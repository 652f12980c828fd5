//! What an auditor sees of the claims a node received late (docs/PROTOCOL.md §9.4), from a data
//! directory whose journal records known receptions: `audit verify DATA_DIR` verifies it and
//! then lists them in a notice (never a finding), its export says nothing about lateness, and
//! `audit replay` judges each namespace with its own window (the governed one's policy
//! `clockSkewMs`, the open one's `--clock-skew-ms`).

use std::path::Path;
use std::process::{Command, Output};

use plexus_crypto::Keypair;
use plexus_node::store::Log;
use plexus_protocol::coord::Body;
use plexus_protocol::{Draft, Entry};
use plexus_tests::netnode::plexus_binary;
use serde_json::{json, Value};

const T0: u64 = 1_767_225_600_000;
/// The governed namespace's policy window.
const STRICT_WINDOW_MS: u64 = 5_000;

struct LateLog {
    dir: tempfile::TempDir,
    admin: Keypair,
    /// A claim in the governed namespace received 20 s late: late under its 5 s policy
    /// window, not under the default 30 s.
    strict_claim: Entry,
    /// A claim in the open namespace received 20 s late: late only under a window below 20 s.
    open_on_time: Entry,
    /// A claim in the open namespace received 60 s late.
    open_late: Entry,
    /// A renewal of `open_on_time` received 90 s late.
    open_renewal: Entry,
}

fn signed(
    author: &Keypair,
    namespace: &str,
    seq: u64,
    prev: Option<&Entry>,
    kind: &str,
    body: Value,
) -> Entry {
    Entry::sign(
        author,
        Draft {
            namespace: namespace.into(),
            seq,
            prev: prev.map(Entry::id),
            timestamp_ms: T0 + 1_000 * seq,
            kind: kind.into(),
            body: Body::from_json(kind, body).unwrap().encode().unwrap(),
        },
    )
    .unwrap()
}

fn claim(resource: &str) -> Value {
    json!({"resource": resource, "action": "write", "leaseMs": 3_600_000})
}

/// Stores `entry` as history (a backfill) received `late_by_ms` after its timestamp.
fn receive(log: &Log, entry: &Entry, late_by_ms: u64) {
    log.ingest(
        &entry.encode(),
        "sync",
        entry.header().timestamp_ms + late_by_ms,
    )
    .unwrap();
}

fn late_log() -> LateLog {
    let dir = tempfile::tempdir().unwrap();
    let admin = Keypair::generate();
    let claimer = Keypair::generate();
    let policy = signed(
        &admin,
        "strict",
        1,
        None,
        "policy",
        json!({
            "version": 1,
            "roles": {"worker": ["intent", "intent.renew", "intent.release"]},
            "members": [{"agent": claimer.agent_id().to_string(), "roles": ["worker"]}],
            "limits": {"clockSkewMs": STRICT_WINDOW_MS},
        }),
    );
    let strict_first = signed(&claimer, "strict", 1, None, "intent", claim("stapler"));
    let strict_claim = signed(
        &claimer,
        "strict",
        2,
        Some(&strict_first),
        "intent",
        claim("printer"),
    );
    let open_on_time = signed(&claimer, "open", 1, None, "intent", claim("scanner"));
    let open_late = signed(
        &claimer,
        "open",
        2,
        Some(&open_on_time),
        "intent",
        claim("plotter"),
    );
    let open_renewal = signed(
        &claimer,
        "open",
        3,
        Some(&open_late),
        "intent.renew",
        json!({"claim": open_on_time.id().to_string(), "leaseMs": 3_600_000}),
    );
    {
        let log = Log::open(dir.path()).unwrap();
        receive(&log, &policy, 0);
        receive(&log, &strict_first, 0);
        receive(&log, &strict_claim, 20_000);
        receive(&log, &open_on_time, 20_000);
        receive(&log, &open_late, 60_000);
        receive(&log, &open_renewal, 90_000);
    }
    LateLog {
        dir,
        admin,
        strict_claim,
        open_on_time,
        open_late,
        open_renewal,
    }
}

fn plexus(args: &[&str], target: &Path) -> Output {
    let output = Command::new(plexus_binary())
        .arg("audit")
        .arg(args[0])
        .arg(target)
        .args(&args[1..])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "plexus audit {args:?}: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn short(entry: &Entry) -> String {
    entry.id().to_string()[..12].to_owned()
}

/// The late entries `audit replay` lists, by their short ids.
fn replay_late(log: &LateLog, extra: &[&str]) -> Vec<String> {
    let at = format!("{}ms", T0 + 10_000);
    let mut args = vec!["replay", "--at", at.as_str()];
    args.extend_from_slice(extra);
    let out = text(&plexus(&args, log.dir.path()));
    let mut late: Vec<String> = out
        .lines()
        .filter_map(|line| line.trim().strip_prefix("LATE "))
        .filter_map(|rest| rest.split_whitespace().nth(1).map(str::to_owned))
        .collect();
    late.sort();
    late
}

fn sorted(entries: &[&Entry]) -> Vec<String> {
    let mut ids: Vec<String> = entries.iter().map(|entry| short(entry)).collect();
    ids.sort();
    ids
}

#[test]
fn verify_lists_late_claims_in_a_notice_that_leaves_the_verdict_verified() {
    let log = late_log();
    let trust_root = format!("strict={}", log.admin.agent_id());
    let output = plexus(&["verify", "--trust-root", &trust_root], log.dir.path());
    let out = text(&output);
    assert!(out.contains("VERIFIED"), "{out}");
    assert!(out.contains("0 problems"), "{out}");
    assert!(out.contains("Notice (not a finding)"), "{out}");
    assert!(out.contains("received 3 claims late"), "{out}");
    assert!(
        out.contains(&format!(
            "LATE namespace strict, resource printer: intent {} by",
            short(&log.strict_claim)
        )),
        "{out}"
    );
    // A renewal names the claim it renews, and the resource is that claim's.
    assert!(
        out.contains(&format!(
            "LATE namespace open, resource scanner: intent.renew {}",
            short(&log.open_renewal)
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("claim {}", short(&log.open_on_time))),
        "{out}"
    );
    assert!(
        out.contains("arrived by backfill or file (history) 90 s after"),
        "{out}"
    );
    assert!(
        !out.contains(&format!("intent {} by", short(&log.open_on_time))),
        "{out}"
    );

    let output = plexus(
        &["verify", "--trust-root", &trust_root, "--json"],
        log.dir.path(),
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["verdict"], "verified", "{report}");
    assert_eq!(report["findings_total"], 0, "{report}");
    let late = &report["late_claims"];
    assert_eq!(late["total"], 3, "{report}");
    let renewal = late["claims"]
        .as_array()
        .unwrap()
        .iter()
        .find(|claim| claim["kind"] == "intent.renew")
        .unwrap_or_else(|| panic!("no late renewal in {report}"));
    assert_eq!(renewal["entry_id"], log.open_renewal.id().to_string());
    assert_eq!(renewal["claim_id"], log.open_on_time.id().to_string());
    assert_eq!(renewal["resource"], "scanner");
    assert_eq!(renewal["namespace"], "open");
    assert_eq!(
        renewal["author"],
        log.open_renewal.header().author.to_string()
    );
    assert_eq!(renewal["late_by_ms"], 90_000);
    assert_eq!(renewal["received_via"], "history");
    let strict = late["claims"]
        .as_array()
        .unwrap()
        .iter()
        .find(|claim| claim["namespace"] == "strict")
        .unwrap_or_else(|| panic!("no late strict claim in {report}"));
    assert_eq!(strict["window_ms"], STRICT_WINDOW_MS);
}

#[test]
fn an_export_carries_no_receptions_so_verifying_it_says_nothing_about_lateness() {
    let log = late_log();
    let exporter = Keypair::generate();
    let out_dir = tempfile::tempdir().unwrap();
    let path = out_dir.path().join("late.plexus");
    plexus_node::audit::export_data_dir(log.dir.path(), &exporter, &path, T0 + 100_000).unwrap();
    let out = text(&plexus(&["verify"], &path));
    assert!(out.contains("VERIFIED"), "{out}");
    assert!(!out.contains("LATE") && !out.contains("Notice"), "{out}");
    let report: Value =
        serde_json::from_slice(&plexus(&["verify", "--json"], &path).stdout).unwrap();
    assert_eq!(report["verdict"], "verified", "{report}");
    assert!(report.get("late_claims").is_none(), "{report}");
}

#[test]
fn replay_judges_each_namespace_with_its_own_clock_skew_window() {
    let log = late_log();
    let trust_root = format!("strict={}", log.admin.agent_id());
    // The governed namespace's policy sets 5 s: its claim received 20 s late is late; the
    // open namespace keeps the default 30 s, under which its 20 s claim is not.
    assert_eq!(
        replay_late(&log, &["--trust-root", &trust_root]),
        sorted(&[&log.strict_claim, &log.open_late, &log.open_renewal])
    );
    // The node's own window (--clock-skew-ms) applies to the open namespace only; the policy's
    // window still replaces it in the governed one.
    assert_eq!(
        replay_late(
            &log,
            &["--trust-root", &trust_root, "--clock-skew-ms", "40000"]
        ),
        sorted(&[&log.strict_claim, &log.open_late, &log.open_renewal])
    );
    assert_eq!(
        replay_late(
            &log,
            &["--trust-root", &trust_root, "--clock-skew-ms", "10000"]
        ),
        sorted(&[
            &log.strict_claim,
            &log.open_on_time,
            &log.open_late,
            &log.open_renewal
        ])
    );
    // Without its trust root the namespace is open to the auditor, as to a node without one.
    assert_eq!(
        replay_late(&log, &[]),
        sorted(&[&log.open_late, &log.open_renewal])
    );
}
