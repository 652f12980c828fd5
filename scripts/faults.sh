#!/usr/bin/env bash
# Fault experiments (docs/reliability.md), repeated for figures. Not part of the test command,
# which runs a few rounds of each; this runs many.
#
#   scripts/faults.sh [powercut] [ROUNDS]   power cuts (default; 50 rounds)
#   scripts/faults.sh net [ROUNDS]          network faults between namespaces (20 rounds)
#   scripts/faults.sh soak [SECONDS]        soak: 8 nodes, restarts, leases (600 s)
#
# power cuts: `tests/tests/powercut.rs` with PLEXUS_POWERCUT_ROUNDS rounds (default 50) of each
# mode: a writer appends to a log on plexus-lazyfs (a FUSE file system that forgets everything not
# fsynced when its process dies) and the power is cut at a random moment; every round checks
# that every acknowledged own append survived, that the log opens, that feeds have no holes and
# that `audit verify` passes, and prints "cut after N acknowledged, M survived, K lost". The
# same run also does, once each, the hard-link test of plexus-lazyfs and the backfill test (a
# `plexus run` node loses a peer's entries to a power cut and backfills them; it prints
# "powercut backfill: ..."). Needs root and /dev/fuse.
#
# network faults: `tests/tests/netfaults.rs` with PLEXUS_NETFAULTS_ROUNDS rounds of each
# scenario (a lease contended across a partition, a one-way cut, a policy signed during a
# partition, a node restarted during a partition, 15% packet loss, a 256 kbit/s cap), each
# round in fresh network namespaces with fresh `plexus` processes; prints the convergence times
# (min / median / max) per scenario. Needs root, iproute2 and nftables.
#
# soak: `tests/tests/soak.rs` with PLEXUS_SOAK_SECONDS (default 600), PLEXUS_SOAK_NODES (8) and
# PLEXUS_SOAK_RESTART_SECONDS (60): `plexus run` processes on loopback, one agent each claiming,
# renewing and releasing shared resources and updating tasks every 500 ms, one node killed
# (SIGKILL) and restarted every minute; prints RSS, open files and disk (worst slope after
# warm-up) and the lease and export checks as `soak | ...` lines. The nodes keep
# PLEXUS_SOAK_VIEW_HISTORY_MINUTES (5, the least allowed) of history in their views, so that
# the views fill within the run: the slopes leave out the first 6 minutes of the run and of
# each process (PLEXUS_SOAK_SETTLE_SECONDS changes that; PLEXUS_SOAK_STEP_MS, 500, each agent's pause
# between two steps). PLEXUS_SOAK_SAMPLES=FILE writes every resource
# sample to FILE as CSV. Needs no root.
#
# Cleans up every mount, namespace and process it started, even when interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."

experiment=powercut
case "${1:-}" in
  powercut|net|soak) experiment="$1"; shift ;;
esac
if [ -n "${1:-}" ]; then
  case "$1" in
    *[!0-9]*) echo "faults: ROUNDS (SECONDS for soak) must be a whole number, not '$1' (usage: scripts/faults.sh [powercut|net] [ROUNDS] or scripts/faults.sh soak [SECONDS])" >&2; exit 2 ;;
  esac
fi

if [ "$experiment" = soak ]; then
  scripts/setup.sh --tests
  source scripts/env.sh
  seconds="${1:-${PLEXUS_SOAK_SECONDS:-600}}"
  echo "building the soak..." >&2
  cargo build --locked --quiet -p plexus-node --bin plexus
  cargo build --locked --quiet -p plexus-tests --tests
  # The nodes run under `setpriv --pdeathsig KILL`, so they end with the test however it ends;
  # their data directories are in a temporary directory the test removes.
  set +e
  PLEXUS_SOAK_SECONDS="$seconds" PLEXUS_SOAK_NODES="${PLEXUS_SOAK_NODES:-8}" \
    PLEXUS_SOAK_RESTART_SECONDS="${PLEXUS_SOAK_RESTART_SECONDS:-60}" \
    PLEXUS_SOAK_VIEW_HISTORY_MINUTES="${PLEXUS_SOAK_VIEW_HISTORY_MINUTES:-5}" \
    PLEXUS_BIN="$CARGO_TARGET_DIR/debug/plexus" \
    cargo nextest run --locked -p plexus-tests --test soak --no-capture \
    --profile soak 2>&1 | grep -E '^soak |SKIPPED|PASS|FAIL|panicked'
  status=${PIPESTATUS[0]}
  set -e
  exit "$status"
