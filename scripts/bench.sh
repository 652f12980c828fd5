#!/usr/bin/env bash
# Benchmarks (not tests): prints a table of figures for docs/benchmarks.md.
#
# audit: `plexus audit verify` on an N-entry export (default 1,000,000) against the auditor's
# own batch signature check (plexus-crypto) alone over the same signatures on all cores,
# alternating the two ROUNDS times in one run, so the ratio compares like with like on a noisy
# machine. Also the verifier's peak memory at N/10 and N entries, to show it does not grow
# with the log.
#
# network (issue 3), printed as a second table:
# - propagation: `plexus-netbench propagation`, a 20-node loopback cluster of Plexus nodes and
#   one of plain libp2p gossipsub swarms (same connections, grown the same way, same transport
#   and gossipsub parameters), alternating ROUNDS rounds of BENCH_MESSAGES messages; p50/p95/p99
#   from publish to arrival on the last node (Plexus: validated and stored), the process CPU
#   time, loopback bytes and packets, and mean mesh size per message on each side. A third
#   cluster runs plain gossipsub with the rest of a Plexus node's libp2p stack (Kademlia,
#   identify, ping), to separate the cost of that stack from Plexus's validation and storage.
#   (`plexus-netbench propagation ... --only plexus` publishes on one side only, for a
#   profiler: see docs/benchmarks.md.)
# - backfill: a fresh node catching up BENCH_BACKFILL_ENTRIES entries from one peer, ROUNDS
#   times (median), with the CPU time per entry (both nodes share the process).
# - sync at scale (issue 13), its own table: `plexus-bench sync-feeds`, a fresh node
#   converging with a peer holding BENCH_SYNC_FEEDS feeds of one entry each (default 100000),
#   ROUNDS times (median): seconds, reconciliation sessions, rounds and messages of both nodes,
#   fetch requests, and the bytes each way; then, the two in sync, one reconciliation session
#   (median time, rounds, messages, bytes each way). `scripts/bench.sh sync` runs this part
#   alone (it builds only plexus-bench).
# - memory: resident memory of a `plexus run` node on an empty log and on a log filled with
#   BENCH_ENTRIES entries, after startup and after a `plexus status` call, and its peak.
#
# Environment: BENCH_ENTRIES (default 1000000), BENCH_AUTHORS (default 8), BENCH_ROUNDS
# (default 3), BENCH_BACKFILL_ENTRIES (default 100000), BENCH_NODES (default 20),
# BENCH_MESSAGES (default 300 per round: the p99 of 900 messages per side is their
# ninth-slowest, less at the mercy of one stall of a shared machine than the third-slowest of
# 300), BENCH_CLAIM_NODES (default 10), BENCH_CLAIMS (default 100), BENCH_PUBLISH_ENTRIES
# (default 2000), BENCH_MCP_CALLS (default 200), BENCH_SYNC_FEEDS (default 100000), BENCH_DIR
# (default $HOME/.cache/plexus-bench: generated files are reused).
#
# agents (issue 16), the last table: the claim round trip through MCP against the same calls
# over HTTP, and the Python client's publish throughput against raw httpx (see the end).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --bench
source scripts/env.sh

entries="${BENCH_ENTRIES:-1000000}"
authors="${BENCH_AUTHORS:-8}"
rounds="${BENCH_ROUNDS:-3}"
work="${BENCH_DIR:-${HOME:-/root}/.cache/plexus-bench}"
mkdir -p "$work"

bench="$CARGO_TARGET_DIR/debug/plexus-bench"

