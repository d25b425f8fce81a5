#!/usr/bin/env bash
# The one test command: installs what is missing, builds, and runs every test (unit, integration,
# differential against Debian's nginx, end-to-end). Extra arguments go to ctest (e.g. -L unit).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
build=${WSGATE_BUILD_DIR:-build}
echo "test: running ctest"
ctest --test-dir "$build" --output-on-failure --timeout 600 -j2 "$@"
