//! Three real `plexus run` processes, started from the built binary, find each other through
//! bootstrap addresses and exchange entries; SIGTERM stops each cleanly.

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
        .env("PLEXUS_DATA_DIR", &data_dir)
        .env("PLEXUS_CONFIG", &config)
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
        data_dir,
        config,
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