fi

if [ "$experiment" = net ]; then
  scripts/setup.sh --tests
  source scripts/env.sh
  rounds="${1:-${PLEXUS_NETFAULTS_ROUNDS:-20}}"
  cleanup_net() {
    # Namespaces a killed run may have left (tests/src/netns.rs names them all pxnf<pid>x<n>...):
    # the processes inside them first, then the namespaces with their links.
    for ns in $(ip netns list | awk '{print $1}' | grep '^pxnf' || true); do
      ip netns pids "$ns" | xargs -r kill -KILL 2>/dev/null || true
      ip netns del "$ns" 2>/dev/null || true
    done
  }
  trap cleanup_net EXIT INT TERM
  echo "building the network-fault test..." >&2
  cargo build --locked --quiet -p plexus-node --bin plexus
  cargo build --locked --quiet -p plexus-tests --tests
  log=$(mktemp)
  set +e
  PLEXUS_NETFAULTS_ROUNDS="$rounds" PLEXUS_BIN="$CARGO_TARGET_DIR/debug/plexus" \
    cargo nextest run --locked -p plexus-tests --test netfaults --no-capture --test-threads 1 \
    2>&1 | tee "$log" | grep -E '^netfaults .*round|SKIPPED|PASS|FAIL|panicked'
  codes=("${PIPESTATUS[@]}")
  set -e
  status=${codes[0]}
  python3 - "$log" <<'PY'
import re, sys
times = {}
for line in open(sys.argv[1]):
    m = re.match(r"netfaults (\w+) round \d+/\d+: .*converged in (\d+) ms", line)
    if m:
        times.setdefault(m.group(1), []).append(int(m.group(2)))
print()
print("| scenario | rounds | convergence after the heal or the last write, ms (min / median / max) |")
print("|---|---|---|")
for scenario, data in sorted(times.items()):
    data.sort()
    print(f"| {scenario} | {len(data)} | {data[0]} / {data[len(data)//2]} / {data[-1]} |")
PY
  rm -f "$log"
  exit "$status"
fi

scripts/setup.sh
source scripts/env.sh

rounds="${1:-${PLEXUS_POWERCUT_ROUNDS:-50}}"

cleanup() {
  # Mounts a killed run may have left behind, then their processes.
  awk '$0 ~ /plexus-lazyfs/ {print $5}' /proc/self/mountinfo | while read -r point; do
    umount -l "$point" 2>/dev/null || true
  done
  pkill -KILL -f 'plexus-lazyfs ' 2>/dev/null || true
}
trap cleanup EXIT INT TERM

echo "building the power-cut test..." >&2
cargo build --locked --quiet -p plexus-tests --bins --tests

log=$(mktemp)
PLEXUS_POWERCUT_ROUNDS="$rounds" cargo nextest run --locked -p plexus-tests --test powercut \
  --no-capture 2>&1 | tee "$log" | grep -E '^powercut|SKIPPED|PASS|FAIL|panicked' || true
status=${PIPESTATUS[0]}

python3 - "$log" <<'PY'
import re, sys
rows = {}
for line in open(sys.argv[1]):
    m = re.match(r"powercut (\w+) round \d+/\d+: cut after (\d+) acknowledged, (\d+) survived, (\d+) lost", line)
    if m:
        mode, acked, survived, lost = m.group(1), *map(int, m.groups()[1:])
        rows.setdefault(mode, []).append((acked, survived, lost))
print()
print("| mode | rounds | acknowledged (min / median / max) | lost after the cut (rounds with any / max) |")
print("|---|---|---|---|")
for mode, data in sorted(rows.items()):
    acked = sorted(a for a, _, _ in data)
    lost = [l for _, _, l in data]
    print(f"| {mode} | {len(data)} | {acked[0]} / {acked[len(acked)//2]} / {acked[-1]} | "
          f"{sum(1 for l in lost if l)} / {max(lost)} |")
PY
rm -f "$log"
exit "$status"
