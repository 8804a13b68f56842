"""Builds small TF.js models in the exact on-disk format and runs them through the importer.

Graph models: model.json (format graph-model, modelTopology.node with base64 string attrs,
signature, weightsManifest) + one shard. Weights may be stored as float32, float16
(quantization dtype float16) or uint8 (min/scale quantization), like tfjs-converter writes them.
"""
import base64
import json
import os
import shutil
import tempfile
import unittest

import numpy as np
import torch

from tfjs_import.convert import convert

# --- attribute encoders (TF AttrValue as JSON, strings base64) ----------------------------


def a_s(text):
    return {"s": base64.b64encode(text.encode()).decode()}


def a_i(value):
    return {"i": str(int(value))}


def a_f(value):
    return {"f": float(value)}


def a_b(value):
    return {"b": bool(value)}


def a_ints(values):
    return {"list": {"i": [str(int(v)) for v in values]}}


def a_strs(values):
    return {"list": {"s": [base64.b64encode(v.encode()).decode() for v in values]}}


def a_type(name):
    return {"type": name}


_DT = {"float32": "DT_FLOAT", "int32": "DT_INT32"}


class GraphBuilder:
    """Collects nodes and constants; ``write(folder)`` produces model.json + shard."""

    def __init__(self):
        self.nodes = []
        self.weights = []  # (name, array, storage)
        self.inputs = {}
        self.outputs = {}

    def placeholder(self, name, shape, dtype="float32"):
        self.nodes.append({"name": name, "op": "Placeholder",
                           "attr": {"dtype": a_type(_DT[dtype])}})
        self.inputs[name] = {"name": f"{name}:0", "dtype": _DT[dtype],
                             "tensorShape": {"dim": [{"size": str(d)} for d in shape]}}
        return name

    def const(self, name, array, storage=None):
        """storage: None (as is), 'float16', or 'uint8' (quantized with min/scale)."""
        array = np.asarray(array)
        dtype = "int32" if array.dtype.kind in "iu" else "float32"
        self.nodes.append({"name": name, "op": "Const",
                           "attr": {"dtype": a_type(_DT[dtype]), "value": {"tensor": {}}}})
        self.weights.append((name, array.astype(np.int32 if dtype == "int32" else np.float32),
                             storage))
        return name

    def node(self, name, op, inputs, **attr):
        self.nodes.append({"name": name, "op": op, "input": list(inputs), "attr": attr})
        return name

    def output(self, key, tensor):
        self.outputs[key] = {"name": tensor}

    def write(self, folder):
        specs, blobs = [], []
        for name, array, storage in self.weights:
            spec = {"name": name, "shape": list(array.shape),
                    "dtype": "int32" if array.dtype == np.int32 else "float32"}
            if storage == "float16":
                spec["quantization"] = {"dtype": "float16", "original_dtype": "float32"}
                blobs.append(array.astype(np.float16).tobytes())
            elif storage == "uint8":
                lo, hi = float(array.min()), float(array.max())
                scale = (hi - lo) / 255.0 or 1.0
                q = np.round((array.astype(np.float64) - lo) / scale).astype(np.uint8)
                spec["quantization"] = {"dtype": "uint8", "min": lo, "scale": scale,
                                        "original_dtype": spec["dtype"]}
                blobs.append(q.tobytes())
            else:
                blobs.append(array.tobytes())
            specs.append(spec)
        model = {
            "format": "graph-model",
            "generatedBy": "tests",
            "convertedBy": "tfjs_fixture",
            "modelTopology": {"node": self.nodes, "library": {}, "versions": {}},
            "signature": {"inputs": self.inputs, "outputs": self.outputs},
            "weightsManifest": [{"paths": ["group1-shard1of1.bin"], "weights": specs}],
        }
        with open(os.path.join(folder, "model.json"), "w") as f:
            json.dump(model, f)
        with open(os.path.join(folder, "group1-shard1of1.bin"), "wb") as f:
            f.write(b"".join(blobs))
        return os.path.join(folder, "model.json")


def read_text(path):
    with open(path) as f:
        return f.read()


def dequantized(array, storage):
    """What TF.js reads back for a weight written with ``storage``."""
    array = np.asarray(array, dtype=np.float32)
    if storage == "float16":
        return array.astype(np.float16).astype(np.float32)
    if storage == "uint8":
        lo, hi = float(array.min()), float(array.max())
        scale = (hi - lo) / 255.0 or 1.0
        q = np.round((array.astype(np.float64) - lo) / scale)
        return (q * scale + lo).astype(np.float32)
    return array


class ImporterTestCase(unittest.TestCase):
    """Gives each test a temp folder; ``run_graph`` imports and runs a GraphBuilder model."""

    def setUp(self):
        torch.manual_seed(0)
        self.tmp = tempfile.mkdtemp(prefix="importer_test_")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def import_model(self, kind, model_json, name="m"):
        out = os.path.join(self.tmp, "store", name)
        summary = convert(kind, model_json, out, name, "test", "MIT", "a test model", {})
        return summary, torch.jit.load(os.path.join(out, "1", "model.pt")), out

    def run_graph(self, g, *inputs, name="m"):
        folder = os.path.join(self.tmp, f"src_{name}")
        os.makedirs(folder, exist_ok=True)
        summary, module, out = self.import_model("graph", g.write(folder), name)
        with torch.no_grad():
            result = module(*[torch.from_numpy(np.ascontiguousarray(x)) for x in inputs])
        if isinstance(result, tuple):
            return summary, [r.numpy() for r in result], out
        return summary, result.numpy(), out

    def assertClose(self, got, want, tol=1e-5):
        got, want = np.asarray(got), np.asarray(want)
        self.assertEqual(got.shape, want.shape)
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def conv_ref(x, w, strides, dilations, pads, depthwise=False):
    """Naive NHWC conv (TF semantics), pads = (top, bottom, left, right)."""
    top, bottom, left, right = pads
    xp = np.pad(x, [(0, 0), (top, bottom), (left, right), (0, 0)])
    kh, kw = w.shape[:2]
    sh, sw = strides
    dh, dw = dilations
    oh = (xp.shape[1] - (kh - 1) * dh - 1) // sh + 1
    ow = (xp.shape[2] - (kw - 1) * dw - 1) // sw + 1
    if depthwise:
        cin, mult = w.shape[2], w.shape[3]
        out = np.zeros((x.shape[0], oh, ow, cin * mult), np.float64)
    else:
        out = np.zeros((x.shape[0], oh, ow, w.shape[3]), np.float64)
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, i * dh: i * dh + (oh - 1) * sh + 1: sh,
                       j * dw: j * dw + (ow - 1) * sw + 1: sw, :]
            if depthwise:
                out += (patch[..., :, None] * w[i, j][None, None, None]).reshape(out.shape)
            else:
                out += patch @ w[i, j]
    return out.astype(np.float32)
