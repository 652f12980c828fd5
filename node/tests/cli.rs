//! The `plexus` binary end to end: init, publish, log, export, verify, and the errors a user
//! meets on the way.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn plexus(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_plexus"))
            .args(args)
            .env("PLEXUS_DATA_DIR", self.data_dir())
            .env("PLEXUS_CONFIG", self.dir.path().join("config.toml"))
            .env_remove("PLEXUS_LOG")
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.plexus(args);
        assert!(
            output.status.success(),
            "plexus {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    fn fails(&self, args: &[&str]) -> (i32, String) {
        let output = self.plexus(args);
        assert!(!output.status.success(), "plexus {args:?} should fail");
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stderr).into_owned()
                + &String::from_utf8_lossy(&output.stdout),
        )
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

#[test]
fn init_publish_log_export_verify() {
    let sandbox = Sandbox::new();
    let out = sandbox.ok(&["init", "--namespace", "team"]);
    assert!(out.contains("created identity"), "{out}");
    let id = sandbox.ok(&["id"]).trim().to_owned();
    assert_eq!(id.len(), 64);
    let mode = std::fs::metadata(sandbox.data_dir().join("identity.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // Running init again keeps the identity.
    assert!(sandbox
        .ok(&["init"])
        .contains(&format!("identity already exists: {id}")));

    sandbox.ok(&[
        "publish",
        "--kind",
        "x-note",
        "--body",
        r#"{"b": 2, "a": 1}"#,
    ]);
    let published = sandbox.ok(&[
        "publish",
        "--kind",
        "task",
        "--body",
        r#"{"taskId": "T-1", "status": {"state": "TASK_STATE_WORKING"}}"#,
        "--json",
    ]);
    let published: serde_json::Value = serde_json::from_str(&published).unwrap();
    assert_eq!(published["seq"], 2);
    assert_eq!(published["namespace"], "team");
    assert_eq!(published["author"], id.as_str());

    let log = sandbox.ok(&["log", "--json", "--kind", "x-note"]);
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["body"], serde_json::json!({"a": 1, "b": 2}));
    let human = sandbox.ok(&["log", "--limit", "1"]);
    assert_eq!(human.lines().count(), 1);
    assert!(
        human.contains("task") && human.contains("TASK_STATE_WORKING"),
        "{human}"
    );

    let export = sandbox.path("export.plexus");
    assert!(sandbox
        .ok(&["audit", "export", "--out", &export])
        .contains("exported 2 entries"));
    let report = sandbox.ok(&["audit", "verify", &export, "--json"]);
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["verdict"], "verified");
    assert_eq!(report["entries"], 2);
    assert_eq!(report["exporter"], id.as_str());
    let human = sandbox.ok(&["audit", "verify", &export]);
    assert!(human.starts_with("VERIFIED"), "{human}");
    let data_dir = sandbox.data_dir().display().to_string();
    assert!(sandbox
        .ok(&["audit", "verify", &data_dir])
        .starts_with("VERIFIED"));

    // Trusted keys: the author is trusted, so still verified; a stranger list flags it.
    let trusted = sandbox.path("trusted.txt");
    std::fs::write(&trusted, format!("# our agents\n{id}\n")).unwrap();
    sandbox.ok(&["audit", "verify", &export, "--trusted-keys", &trusted]);
    let stranger = plexus_crypto::Keypair::generate().agent_id();
    std::fs::write(&trusted, format!("{stranger}\n")).unwrap();
    let (code, out) = sandbox.fails(&["audit", "verify", &export, "--trusted-keys", &trusted]);
    assert_eq!(code, 1);
    assert!(out.contains("untrusted-author"), "{out}");
}

