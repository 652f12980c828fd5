"""Benchmarks of the agents' side (not tests: nothing here asserts a timing), run by
``scripts/bench.sh``; prints a Markdown table for docs/benchmarks.md (``--json``: the figures).

    python bench/agents.py --plexus PATH/TO/plexus [--calls 200] [--entries 2000] [--rounds 3]

It starts one ``plexus run`` node on loopback in a temporary directory, then measures, each
side by side with its baseline in alternating rounds (medians over the rounds, so both sides
see the same moments of a noisy machine):

- the claim round trip through MCP (the official ``mcp`` SDK calling the ``claim`` tool, over
  stdio to ``plexus mcp`` and over Streamable HTTP to ``/mcp``) until the holder decision is in
  the tool's answer, against the same two API calls over HTTP with httpx (``POST /v1/claims``,
  then ``GET /v1/leases`` for the holders): p50 and p99 of each, and their ratios;
- publish throughput of the Python client (``plexus_client.Client.publish`` from 1 and from 8
  threads, and ``AsyncClient.publish`` from 8 tasks) against raw httpx posting the same body
  the same way: entries per second, and client / raw ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from mcp import Client as McpClient
from mcp import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from plexus_client import AsyncClient, Client

LEASE_MS = 600_000
"""Long enough that no benchmark claim expires during a run."""

WARM_UP_CALLS = 5
"""Calls made on each path before measuring (connections opened, code paths warm)."""


class Node:
    """A running ``plexus run`` on loopback: its API URL, token and environment."""

    def __init__(self, plexus: Path, root: Path) -> None:
        self.plexus = plexus
        self.env = os.environ | {
            "PLEXUS_DATA_DIR": str(root / "node"),
            "PLEXUS_CONFIG": str(root / "node.toml"),
        }
        self.env.pop("PLEXUS_LOG", None)
        subprocess.run(
            [str(plexus), "init", "--namespace", "bench"],
            env=self.env,
            check=True,
            capture_output=True,
        )
        loopback = ["--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns", "--api-listen", "127.0.0.1:0"]
        self.process = subprocess.Popen(
            [str(plexus), "run", *loopback],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.api_url = self._read_banner()
        self.token = (root / "node" / "api.token").read_text().strip()
        self.headers = {"Authorization": f"Bearer {self.token}"}

    def _read_banner(self) -> str:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if "running; HTTP API on " in line:
                return line.split("HTTP API on ", 1)[1].strip()
        sys.exit(f"the node exited before serving (exit {self.process.wait()})")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=120)
        if self.process.stdout is not None:
            self.process.stdout.close()


def percentile(samples: list[float], fraction: float) -> float:
    """The sample at rank ceil(fraction * n) (nearest rank), in the samples' unit."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


# ---- claim round trip ---------------------------------------------------------------------


async def timed_calls(
    calls: int, prefix: str, one_claim: Callable[[str], Awaitable[bool]]
) -> list[float]:
    """Milliseconds of each of `calls` claims on fresh resources; each must be held at once."""
    samples = []
    for index in range(calls):
        started = time.perf_counter()
        holds = await one_claim(f"{prefix}/{index}")
        samples.append((time.perf_counter() - started) * 1000)
        if not holds:
            sys.exit(f"claim {prefix}/{index} was not held at once: the benchmark is broken")
    return samples


