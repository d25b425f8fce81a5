#!/usr/bin/env bash
# Configures and builds everything into ./build (Release with debug info, Ninja).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${WSGATE_BUILD_DIR:-build}
if [[ ! -f $build/build.ninja ]]; then
  echo "build: configuring $build"
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo ${WSGATE_CMAKE_ARGS:-}
fi
echo "build: compiling (ninja shows [done/total])"
cmake --build "$build" -- "$@"
