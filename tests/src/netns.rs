//! A network lab of Linux network namespaces for fault experiments between separate processes.
//!
//! Each lab has a namespace of its own holding a bridge, and one namespace per host, joined to
//! the bridge by a veth pair (`eth0` in the host, `vN` in the bridge's namespace). Hosts get
//! `10.213.0.(10+N)/24`; the addresses exist inside the lab only, so labs of parallel tests may
//! reuse them. Nothing is created in the namespace the test runs in.
//!
//! Faults are made inside the hosts' namespaces: nftables rules in a table `plexus_faults` drop
//! packets from chosen peers (partitions, one-way ones included) or a random share of every
//! packet (`numgen random mod 100 < N`), and an HTB qdisc caps a host's sending rate. This
//! kernel has no `netem`, so added latency and reordering are not available.
//!
//! Clean-up: every name starts with the lab's prefix (`pxnf<pid>x<n>`). Dropping the [`Lab`]
//! kills what runs in its namespaces and deletes them; and a detached watchdog shell, started
//! with the lab, does the same once the test process is gone however it ended (a panic, SIGINT,
//! SIGTERM or SIGKILL), since `Drop` does not run when a signal ends the process.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// The prefix of every namespace this harness makes; `scripts/faults.sh` removes leftovers by it.
pub const NAME_PREFIX: &str = "pxnf";

/// Set to `1` to let a test pass, with a loud SKIPPED line, where namespaces cannot be made.
pub const ALLOW_NO_NETNS: &str = "PLEXUS_ALLOW_NO_NETNS";

/// What went wrong making or changing the lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
}

/// A lab: the bridge namespace and the hosts' namespaces, removed on drop.
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    hosts: Vec<String>,
    watchdog: Option<Child>,
}

/// Counts labs within one test process, so their names differ.
static LABS_MADE: AtomicU32 = AtomicU32::new(0);

impl Lab {
    /// Makes a lab of `host_count` hosts on one bridge.
    pub fn new(host_count: usize) -> Result<Lab, LabError> {
        let prefix = format!(
            "{NAME_PREFIX}{}x{}",
            std::process::id(),
            LABS_MADE.fetch_add(1, Ordering::Relaxed)
        );
        let mut lab = Lab {
            watchdog: Some(start_watchdog(&prefix)?),
            prefix,
            hosts: Vec::new(),
        };
        let bridge = lab.bridge_namespace();
        run(&["ip", "netns", "add", &bridge])?;
        run(&["ip", "-n", &bridge, "link", "add", "br0", "type", "bridge"])?;
        run(&["ip", "-n", &bridge, "link", "set", "br0", "up"])?;
        for index in 0..host_count {
            let host = format!("{}h{index}", lab.prefix);
            run(&["ip", "netns", "add", &host])?;
            lab.hosts.push(host.clone());
            let bridge_end = format!("v{index}");
            run(&[
                "ip",
                "-n",
                &host,
                "link",
                "add",
                "eth0",
                "type",
                "veth",
                "peer",
                "name",
                &bridge_end,
                "netns",
                &bridge,
            ])?;
            run(&[
                "ip",
                "-n",
                &bridge,
                "link",
                "set",
                &bridge_end,
                "master",
                "br0",
                "up",
            ])?;
            let address = format!("{}/24", lab.address(index));
            run(&["ip", "-n", &host, "addr", "add", &address, "dev", "eth0"])?;
            run(&["ip", "-n", &host, "link", "set", "eth0", "up"])?;
            run(&["ip", "-n", &host, "link", "set", "lo", "up"])?;
            lab.nft(
                index,
                "add table inet plexus_faults
                 add chain inet plexus_faults cuts { type filter hook input priority 0; }
                 add chain inet plexus_faults loss { type filter hook input priority 10; }",
            )?;
        }
        Ok(lab)
    }

    /// The namespace of host `index` (for `ip netns exec`).
    pub fn namespace(&self, index: usize) -> &str {
        &self.hosts[index]
    }

    /// The IPv4 address of host `index` inside the lab.
    pub fn address(&self, index: usize) -> String {
        format!("10.213.0.{}", 10 + index)
    }

    /// A command that runs `program` inside host `index`'s namespace, killed if the thread that
    /// spawns it ends (so a panicking test leaves no process behind).
    pub fn command_in(&self, index: usize, program: &Path) -> Command {
        let mut command = Command::new("setpriv");
        command
            .args(["--pdeathsig", "KILL", "ip", "netns", "exec"])
            .arg(&self.hosts[index])
            .arg(program);
        command
    }

    /// Drops every packet from host `from` to host `to` (a one-way cut).
    pub fn cut_one_way(&self, from: usize, to: usize) -> Result<(), LabError> {
        self.nft(
            to,
            &format!(
                "add rule inet plexus_faults cuts ip saddr {} drop",
                self.address(from)
            ),
        )
    }

