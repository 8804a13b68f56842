#!/usr/bin/env bash
# Installs the Kubernetes API schemas the chart tests validate against (kubernetes-models and
# @kubernetes-models/prometheus-operator, pure JS, pinned by tests/helm/package-lock.json; no
# install scripts) into a cache folder outside the git tree, keyed by the lock file's sha256.
# Idempotent: a second call only prints the folder. Prints the folder (it holds node_modules/;
# pass it to tests/helm/validate_objects.cjs as --models-dir) on stdout.
# Needs node >= 14 and npm, and the npm registry (or a warm npm cache).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
exec "$here/../support/install-npm-lock.sh" k8s-models "$here"
