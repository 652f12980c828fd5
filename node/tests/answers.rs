//! What a user sees from the CLI against a running node, for ordinary mistakes and odd input:
//! each answer says what happened, and nothing is printed that is not so.

mod support;

use std::fs::File;
use std::path::Path;
use std::process::{Output, Stdio};

use support::{launch, launch_with, ok, plexus, stop, Process};

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A fresh initialised data directory and config under `root`, and a node running on it.
fn node(root: &Path, name: &'static str) -> Process {
    let data_dir = root.join(name);
    let config = root.join(format!("{name}.toml"));
    ok(&data_dir, &config, &["init", "--namespace", "crew"]);
    launch(&data_dir, &config, name, None)
}

fn run(process: &Process, args: &[&str]) -> Output {
    plexus(&process.data_dir, &process.config, args)
}

fn succeed(process: &Process, args: &[&str]) -> String {
    ok(&process.data_dir, &process.config, args)
}

#[test]
fn claims_answer_truthfully() {
    let root = tempfile::tempdir().unwrap();
    let node = node(root.path(), "solo");

    // Empty lists say so.
    assert_eq!(succeed(&node, &["leases"]).trim(), "no leases");
    assert_eq!(
        succeed(&node, &["rejections"]).trim(),
        "no rejections since start"
    );

    // Something that is not a claim id is refused before any request, with the fix.
    let output = run(&node, &["release", "<claim id>"]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(
        stderr(&output).contains("\"<claim id>\" is not a claim id: give the 64 lowercase hex"),
        "{output:?}"
    );
    let output = run(&node, &["renew", "abc/def"]);
    assert!(stderr(&output).contains("is not a claim id"), "{output:?}");

    // Releasing twice, or renewing a released claim, is refused and writes nothing.
    let claimed: serde_json::Value =
        serde_json::from_str(&succeed(&node, &["claim", "printer", "--json"])).unwrap();
    let claim_id = claimed["claim"]["claim_id"].as_str().unwrap().to_owned();
    assert!(succeed(&node, &["release", &claim_id]).contains("released"));
    let entries_before = succeed(&node, &["log", "--json"]).lines().count();
    let again = run(&node, &["release", &claim_id]);
    assert_eq!(again.status.code(), Some(4), "{again:?}");
    assert!(
        stderr(&again).contains("409 claim_released")
            && stderr(&again).contains("already released"),
        "{again:?}"
    );
    let renewed = run(&node, &["renew", &claim_id, "--lease", "5m"]);
    assert_eq!(renewed.status.code(), Some(4), "{renewed:?}");
    assert!(
        stderr(&renewed).contains("cannot be renewed"),
        "{renewed:?}"
    );
    assert_eq!(
        succeed(&node, &["log", "--json"]).lines().count(),
        entries_before
    );

    // Under a notBefore constraint a claim is blocked until the constraint's time, and the
    // lease table shows it as blocked rather than hiding it.
    succeed(
        &node,
        &[
            "constrain",
            "deploy/*",
            "--not-before",
            "+2h",
            "--ttl",
            "1d",
        ],
    );
    let constraints = succeed(&node, &["constraints"]);
    assert!(
        constraints.contains("nobody holds it before"),
        "{constraints}"
    );
    let blocked = succeed(&node, &["claim", "deploy/prod", "--lease", "10m"]);
    let not_before: serde_json::Value =
        serde_json::from_str(&succeed(&node, &["constraints", "--json"])).unwrap();
    let at = not_before["constraints"][0]["rule"]["at"].as_u64().unwrap();
    let at_text = format_ms(at);
    assert!(
        blocked.contains(&format!(
            "blocked from deploy/prod by a notBefore constraint until {at_text}"
        )),
        "{blocked} (constraint at {at_text})"
    );
    let leases = succeed(&node, &["leases", "--resource", "deploy/prod"]);
    assert!(
        leases.contains(&format!(
            "blocked from deploy/prod by a notBefore constraint until {at_text}"
        )),
        "{leases}"
    );

    // A misspelt event kind is refused instead of waiting forever for events that never come.
    let events = run(&node, &["events", "--kind", "claim.wonn"]);
    assert_eq!(events.status.code(), Some(4), "{events:?}");
    assert!(
        stderr(&events).contains("unknown event type or entry kind \"claim.wonn\""),
        "{events:?}"
    );
    stop(node);
}

/// RFC 3339 in UTC with milliseconds, the form the CLI prints times in.
fn format_ms(ms: u64) -> String {
    let time = jiff::Timestamp::from_millisecond(i64::try_from(ms).unwrap()).unwrap();
    format!("{time:.3}")
}

#[test]
fn identity_and_status_give_dialable_addresses() {
    let root = tempfile::tempdir().unwrap();
    let node = node(root.path(), "solo");
    let id: serde_json::Value = serde_json::from_str(&succeed(&node, &["id", "--json"])).unwrap();
    let peer_id = id["peer_id"].as_str().unwrap();
    assert!(node.p2p_addr.ends_with(peer_id), "{id} {}", node.p2p_addr);
    let addresses = id["addresses"].as_array().unwrap();
    assert!(
        addresses
            .iter()
            .any(|address| address == node.p2p_addr.as_str()),
        "{id}"
    );
    let status = succeed(&node, &["status"]);
    assert!(
        status.contains(&format!("listening on {}", node.p2p_addr)),
        "{status}"
    );
    stop(node);
}

#[test]
fn a_second_node_on_a_taken_port_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let listen = format!("/ip4/127.0.0.1/tcp/{port}");
    let dirs = ["first", "second"].map(|name| {
        let data_dir = root.path().join(name);
        let config = root.path().join(format!("{name}.toml"));
        ok(&data_dir, &config, &["init"]);
        (data_dir, config)
    });
    let first = launch_with(
        &dirs[0].0,
        &dirs[0].1,
        "first",
        &listen,
        &[],
        &[],
        Stdio::null(),
    )
    .unwrap();
    let log = root.path().join("second.err");
    let second = launch_with(
        &dirs[1].0,
        &dirs[1].1,
        "second",
        &listen,
        &[],
        &[],
        Stdio::from(File::create(&log).unwrap()),
    );
    assert!(second.is_err(), "the second node started on a taken port");
    let printed = std::fs::read_to_string(&log).unwrap();
    assert!(
        printed.contains(&format!("cannot listen on {listen}"))
            && printed.contains("another --listen port"),
        "{printed}"
    );
    stop(first);
}