#[test]
fn verify_exits_nonzero_and_locates_tampering() {
    let sandbox = Sandbox::new();
    sandbox.ok(&["init"]);
    for n in 0..3 {
        sandbox.ok(&[
            "publish",
            "--kind",
            "x-note",
            "--body",
            &format!(r#"{{"n": {n}}}"#),
        ]);
    }
    let export = sandbox.path("export.plexus");
    sandbox.ok(&["audit", "export", "--out", &export]);
    let mut bytes = std::fs::read(&export).unwrap();
    // Items: header, three entries, trailer. Flip the last byte of the third entry's body.
    let mut ends = Vec::new();
    let mut position = 0;
    while position < bytes.len() {
        position += plexus_protocol::cbor::item_len(&bytes[position..])
            .unwrap()
            .unwrap();
        ends.push(position);
    }
    assert_eq!(ends.len(), 5);
    let third_entry_start = ends[2];
    bytes[ends[3] - 1] ^= 0x01;
    std::fs::write(&export, &bytes).unwrap();
    let (code, out) = sandbox.fails(&["audit", "verify", &export, "--json"]);
    assert_eq!(code, 1);
    let report: serde_json::Value = serde_json::from_str(&out[out.find('{').unwrap()..]).unwrap();
    assert_eq!(report["verdict"], "failed");
    let findings = report["findings"].as_array().unwrap();
    let body = findings
        .iter()
        .find(|f| f["kind"] == "body-mismatch")
        .unwrap();
    assert_eq!(body["seq"], 3, "{out}");
    assert_eq!(body["offset"], third_entry_start, "{out}");
    let human = sandbox.fails(&["audit", "verify", &export]).1;
    assert!(
        human.contains("body-mismatch at namespace default"),
        "{human}"
    );
    assert!(
        human.contains(&format!("seq 3, byte {third_entry_start}")),
        "{human}"
    );
    assert!(human.contains("FAILED"), "{human}");
}

#[test]
fn bad_input_gets_clear_errors() {
    let sandbox = Sandbox::new();
    let (_, out) = sandbox.fails(&["publish", "--kind", "x-note", "--body", "{}"]);
    assert!(out.contains("plexus init"), "{out}");
    sandbox.ok(&["init"]);
    let (_, out) = sandbox.fails(&["publish", "--kind", "x-note", "--body", "{not json"]);
    assert!(out.contains("--body must be one JSON value"), "{out}");
    let (_, out) = sandbox.fails(&["publish", "--kind", "x-note", "--body", r#"{"a":1,"a":2}"#]);
    assert!(out.contains("duplicate key \"a\""), "{out}");
    let (_, out) = sandbox.fails(&["publish", "--kind", "Bad Kind", "--body", "{}"]);
    assert!(out.contains("field `kind`"), "{out}");
    // An entry the rules refuse exits 4 offline too, as it does through a running node.
    let (code, out) = sandbox.fails(&["publish", "--kind", "intnet", "--body", "{}"]);
    assert!(
        out.contains("unknown kind \"intnet\"") && out.contains("x-"),
        "{out}"
    );
    assert_eq!(code, 4, "{out}");
    let (code, out) = sandbox.fails(&[
        "publish",
        "--kind",
        "intent",
        "--body",
        r#"{"resource": "r"}"#,
    ]);
    assert!(out.contains("missing field `action`"), "{out}");
    assert_eq!(code, 4, "{out}");
    let (_, out) = sandbox.fails(&["claim", "repo/x"]);
    assert!(out.contains("plexus run"), "{out}");
    let (_, out) = sandbox.fails(&["audit", "replay", "nowhere.plexus", "--at", "yesterday"]);
    assert!(out.contains("RFC 3339"), "{out}");
    let big = format!("\"{}\"", "x".repeat(70_000));
    let (_, out) = sandbox.fails(&["publish", "--kind", "x-note", "--body", &big]);
    assert!(out.contains("body limit"), "{out}");
    let (_, out) = sandbox.fails(&["log", "--author", "nope"]);
    assert!(out.contains("--author must be an agent id"), "{out}");
    let (_, out) = sandbox.fails(&["audit", "verify", &sandbox.path("missing.plexus")]);
    assert!(
        out.contains("pass an export file or a data directory"),
        "{out}"
    );
    // Nothing was written by the failed publishes.
    assert_eq!(sandbox.ok(&["log", "--json"]).lines().count(), 0);
}

#[test]
fn an_open_key_file_is_refused_with_the_fix() {
    let sandbox = Sandbox::new();
    sandbox.ok(&["init"]);
    let key = sandbox.data_dir().join("identity.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (_, out) = sandbox.fails(&["publish", "--kind", "x-note", "--body", "{}"]);
    assert!(
        out.contains("chmod 600") && out.contains("identity.key"),
        "{out}"
    );
}

#[test]
fn a_held_data_directory_is_refused() {
    let sandbox = Sandbox::new();
    sandbox.ok(&["init"]);
    let held = plexus_node::store::Log::open(&sandbox.data_dir()).unwrap();
    let (_, out) = sandbox.fails(&["publish", "--kind", "x-note", "--body", "{}"]);
    assert!(out.contains("in use by another plexus process"), "{out}");
    // Reading commands still work beside the holder.
    sandbox.ok(&["log"]);
    drop(held);
    sandbox.ok(&["publish", "--kind", "x-note", "--body", "{}"]);
}

#[test]
fn help_is_available_on_every_command() {
    let sandbox = Sandbox::new();
    for args in [
        vec!["--help"],
        vec!["init", "--help"],
        vec!["publish", "--help"],
        vec!["log", "--help"],
        vec!["audit", "--help"],
        vec!["audit", "export", "--help"],
        vec!["audit", "verify", "--help"],
        vec!["demo", "--help"],
        vec!["audit", "replay", "--help"],
        vec!["claim", "--help"],
        vec!["release", "--help"],
        vec!["leases", "--help"],
        vec!["agents", "--help"],
        vec!["announce", "--help"],
        vec!["tasks", "--help"],
        vec!["task", "--help"],
        vec!["constrain", "--help"],
        vec!["events", "--help"],
        vec!["rejections", "--help"],
    ] {
        let out = sandbox.ok(&args);
        assert!(out.contains("Usage: plexus"), "{args:?}: {out}");
    }
}

#[test]
fn the_demo_runs_and_every_step_holds() {
    let sandbox = Sandbox::new();
    let out = sandbox.ok(&["demo", "--dir", &sandbox.path("demo")]);
    for expected in [
        "every node sees the four cards",
        "is told: claim.lost",
        "is told: claim.won, it now holds repo/plexus",
        "refused: task",
        "blocked by the constraint",
        "offline audit says: verified",
        "demo verdict: PASS",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    // The winner is the same on every node: four "sees repo/plexus held by X" lines, one X.
    let holders: std::collections::HashSet<&str> = out
        .lines()
        .filter_map(|line| line.split("sees repo/plexus held by ").nth(1))
        .map(|rest| rest.split(',').next().unwrap_or_default())
        .collect();
    assert_eq!(holders.len(), 1, "{out}");
    for agent in ["planner", "coder-1", "coder-2", "reviewer"] {
        let export = sandbox.path(&format!("demo/{agent}.plexus"));
        assert!(Path::new(&export).exists());
        let verified = sandbox.ok(&["audit", "verify", &export]);
        assert!(verified.contains("VERIFIED"), "{verified}");
    }
    // Replaying the planner's log at the moment the demo printed its view digest shows that
    // moment's state.
    let at = out
        .split("view digest at ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .expect("the demo prints the time of its digest");
    let replay = sandbox.ok(&[
        "audit",
        "replay",
        &sandbox.path("demo/planner.plexus"),
        "--at",
        at,
    ]);
    assert!(replay.contains("live capabilities (4)"), "{replay}");
    assert!(
        replay.contains("T-1") && replay.contains("TASK_STATE_COMPLETED"),
        "{replay}"
    );
}

#[test]
fn exit_codes_tell_a_missing_input_from_a_failed_audit() {
    let sandbox = Sandbox::new();
    let help = sandbox.ok(&["--help"]);
    assert!(
        help.contains("Exit codes:") && help.contains("4  the node"),
        "{help}"
    );
    let (code, out) = sandbox.fails(&["audit", "verify", &sandbox.path("missing.plexus")]);
    assert_eq!(code, 2, "{out}");
    // Impossible dates and unitless numbers are refused, not reinterpreted.
    sandbox.ok(&["init"]);
    sandbox.ok(&["publish", "--kind", "x-note", "--body", "{}"]);
    let data_dir = sandbox.data_dir().display().to_string();
    let (code, out) =
        sandbox.fails(&["audit", "replay", &data_dir, "--at", "2026-02-30T00:00:00Z"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("\"2026-02-30T00:00:00Z\" is not valid"),
        "{out}"
    );
    let (_, out) = sandbox.fails(&["audit", "replay", &data_dir, "--at", "1795629600000"]);
    assert!(out.contains("has no unit"), "{out}");
    // A moment before the log began is said to be so.
    let output = sandbox.plexus(&["audit", "replay", &data_dir, "--at", "2000-01-01T00:00:00Z"]);
    assert!(output.status.success(), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("is before the log's first entry"),
        "{output:?}"
    );
}

#[test]
fn a_named_config_file_must_exist() {
    let sandbox = Sandbox::new();
    sandbox.ok(&["init"]);
    let output = Command::new(env!("CARGO_BIN_EXE_plexus"))
        .args(["--config", "/nonexistent/plexus.toml", "id"])
        .env("PLEXUS_DATA_DIR", sandbox.data_dir())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("/nonexistent/plexus.toml") && said.contains("does not exist"),
        "{said}"
    );
    // A config path that cannot be read names its cause once.
    let (_, out) = sandbox.fails(&["--config", &sandbox.path("data"), "id"]);
    assert_eq!(out.matches("Is a directory").count(), 1, "{out}");
}

#[test]
fn the_identity_must_be_the_data_directorys_own() {
    let sandbox = Sandbox::new();
    let out = sandbox.ok(&["init"]);
    assert!(
        out.contains("api.token"),
        "init names the token file: {out}"
    );
    sandbox.ok(&["publish", "--kind", "x-note", "--body", "{}"]);
    let key = sandbox.data_dir().join("identity.key");
    let text = std::fs::read_to_string(&key).unwrap();
    // Change the last hex digit of the key: still a valid key, but another identity.
    let at = text.rfind(|c: char| c.is_ascii_hexdigit()).unwrap();
    let digit = text.as_bytes()[at];
    let replacement = if digit == b'0' { '1' } else { '0' };
    let mut changed = text.clone();
    changed.replace_range(at..=at, &replacement.to_string());
    std::fs::write(&key, changed).unwrap();
    let (_, out) = sandbox.fails(&["publish", "--kind", "x-note", "--body", "{}"]);
    assert!(out.contains("restore the original key"), "{out}");
    assert_eq!(sandbox.ok(&["log", "--json"]).lines().count(), 1);
    // A directory where the key should be is named as such.
    std::fs::remove_file(&key).unwrap();
    std::fs::create_dir(&key).unwrap();
    let (_, out) = sandbox.fails(&["id"]);
    assert!(out.contains("is not a regular file"), "{out}");
}

#[test]
fn shell_completions_are_printed() {
    let sandbox = Sandbox::new();
    for shell in ["bash", "zsh", "fish"] {
        let script = sandbox.ok(&["completion", shell]);
        assert!(
            script.contains("plexus") && script.contains("claim"),
            "{shell}: {script}"
        );
    }
}

#[test]
fn offline_writers_wait_for_each_other() {
    let sandbox = Sandbox::new();
    sandbox.ok(&["init"]);
    let writers: Vec<std::process::Child> = (0..6)
        .map(|n| {
            Command::new(env!("CARGO_BIN_EXE_plexus"))
                .args([
                    "publish",
                    "--kind",
                    "x-note",
                    "--body",
                    &format!(r#"{{"n": {n}}}"#),
                ])
                .env("PLEXUS_DATA_DIR", sandbox.data_dir())
                .env("PLEXUS_CONFIG", sandbox.dir.path().join("config.toml"))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for writer in writers {
        let output = writer.wait_with_output().unwrap();
        assert!(output.status.success(), "{output:?}");
    }
    assert_eq!(sandbox.ok(&["log", "--json"]).lines().count(), 6);
}
