#!/usr/bin/env bash
# Builds every fuzz target with libFuzzer's coverage instrumentation (stable toolchain: no
# sanitizer, panics and overflow checks are the findings) and runs them one after the other.
#
#   fuzz/run.sh [RUNS] [TARGET...]     RUNS executions per target (default 10000), all targets
#                                      unless some are named
#   FUZZ_MAX_TIME_S=N                  also stop each target after N seconds (0 = no limit)
#   FUZZ_TARGET_DIR=DIR                build directory (default ~/.cache/poa-archiver/fuzz-target)
#
# Prints per target the executions done, execs/s and OK or CRASH; exits non-zero on any crash
# (the reproducer is under $FUZZ_TARGET_DIR/fuzz-work/artifacts/<target>/). New inputs go to a scratch
# corpus beside the build, so the committed seeds in fuzz/corpus/ stay as they are.
set -euo pipefail
cd "$(dirname "$0")"
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"

runs="${1:-10000}"
shift || true
if [ $# -gt 0 ]; then
  targets=("$@")
else
  # The [[bin]] names (the package name has a hyphen, so the pattern skips it).
  mapfile -t targets < <(sed -n 's/^name = "\([a-z_]*\)"$/\1/p' Cargo.toml)
fi
max_time="${FUZZ_MAX_TIME_S:-0}"
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/poa-archiver/fuzz-target}"
export CARGO_TERM_COLOR=never
triple=$(rustc -vV | sed -n 's/^host: //p')

# What cargo-fuzz passes, minus the sanitizer (that needs nightly). `--target` keeps the flags off
# build scripts and proc macros.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-sanitizer-coverage-stack-depth \
--cfg fuzzing"
cargo build --release --features libfuzzer --target "$triple" --bins

work="$CARGO_TARGET_DIR/fuzz-work"
status=0
printf '%-16s %12s %10s %8s  %s\n' target executions execs/s seconds result
for t in "${targets[@]}"; do
  [ -n "$t" ] || continue
  mkdir -p "$work/corpus/$t" "$work/artifacts/$t" "$work/logs"
  log="$work/logs/$t.log"
  started_ms=$(( $(date +%s%N) / 1000000 ))
  set +e
  # -max_len: every seed is under 4 KiB (large RESP values come from a filler count, not bytes).
  "$CARGO_TARGET_DIR/$triple/release/$t" "$work/corpus/$t" "corpus/$t" \
    -runs="$runs" -max_total_time="$max_time" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$work/artifacts/$t/" >"$log" 2>&1
  rc=$?
  set -e
  ms=$(( $(date +%s%N) / 1000000 - started_ms ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  # Our own rate: libFuzzer's average is over whole seconds (0 for a run under one second).
  rate=$(( ${execs:-0} * 1000 / (ms > 0 ? ms : 1) ))
  secs=$(awk -v ms="$ms" 'BEGIN { printf "%.1f", ms / 1000 }')
  if [ "$rc" -eq 0 ]; then
    result=OK
  else
    result="CRASH (exit $rc; log $log; reproducer in $work/artifacts/$t/)"
    status=1
    grep -m1 -E "panicked at|ERROR: libFuzzer" "$log" || true
  fi
  printf '%-16s %12s %10s %8s  %s\n' "$t" "${execs:-?}" "${rate:-?}" "$secs" "$result"
done
exit "$status"
