#!/usr/bin/env bash
# The whole test suite: formatting, lints with warnings as errors, then every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tests
source scripts/env.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== tests (cargo nextest)"
# Tests that run the `plexus` binary as a separate process (the network-fault scenarios) take
# it from PLEXUS_BIN: built here, once, with the same feature set as the rest of this script's
# builds, rather than by a cargo call inside a test, which would compile under a test timeout.
cargo build --locked --quiet -p plexus-node --bin plexus
export PLEXUS_BIN="$CARGO_TARGET_DIR/debug/plexus"
cargo nextest run --workspace --locked --no-fail-fast --profile ci

# ---- The web page (web/): its bundle and its browser tests ---------------------------------
# The node embeds web/dist/, which is committed so that building the node needs only Rust. Here
# the bundle is rebuilt from web/'s sources (npm ci: the versions of package-lock.json) and must
# come out byte for byte as committed; then headless Chromium (Debian's package, installed if
# missing) drives the page against two real nodes.
echo "== web: the embedded bundle matches its sources"
command -v npm >/dev/null || { echo "test: Node.js and npm are needed for the web page's checks" >&2; exit 1; }
if ! dpkg-query -W -f='${Status}' chromium 2>/dev/null | grep -q "install ok installed"; then
  echo "test: installing chromium for the browser tests" >&2
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq chromium >/dev/null
fi
(cd web && npm ci --no-audit --no-fund --loglevel=error)
rebuilt="$(mktemp -d)"
trap 'rm -rf "$rebuilt"' EXIT
(cd web && npx tsc --noEmit && npx vite build --logLevel error --outDir "$rebuilt" --emptyOutDir)
diff -r "$rebuilt" web/dist || {
  echo "test: web/dist differs from what web/ builds: run (cd web && npm ci && npm run build) and commit web/dist" >&2
  exit 1
}
echo "== web: browser tests (headless Chromium against real nodes)"
cargo build --locked --quiet -p plexus-node --bin plexus
PLEXUS_BIN="$CARGO_TARGET_DIR/debug/plexus" node web/tests/browser.mjs
# ---- end of the web page's block ----------------------------------------------------------

# ---- Python client (clients/python): ruff, mypy --strict, pytest against real nodes ----------
# A venv outside the tree, created once and brought to the pinned versions on every run.
echo "== python client"
cargo build -p plexus-node --locked
source scripts/python-venv.sh
(
  cd clients/python
  "$PLEXUS_VENV/bin/ruff" check src tests examples bench
  "$PLEXUS_VENV/bin/ruff" format --check src tests examples bench
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
