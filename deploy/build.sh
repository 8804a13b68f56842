#!/usr/bin/env bash
# Configures and builds image-interpreter (Release, tests on) into ${IMGINTERP_BUILD_DIR:-build}.
# Incremental: a second run rebuilds only what changed.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${IMGINTERP_BUILD_DIR:-$repo/build}
jobs=${IMGINTERP_JOBS:-$(nproc)}
if [ ! -f "$build/build.ninja" ]; then
  cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$build" -j "$jobs"
