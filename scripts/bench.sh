#!/usr/bin/env bash
# Benchmarks (not tests): prints a table of figures for docs/benchmarks.md.
#
# audit: `plexus audit verify` on an N-entry export (default 1,000,000) against plain
# ed25519-dalek verify_batch over the same signatures on all cores, alternating the two
# ROUNDS times in one run, so the ratio compares like with like on a noisy machine. Also the
# verifier's peak memory at N/10 and N entries, to show it does not grow with the log.
#
# Environment: BENCH_ENTRIES (default 1000000), BENCH_AUTHORS (default 8), BENCH_ROUNDS
# (default 3), BENCH_BACKFILL_ENTRIES (default 100000), BENCH_CLAIM_NODES (default 10),
# BENCH_CLAIMS (default 100), BENCH_PUBLISH_ENTRIES (default 2000), BENCH_DIR (default $HOME/.cache/plexus-bench: generated files are reused).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh

entries="${BENCH_ENTRIES:-1000000}"
authors="${BENCH_AUTHORS:-8}"
rounds="${BENCH_ROUNDS:-3}"
work="${BENCH_DIR:-${HOME:-/root}/.cache/plexus-bench}"
mkdir -p "$work"

# The dev profile optimises every crate (see Cargo.toml) and shares RocksDB's build with the
# tests; both sides of each comparison come from the same build.
echo "building binaries..." >&2
cargo build --locked --quiet --workspace --all-targets
plexus="$CARGO_TARGET_DIR/debug/plexus"
bench="$CARGO_TARGET_DIR/debug/plexus-bench"

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
  echo "round $round: raw verify_batch $raw/s, plexus audit verify $rate/s, peak ${rss} KiB" >&2
  raw_rates+=("$raw")
  audit_rates+=("$rate")
  audit_rss+=("$rss")
done
read -r _ small_rss < <(audit_run "$little")

backfill_entries="${BENCH_BACKFILL_ENTRIES:-100000}"
backfill_rate=$("$bench" backfill --entries "$backfill_entries" | json_field per_second)
echo "backfill: $backfill_rate entries/s" >&2

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
raw_median=$(median "${raw_rates[@]}")
audit_median=$(median "${audit_rates[@]}")
rss_median=$(median "${audit_rss[@]}")
ratio=$(python3 -c "print(f'{$audit_median / $raw_median:.2f}')")
python3 - "$entries" "$authors" "$rounds" "$raw_median" "$audit_median" "$ratio" "$small" "$small_rss" "$rss_median" "$(stat -c %s "$big")" "$backfill_entries" "$backfill_rate" <<'PY'
import sys
(entries, authors, rounds, raw, audit, ratio, small, small_rss, big_rss, size, bf_entries, bf_rate) = sys.argv[1:]
rows = [
    ("log size", f"{int(entries):,} entries, {int(authors)} authors, {int(size)/1e6:.0f} MB export"),
    ("raw ed25519-dalek verify_batch, all cores (median of %s)" % rounds, f"{float(raw):,.0f} signatures/s"),
    ("plexus audit verify, whole file (median of %s)" % rounds, f"{float(audit):,.0f} entries/s"),
    ("ratio audit / raw", f"{ratio} (target >= 0.80)"),
    (f"verifier peak RSS at {int(small):,} entries", f"{int(small_rss)/1024:.1f} MiB"),
    (f"verifier peak RSS at {int(entries):,} entries", f"{int(big_rss)/1024:.1f} MiB"),
    (f"backfill of {int(bf_entries):,} entries to a fresh node (loopback)", f"{float(bf_rate):,.0f} entries/s (target >= 50,000)"),
]
width = max(len(name) for name, _ in rows)
print(f"| {'metric':<{width}} | value |")
print(f"|{'-' * (width + 2)}|-------|")
for name, value in rows:
    print(f"| {name:<{width}} | {value} |")
PY

# Coordination: the claim round trip (API call until the lease is visible on every node of a
# ring of BENCH_CLAIM_NODES nodes, default 10) and API publish throughput on one node, each
# publish answered only once its entry is fsynced (1 client, then 8 concurrent clients).
coord_bench="$CARGO_TARGET_DIR/debug/coord-bench"
claim_nodes="${BENCH_CLAIM_NODES:-10}"
claims="${BENCH_CLAIMS:-100}"
publish_entries="${BENCH_PUBLISH_ENTRIES:-2000}"
echo "claim round trip across $claim_nodes nodes..." >&2
claim_json=$("$coord_bench" claim-latency --nodes "$claim_nodes" --claims "$claims")
echo "API publish throughput..." >&2
publish_one=$("$coord_bench" publish --entries "$publish_entries" --clients 1)
publish_eight=$("$coord_bench" publish --entries "$publish_entries" --clients 8)
python3 - "$claim_json" "$publish_one" "$publish_eight" <<'PY'
import json, sys
claim, one, eight = (json.loads(text) for text in sys.argv[1:])
rows = [
    (f"claim round trip, {claim['nodes']} nodes, {claim['claims']} claims: p50", f"{claim['p50_ms']:.1f} ms"),
    ("claim round trip: p95", f"{claim['p95_ms']:.1f} ms"),
    ("claim round trip: p99", f"{claim['p99_ms']:.1f} ms"),
    ("claim round trip: max", f"{claim['max_ms']:.1f} ms"),
    (f"API publish, 1 client, {one['entries']:,} entries (fsync each)", f"{one['per_second']:,.0f} entries/s"),
    (f"API publish, 8 clients, {eight['entries']:,} entries (fsync each)", f"{eight['per_second']:,.0f} entries/s"),
]
width = max(len(name) for name, _ in rows)
print()
print(f"| {'coordination metric':<{width}} | value |")
print(f"|{'-' * (width + 2)}|-------|")
for name, value in rows:
    print(f"| {name:<{width}} | {value} |")
PY
