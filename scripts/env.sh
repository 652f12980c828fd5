# Sourced by the other scripts: one persistent build directory, so RocksDB's C++ (about 14
# minutes on two cores) is compiled once per machine, not once per checkout.
if [ -z "${CARGO_TARGET_DIR:-}" ]; then
  export CARGO_TARGET_DIR="${HOME:-/root}/.cache/plexus-target"
fi
mkdir -p "$CARGO_TARGET_DIR"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
