#!/usr/bin/env bash
# Installs pure-JS TensorFlow.js (tfjs-core, -converter, -backend-cpu, -layers, pinned by
# tests/golden/tfjs/package-lock.json; no native binaries, no install scripts) into a cache
# folder outside the git tree, keyed by the lock file's sha256. Idempotent: a second call only
# prints the folder. Prints the folder (it holds node_modules/; pass it to
# tests/golden/tfjs/run_model.mjs as --tfjs-dir) on stdout.
# Needs node >= 18 and npm, and the npm registry (or a warm npm cache).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src="$here/tfjs"
cache=${IMGINTERP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/image-interpreter}
command -v node >/dev/null && command -v npm >/dev/null || {
  echo "install-tfjs: node and npm are needed (Debian: apt-get install nodejs npm)" >&2
  exit 1
}
key=$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -c1-16)
dest="$cache/node/tfjs-$key"
stamp="$dest/.installed"
if [ ! -f "$stamp" ]; then
  mkdir -p "$cache/node"
  tmp=$(mktemp -d "$cache/node/.tfjs-$key.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  cp "$src/package.json" "$src/package-lock.json" "$tmp/"
  (cd "$tmp" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2) || {
    echo "install-tfjs: 'npm ci' failed in $tmp; is the npm registry reachable?" >&2
    exit 1
  }
  touch "$tmp/.installed"
  rm -rf "$dest"
  mv -T "$tmp" "$dest" 2>/dev/null || [ -f "$stamp" ]  # a concurrent install may have won
  trap - EXIT
  rm -rf "$tmp"
fi
echo "$dest"
