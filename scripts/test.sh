#!/usr/bin/env bash
# The whole test suite: formatting, lints with warnings as errors, then every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== tests (cargo nextest)"
cargo nextest run --workspace --locked --no-fail-fast --profile ci

# ---- Python client (clients/python): ruff, mypy --strict, pytest against real nodes ----------
# A venv outside the tree, created once and brought to the pinned versions on every run.
echo "== python client"
cargo build -p plexus-node --locked
PLEXUS_VENV="${PLEXUS_VENV:-${HOME:-/root}/.cache/plexus-venv}"
if [ ! -x "$PLEXUS_VENV/bin/python" ]; then
  python3 -m venv "$PLEXUS_VENV" || {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$PLEXUS_VENV"
  }
fi
"$PLEXUS_VENV/bin/pip" install --quiet --disable-pip-version-check \
  -r clients/python/requirements-test.txt
"$PLEXUS_VENV/bin/pip" install --quiet --disable-pip-version-check --no-build-isolation \
  --no-deps -e clients/python
(
  cd clients/python
  "$PLEXUS_VENV/bin/ruff" check src tests examples
  "$PLEXUS_VENV/bin/ruff" format --check src tests examples
  "$PLEXUS_VENV/bin/mypy"
  # pytest exits 5 when it collected no test: that is a failure here, never a pass.
  status=0
  PLEXUS_BIN="$CARGO_TARGET_DIR/debug/plexus" "$PLEXUS_VENV/bin/pytest" -q -p no:cacheprovider || status=$?
  if [ "$status" -eq 5 ]; then
    echo "error: pytest collected no tests in clients/python/tests" >&2
    exit 1
  fi
  exit "$status"
)
# ---- end of the Python client block ----------------------------------------------------------
