#!/usr/bin/env bash
# Installs what building Plexus needs, idempotently: the C toolchain and libclang that
# rocksdb's bindgen uses, and make (jemalloc's build runs its configure script and make).
# `--tests` adds cargo-nextest (the test runner) and iproute2 and nftables (the
# network-fault tests), `--bench` also GNU time (peak memory in benchmarks). The demo asks
# for neither, so a first run does not wait for cargo-nextest to compile. Safe to run again:
# what is installed is skipped.
set -euo pipefail

tests=false
packages=(clang libclang-dev make)
for argument in "$@"; do
  case "$argument" in
    # The network-fault tests (tests/tests/netfaults.rs) make namespaces, nftables rules and
    # tc qdiscs.
    --tests) tests=true; packages+=(iproute2 nftables) ;;
    --bench) tests=true; packages+=(time iproute2 nftables) ;;
    *) echo "setup: unknown option $argument (use --tests or --bench)" >&2; exit 2 ;;
  esac
done
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

if $tests && ! cargo nextest --version >/dev/null 2>&1; then
  echo "setup: installing cargo-nextest" >&2
  cargo install --locked cargo-nextest
fi