    /// Cuts every host of `left` from every host of `right`, both ways.
    pub fn partition(&self, left: &[usize], right: &[usize]) -> Result<(), LabError> {
        for &a in left {
            for &b in right {
                self.cut_one_way(a, b)?;
                self.cut_one_way(b, a)?;
            }
        }
        Ok(())
    }

    /// Removes every cut (partitions, one-way cuts); loss and bandwidth caps stay.
    pub fn heal(&self) -> Result<(), LabError> {
        for index in 0..self.hosts.len() {
            self.nft(index, "flush chain inet plexus_faults cuts")?;
        }
        Ok(())
    }

    /// Every host drops `percent` % of the packets it receives from the lab, at random.
    pub fn packet_loss(&self, percent: u8) -> Result<(), LabError> {
        for index in 0..self.hosts.len() {
            self.nft(index, "flush chain inet plexus_faults loss")?;
            self.nft(
                index,
                &format!(
                    "add rule inet plexus_faults loss ip saddr 10.213.0.0/24 \
                     numgen random mod 100 < {percent} drop"
                ),
            )?;
        }
        Ok(())
    }

    /// Caps what every host sends to `kbit_per_sec` (an HTB qdisc on its `eth0`).
    pub fn bandwidth_cap(&self, kbit_per_sec: u32) -> Result<(), LabError> {
        let rate = format!("{kbit_per_sec}kbit");
        for host in &self.hosts {
            run(&[
                "tc", "-n", host, "qdisc", "replace", "dev", "eth0", "root", "handle", "1:", "htb",
                "default", "10",
            ])?;
            run(&[
                "tc", "-n", host, "class", "replace", "dev", "eth0", "parent", "1:", "classid",
                "1:10", "htb", "rate", &rate, "ceil", &rate,
            ])?;
        }
        Ok(())
    }

    fn bridge_namespace(&self) -> String {
        format!("{}br", self.prefix)
    }

    fn nft(&self, index: usize, script: &str) -> Result<(), LabError> {
        run(&["ip", "netns", "exec", &self.hosts[index], "nft", script])
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .args(["-c", &cleanup_script(&self.prefix)])
            .status();
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }
}

/// Why network namespaces cannot be used here, if they cannot: not root, or `ip`, `nft`, `tc`
/// or `setpriv` missing, or the kernel refuses a namespace.
pub fn unavailable() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("root (network namespaces and nftables need it)".to_owned());
    }
    for tool in ["ip", "nft", "tc", "setpriv"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !found {
            return Some(format!(
                "`{tool}` (install iproute2, nftables and util-linux: scripts/setup.sh --tests)"
            ));
        }
    }
    None
}

/// Says loudly that a network-fault test could not run, and fails it unless
/// [`ALLOW_NO_NETNS`]`=1`: a test that tested nothing must never look green by accident.
pub fn skip_or_fail(test: &str, reason: &str) {
    eprintln!("\n!!! SKIPPED: network-fault test {test} needs {reason}; nothing was tested !!!\n");
    if std::env::var(ALLOW_NO_NETNS).as_deref() != Ok("1") {
        panic!(
            "network-fault test {test} could not run: it needs {reason}. Run it as root with \
             iproute2 and nftables installed, or set {ALLOW_NO_NETNS}=1 to skip it knowingly"
        );
    }
}

/// Kills the processes of every namespace starting with `prefix`, then deletes them (their
/// veth ends and the bridge go with them).
fn cleanup_script(prefix: &str) -> String {
    format!(
        "for ns in $(ip netns list | awk '{{print $1}}' | grep '^{prefix}'); do \
           ip netns pids \"$ns\" | xargs -r kill -KILL 2>/dev/null; \
           ip netns del \"$ns\" 2>/dev/null; \
         done; true"
    )
}

/// A shell in a session of its own (so the signal that ends the test's process group spares
/// it) that waits for this process to be gone, then removes the lab. Polling once a second is
/// its only way to notice a parent killed by SIGKILL.
fn start_watchdog(prefix: &str) -> Result<Child, LabError> {
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {cleanup}",
        pid = std::process::id(),
        cleanup = cleanup_script(prefix)
    );
    Command::new("setsid")
        .args(["sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|source| LabError::Spawn {
            command: "setsid sh -c <watchdog>".to_owned(),
            source,
        })
}

/// Runs a command to completion; an error names it and carries its stderr.
pub fn run(arguments: &[&str]) -> Result<(), LabError> {
    output(arguments).map(|_| ())
}

fn output(arguments: &[&str]) -> Result<Output, LabError> {
    let command = arguments.join(" ");
    let output = Command::new(arguments[0])
        .args(&arguments[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|source| LabError::Spawn {
            command: command.clone(),
            source,
        })?;
    if !output.status.success() {
        return Err(LabError::Failed {
            command,
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(output)
}