# Sync at scale (issue 13): ROUNDS runs of `plexus-bench sync-feeds`; prints the run with the
# median convergence time, and the medians of the in-sync rows.
sync_benchmark() {
  local feeds="${BENCH_SYNC_FEEDS:-100000}" runs=() out round
  echo "sync at scale: $feeds feeds, $rounds rounds; load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  for round in $(seq 1 "$rounds"); do
    out=$("$bench" sync-feeds --feeds "$feeds" 2>/dev/null)
    runs+=("$out")
    echo "sync round $round: $out" >&2
  done
  echo "load after the sync benchmark: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  python3 - "$rounds" "${runs[@]}" <<'PY'
import json, statistics, sys
rounds = sys.argv[1]
runs = [json.loads(text) for text in sys.argv[2:]]
middle = sorted(runs, key=lambda run: run["fresh"]["seconds"])[len(runs) // 2]
feeds, fresh = middle["feeds"], middle["fresh"]
each = " / ".join("%.1f" % run["fresh"]["seconds"] for run in runs)
in_sync = lambda field: statistics.median(run["in_sync"][field] for run in runs)
rows = [
    (f"fresh node converging with a peer holding {feeds:,} feeds (median of {rounds})",
     f"{fresh['seconds']:.1f} s (rounds {each}), {fresh['cpu_seconds']:.1f} s of CPU"),
    ("  reconciliation: sessions / rounds / messages, both nodes",
     f"{fresh['sessions']:,} / {fresh['rounds']:,} / {fresh['messages']:,}"),
    ("  fetch requests (Range and Ranges)", f"{fresh['fetch_requests']:,}"),
    ("  bytes fresh -> holder: reconciliation + fetch requests",
     f"{fresh['bytes_to_holder'] / 1e6:.2f} MB ({fresh['reconcile_bytes_to_holder'] / 1e6:.2f}"
     f" + {fresh['fetch_request_bytes'] / 1e6:.2f})"),
    ("  bytes holder -> fresh: reconciliation + entries",
     f"{fresh['bytes_to_fresh'] / 1e6:.2f} MB ({fresh['reconcile_bytes_to_fresh'] / 1e6:.2f}"
     f" + {fresh['entry_bytes'] / 1e6:.2f})"),
    (f"two nodes in sync, {feeds:,} feeds: one session (median of {rounds} runs' medians)",
     f"{in_sync('session_ms_median'):.2f} ms, {in_sync('rounds_per_session'):.1f} rounds, "
     f"{in_sync('messages_per_session'):.1f} messages"),
    ("  bytes per session: fresh -> holder / holder -> fresh",
     f"{in_sync('bytes_to_holder_per_session'):.0f} / "
     f"{in_sync('bytes_to_fresh_per_session'):.0f} "
     f"({in_sync('sessions'):.0f} sessions, {in_sync('fetch_requests'):.0f} fetches)"),
]
width = max(len(name) for name, _ in rows)
print()
print(f"| {'sync metric':<{width}} | value |")
print(f"|{'-' * (width + 2)}|-------|")
for name, value in rows:
    print(f"| {name:<{width}} | {value} |")
PY
}

if [ "${1:-}" = "sync" ]; then
  echo "building plexus-bench..." >&2
  cargo build --locked --quiet -p plexus-tests --bin plexus-bench
  sync_benchmark
  exit 0
elif [ -n "${1:-}" ]; then
  echo "usage: scripts/bench.sh [sync]" >&2
  exit 2
fi

# The dev profile optimises every crate (see Cargo.toml) and shares RocksDB's build with the
# tests; both sides of each comparison come from the same build.
echo "building binaries..." >&2
cargo build --locked --quiet --workspace --all-targets
plexus="$CARGO_TARGET_DIR/debug/plexus"

small=$((entries / 10))
for n in "$small" "$entries"; do
  file="$work/export-$n-$authors.plexus"
  if [ ! -s "$file" ]; then
    echo "generating $n entries..." >&2
    "$bench" gen-export --entries "$n" --authors "$authors" --out "$file.tmp"
    mv "$file.tmp" "$file"
  fi
done
big="$work/export-$entries-$authors.plexus"
little="$work/export-$small-$authors.plexus"

json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

# Runs the auditor on $1; prints "rate peak_kib".
audit_run() {
  local out rss
  out=$(mktemp)
  rss=$( { /usr/bin/time -f '%M' "$plexus" audit verify "$1" --json >"$out"; } 2>&1 | tail -1)
  local verdict rate
  verdict=$(json_field verdict <"$out")
  rate=$(json_field entries_per_second <"$out")
  rm -f "$out"
  [ "$verdict" = "verified" ] || { echo "audit did not verify $1: $verdict" >&2; exit 1; }
  echo "$rate $rss"
}

raw_rates=()
audit_rates=()
audit_rss=()
for round in $(seq 1 "$rounds"); do
  raw=$("$bench" raw-verify "$big" | json_field per_second)
  read -r rate rss < <(audit_run "$big")
  echo "round $round: raw batch verify $raw/s, plexus audit verify $rate/s, peak ${rss} KiB" >&2
  raw_rates+=("$raw")
  audit_rates+=("$rate")
  audit_rss+=("$rss")
done
read -r _ small_rss < <(audit_run "$little")

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
raw_median=$(median "${raw_rates[@]}")
audit_median=$(median "${audit_rates[@]}")
rss_median=$(median "${audit_rss[@]}")
ratio=$(python3 -c "print(f'{$audit_median / $raw_median:.2f}')")
python3 - "$entries" "$authors" "$rounds" "$raw_median" "$audit_median" "$ratio" "$small" "$small_rss" "$rss_median" "$(stat -c %s "$big")" <<'PY'
import sys
(entries, authors, rounds, raw, audit, ratio, small, small_rss, big_rss, size) = sys.argv[1:]
rows = [
    ("log size", f"{int(entries):,} entries, {int(authors)} authors, {int(size)/1e6:.0f} MB export"),
    ("raw batch verify (the audit's primitive), all cores (median of %s)" % rounds, f"{float(raw):,.0f} signatures/s"),
    ("plexus audit verify, whole file (median of %s)" % rounds, f"{float(audit):,.0f} entries/s"),
    ("ratio audit / raw", f"{ratio} (target >= 0.80)"),
    (f"verifier peak RSS at {int(small):,} entries", f"{int(small_rss)/1024:.1f} MiB"),
    (f"verifier peak RSS at {int(entries):,} entries", f"{int(big_rss)/1024:.1f} MiB"),
]
width = max(len(name) for name, _ in rows)
print(f"| {'metric':<{width}} | value |")
print(f"|{'-' * (width + 2)}|-------|")
for name, value in rows:
    print(f"| {name:<{width}} | {value} |")
PY

# ---------------------------------------------------------------------------------------------
# Network (issue 3): propagation against plain gossipsub, backfill, node memory.

netbench="$CARGO_TARGET_DIR/debug/plexus-netbench"
nodes="${BENCH_NODES:-20}"
messages="${BENCH_MESSAGES:-300}"
backfill_entries="${BENCH_BACKFILL_ENTRIES:-100000}"

echo "load before the network benchmarks: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
propagation_json=$("$netbench" propagation --nodes "$nodes" --messages "$messages" --rounds "$rounds")
echo "propagation: $propagation_json" >&2

backfill_rates=()
backfill_cpu=()
for round in $(seq 1 "$rounds"); do
  out=$("$bench" backfill --entries "$backfill_entries" 2>/dev/null)
  backfill_rates+=("$(json_field per_second <<<"$out")")
  backfill_cpu+=("$(json_field cpu_us_per_entry <<<"$out")")
  echo "backfill round $round: $out" >&2
done
backfill_rate=$(median "${backfill_rates[@]}")

backfill_cpu_median=$(median "${backfill_cpu[@]}")

# Resident memory (KiB) of `plexus run` on data directory $1: prints "rss_started rss_after_status
# peak". The node listens on loopback only, without mDNS, and is stopped with SIGTERM.
node_memory() {
  local dir=$1 config="$1.toml" fifo pid line rss_started rss_status peak
  fifo=$(mktemp -u)
  mkfifo "$fifo"
  PLEXUS_DATA_DIR="$dir" PLEXUS_CONFIG="$config" "$plexus" run --listen /ip4/127.0.0.1/tcp/0 \
    --no-mdns --api-listen 127.0.0.1:0 >"$fifo" 2>/dev/null &
  pid=$!
  exec {out}<"$fifo"
  while read -r -t 120 line <&"$out"; do
    [[ "$line" == *"running; HTTP API on"* ]] && break
  done
  rss_started=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
  PLEXUS_DATA_DIR="$dir" PLEXUS_CONFIG="$config" "$plexus" status >/dev/null
  rss_status=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
  peak=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
  kill -TERM "$pid"
  wait "$pid" || true
  exec {out}<&-
  rm -f "$fifo"
  echo "$rss_started $rss_status $peak"
}

empty_node="$work/node-empty"
full_node="$work/node-$entries"
for dir in "$empty_node" "$full_node"; do
  if [ ! -e "$dir/.filled" ]; then
    rm -rf "$dir" "$dir.toml"
    PLEXUS_DATA_DIR="$dir" PLEXUS_CONFIG="$dir.toml" "$plexus" init --namespace cluster >/dev/null
    if [ "$dir" = "$full_node" ]; then
      echo "filling a node's log with $entries entries..." >&2
      "$netbench" fill-log --data-dir "$dir" --entries "$entries" --authors "$authors"
    fi
    touch "$dir/.filled"
  fi
done
read -r empty_started empty_status empty_peak < <(node_memory "$empty_node")
read -r full_started full_status full_peak < <(node_memory "$full_node")
echo "load after the network benchmarks: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

echo
python3 - "$propagation_json" "$rounds" "$backfill_entries" "$backfill_rate" "$backfill_cpu_median" \
  "$entries" "$empty_started" "$empty_status" "$empty_peak" "$full_started" "$full_status" "$full_peak" \
  "${backfill_rates[*]}" <<'PY'
import json, sys
(prop, rounds, bf_entries, bf_rate, bf_cpu, entries,
 e_start, e_status, e_peak, f_start, f_status, f_peak, bf_rounds) = sys.argv[1:]
p = json.loads(prop)
ours, theirs, after = p["plexus"], p["gossipsub"], p["plexus_after_publish"]
stack = p["libp2p_stack"]
mib = lambda kib: f"{int(kib) / 1024:.1f} MiB"
samples = f"{ours['samples']} messages each, {ours['lost'] + theirs['lost'] + stack['lost']} lost"
rows = [
    (f"propagation, {p['nodes']} nodes, {p['edges']} connections ({samples})",
     f"{p['payload_bytes']}-byte entries"),
    ("  plain gossipsub p50 / p95 / p99",
     f"{theirs['p50_ms']:.1f} / {theirs['p95_ms']:.1f} / {theirs['p99_ms']:.1f} ms"),
    ("  plexus p50 / p95 / p99 (from the publish call)",
     f"{ours['p50_ms']:.1f} / {ours['p95_ms']:.1f} / {ours['p99_ms']:.1f} ms"),
    ("  plexus p50 / p95 / p99 (from publish's return)",
     f"{after['p50_ms']:.1f} / {after['p95_ms']:.1f} / {after['p99_ms']:.1f} ms"),
    ("  ratio of p99, plexus / plain",
     f"{p['p99_ratio']:.2f} ({p['p99_ratio_after_publish']:.2f} from publish's return)"),
    ("  ratio of p50, plexus / plain", f"{p['p50_ratio']:.2f}"),
    ("  plain gossipsub with Kademlia, identify, ping: p50 / p95 / p99",
     f"{stack['p50_ms']:.1f} / {stack['p95_ms']:.1f} / {stack['p99_ms']:.1f} ms "
     f"(plexus / it at p99: {p['p99_ratio_to_stack']:.2f})"),
    ("  ratio of p50, plexus / plain with the stack",
     f"{p['p50_ratio_to_stack']:.2f} (target <= 1.5)"),
    ("  ratio of CPU per message, plexus / plain with the stack",
     f"{ours['cpu_ms_per_message'] / stack['cpu_ms_per_message']:.2f} (target <= 1.5)"),
    ("  receipt to forward in one plexus node: p50 / p99 (median over nodes)",
     f"{p['receipt_to_forward_p50_ms']:.3f} / {p['receipt_to_forward_p99_ms']:.3f} ms "
     f"(target p50 <= 0.15 ms)"),
    ("  CPU per message, whole process: plexus / plain / plain with the stack",
     f"{ours['cpu_ms_per_message']:.1f} / {theirs['cpu_ms_per_message']:.1f} / "
     f"{stack['cpu_ms_per_message']:.1f} ms (less the idle background: "
     f"{ours['cpu_ms_per_message_less_idle']:.1f} / {theirs['cpu_ms_per_message_less_idle']:.1f}"
     f" / {stack['cpu_ms_per_message_less_idle']:.1f})"),
    ("  loopback bytes per message: plexus / plain / plain with the stack",
     f"{ours['wire_bytes_per_message']:,.0f} / {theirs['wire_bytes_per_message']:,.0f} / "
     f"{stack['wire_bytes_per_message']:,.0f} (less the idle background: "
     f"{ours['wire_bytes_per_message_less_idle']:,.0f} / "
     f"{theirs['wire_bytes_per_message_less_idle']:,.0f} / "
     f"{stack['wire_bytes_per_message_less_idle']:,.0f})"),
    ("  loopback packets per message: plexus / plain / plain with the stack",
     f"{ours['wire_packets_per_message']:,.0f} / {theirs['wire_packets_per_message']:,.0f} / "
     f"{stack['wire_packets_per_message']:,.0f}"),
    ("  idle background of all three clusters",
     f"{p['idle_cpu_ms_per_second']:.0f} ms of CPU and {p['idle_bytes_per_second'] / 1e6:.2f} MB "
     f"of loopback traffic per second"),
    ("  mean gossipsub mesh per node: plexus / plain / plain with the stack",
     f"{ours['mean_mesh']:.1f} / {theirs['mean_mesh']:.1f} / {stack['mean_mesh']:.1f} peers"),
    (f"backfill of {int(bf_entries):,} entries to a fresh node (median of {rounds})",
     f"{float(bf_rate):,.0f} entries/s, {float(bf_cpu):.1f} us CPU per entry (rounds "
     f"{' / '.join(f'{float(rate):,.0f}' for rate in bf_rounds.split())}; target >= 50,000/s)"),
    ("idle node RSS: started / after status / peak",
     f"{mib(e_start)} / {mib(e_status)} / {mib(e_peak)}"),
    (f"node holding {int(entries):,} entries RSS: started / after status / peak",
     f"{mib(f_start)} / {mib(f_status)} / {mib(f_peak)}"),
]
width = max(len(name) for name, _ in rows)
print(f"| {'network metric':<{width}} | value |")
print(f"|{'-' * (width + 2)}|-------|")
for name, value in rows:
    print(f"| {name:<{width}} | {value} |")
PY

sync_benchmark

# Coordination: the claim round trip (API call until the lease is visible on every node of a
# ring of BENCH_CLAIM_NODES nodes, default 10) and API publish throughput on one node, each
# publish answered only once its entry is fsynced (1 client, then 8 and 64 concurrent
# clients: concurrent requests share fsyncs). Then sustained gossip ingest: 4 publishing peers
# flood BENCH_INGEST_ENTRIES (default 100,000) pre-signed entries into one node, whose ingress
# limits are lifted; entries stored per second, and forwarded to the other publishers.
coord_bench="$CARGO_TARGET_DIR/debug/coord-bench"
claim_nodes="${BENCH_CLAIM_NODES:-10}"
claims="${BENCH_CLAIMS:-100}"
publish_entries="${BENCH_PUBLISH_ENTRIES:-2000}"
echo "claim round trip across $claim_nodes nodes..." >&2
claim_json=$("$coord_bench" claim-latency --nodes "$claim_nodes" --claims "$claims")
echo "API publish throughput..." >&2
publish_one=$("$coord_bench" publish --entries "$publish_entries" --clients 1)
publish_eight=$("$coord_bench" publish --entries "$publish_entries" --clients 8)
publish_many=$("$coord_bench" publish --entries "$((publish_entries * 8))" --clients 64)
echo "gossip ingest..." >&2
ingest_json=$("$coord_bench" ingest --publishers 4 --entries "${BENCH_INGEST_ENTRIES:-100000}")
echo "ingest: $ingest_json" >&2
python3 - "$claim_json" "$publish_one" "$publish_eight" "$publish_many" "$ingest_json" <<'PY'
import json, sys
claim, one, eight, many, ingest = (json.loads(text) for text in sys.argv[1:])
rows = [
    (f"claim round trip, {claim['nodes']} nodes, {claim['claims']} claims: p50", f"{claim['p50_ms']:.1f} ms"),
    ("claim round trip: p95", f"{claim['p95_ms']:.1f} ms"),
    ("claim round trip: p99", f"{claim['p99_ms']:.1f} ms"),
    ("claim round trip: max", f"{claim['max_ms']:.1f} ms"),
    (f"API publish, 1 client, {one['entries']:,} entries (acknowledged after fsync)",
     f"{one['per_second']:,.0f} entries/s, p50 / p99 {one['p50_ms']:.2f} / {one['p99_ms']:.2f} ms"),
    (f"API publish, 8 clients, {eight['entries']:,} entries",
     f"{eight['per_second']:,.0f} entries/s, p50 / p99 {eight['p50_ms']:.2f} / {eight['p99_ms']:.2f} ms"),
    (f"API publish, 64 clients, {many['entries']:,} entries",
     f"{many['per_second']:,.0f} entries/s, p50 / p99 {many['p50_ms']:.2f} / {many['p99_ms']:.2f} ms "
     f"(target >= 15,000/s)"),
    (f"gossip ingest, {ingest['publishers']} publishers ({ingest['authors']} authors), "
     f"{ingest['entries']:,} entries: stored",
     f"{ingest['stored_per_second']:,.0f} entries/s ({ingest['stored']:,} stored; target >= 20,000/s)"),
    ("gossip ingest: forwarded to the other publishers",
     f"{ingest['forwarded_per_second']:,.0f} entries/s ({ingest['forwarded_entries']:,} entries)"),
    ("gossip ingest: receipt to forward in the node, p50 / p99",
     f"{ingest['receipt_to_forward_p50_ms']:.2f} / {ingest['receipt_to_forward_p99_ms']:.2f} ms "
     f"({ingest['dropped_queue_full']:,} dropped at a full queue)"),
]
width = max(len(name) for name, _ in rows)
print()
print(f"| {'coordination metric':<{width}} | value |")
print(f"|{'-' * (width + 2)}|-------|")
for name, value in rows:
    print(f"| {name:<{width}} | {value} |")
PY

# Governance: the cost of the policy decision on the storage path. BENCH_BACKFILL_ENTRIES
# entries of one author stored through the backfill path into an open namespace and into a
# governed one (member, role, body cap, rate limit checked on every entry), alternating
# ROUNDS rounds in one process; both go through the log's one ingest path (batch signature
# check, then the write), so the ratio shows the policy's share of that path.
echo "governed ingest..." >&2
governed_json=$("$bench" governed-ingest --entries "$backfill_entries" --rounds "$rounds")
python3 - "$governed_json" <<'PY'
import json, sys
g = json.loads(sys.argv[1])
rows = [
    (f"store {g['entries']:,} entries, open namespace (batches of 1,000)", f"{g['open_per_second']:,.0f} entries/s"),
    ("same, governed namespace", f"{g['governed_per_second']:,.0f} entries/s"),
    ("ratio governed / open", f"{g['ratio']:.2f}"),
]
width = max(len(name) for name, _ in rows)
print()
print(f"| {'governance metric':<{width}} | value |")
print(f"|{'-' * (width + 2)}|-------|")
for name, value in rows:
    print(f"| {name:<{width}} | {value} |")
PY

# Agents (issue 16): clients/python/bench/agents.py on one loopback node. The claim round trip
# through MCP (the official `mcp` SDK calling the `claim` tool, over stdio to `plexus mcp` and
# over Streamable HTTP), until the holder decision is in the tool's answer, against the same
# two API calls over HTTP (httpx); and publish throughput of the Python client (1 and 8
# threads, 8 asyncio tasks) against raw httpx posting the same entries the same way. Each pair
# alternates BENCH_ROUNDS rounds in one run (BENCH_MCP_CALLS claims per path per round, default
# 200; BENCH_PUBLISH_ENTRIES publishes per side per round). The SDK is Python because that is
# what hosts and agent frameworks use, and one venv serves the client benchmark too.
source scripts/python-venv.sh
echo "agents: MCP claim round trip and Python client publish..." >&2
echo
"$PLEXUS_VENV/bin/python" clients/python/bench/agents.py --plexus "$plexus" \
  --calls "${BENCH_MCP_CALLS:-200}" --entries "$publish_entries" --rounds "$rounds"
