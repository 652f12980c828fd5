//! Real `plexus run` processes started from the built binary: three find each other through
//! bootstrap addresses and exchange entries, and SIGTERM stops each cleanly; two more run a
//! governed namespace administered through the `plexus policy` and `plexus members` commands.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Process {
    name: &'static str,
    data_dir: PathBuf,
    config: PathBuf,
    child: Child,
    stdout: BufReader<ChildStdout>,
    p2p_addr: String,
}

fn plexus(data_dir: &Path, config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_plexus"))
        .args(args)
        .env("PLEXUS_DATA_DIR", data_dir)
        .env("PLEXUS_CONFIG", config)
        .env_remove("PLEXUS_LOG")
        .output()
        .unwrap()
}

fn ok(data_dir: &Path, config: &Path, args: &[&str]) -> String {
    let output = plexus(data_dir, config, args);
    assert!(
        output.status.success(),
        "plexus {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn start(root: &Path, name: &'static str, bootstrap: Option<&str>) -> Process {
    let data_dir = root.join(name);
    let config = root.join(format!("{name}.toml"));
    ok(&data_dir, &config, &["init", "--namespace", "trio"]);
    for n in 0..2 {
        ok(
            &data_dir,
            &config,
            &[
                "publish",
                "--kind",
                "x-note",
                "--body",
                &format!(r#"{{"from": "{name}", "n": {n}}}"#),
            ],
        );
    }
    launch(&data_dir, &config, name, bootstrap)
}

/// Starts `plexus run` on an initialised data directory and waits until it serves.
fn launch(data_dir: &Path, config: &Path, name: &'static str, bootstrap: Option<&str>) -> Process {
    let mut command = Command::new(env!("CARGO_BIN_EXE_plexus"));
    command
        .args([
            "run",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--no-mdns",
            "--api-listen",
            "127.0.0.1:0",
            "--backfill-interval",
            "1",
        ])
        .env("PLEXUS_DATA_DIR", data_dir)
        .env("PLEXUS_CONFIG", config)
        .env("PLEXUS_MAX_CONNECTIONS", "7")
        .env_remove("PLEXUS_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(bootstrap) = bootstrap {
        command.args(["--bootstrap", bootstrap]);
    }
    let mut child = command.spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut p2p_addr = String::new();
    // The node prints its listening addresses, then one "running" line.
    loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "{name} exited early"
        );
        if let Some(addr) = line.trim().strip_prefix("listening on ") {
            p2p_addr = addr.to_owned();
        }
        if line.contains("running; HTTP API on") {
            break;
        }
    }
    assert!(p2p_addr.contains("/p2p/"), "{name} printed no address");
    Process {
        name,
        data_dir: data_dir.to_path_buf(),
        config: config.to_path_buf(),
        child,
        stdout,
        p2p_addr,
    }
}

fn status(process: &Process) -> serde_json::Value {
    let out = ok(&process.data_dir, &process.config, &["status", "--json"]);
    serde_json::from_str(&out).unwrap()
}

