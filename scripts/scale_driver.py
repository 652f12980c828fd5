"""Driver of scripts/scale.sh: starts N `plexus run` processes, measures, stops them all.

Arguments: PLEXUS_BINARY N WORK_DIR [counted]. With `counted`, the process runs in a network
namespace of its own and the loopback byte counters are this run's alone.
"""

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request

PLEXUS, NODES, WORK = sys.argv[1], int(sys.argv[2]), sys.argv[3]
COUNTED = len(sys.argv) > 4 and sys.argv[4] == "counted"
BOOTSTRAP_NODES = 3
NAMESPACE = "scale"
IDLE_SECS = int(os.environ.get("SCALE_IDLE_SECS", "20"))
ENTRIES = int(os.environ.get("SCALE_ENTRIES", "20"))
RECOVERY_ENTRIES = 5
TIMEOUT = int(os.environ.get("SCALE_TIMEOUT", "120"))
LOW = int(os.environ.get("SCALE_PEERS_LOW", str(min(20, NODES - 1))))
HIGH = int(os.environ.get("SCALE_PEERS_HIGH", str(max(LOW, min(40, 2 * LOW)))))
TICKS = os.sysconf("SC_CLK_TCK")


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Node:
    def __init__(self, index):
        self.index = index
        self.dir = os.path.join(WORK, f"node{index}")
        self.config = self.dir + ".toml"
        self.process = None
        self.addr = None
        self.api = None
        self.token = None
        self.events = {}  # entry id -> latency in ms
        self.stream = None

    def env(self):
        return dict(os.environ, PLEXUS_DATA_DIR=self.dir, PLEXUS_CONFIG=self.config,
                    PLEXUS_LOG=os.environ.get("PLEXUS_LOG", "warn"))

    def init(self):
        subprocess.run([PLEXUS, "init", "--namespace", NAMESPACE], env=self.env(), check=True,
                       stdout=subprocess.DEVNULL)

    def start(self, bootstrap):
        args = [PLEXUS, "run", "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns",
                "--api-listen", "127.0.0.1:0", "--peers-low", str(LOW), "--peers-high", str(HIGH)]
        for addr in bootstrap:
            args += ["--bootstrap", addr]
        self.process = subprocess.Popen(args, env=self.env(), stdout=subprocess.PIPE,
                                        stderr=open(self.dir + ".log", "a"), text=True)
        with open(os.path.join(WORK, "pids"), "a") as pids:
            pids.write(f"{self.process.pid}\n")
        self.addr = None
        for line in self.process.stdout:
            if line.startswith("listening on ") and self.addr is None:
                self.addr = line.split()[2]
            if "HTTP API on" in line:
                self.api = line.rsplit("http://", 1)[1].strip()
                break
        if self.api is None:
            raise RuntimeError(f"node {self.index} did not start; see {self.dir}.log")
        # Keep draining stdout so the node never blocks on a full pipe.
        threading.Thread(target=lambda p=self.process: [None for _ in p.stdout],
                         daemon=True).start()
        with open(os.path.join(self.dir, "api.token")) as token:
            self.token = token.read().strip()

    def request(self, method, route, body=None, timeout=10):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"http://{self.api}{route}", data=data, method=method,
                                         headers={"Authorization": f"Bearer {self.token}",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())

    def status(self):
        try:
            return self.request("GET", "/v1/status")
        except Exception:  # a node busy or restarting counts as not ready
            return None

    def listen_events(self):
        """Records, per entry id, the node's event time minus the author's timestamp."""
        def run():
            request = urllib.request.Request(
                f"http://{self.api}/v1/events?namespace={NAMESPACE}&kind=x-note",
                headers={"Authorization": f"Bearer {self.token}"})
            try:
                with urllib.request.urlopen(request, timeout=3600) as stream:
                    self.stream = stream
                    for raw in stream:
                        line = raw.decode().strip()
                        if not line.startswith("data:"):
                            continue
                        event = json.loads(line[5:])
                        data = event.get("data", {})
                        if "entry_id" in data:
                            self.events[data["entry_id"]] = event["time_ms"] - data["timestamp_ms"]
            except Exception:
                pass
        threading.Thread(target=run, daemon=True).start()

    def cpu_ticks(self):
        with open(f"/proc/{self.process.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    def rss_kib(self, field="VmRSS"):
        """Resident memory in KiB: VmRSS (all of it, the binary's shared code pages included)
        or RssAnon (the node's own heap and stacks)."""
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        return 0

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)