async def claim_round_trips(node: Node, calls: int, rounds: int) -> dict[str, Any]:
    stdio_server = StdioServerParameters(command=str(node.plexus), args=["mcp"], env=node.env)
    samples: dict[str, list[float]] = {"http": [], "mcp_stdio": [], "mcp_http": []}
    async with (
        httpx.AsyncClient(base_url=node.api_url, headers=node.headers) as http,
        create_mcp_http_client(headers=node.headers) as mcp_http_transport,
        McpClient(stdio_server, mode="legacy") as over_stdio,
        McpClient(
            streamable_http_client(f"{node.api_url}/mcp", http_client=mcp_http_transport),
            mode="legacy",
        ) as over_http,
    ):

        async def by_api(resource: str) -> bool:
            body = {"resource": resource, "action": "write", "leaseMs": LEASE_MS}
            claimed = (await http.post("/v1/claims", json=body)).raise_for_status().json()
            leases = await http.get("/v1/leases", params={"resource": resource})
            holders = leases.raise_for_status().json()["leases"][0]["holders"]
            return bool(claimed["claim"]["standing"] == "holding" and holders)

        def by_tool(client: McpClient) -> Callable[[str], Awaitable[bool]]:
            async def claim(resource: str) -> bool:
                result = await client.call_tool(
                    "claim", {"resource": resource, "lease_ms": LEASE_MS}
                )
                answer = result.structured_content or {}
                return not result.is_error and answer.get("you_hold_it") is True

            return claim

        paths = {"http": by_api, "mcp_stdio": by_tool(over_stdio), "mcp_http": by_tool(over_http)}
        for name, path in paths.items():
            await timed_calls(WARM_UP_CALLS, f"warm/{name}", path)
        for round_number in range(rounds):
            for name, path in paths.items():
                taken = await timed_calls(calls, f"r{round_number}/{name}", path)
                samples[name] += taken
                print(
                    f"claim round {round_number + 1}, {name}: p50 "
                    f"{statistics.median(taken):.2f} ms",
                    file=sys.stderr,
                )
    figures: dict[str, Any] = {"calls": calls * rounds}
    for name, taken in samples.items():
        figures[name] = {"p50_ms": percentile(taken, 0.5), "p99_ms": percentile(taken, 0.99)}
    for name in ("mcp_stdio", "mcp_http"):
        for quantile in ("p50_ms", "p99_ms"):
            ratio = figures[name][quantile] / figures["http"][quantile]
            figures[name][f"{quantile.removesuffix('_ms')}_ratio"] = ratio
    return figures


# ---- publish throughput ---------------------------------------------------------------------


def in_threads(
    threads: int, entries: int, publish_from: Callable[[], Callable[[int], None]]
) -> float:
    """Entries per second with `threads` threads sharing `entries` publishes; each thread gets
    its own publishing function (its own connection) from `publish_from`."""
    per_thread = entries // threads
    start = threading.Barrier(threads + 1)
    publishers = [publish_from() for _ in range(threads)]

    def work(publish: Callable[[int], None]) -> None:
        start.wait()
        for index in range(per_thread):
            publish(index)

    workers = [threading.Thread(target=work, args=(publish,)) for publish in publishers]
    for worker in workers:
        worker.start()
    start.wait()
    started = time.perf_counter()
    for worker in workers:
        worker.join()
    return per_thread * threads / (time.perf_counter() - started)


async def in_tasks(tasks: int, entries: int, publish: Callable[[int], Awaitable[None]]) -> float:
    per_task = entries // tasks

    async def work() -> None:
        for index in range(per_task):
            await publish(index)

    started = time.perf_counter()
    await asyncio.gather(*(work() for _ in range(tasks)))
    return per_task * tasks / (time.perf_counter() - started)


def body_of(index: int) -> dict[str, Any]:
    return {"step": index, "note": "agents benchmark"}


@contextmanager
def raw_publishers(node: Node) -> Iterator[Callable[[], Callable[[int], None]]]:
    opened: list[httpx.Client] = []

    def publisher() -> Callable[[int], None]:
        http = httpx.Client(base_url=node.api_url, headers=node.headers)
        opened.append(http)

        def publish(index: int) -> None:
            answer = http.post("/v1/entries", json={"kind": "x-bench", "body": body_of(index)})
            answer.raise_for_status()

        return publish

    try:
        yield publisher
    finally:
        for http in opened:
            http.close()


@contextmanager
def client_publishers(node: Node) -> Iterator[Callable[[], Callable[[int], None]]]:
    opened: list[Client] = []

    def publisher() -> Callable[[int], None]:
        client = Client(node.api_url, node.token)
        opened.append(client)

        def publish(index: int) -> None:
            client.publish("x-bench", body_of(index))

        return publish

    try:
        yield publisher
    finally:
        for client in opened:
            client.close()


