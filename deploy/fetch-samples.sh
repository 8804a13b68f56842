#!/usr/bin/env bash
# Fetches the sample photos used by the main job and the tests from Debian's `darknet` package
# (data/person.jpg: a person, a dog and a horse; dog.jpg; eagle.jpg). Licence of the package:
# "GPL-3.0+ or MIT or WTFPL" (see /usr/share/doc/darknet/copyright in the package). They are
# fetched, never committed. Idempotent; prints the samples folder.
set -euo pipefail
cache=${IMGINTERP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/image-interpreter}
samples="$cache/samples"
if [ -f "$samples/person.jpg" ] && [ -f "$samples/dog.jpg" ]; then
  echo "$samples"
  exit 0
fi
mkdir -p "$samples"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
download() { (cd "$tmp" && apt-get download darknet >/dev/null 2>&1); }
# apt-get download needs current package lists; refresh them once if it fails.
download || { $SUDO apt-get update -qq >/dev/null 2>&1; download; } || {
  echo "fetch-samples: 'apt-get download darknet' failed; run 'apt-get update' or copy" \
       "person.jpg and dog.jpg into $samples" >&2
  exit 1
}
dpkg -x "$tmp"/darknet_*.deb "$tmp/x"
for name in person dog eagle; do
  cp "$tmp/x/usr/share/darknet/data/$name.jpg" "$samples/$name.jpg"
done
cp "$tmp/x/usr/share/doc/darknet/copyright" "$samples/COPYRIGHT.darknet"
echo "$samples"
