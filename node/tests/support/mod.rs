//! Helpers shared by the tests that run the `plexus` binary: running a command on a data
//! directory, and starting `plexus run` processes that serve on loopback ports.
// Each test file uses the helpers it needs.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};

pub struct Process {
    pub name: &'static str,
    pub data_dir: PathBuf,
    pub config: PathBuf,
    pub child: Child,
    pub stdout: BufReader<ChildStdout>,
    pub p2p_addr: String,
}

pub fn plexus(data_dir: &Path, config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_plexus"))
        .args(args)
        .env("PLEXUS_DATA_DIR", data_dir)
        .env("PLEXUS_CONFIG", config)
        .env_remove("PLEXUS_LOG")
        .output()
        .unwrap()
}

pub fn ok(data_dir: &Path, config: &Path, args: &[&str]) -> String {
    let output = plexus(data_dir, config, args);
    assert!(
        output.status.success(),
        "plexus {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

pub fn start(root: &Path, name: &'static str, bootstrap: Option<&str>) -> Process {
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
pub fn launch(
    data_dir: &Path,
    config: &Path,
    name: &'static str,
    bootstrap: Option<&str>,
) -> Process {
    let mut extra = Vec::new();
    if let Some(bootstrap) = bootstrap {
        extra.extend(["--bootstrap", bootstrap]);
    }
    launch_with(
        data_dir,
        config,
        name,
        "/ip4/127.0.0.1/tcp/0",
        &extra,
        &[],
        Stdio::null(),
    )
    .unwrap_or_else(|error| panic!("{name} did not start: {error}"))
}

/// Starts `plexus run` listening on `listen` with `extra` arguments and environment, its
/// stderr going to `stderr`, and waits until it serves; `Err` if it exits first.
pub fn launch_with(
    data_dir: &Path,
    config: &Path,
    name: &'static str,
    listen: &str,
    extra: &[&str],
    environment: &[(&str, &str)],
    stderr: Stdio,
) -> Result<Process, String> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_plexus"));
    command
        .args([
            "run",
            "--listen",
            listen,
            "--no-mdns",
            "--api-listen",
            "127.0.0.1:0",
            "--backfill-interval",
            "1",
        ])
        .args(extra)
        .env("PLEXUS_DATA_DIR", data_dir)
        .env("PLEXUS_CONFIG", config)
        .env("PLEXUS_MAX_CONNECTIONS", "7")
        .env_remove("PLEXUS_LOG")
        .envs(environment.iter().copied())
        .stdout(Stdio::piped())
        .stderr(stderr);
    let mut child = command.spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut p2p_addr = String::new();
    // The node prints its listening addresses, then one "running" line.
    loop {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 {
            let exit = child.wait().unwrap();
            return Err(format!("{name} exited early ({exit})"));
        }
        if let Some(addr) = line.trim().strip_prefix("listening on ") {
            p2p_addr = addr.to_owned();
        }
        if line.contains("running; HTTP API on") {
            break;
        }
    }
    assert!(p2p_addr.contains("/p2p/"), "{name} printed no address");
    Ok(Process {
        name,
        data_dir: data_dir.to_path_buf(),
        config: config.to_path_buf(),
        child,
        stdout,
        p2p_addr,
    })
}

/// Stops a node with SIGTERM, waits for it to exit cleanly, and returns the rest of what it
/// printed on stdout.
pub fn stop(mut process: Process) -> Vec<String> {
    let pid = process.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let exit = process.child.wait().unwrap();
    assert!(exit.success(), "{} exited with {exit}", process.name);
    process.stdout.lines().map(Result::unwrap).collect()
}

pub fn status(process: &Process) -> serde_json::Value {
    let out = ok(&process.data_dir, &process.config, &["status", "--json"]);
    serde_json::from_str(&out).unwrap()
}
