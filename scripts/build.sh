#!/usr/bin/env bash
# build.sh - configures and builds estate-gw into a build directory.
# Usage: scripts/build.sh [BUILD_DIR] [extra cmake args...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
shift || true
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DESTATE_WERROR=ON "$@" >/dev/null
cmake --build "$build" -j"$(nproc)"
