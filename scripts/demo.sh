#!/usr/bin/env bash
# The main job: builds the plexus binary (reusing the persistent build directory) and runs
# `plexus demo`. Extra arguments go to the demo.
#
# Only the binary is built, not the tests and benchmarks: on a fresh two-core machine that is
# what makes the first run take minutes rather than most of an hour. It uses the same profile
# and features as the test command, so `scripts/test.sh` afterwards reuses RocksDB's build.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh

plexus="$CARGO_TARGET_DIR/debug/plexus"

# Says what is about to happen only when something must be built: RocksDB's C++ is built once
# per build directory (its static library lives under build/librocksdb-sys-*/out).
if ! compgen -G "$CARGO_TARGET_DIR/debug/build/librocksdb-sys-*/out/librocksdb.a" >/dev/null; then
  echo "building plexus (first run compiles RocksDB, about 30 minutes on two cores)..." >&2
elif [ ! -x "$plexus" ] || [ -n "$(find Cargo.toml Cargo.lock crypto protocol node \
    -newer "$plexus" -type f -print -quit)" ]; then
  echo "building plexus..." >&2
fi

# RocksDB's C++ compiles for many minutes without a word from cargo: say every minute that
# the build is still going, so a first run does not look stuck.
started=$SECONDS
(
  while sleep 60; do
    echo "  still building ($(( (SECONDS - started) / 60 )) min so far)..." >&2
  done
) &
heartbeat=$!
trap 'kill "$heartbeat" 2>/dev/null || true' EXIT
cargo build --locked --quiet -p plexus-node --bin plexus
kill "$heartbeat" 2>/dev/null || true
trap - EXIT

exec "$plexus" demo "$@"
