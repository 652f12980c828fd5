#!/usr/bin/env bash
# The main job: builds the plexus binary (reusing the persistent build directory) and runs
# `plexus demo`. Extra arguments go to the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh
# The same target set as the test command, so both share one RocksDB build.
cargo build --locked --quiet --workspace --all-targets
exec "$CARGO_TARGET_DIR/debug/plexus" demo "$@"
