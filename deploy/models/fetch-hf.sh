#!/usr/bin/env bash
# Fetches the Stable Diffusion 1.5, ControlNet v1.1 and CLIP weights of
# deploy/models/hf_catalogue.json from ${IMGINTERP_HF_ENDPOINT:-https://huggingface.co} (HF_TOKEN
# is sent as a Bearer token if set) into ${IMGINTERP_MODEL_STORE:-~/.cache/image-interpreter/models}:
# generate/sd15/{config.pbtxt,1/<diffusers folder>, 1/controlnet/<name>/} and
# clip/clip-vit-b32, clip/clip-vit-l14. Idempotent and resumable; sha256-checked (catalogue, or
# trust on first use recorded in <store>/.hf-lock.json). Logs on stderr; prints the store path.
# Usage: deploy/models/fetch-hf.sh [--only NAMES] [--variant fp16] [--list] [--dry-run] [--check]
#                                  [--require-checksums] [--store DIR] [--help]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export OPENBLAS_NUM_THREADS=1
exec /usr/bin/python3 "$here/fetch_hf.py" "$@"
