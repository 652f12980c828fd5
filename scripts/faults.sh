#!/usr/bin/env bash
# Fault experiments (docs/reliability.md), repeated for figures. Not part of the test command,
# which runs a few rounds of each; this runs many.
#
# power cuts: `tests/tests/powercut.rs` with PLEXUS_POWERCUT_ROUNDS rounds (default 50) of each
# mode: a writer appends to a log on plexus-lazyfs (a FUSE file system that forgets everything not
# fsynced when its process dies) and the power is cut at a random moment; every round checks
# that every acknowledged own append survived, that the log opens, that feeds have no holes and
# that `audit verify` passes, and prints "cut after N acknowledged, M survived, K lost".
#
# Needs root and /dev/fuse. Cleans up every mount and process it started, even when interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh

rounds="${PLEXUS_POWERCUT_ROUNDS:-50}"

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
