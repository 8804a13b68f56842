"""Reads the weightsManifest of a TF.js model.json into torch tensors.

Follows tfjs-core's io decoding: each manifest group is the concatenation of its shard files;
weights are laid out back to back in manifest order. Quantised weights are dequantised as
``min + scale * q`` (uint8/uint16; rounded for int32 weights) or decoded from IEEE float16.
"""
import hashlib
import os

import numpy as np
import torch

from .errors import ConversionError

_PLAIN = {
    "float32": (np.float32, 4),
    "int32": (np.int32, 4),
    "bool": (np.bool_, 1),
    "uint8": (np.uint8, 1),
}
_QUANT = {"uint8": (np.uint8, 1), "uint16": (np.uint16, 2), "float16": (np.float16, 2)}


def _decode(spec, buf, offset):
    name, dtype = spec["name"], spec["dtype"]
    shape = [int(d) for d in spec.get("shape", [])]
    size = int(np.prod(shape)) if shape else 1
    quant = spec.get("quantization")
    if quant is not None:
        qdtype = quant.get("dtype")
        if qdtype not in _QUANT:
            raise ConversionError(f"weight {name}: unknown quantization dtype {qdtype!r}")
        np_q, width = _QUANT[qdtype]
        raw = np.frombuffer(buf, dtype=np_q, count=size, offset=offset)
        if qdtype == "float16":
            if dtype != "float32":
                raise ConversionError(f"weight {name}: float16 quantization needs dtype float32")
            values = raw.astype(np.float32)
        else:
            if "min" not in quant or "scale" not in quant:
                raise ConversionError(f"weight {name}: {qdtype} quantization without min/scale")
            # JS computes in double precision, then stores into the typed array.
            real = raw.astype(np.float64) * float(quant["scale"]) + float(quant["min"])
            if dtype == "float32":
                values = real.astype(np.float32)
            elif dtype == "int32":
                values = np.floor(real + 0.5).astype(np.int32)  # Math.round
            else:
                raise ConversionError(f"weight {name}: quantized weights of dtype {dtype}")
        return values.reshape(shape), size * width
    if dtype not in _PLAIN:
        raise ConversionError(f"weight {name}: unsupported dtype {dtype!r}")
    np_t, width = _PLAIN[dtype]
    values = np.frombuffer(buf, dtype=np_t, count=size, offset=offset).copy()
    return values.reshape(shape), size * width


def load_weights(model_dir, manifest, digest=None):
    """Returns ({name: torch.Tensor}, hex digest); shards are hashed in manifest order into
    ``digest`` (a fresh sha256 when None)."""
    out = {}
    digest = digest if digest is not None else hashlib.sha256()
    for group in manifest:
        chunks = []
        for rel in group["paths"]:
            path = os.path.join(model_dir, rel)
            if not os.path.isfile(path):
                raise ConversionError(f"weight shard {path} is missing (listed in weightsManifest)")
            with open(path, "rb") as f:
                data = f.read()
            digest.update(data)
            chunks.append(data)
        buf = b"".join(chunks)
        offset = 0
        for spec in group["weights"]:
            try:
                values, nbytes = _decode(spec, buf, offset)
            except ValueError as e:  # numpy: buffer is smaller than requested size
                raise ConversionError(f"weight {spec['name']} runs past the end of its shards "
                                      f"{group['paths']} ({len(buf)} bytes): {e}") from e
            offset += nbytes
            if values.dtype == np.uint8 and spec["dtype"] == "uint8":
                values = values.astype(np.int32)
            out[spec["name"]] = torch.from_numpy(values.copy())  # (ascontiguousarray makes 0-d 1-d)
    return out, digest.hexdigest()
