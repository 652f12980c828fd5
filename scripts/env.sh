# Sourced by the other scripts: one persistent build directory, so RocksDB's C++ (about 17
# minutes on two cores) is compiled once per machine, not once per checkout.
if [ -z "${CARGO_TARGET_DIR:-}" ]; then
  export CARGO_TARGET_DIR="${HOME:-/root}/.cache/plexus-target"
fi
mkdir -p "$CARGO_TARGET_DIR"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# No incremental compilation: a fresh clone recompiles our crates anyway, and the incremental
# caches grew by gigabytes a run. Set here once so that every script, and anyone building into
# the same directory by hand with it set, builds with one profile (a build with a different
# setting did not reuse the directory's dependencies).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