#[test]
fn three_processes_find_each_other_and_exchange_entries() {
    let root = tempfile::tempdir().unwrap();
    let first = start(root.path(), "first", None);
    let second = start(root.path(), "second", Some(&first.p2p_addr));
    let third = start(root.path(), "third", Some(&first.p2p_addr));
    let processes = [first, second, third];

    // Each wrote two entries before starting: everyone must end with three feeds at seq 2.
    let deadline = Instant::now() + Duration::from_secs(60);
    let converged = |status: &serde_json::Value| {
        let feeds = status["feeds"].as_array().cloned().unwrap_or_default();
        feeds.len() == 3 && feeds.iter().all(|feed| feed["seq"] == 2)
    };
    loop {
        let statuses: Vec<serde_json::Value> = processes.iter().map(status).collect();
        if statuses.iter().all(converged) {
            // The same heads everywhere.
            assert!(statuses
                .windows(2)
                .all(|pair| pair[0]["feeds"] == pair[1]["feeds"]));
            // The second and third found each other, not only the bootstrap node.
            let peers = statuses[1]["network"]["peers"].as_array().unwrap().len();
            assert!(peers >= 1, "{statuses:#?}");
            // The connection limit came from the environment, three quarters of it inbound.
            for status in &statuses {
                let connections = &status["network"]["connections"];
                assert_eq!(connections["max_established"], 7, "{connections}");
                assert_eq!(connections["max_incoming"], 5, "{connections}");
            }
            let human = ok(&processes[0].data_dir, &processes[0].config, &["status"]);
            assert!(
                human.contains("(at most 7, 5 inbound); refused at the limit: 0 inbound"),
                "{human}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no convergence within 60 s: {statuses:#?}"
        );
    }

    // Coordination through the CLI, across processes: a claim made on one node holds on
    // another, only its author may release it, and task rules are enforced with exit code 4.
    let (second, third) = (&processes[1], &processes[2]);
    let claimed: serde_json::Value = serde_json::from_str(&ok(
        &second.data_dir,
        &second.config,
        &["claim", "printer", "--lease", "5m", "--json"],
    ))
    .unwrap();
    assert_eq!(claimed["claim"]["standing"], "holding", "{claimed}");
    let claim_id = claimed["claim"]["claim_id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let leases: serde_json::Value = serde_json::from_str(&ok(
            &third.data_dir,
            &third.config,
            &["leases", "--resource", "printer", "--json"],
        ))
        .unwrap();
        if leases["leases"][0]["holders"][0]["claim_id"] == claim_id.as_str() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the claim never reached the third node: {leases}"
        );
    }
    let refused = plexus(&third.data_dir, &third.config, &["release", &claim_id]);
    assert_eq!(refused.status.code(), Some(4));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("only its author"),
        "{refused:?}"
    );
    ok(
        &third.data_dir,
        &third.config,
        &["task", "T-9", "--state", "working"],
    );
    ok(
        &third.data_dir,
        &third.config,
        &["task", "T-9", "--state", "completed"],
    );
    let reopened = plexus(
        &third.data_dir,
        &third.config,
        &["task", "T-9", "--state", "working"],
    );
    assert_eq!(reopened.status.code(), Some(4));
    assert!(
        String::from_utf8_lossy(&reopened.stderr).contains("terminal state"),
        "{reopened:?}"
    );
    ok(&second.data_dir, &second.config, &["release", &claim_id]);
    // While the node runs, `publish` goes through it instead of failing on the held directory.
    let published = ok(
        &second.data_dir,
        &second.config,
        &["publish", "--kind", "x-note", "--body", "{}"],
    );
    assert!(
        published.contains("through the running node"),
        "{published}"
    );

    for mut process in processes {
        let pid = process.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let exit = process.child.wait().unwrap();
        assert!(exit.success(), "{} exited with {exit}", process.name);
        let rest: Vec<String> = process.stdout.lines().map(Result::unwrap).collect();
        assert!(
            rest.iter()
                .any(|line| line.contains("stopped; the log is flushed")),
            "{}: {rest:?}",
            process.name
        );
        let verify = ok(
            &process.data_dir,
            &process.config,
            &["audit", "verify", process.data_dir.to_str().unwrap()],
        );
        assert!(
            verify.contains("in 3 feeds") && verify.contains("VERIFIED"),
            "{verify}"
        );
        // A stopped node has no API address left behind.
        assert!(!process.data_dir.join("api.addr").exists());
    }
}

/// Runs a CLI command on `process` expecting the node to refuse it (exit code 4); returns its
/// stderr.
fn refused(process: &Process, args: &[&str]) -> String {
    let output = plexus(&process.data_dir, &process.config, args);
    assert_eq!(output.status.code(), Some(4), "plexus {args:?}: {output:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Waits until `process` reports policy `version` in force (through `plexus members`).
fn wait_policy(process: &Process, version: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let members: serde_json::Value = serde_json::from_str(&ok(
            &process.data_dir,
            &process.config,
            &["members", "--json"],
        ))
        .unwrap();
        if members["policyVersion"] == version {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} never had policy v{version}: {members}",
            process.name
        );
    }
}

