"""Real ``plexus`` nodes for the tests: each fixture node is ``plexus init`` then ``plexus run``
on 127.0.0.1 ports chosen by the system, in a temporary directory, stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from plexus_client import Client

T = TypeVar("T")

START_TIMEOUT_S = 240.0
"""How long a node may take to start serving: a debug build on a two-core machine that other
builds keep busy has been seen to take over a minute."""

WAIT_TIMEOUT_S = 60.0
"""How long a test waits for a condition (gossip between two local nodes takes well under a
second; the margin is for a loaded machine)."""


def plexus_binary() -> Path:
    """The built binary: ``$PLEXUS_BIN``, else ``$CARGO_TARGET_DIR/debug/plexus``."""
    explicit = os.environ.get("PLEXUS_BIN")
    if explicit:
        return Path(explicit)
    target = os.environ.get("CARGO_TARGET_DIR") or str(Path.home() / ".cache" / "plexus-target")
    return Path(target) / "debug" / "plexus"


@dataclass
class Node:
    """A running node: its data directory, config file, agent id, API and p2p addresses."""

    name: str
    data_dir: Path
    config: Path
    agent_id: str
    api_url: str
    token: str
    p2p_addr: str
    process: subprocess.Popen[str]

    def env(self) -> dict[str, str]:
        return os.environ | {
            "PLEXUS_DATA_DIR": str(self.data_dir),
            "PLEXUS_CONFIG": str(self.config),
        }

    def client(self) -> Client:
        return Client(data_dir=self.data_dir)


def run_plexus(data_dir: Path, config: Path, *args: str) -> str:
    """Runs one ``plexus`` command on the data directory and returns its stdout."""
    env = os.environ | {"PLEXUS_DATA_DIR": str(data_dir), "PLEXUS_CONFIG": str(config)}
    env.pop("PLEXUS_LOG", None)
    done = subprocess.run(
        [str(plexus_binary()), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, f"plexus {args}: {done.stdout}{done.stderr}"
    return done.stdout


def wait_for(condition: Callable[[], T | None], what: str, timeout_s: float = WAIT_TIMEOUT_S) -> T:
    """Polls ``condition`` until it returns something other than None/False, or fails the test
    naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


class Cluster:
    """Starts nodes in one namespace; each later node bootstraps from the first."""

    def __init__(self, root: Path, namespace: str) -> None:
        self.root = root
        self.namespace = namespace
        self.nodes: list[Node] = []

    def start(self, name: str, *extra: str) -> Node:
        binary = plexus_binary()
        assert binary.is_file(), (
            f"no plexus binary at {binary}: build it with `cargo build -p plexus-node` "
            "or set PLEXUS_BIN"
        )
        data_dir = self.root / name
        config = self.root / f"{name}.toml"
        run_plexus(data_dir, config, "init", "--namespace", self.namespace)
        agent_id = run_plexus(data_dir, config, "id").strip()
        args = [
            str(binary),
            "run",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--no-mdns",
            "--api-listen",
            "127.0.0.1:0",
            "--backfill-interval",
            "1",
            *extra,
        ]
        if self.nodes:
            args += ["--bootstrap", self.nodes[0].p2p_addr]
        env = os.environ | {"PLEXUS_DATA_DIR": str(data_dir), "PLEXUS_CONFIG": str(config)}
        env.pop("PLEXUS_LOG", None)
        process = subprocess.Popen(
            args, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        p2p_addr, api_url = self._read_banner(name, process)
        token = (data_dir / "api.token").read_text().strip()
        node = Node(name, data_dir, config, agent_id, api_url, token, p2p_addr, process)
        self.nodes.append(node)
        return node

    @staticmethod
    def _read_banner(name: str, process: subprocess.Popen[str]) -> tuple[str, str]:
        # The node prints its listening addresses, then one "running; HTTP API on URL" line;
        # `plexus run` exits on its own if it cannot start, which ends this loop.
        assert process.stdout is not None
        p2p_addr = ""
        for line in process.stdout:
            if line.startswith("listening on "):
                p2p_addr = line.removeprefix("listening on ").strip()
            if "running; HTTP API on " in line:
                return p2p_addr, line.split("HTTP API on ", 1)[1].strip()
        pytest.fail(f"node {name} exited before serving (exit {process.wait()})")

    def connected(self) -> None:
        """Waits until every node has a peer."""
        for node in self.nodes:
            with node.client() as client:
                wait_for(
                    lambda c=client: len(c.peers().peers) > 0,  # type: ignore[misc]
                    f"{node.name} to connect",
                )

    def stop(self) -> None:
        for node in self.nodes:
            node.process.send_signal(signal.SIGTERM)
        for node in self.nodes:
            try:
                node.process.wait(timeout=START_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait()
            if node.process.stdout is not None:
                node.process.stdout.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A namespace ``team`` in which a test starts the nodes it needs."""
    nodes = Cluster(tmp_path, "team")
    try:
        yield nodes
    finally:
        nodes.stop()


@pytest.fixture
def node(cluster: Cluster) -> Node:
    """One running node."""
    return cluster.start("solo")


@pytest.fixture
def pair(cluster: Cluster) -> tuple[Node, Node]:
    """Two running nodes connected to each other."""
    first = cluster.start("alice")
    second = cluster.start("bob")
    cluster.connected()
    return first, second
