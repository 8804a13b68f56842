#!/usr/bin/env bash
# Fetches the sample photos used by the main job and the tests from Debian packages: `darknet`
# (data/person.jpg: a person, a dog and a horse; dog.jpg; eagle.jpg; licence "GPL-3.0+ or MIT or
# WTFPL", see its copyright file) and `python3-skimage` (data/astronaut.png: one person, 512×512,
# public domain NASA photo; chelsea.png: a cat). They are fetched, never committed. Idempotent;
# prints the samples folder.
set -euo pipefail
cache=${IMGINTERP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/image-interpreter}
samples="$cache/samples"
if [ -f "$samples/person.jpg" ] && [ -f "$samples/dog.jpg" ] && [ -f "$samples/astronaut.png" ]; then
  echo "$samples"
  exit 0
fi
mkdir -p "$samples"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
download() { (cd "$tmp" && apt-get download darknet python3-skimage >/dev/null 2>&1); }
# apt-get download needs current package lists; refresh them once if it fails.
download || { $SUDO apt-get update -qq >/dev/null 2>&1; download; } || {
  echo "fetch-samples: 'apt-get download darknet python3-skimage' failed; run 'apt-get update'" \
       "or copy person.jpg, dog.jpg and astronaut.png into $samples" >&2
  exit 1
}
dpkg -x "$tmp"/darknet_*.deb "$tmp/x"
for name in person dog eagle; do
  cp "$tmp/x/usr/share/darknet/data/$name.jpg" "$samples/$name.jpg"
done
cp "$tmp/x/usr/share/doc/darknet/copyright" "$samples/COPYRIGHT.darknet"
dpkg -x "$tmp"/python3-skimage_*.deb "$tmp/s"
for name in astronaut.png chelsea.png; do
  cp "$(find "$tmp/s" -path "*skimage/data/$name" | head -1)" "$samples/$name"
done
cp "$tmp/s/usr/share/doc/python3-skimage/copyright" "$samples/COPYRIGHT.skimage"
echo "$samples"