#[test]
fn an_admin_governs_a_namespace_with_the_policy_commands() {
    let root = tempfile::tempdir().unwrap();
    let dirs = ["admin", "member"].map(|name| {
        let data_dir = root.path().join(name);
        let config = root.path().join(format!("{name}.toml"));
        ok(&data_dir, &config, &["init", "--namespace", "crew"]);
        let id = ok(&data_dir, &config, &["id"]).trim().to_owned();
        (name, data_dir, config, id)
    });
    let admin_id = dirs[0].3.clone();
    let member_id = dirs[1].3.clone();
    for (_, _, config, _) in &dirs {
        let mut text = std::fs::read_to_string(config).unwrap();
        text.push_str(&format!(
            "\n[governance.trust_roots]\ncrew = [\"{admin_id}\"]\n"
        ));
        std::fs::write(config, text).unwrap();
    }
    let admin = launch(&dirs[0].1, &dirs[0].2, "admin", None);
    let member = launch(&dirs[1].1, &dirs[1].2, "member", Some(&admin.p2p_addr));

    // Governed with no policy yet: only the admin may post.
    let note = ["publish", "--kind", "x-note", "--body", "{}"];
    assert!(refused(&member, &note).contains("no policy is in force"));
    let shown = ok(&member.data_dir, &member.config, &["policy", "show"]);
    assert!(
        shown.contains("crew is governed") && shown.contains(&admin_id),
        "{shown}"
    );

    // The admin proposes v1 (a role, the member, a rate limit) and signs it.
    let v1 = root.path().join("v1.json");
    ok(
        &admin.data_dir,
        &admin.config,
        &[
            "policy",
            "propose",
            "--role",
            "worker=x-*,intent,intent.release",
            "--add-member",
            &format!("{member_id}=worker"),
            "--rate",
            "2/10m",
            "--max-lease",
            "5m",
            "-o",
            v1.to_str().unwrap(),
        ],
    );
    let signed = ok(
        &admin.data_dir,
        &admin.config,
        &["policy", "sign", v1.to_str().unwrap()],
    );
    assert!(signed.contains("published policy v1"), "{signed}");
    wait_policy(&member, 1);
    let members = ok(&member.data_dir, &member.config, &["members"]);
    assert!(
        members.contains(&format!("{member_id}  worker")),
        "{members}"
    );

    // Two entries pass; the third breaks the rate; a long lease breaks the cap; exit code 4.
    ok(&member.data_dir, &member.config, &note);
    let long = refused(&member, &["claim", "printer", "--lease", "1h"]);
    assert!(
        long.contains("policy_violation") && long.contains("leaseMs"),
        "{long}"
    );
    ok(&member.data_dir, &member.config, &note);
    assert!(refused(&member, &note).contains("retry in"));

    // v2 removes the member: revoked after its current head (seq 2), as the admin's node sees it.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !status(&admin)["feeds"]
        .as_array()
        .unwrap()
        .iter()
        .any(|feed| feed["author"] == member_id.as_str() && feed["seq"] == 2)
    {
        assert!(
            Instant::now() < deadline,
            "the member's entries never reached the admin"
        );
    }
    let v2 = ok(
        &admin.data_dir,
        &admin.config,
        &["policy", "propose", "--remove-member", &member_id],
    );
    let v2: serde_json::Value = serde_json::from_str(&v2).unwrap();
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["revoked"][0]["afterSeq"], 2);
    let v2_path = root.path().join("v2.json");
    std::fs::write(&v2_path, v2.to_string()).unwrap();
    ok(
        &admin.data_dir,
        &admin.config,
        &["policy", "sign", v2_path.to_str().unwrap()],
    );
    wait_policy(&member, 2);
    assert!(refused(&member, &note).contains("was revoked"));
    let members = ok(&member.data_dir, &member.config, &["members"]);
    assert!(members.contains("revoked after seq 2"), "{members}");

    for mut process in [admin, member] {
        let pid = process.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        assert!(process.child.wait().unwrap().success());
    }
    // An auditor with the trust root re-derives every decision from the member's data dir.
    let verify = ok(
        &dirs[1].1,
        &dirs[1].2,
        &[
            "audit",
            "verify",
            dirs[1].1.to_str().unwrap(),
            "--trust-root",
            &format!("crew={admin_id}"),
        ],
    );
    assert!(
        verify.contains("VERIFIED") && verify.contains("policy re-derived for 4 entries"),
        "{verify}"
    );
}