#[test]
fn diagnostics_are_plain_in_a_file_and_a_first_node_does_not_warn() {
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("solo");
    let config = root.path().join("solo.toml");
    ok(&data_dir, &config, &["init"]);
    // (environment, what the node printed): the default filter, then every info line.
    let mut printed = Vec::new();
    for environment in [&[][..], &[("PLEXUS_LOG", "info")][..]] {
        let log = root.path().join(format!("solo-{}.err", printed.len()));
        let node = launch_with(
            &data_dir,
            &config,
            "solo",
            "/ip4/127.0.0.1/tcp/0",
            &[],
            environment,
            Stdio::from(File::create(&log).unwrap()),
        )
        .unwrap();
        succeed(&node, &["status"]);
        stop(node);
        printed.push(std::fs::read_to_string(&log).unwrap());
    }
    assert!(
        !printed[0].contains("Failed to trigger bootstrap"),
        "a first node warns: {}",
        printed[0]
    );
    assert!(printed[1].contains("INFO"), "no info lines: {}", printed[1]);
    for text in &printed {
        assert!(!text.contains('\u{1b}'), "colour codes in a file: {text:?}");
    }
}

#[test]
fn a_node_that_died_is_not_written_around_silently() {
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("solo");
    let config = root.path().join("solo.toml");
    ok(&data_dir, &config, &["init"]);
    // A node that was killed leaves its address file behind; nothing listens there now.
    let closed = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    std::fs::write(data_dir.join("api.addr"), format!("{closed}\n")).unwrap();
    let output = plexus(
        &data_dir,
        &config,
        &["publish", "--kind", "x-note", "--body", "{}"],
    );
    assert!(output.status.success(), "{output:?}");
    let said = stderr(&output);
    assert!(
        said.contains("is gone") && said.contains("writing into the log directly"),
        "{said}"
    );
    // The reason is said once, not repeated by each layer of the error.
    assert_eq!(said.matches("Connection refused").count(), 1, "{said}");
    // Commands that need the node name the reason once too.
    let leases = plexus(&data_dir, &config, &["leases"]);
    assert_eq!(leases.status.code(), Some(2), "{leases:?}");
    assert_eq!(
        stderr(&leases).matches("Connection refused").count(),
        1,
        "{leases:?}"
    );
    // --offline writes directly without asking the node.
    let offline = plexus(
        &data_dir,
        &config,
        &["publish", "--kind", "x-note", "--body", "{}", "--offline"],
    );
    assert!(offline.status.success(), "{offline:?}");
    assert!(stderr(&offline).is_empty(), "{offline:?}");
    assert!(stdout(&offline).contains("seq 2"), "{offline:?}");
}
