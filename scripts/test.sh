#!/usr/bin/env bash
# test.sh - the one command that runs every test on a fresh Debian machine:
# installs dependencies, builds (plain and with ASan+UBSan), runs the whole
# CTest suite in both builds, replays fuzz corpora and runs a short bounded
# libFuzzer pass. Exit status is non-zero if anything fails.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

"$root/scripts/deps.sh"

jobs=$(nproc)
# Integration tests mostly wait on the processes they start: run more of them
# than there are cores (the fault tests still run one at a time).
test_jobs=$((jobs + 1))
echo "== build (RelWithDebInfo, -Werror)"
"$root/scripts/build.sh" "$root/build"
echo "== tests"
ctest --test-dir "$root/build" --output-on-failure -j"$test_jobs" -LE bench

echo "== Debian package: build, install, run as _estate-gw, purge"
"$root/tests/package/test_package.sh"

echo "== build (AddressSanitizer + UndefinedBehaviorSanitizer)"
"$root/scripts/build.sh" "$root/build-asan" -DESTATE_SANITIZE=ON -DESTATE_BENCH=OFF \
  -DESTATE_BROWSER_TESTS=OFF -DCMAKE_BUILD_TYPE=Debug
echo "== tests under sanitizers"
# Every unit test and corpus replay, plus the integration and fault tests that
# drive the daemon through its main paths (readings, console API, commands,
# broker outage, kill -9); the long scenario tests run once, in the plain build.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir "$root/build-asan" --output-on-failure -j"$test_jobs" \
  -R '^(unit|process|fuzz)\.|^integration\.test_(readings|http_api)$|^fault\.test_(command_auth|broker_outage|crash_safety|pipeline)$'

if command -v clang >/dev/null; then
  echo "== short fuzz run (libFuzzer, clang)"
  CC=clang cmake -S "$root" -B "$root/build-fuzz" -DESTATE_FUZZ=ON -DESTATE_BENCH=OFF \
    -DESTATE_WERROR=OFF -DCMAKE_BUILD_TYPE=Debug >/dev/null
  "$root/tests/fuzz/run-short.sh" "$root/build-fuzz" "${ESTATE_FUZZ_SECONDS:-15}"
fi
echo "== all tests passed"
