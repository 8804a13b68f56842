#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine: installs the Debian packages, builds
# (Release, tests on), fetches the sample photos and the pretrained models, installs pure-JS
# TensorFlow.js for the goldens, and runs every test (unit, golden and integration; the tests
# start their own nats-server and service processes on free loopback ports).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${IMGINTERP_BUILD_DIR:-$repo/build}
"$repo/deploy/install-deps.sh"
"$repo/deploy/build.sh"
export IMGINTERP_SAMPLES_DIR=$("$repo/deploy/fetch-samples.sh")
export IMGINTERP_MODEL_STORE=$("$repo/deploy/models/fetch-models.sh")
export IMGINTERP_TFJS_DIR=$("$repo/tests/golden/install-tfjs.sh")
# One BLAS thread per process; see README ("Threads").
export OPENBLAS_NUM_THREADS=1
ctest --test-dir "$build" --output-on-failure -j "${IMGINTERP_TEST_JOBS:-2}" "$@"