async def async_rates(node: Node, entries: int) -> tuple[float, float]:
    """(AsyncClient, raw httpx.AsyncClient) entries per second with 8 tasks."""
    async with (
        AsyncClient(node.api_url, node.token) as client,
        httpx.AsyncClient(base_url=node.api_url, headers=node.headers) as http,
    ):

        async def by_client(index: int) -> None:
            await client.publish("x-bench", body_of(index))

        async def by_raw(index: int) -> None:
            answer = await http.post(
                "/v1/entries", json={"kind": "x-bench", "body": body_of(index)}
            )
            answer.raise_for_status()

        return await in_tasks(8, entries, by_client), await in_tasks(8, entries, by_raw)


def publish_rates(node: Node, entries: int, rounds: int) -> dict[str, Any]:
    rates: dict[str, list[float]] = {
        name: [] for name in ("client_1", "raw_1", "client_8", "raw_8", "async_8", "raw_async_8")
    }
    with raw_publishers(node) as raw, client_publishers(node) as client:
        in_threads(1, WARM_UP_CALLS * 10, raw)
        in_threads(1, WARM_UP_CALLS * 10, client)
        for round_number in range(rounds):
            for threads in (1, 8):
                rates[f"client_{threads}"].append(in_threads(threads, entries, client))
                rates[f"raw_{threads}"].append(in_threads(threads, entries, raw))
            by_client, by_raw = asyncio.run(async_rates(node, entries))
            rates["async_8"].append(by_client)
            rates["raw_async_8"].append(by_raw)
            summary = ", ".join(f"{name} {values[-1]:,.0f}/s" for name, values in rates.items())
            print(f"publish round {round_number + 1}: {summary}", file=sys.stderr)
    figures: dict[str, Any] = {"entries": entries, "rounds": rounds}
    figures |= {name: statistics.median(values) for name, values in rates.items()}
    figures["ratio_1"] = figures["client_1"] / figures["raw_1"]
    figures["ratio_8"] = figures["client_8"] / figures["raw_8"]
    figures["ratio_async_8"] = figures["async_8"] / figures["raw_async_8"]
    return figures


def table(claim: dict[str, Any], publish: dict[str, Any]) -> str:
    http, stdio, over_http = claim["http"], claim["mcp_stdio"], claim["mcp_http"]

    def versus_http(figures: dict[str, Any]) -> str:
        return (
            f"{figures['p50_ms']:.2f} / {figures['p99_ms']:.2f} ms (ratio to HTTP "
            f"{figures['p50_ratio']:.2f} / {figures['p99_ratio']:.2f})"
        )

    def versus_raw(client: str, raw: str, ratio: str) -> str:
        return (
            f"{publish[client]:,.0f} entries/s (raw httpx {publish[raw]:,.0f}; "
            f"ratio {publish[ratio]:.2f})"
        )

    rounds = f"median of {publish['rounds']}"
    rows = [
        (
            f"claim with holders, HTTP API (httpx), {claim['calls']} calls: p50 / p99",
            f"{http['p50_ms']:.2f} / {http['p99_ms']:.2f} ms",
        ),
        ("claim tool, MCP over stdio (`plexus mcp`): p50 / p99", versus_http(stdio)),
        ("claim tool, MCP over Streamable HTTP (`/mcp`): p50 / p99", versus_http(over_http)),
        (
            f"Python client publish, 1 thread, {publish['entries']:,} entries ({rounds})",
            versus_raw("client_1", "raw_1", "ratio_1"),
        ),
        ("Python client publish, 8 threads", versus_raw("client_8", "raw_8", "ratio_8")),
        (
            "Python async client publish, 8 tasks",
            versus_raw("async_8", "raw_async_8", "ratio_async_8"),
        ),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"| {'agents metric':<{width}} | value |", f"|{'-' * (width + 2)}|-------|"]
    lines += [f"| {name:<{width}} | {value} |" for name, value in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plexus", type=Path, required=True, help="the plexus binary")
    parser.add_argument("--calls", type=int, default=200, help="claims per path per round")
    parser.add_argument("--entries", type=int, default=2000, help="publishes per side per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="plexus-agents-bench-") as root:
        node = Node(arguments.plexus, Path(root))
        try:
            claims = asyncio.run(claim_round_trips(node, arguments.calls, arguments.rounds))
            publishing = publish_rates(node, arguments.entries, arguments.rounds)
        finally:
            node.stop()
    if arguments.json:
        print(json.dumps({"claim": claims, "publish": publishing}))
    else:
        print(table(claims, publishing))


if __name__ == "__main__":
    main()
