//! Real `plexus run` processes started from the built binary: three find each other through
//! bootstrap addresses and exchange entries, and SIGTERM stops each cleanly; two more run a
//! governed namespace administered through the `plexus policy` and `plexus members` commands.

mod support;

use std::time::{Duration, Instant};

use support::{launch, ok, plexus, start, status, stop, Process};

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

    for process in processes {
        let (name, data_dir, config) = (
            process.name,
            process.data_dir.clone(),
            process.config.clone(),
        );
        let rest = stop(process);
        assert!(
            rest.iter()
                .any(|line| line.contains("stopped; the log is flushed")),
            "{name}: {rest:?}"
        );
        let verify = ok(
            &data_dir,
            &config,
            &["audit", "verify", data_dir.to_str().unwrap()],
        );
        assert!(
            verify.contains("in 3 feeds") && verify.contains("VERIFIED"),
            "{verify}"
        );
        // A stopped node has no API address left behind.
        assert!(!data_dir.join("api.addr").exists());
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
    assert!(
        signed.contains("published policy v1") && signed.contains("policy v1 is in force now"),
        "{signed}"
    );
    // Signing v1 again would never take force: refused, unless forced.
    let again = plexus(
        &admin.data_dir,
        &admin.config,
        &["policy", "sign", v1.to_str().unwrap()],
    );
    assert_eq!(again.status.code(), Some(2), "{again:?}");
    assert!(
        String::from_utf8_lossy(&again.stderr)
            .contains("not newer than what this namespace has (v1 is in force)"),
        "{again:?}"
    );
    // A version at the end of the number range is refused before it is signed, and proposing
    // after one fails with a reason instead of overflowing.
    let last = root.path().join("last.json");
    let mut last_body: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&v1).unwrap()).unwrap();
    last_body["version"] = serde_json::json!(u64::MAX);
    std::fs::write(&last, last_body.to_string()).unwrap();
    let too_far = plexus(
        &admin.data_dir,
        &admin.config,
        &["policy", "sign", last.to_str().unwrap()],
    );
    assert!(
        String::from_utf8_lossy(&too_far.stderr).contains("skips too far ahead (at most v1001"),
        "{too_far:?}"
    );
    let after_last = plexus(
        &admin.data_dir,
        &admin.config,
        &[
            "policy",
            "propose",
            "--from",
            last.to_str().unwrap(),
            "--rate",
            "5/1s",
        ],
    );
    assert_eq!(after_last.status.code(), Some(2), "{after_last:?}");
    assert!(
        String::from_utf8_lossy(&after_last.stderr).contains("no version can follow it"),
        "{after_last:?}"
    );
    // A member id that is hex but no usable key is named as such.
    let mut weak_body = last_body.clone();
    weak_body["version"] = serde_json::json!(2);
    weak_body["members"] =
        serde_json::json!([{"agent": format!("{}1", "0".repeat(63)), "roles": ["worker"]}]);
    std::fs::write(&last, weak_body.to_string()).unwrap();
    let weak = refused(&admin, &["policy", "sign", last.to_str().unwrap()]);
    assert!(
        weak.contains("`members[0].agent` is not a usable agent id: invalid agent id"),
        "{weak}"
    );
    let shown = ok(&admin.data_dir, &admin.config, &["policy", "show"]);
    assert!(
        shown.contains("limit: leases of at most 5m")
            && shown.contains("limit: at most 2 entries per author per 10m")
            && shown.contains("versions known (1)"),
        "{shown}"
    );
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
    // The node journals its own agent's refusals too, marked as local.
    let journal = ok(&member.data_dir, &member.config, &["rejections"]);
    for rule in ["lease-too-long", "rate-limited", "no-policy"] {
        assert!(
            journal
                .lines()
                .any(|line| line.contains(rule) && line.contains("(local agent)")),
            "{rule} missing from:\n{journal}"
        );
    }
    let empty = ok(&admin.data_dir, &admin.config, &["rejections"]);
    assert_eq!(empty.trim(), "no rejections since start");

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
    let signed = ok(
        &admin.data_dir,
        &admin.config,
        &["policy", "sign", v2_path.to_str().unwrap()],
    );
    assert!(signed.contains("policy v2 is in force now"), "{signed}");
    let shown = ok(&admin.data_dir, &admin.config, &["policy", "show"]);
    assert!(
        shown.contains("versions known (2)") && shown.contains("policy v2 in force"),
        "{shown}"
    );
    wait_policy(&member, 2);
    assert!(refused(&member, &note).contains("was revoked"));
    let members = ok(&member.data_dir, &member.config, &["members"]);
    assert!(members.contains("revoked after seq 2"), "{members}");

    for process in [admin, member] {
        stop(process);
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

#[test]
fn a_node_killed_soon_after_joining_rejoins_from_its_peer_store() {
    let root = tempfile::tempdir().unwrap();
    let hub = start(root.path(), "hub", None);
    let mut joiner = start(root.path(), "joiner", Some(&hub.p2p_addr));
    // The joiner remembers the hub within moments of connecting, long before the peer store's
    // periodic rewrite (every 30 s): a crash seconds after joining must not strand it.
    let store = joiner.data_dir.join("peers.json");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !store.exists() {
        // Each look asks the node for its status (a CLI round trip), which paces the loop.
        let peers = status(&joiner)["network"]["peers"].clone();
        assert!(
            Instant::now() < deadline,
            "the joiner wrote no peer store within 20 s of starting; its peers: {peers:#}"
        );
    }
    // Killed (no clean shutdown, so no save at exit), it misses the hub's next entry.
    joiner.child.kill().unwrap();
    joiner.child.wait().unwrap();
    ok(
        &hub.data_dir,
        &hub.config,
        &[
            "publish",
            "--kind",
            "x-note",
            "--body",
            r#"{"while": "down"}"#,
        ],
    );
    // Restarted with no bootstrap address and no mDNS: only its peer store knows the hub.
    let joiner = launch(&joiner.data_dir, &joiner.config, "joiner", None);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let feeds = status(&joiner)["feeds"].clone();
        if feeds == status(&hub)["feeds"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted joiner did not rejoin and catch up: {feeds:#}"
        );
    }
    stop(joiner);
    stop(hub);
}
