"""TF.js -> TorchScript importer for image-interpreter.

Reads a TF.js graph model (model.json + weight shards) or a Keras layers model, builds a
TorchScript module with the same signature (NHWC input, outputs in signature order), folds
constants and shape arithmetic at import time and keeps 4-D activations in NCHW internally.
Run it as ``python3 -m tfjs_import --help`` with ``deploy/models`` on PYTHONPATH.
"""

# Bump when the generated TorchScript changes, so fetch-models.sh re-imports stale models.
IMPORTER_VERSION = "3"
