#!/usr/bin/env bash
# The main job: builds the plexus binary (reusing the persistent build directory) and runs
# `plexus demo`. Extra arguments go to the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh
cargo build --locked --quiet -p plexus-node --bin plexus
exec "$CARGO_TARGET_DIR/debug/plexus" demo "$@"
