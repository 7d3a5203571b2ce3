#!/usr/bin/env bash
# run-short.sh BUILD_DIR [SECONDS] - builds the libFuzzer targets in a clang
# build directory configured with -DESTATE_FUZZ=ON and runs each one for a
# bounded time on a scratch copy of its seed corpus, printing executions per
# second. Fails if a fuzzer finds a crash, leak or sanitizer report.
set -euo pipefail
build=$(cd "$1" && pwd)
seconds=${2:-${ESTATE_FUZZ_SECONDS:-20}}
here=$(cd "$(dirname "$0")" && pwd)
targets=$(cd "$here" && ls fuzz_*.c | sed -n 's/^\(fuzz_[a-z0-9_]*\)\.c$/\1/p' | grep -v '^fuzz_replay_main$')
cmake --build "$build" -j"$(nproc)" --target $targets >/dev/null
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for t in $targets; do
  name=${t#fuzz_}
  exe="$build/tests/fuzz/$t"
  [ -x "$exe" ] || { echo "fuzz: $t was not built" >&2; exit 1; }
  mkdir -p "$scratch/$name"
  cp -r "$here/corpus/$name/." "$scratch/$name/" 2>/dev/null || true
  [ "$name" = model ] && cp "$here/../../etc/models/"*.conf "$scratch/$name/"
  log="$scratch/$name.log"
  if ! (cd "$scratch" && "$exe" -max_total_time="$seconds" -print_final_stats=1 \
        -artifact_prefix="$scratch/$name-" "$scratch/$name" >"$log" 2>&1); then
    tail -40 "$log" >&2
    echo "fuzz: $t FAILED (artifacts in $scratch were removed; rerun to reproduce)" >&2
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(( ${runs:-0} / seconds ))
  echo "fuzz: $t ok: ${runs:-?} executions in ${seconds} s (~${rate}/s)"
done
