#!/usr/bin/env bash
# Installs the npm packages pinned by <source dir>/package-lock.json (pure JS; install scripts
# are not run) into a cache folder outside the git tree, keyed by the sha256 of package.json and
# the lock file, and prints that folder (it holds node_modules/) on stdout. Idempotent: a second
# call only prints the folder; concurrent calls are safe.
# Needs node and npm, and the npm registry (or a warm npm cache).
#
#   tests/support/install-npm-lock.sh NAME SOURCE_DIR
set -euo pipefail
name=${1:?usage: install-npm-lock.sh NAME SOURCE_DIR}
src=${2:?usage: install-npm-lock.sh NAME SOURCE_DIR}
cache=${IMGINTERP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/image-interpreter}
command -v node >/dev/null && command -v npm >/dev/null || {
  echo "install-$name: node and npm are needed (Debian: apt-get install nodejs npm)" >&2
  exit 1
}
key=$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -c1-16)
dest="$cache/node/$name-$key"
stamp="$dest/.installed"
if [ ! -f "$stamp" ]; then
  mkdir -p "$cache/node"
  tmp=$(mktemp -d "$cache/node/.$name-$key.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  cp "$src/package.json" "$src/package-lock.json" "$tmp/"
  (cd "$tmp" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2) || {
    echo "install-$name: 'npm ci' failed in $tmp; is the npm registry reachable?" >&2
    exit 1
  }
  touch "$tmp/.installed"
  rm -rf "$dest"
  mv -T "$tmp" "$dest" 2>/dev/null || [ -f "$stamp" ]  # a concurrent install may have won
  trap - EXIT
  rm -rf "$tmp"
fi
echo "$dest"
