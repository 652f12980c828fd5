# Sourced by scripts/test.sh and scripts/bench.sh: sets PLEXUS_VENV to a venv outside the tree
# (default ~/.cache/plexus-venv), created once and brought to the pinned versions of
# clients/python/requirements-test.txt on every run, with the client installed editable.
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
