#!/usr/bin/env bash
# run.sh - the console's browser test: installs playwright-core from npm into
# tests/browser/node_modules (no browser download: Debian's chromium is used),
# starts broker + simulator + gateway with the demo users (stack.py) and runs
# console.spec.js against them. Screenshots go to ARTIFACTS (default
# BUILD/browser-artifacts).
# Usage: tests/browser/run.sh [BUILD_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-${ESTATE_BUILD_DIR:-$root/build}}
export ESTATE_BUILD_DIR=$build
export ESTATE_SOURCE_DIR=$root
export ARTIFACTS=${ARTIFACTS:-$build/browser-artifacts}
export CHROMIUM=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
if [ -z "$CHROMIUM" ]; then
  echo "run.sh: chromium not found (apt-get install chromium)" >&2
  exit 1
fi
if [ ! -d "$here/node_modules/playwright-core" ]; then
  export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
  npm install --prefix "$here" --no-audit --no-fund --silent playwright-core@1.65.1 >&2
fi
mkdir -p "$ARTIFACTS"
exec /usr/bin/python3 "$here/stack.py" node "$here/console.spec.js"
