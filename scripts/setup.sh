#!/usr/bin/env bash
# Installs what building, testing and benchmarking Plexus needs, idempotently: the C toolchain
# and libclang that rocksdb's bindgen uses, GNU time (peak memory in benchmarks) and
# cargo-nextest. Safe to run again: what is installed is skipped.
set -euo pipefail

packages=(clang libclang-dev time)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

for tool in cargo rustc; do
  command -v "$tool" >/dev/null || { echo "setup: $tool is missing: install Rust (rustup) first" >&2; exit 1; }
done

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "setup: installing cargo-nextest" >&2
  cargo install --locked cargo-nextest
fi