def loopback_bytes():
    if not COUNTED:
        return None
    with open("/proc/net/dev") as dev:
        for line in dev:
            if line.strip().startswith("lo:"):
                return int(line.split(":")[1].split()[0])
    return None


def percentile(values, fraction):
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def wait_until(what, check, timeout=TIMEOUT, every=1.0):
    start = time.monotonic()
    while True:
        value = check()
        if value:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            log(f"gave up waiting for {what} after {timeout} s")
            return None
        time.sleep(every)


def peer_counts(nodes):
    counts = []
    for node in nodes:
        status = node.status()
        counts.append(len(status["network"]["peers"]) if status else 0)
    return counts


def publish(nodes, count, tag):
    ids = []
    for n in range(count):
        publisher = random.choice(nodes)
        reply = publisher.request("POST", f"/v1/entries?namespace={NAMESPACE}",
                                  {"kind": "x-note", "body": {"run": tag, "n": n}})
        ids.append(reply["entry"]["entry_id"])
        time.sleep(0.1)
    return ids


def slope(xs, ys):
    n = len(xs)
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        return None
    return round(sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / spread, 3)


def held(node, ids):
    return all(entry_id in node.events for entry_id in ids)


def main():
    random.seed(1)
    nodes = [Node(i) for i in range(NODES)]
    figures = {"nodes": NODES, "bootstrap_nodes": BOOTSTRAP_NODES, "peers_low": LOW,
               "peers_high": HIGH, "cores": os.cpu_count()}
    try:
        log(f"initialising {NODES} data directories in {WORK}")
        for node in nodes:
            node.init()
        log("starting the bootstrap nodes")
        for node in nodes[:BOOTSTRAP_NODES]:
            previous = [nodes[node.index - 1].addr] if node.index > 0 else []
            node.start(previous)
        bootstrap = [node.addr for node in nodes[:BOOTSTRAP_NODES]]
        log(f"starting {NODES - BOOTSTRAP_NODES} nodes")
        started = time.monotonic()
        for node in nodes[BOOTSTRAP_NODES:]:
            node.start([bootstrap[node.index % BOOTSTRAP_NODES]])
        figures["start_secs"] = round(time.monotonic() - started, 1)

        def all_at_low():
            counts = peer_counts(nodes)
            all_at_low.last = counts
            return min(counts) >= LOW
        joined = wait_until("every node at the low watermark", all_at_low)
        figures["join_secs_after_last_start"] = round(joined, 1) if joined is not None else None
        figures["join_secs_from_first_start"] = (round(time.monotonic() - started, 1)
                                                 if joined is not None else None)
        counts = all_at_low.last
        figures["peers_min_max_at_join"] = [min(counts), max(counts)]

        log(f"idle for {IDLE_SECS} s")
        for node in nodes:
            node.listen_events()
        time.sleep(2)  # let the event streams open
        ticks = [node.cpu_ticks() for node in nodes]
        bytes_before = loopback_bytes()
        idle_start = time.monotonic()
        time.sleep(IDLE_SECS)
        idle_secs = time.monotonic() - idle_start
        cpu = [100.0 * (node.cpu_ticks() - before) / TICKS / idle_secs
               for node, before in zip(nodes, ticks)]
        rss = [node.rss_kib() / 1024 for node in nodes]
        rss_anon = [node.rss_kib("RssAnon") / 1024 for node in nodes]
        idle_bytes_per_sec = ((loopback_bytes() - bytes_before) / idle_secs
                              if bytes_before is not None else None)
        counts = peer_counts(nodes)
        figures.update({
            "idle_cpu_pct_per_node_mean": round(sum(cpu) / len(cpu), 3),
            "idle_cpu_pct_per_node_max": round(max(cpu), 3),
            "idle_cpu_pct_all_nodes": round(sum(cpu), 1),
            "rss_mib_per_node_median": round(percentile(rss, 0.5), 1),
            "rss_mib_per_node_max": round(max(rss), 1),
            # RSS less the binary's code pages, which every node shares with the others.
            "rss_anon_mib_per_node_median": round(percentile(rss_anon, 0.5), 1),
            "rss_anon_mib_per_node_max": round(max(rss_anon), 1),
            "idle_loopback_bytes_per_sec_per_node":
                round(idle_bytes_per_sec / NODES) if idle_bytes_per_sec is not None else None,
            "peers_min_max_after_idle": [min(counts), max(counts)],
            # What one more connection costs in private memory: the least-squares slope of
            # RssAnon over peer count across the nodes (None when all have as many peers).
            "rss_mib_per_peer": slope(counts, rss_anon),
        })

        log(f"publishing {ENTRIES} entries")
        received_before = [node.status()["network"]["gossip_received"] for node in nodes]
        bytes_before = loopback_bytes()
        window_start = time.monotonic()
        ids = publish(nodes, ENTRIES, "delivery")
        delivered = wait_until("every entry on every node",
                               lambda: all(held(node, ids) for node in nodes), timeout=30,
                               every=0.2)
        window = time.monotonic() - window_start
        received_after = [node.status()["network"]["gossip_received"] for node in nodes]
        bytes_after = loopback_bytes()
        latencies = [node.events[entry_id] for node in nodes for entry_id in ids
                     if entry_id in node.events]
        pairs = NODES * len(ids)
        figures.update({
            "entries": len(ids),
            "delivery_ratio": round(len(latencies) / pairs, 4),
            "delivered_all_secs": round(delivered, 2) if delivered is not None else None,
            # The publisher's own event counts with latency ~0: leave it in (it is one in N).
            "latency_ms_p50": percentile(latencies, 0.5),
            "latency_ms_p99": percentile(latencies, 0.99),
            "latency_ms_max": max(latencies) if latencies else None,
            "gossip_messages_per_entry_per_node": round(
                (sum(received_after) - sum(received_before)) / len(ids) / NODES, 2),
        })
        if bytes_before is not None:
            extra = (bytes_after - bytes_before) - idle_bytes_per_sec * window
            figures["loopback_bytes_per_entry_per_node"] = round(extra / len(ids) / NODES)

        def feed_heads(node):
            status = node.status()
            if status is None:
                return None
            return sorted((feed["author"], feed["seq"]) for feed in status["feeds"]
                          if feed["namespace"] == NAMESPACE)

        victims = nodes[BOOTSTRAP_NODES:][::5][: max(1, NODES // 5)]
        log(f"killing {len(victims)} nodes, publishing {RECOVERY_ENTRIES} entries meanwhile")
        for node in victims:
            node.kill()
        survivors = [node for node in nodes if node not in victims]
        publish(survivors, RECOVERY_ENTRIES, "recovery")
        # The survivors hold every entry before the victims come back.
        wait_until("the survivors to hold the recovery entries", lambda: len({
            json.dumps(heads) for heads in (feed_heads(node) for node in survivors)}) == 1,
            timeout=30, every=0.5)
        log("restarting them without any bootstrap address (peer store only)")
        restarted_at = time.monotonic()
        for node in victims:
            node.start([])

        def back_in_mesh():
            for node in victims:
                status = node.status()
                if status is None:
                    return False
                peers = status["network"]["peers"]
                if len(peers) < LOW or not any(peer["mesh"] for peer in peers):
                    return False
            return True
        back = wait_until("the restarted nodes back in the mesh", back_in_mesh, every=0.5)

        reference = feed_heads(survivors[0])

        def caught_up():
            return all(feed_heads(node) == reference for node in victims)
        caught = wait_until("the restarted nodes caught up", caught_up, every=0.5)
        figures.update({
            "recovery_nodes": len(victims),
            "recovery_back_in_mesh_secs": round(back, 1) if back is not None else None,
            "recovery_caught_up_secs": (round(time.monotonic() - restarted_at, 1)
                                        if caught is not None else None),
        })
        counts = peer_counts(nodes)
        figures["peers_min_max_at_end"] = [min(counts), max(counts)]
    finally:
        for node in nodes:
            node.stop()
        deadline = time.monotonic() + 20
        for node in nodes:
            if node.process:
                try:
                    node.process.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    node.process.kill()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
