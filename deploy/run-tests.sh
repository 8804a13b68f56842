#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine: installs the Debian packages, builds
# (Release, tests on), fetches the sample photos, and runs every test (unit and integration;
# the tests start their own nats-server and service processes on free loopback ports).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${IMGINTERP_BUILD_DIR:-$repo/build}
"$repo/deploy/install-deps.sh"
"$repo/deploy/build.sh"
export IMGINTERP_SAMPLES_DIR=$("$repo/deploy/fetch-samples.sh")
# One BLAS thread per process; see README ("Threads").
export OPENBLAS_NUM_THREADS=1
ctest --test-dir "$build" --output-on-failure -j "${IMGINTERP_TEST_JOBS:-2}" "$@"
