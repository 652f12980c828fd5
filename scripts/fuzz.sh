#!/usr/bin/env bash
# Fuzzes the pure decoders (docs/reliability.md, "Fuzzing") with cargo-fuzz and libFuzzer: each
# target in fuzz/fuzz_targets/ runs for a fixed budget, starting from its committed corpus in
# fuzz/corpus/<target>/, and a summary line per target gives executions, coverage (libFuzzer's
# `cov:` edges and `ft:` features) and whether it crashed. Not a test: scripts/test.sh never runs
# it (the regression tests of what it found are ordinary tests).
#
#   scripts/fuzz.sh [TARGET...]   every target when none is named
#   FUZZ_SECONDS=60               budget per target (libFuzzer -max_total_time)
#   FUZZ_UPDATE_CORPUS=1          merge what the run found into fuzz/corpus/<target>/ and
#                                 minimise it (cargo fuzz cmin, one input per covered edge);
#                                 otherwise new inputs go to a scratch directory and the
#                                 committed corpus stays as it is
#
# Installs what it needs, idempotently: the C toolchain (scripts/setup.sh), a nightly toolchain
# and cargo-fuzz. A crash or hang leaves its input in fuzz/artifacts/<target>/ and makes the
# script exit 1 after the other targets have run; reproduce it with
# `cargo +nightly fuzz run --fuzz-dir fuzz TARGET fuzz/artifacts/TARGET/crash-...`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh

seconds="${FUZZ_SECONDS:-60}"
update_corpus="${FUZZ_UPDATE_CORPUS:-0}"
case "$seconds" in
  '' | *[!0-9]*) echo "fuzz: FUZZ_SECONDS must be a whole number of seconds, not '$seconds'" >&2; exit 2 ;;
esac

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz: installing the nightly toolchain (cargo-fuzz needs it for sanitizers)" >&2
  rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz" >&2
  cargo install --locked cargo-fuzz
fi

fuzz=(cargo +nightly fuzz)
if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <("${fuzz[@]}" list --fuzz-dir fuzz)
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

echo "fuzz: building ${#targets[@]} targets (nightly, AddressSanitizer, overflow checks)..." >&2
"${fuzz[@]}" build --fuzz-dir fuzz >&2

summary=()
failed=0
for target in "${targets[@]}"; do
  corpus="fuzz/corpus/$target"
  if [ -z "$(ls -A "$corpus" 2>/dev/null)" ]; then
    echo "fuzz: $target has no corpus yet: seeding it from tests/vectors" >&2
    [ -d "$scratch/seeds" ] || fuzz/seed_corpus.py "$scratch/seeds"
    mkdir -p "$corpus"
    cp "$scratch/seeds/$target"/* "$corpus"/
  fi
  mkdir -p "$scratch/$target" "fuzz/artifacts/$target"
  log="$scratch/$target.log"
  echo "fuzz: $target for ${seconds}s" >&2
  status=0
  # New inputs go to the first directory (scratch); the committed corpus is read only.
  "${fuzz[@]}" run --fuzz-dir fuzz "$target" "$scratch/$target" "$corpus" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=70000 \
    -print_final_stats=1 >"$log" 2>&1 || status=$?
  # The last progress line (`#N ... cov: C ft: F corp: ...`) and the final execution count.
  progress="$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)"
  executions="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
  coverage="$(sed -n 's/.* cov: \([0-9]*\) .*/\1/p' <<<"$progress")"
  features="$(sed -n 's/.* ft: \([0-9]*\) .*/\1/p' <<<"$progress")"
  echo "  $progress" >&2
  verdict="no crash"
  if [ "$status" -ne 0 ]; then
    verdict="CRASH or HANG (exit $status): see fuzz/artifacts/$target/"
    grep -E 'panicked|ERROR: libFuzzer|SUMMARY' "$log" | head -n 5 >&2 || true
    cp "$log" "fuzz/artifacts/$target/last-run.log"
    failed=1
  fi
  if [ "$update_corpus" = 1 ] && [ "$status" -eq 0 ]; then
    "${fuzz[@]}" run --fuzz-dir fuzz "$target" "$corpus" "$scratch/$target" -- \
      -merge=1 >/dev/null 2>&1
    # Keep one input per covered edge (no hit counters, no value profile): the committed
    # corpora stay a few hundred KB in all instead of megabytes.
    "${fuzz[@]}" cmin --fuzz-dir fuzz "$target" "$corpus" -- \
      -use_counters=0 -use_value_profile=0 >/dev/null 2>&1
    echo "  corpus: $(ls "$corpus" | wc -l) files, $(du -sb "$corpus" | cut -f1) bytes" >&2
  fi
  summary+=("$(printf '%-14s %12s execs  cov %6s  ft %6s  %3ss  %s' \
    "$target" "${executions:-?}" "${coverage:-?}" "${features:-?}" "$seconds" "$verdict")")
done

echo
echo "target         executions         coverage    features  budget  result"
printf '%s\n' "${summary[@]}"
exit "$failed"
