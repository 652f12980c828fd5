#!/usr/bin/env bash
# Scale run (a benchmark, not a test): N `plexus run` processes on loopback, a few of them
# bootstrap nodes, measured as an operator would see them. Prints one JSON line of figures
# for docs/scale.md.
#
#   scripts/scale.sh N            (N >= 8; default 25)
#
# The nodes run inside a network namespace of their own (created here, removed at the end),
# so the loopback byte counters count only their traffic; without root (or `ip netns`) they
# run on the host's loopback and the byte figures are left out.
#
# Phases:
# 1. join: 3 bootstrap nodes (each bootstrapping from the previous), then the others, each
#    given one bootstrap node; time until every node has at least the low watermark of peers,
#    and the most peers any node has then and after the idle phase.
# 2. idle (SCALE_IDLE_SECS, default 20): CPU per node (% of a core) and RSS per node.
# 3. delivery: SCALE_ENTRIES (default 20) entries published from random nodes, one every
#    100 ms; delivery ratio; p50/p99 latency from the author's timestamp to the node's event
#    for it (both read from the same clock); gossip messages received and loopback bytes per
#    entry per node (idle traffic subtracted).
# 4. recovery: 20% of the non-bootstrap nodes killed (SIGKILL), 5 entries published while
#    they are down, then started again **without any bootstrap address** (they rejoin from
#    their peer store); time until all of them are back at the low watermark with a gossipsub
#    mesh peer, and until they hold every entry.
#
# Environment: SCALE_PEERS_LOW / SCALE_PEERS_HIGH (default: the node's defaults, lowered to
# N-1 when N is small), SCALE_IDLE_SECS, SCALE_ENTRIES, SCALE_TIMEOUT (seconds per phase,
# default 120), SCALE_DIR (default: a temporary directory, removed at the end), PLEXUS_BIN (a
# built `plexus` to run instead of building one).
# Everything started here is stopped on exit, even on Ctrl-C (trap).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

nodes="${1:-25}"
if ! [[ "$nodes" =~ ^[0-9]+$ ]] || [ "$nodes" -lt 8 ]; then
  echo "usage: scripts/scale.sh N (a number of nodes, at least 8)" >&2
  exit 2
fi

if [ -n "${PLEXUS_BIN:-}" ]; then
  plexus="$PLEXUS_BIN"
else
  echo "building plexus..." >&2
  cargo build --locked --quiet -p plexus-node --bin plexus
  plexus="$CARGO_TARGET_DIR/debug/plexus"
fi

work="${SCALE_DIR:-}"
made_work=0
if [ -z "$work" ]; then
  work=$(mktemp -d /tmp/plexus-scale.XXXXXX)
  made_work=1
fi
namespace_name="plexus-scale-$$"
in_namespace=()
if [ "$(id -u)" = 0 ] && ip netns add "$namespace_name" 2>/dev/null; then
  ip -n "$namespace_name" link set lo up
  in_namespace=(ip netns exec "$namespace_name")
else
  namespace_name=""
  echo "no network namespace (needs root): running on the host loopback, without byte counts" >&2
fi

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  # The driver stops its nodes itself; this catches anything left after a hard interruption.
  if [ -n "$namespace_name" ]; then
    for pid in $(ip netns pids "$namespace_name" 2>/dev/null); do
      kill -KILL "$pid" 2>/dev/null || true
    done
    ip netns delete "$namespace_name" 2>/dev/null || true
  fi
  if [ -f "$work/pids" ]; then
    while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done <"$work/pids"
  fi
  if [ "$made_work" = 1 ]; then
    rm -rf "$work"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"${in_namespace[@]}" python3 scripts/scale_driver.py "$plexus" "$nodes" "$work" \
  "${namespace_name:+counted}"
