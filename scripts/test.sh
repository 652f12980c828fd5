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
cargo nextest run --workspace --locked --no-fail-fast --profile ci
