#!/usr/bin/env bash
# Installs pure-JS TensorFlow.js (tfjs-core, -converter, -backend-cpu, -layers, pinned by
# tests/golden/tfjs/package-lock.json; no native binaries, no install scripts) into a cache
# folder outside the git tree, keyed by the lock file's sha256. Idempotent: a second call only
# prints the folder. Prints the folder (it holds node_modules/; pass it to
# tests/golden/tfjs/run_model.mjs as --tfjs-dir) on stdout.
# Needs node >= 18 and npm, and the npm registry (or a warm npm cache).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
exec "$here/../support/install-npm-lock.sh" tfjs "$here/tfjs"
