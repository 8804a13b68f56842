"""Weights decoding, unknown ops, constant-foldable control flow, Keras layers models, CLI."""
import json
import os
import subprocess
import sys
import unittest

import numpy as np
import torch

from tfjs_fixture import ImporterTestCase, GraphBuilder, conv_ref, read_text
from tfjs_import.errors import ConversionError
from tfjs_import.weights import load_weights

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


class WeightsTest(ImporterTestCase):
    def write_shard(self, data):
        with open(os.path.join(self.tmp, "w.bin"), "wb") as f:
            f.write(data)

    def test_float16_uint8_uint16_and_int32_weights_decode_like_tfjs(self):
        half = np.array([1.5, -2.25, 65504.0, 6e-8], np.float16)
        q8 = np.array([0, 1, 255], np.uint8)
        q16 = np.array([0, 40000], np.uint16)
        qint = np.array([0, 1, 2, 3], np.uint8)
        self.write_shard(half.tobytes() + q8.tobytes() + q16.tobytes() + qint.tobytes())
        manifest = [{"paths": ["w.bin"], "weights": [
            {"name": "h", "shape": [4], "dtype": "float32",
             "quantization": {"dtype": "float16", "original_dtype": "float32"}},
            {"name": "u8", "shape": [3], "dtype": "float32",
             "quantization": {"dtype": "uint8", "min": -1.0, "scale": 0.5}},
            {"name": "u16", "shape": [1, 2], "dtype": "float32",
             "quantization": {"dtype": "uint16", "min": 0.25, "scale": 0.001}},
            {"name": "i", "shape": [2, 2], "dtype": "int32",
             "quantization": {"dtype": "uint8", "min": -1.0, "scale": 0.5}},
        ]}]
        w, _ = load_weights(self.tmp, manifest)
        self.assertClose(w["h"].numpy(), half.astype(np.float32))
        self.assertClose(w["u8"].numpy(), [-1.0, -0.5, 126.5])
        self.assertClose(w["u16"].numpy(), np.float32([[0.25, 40.25]]))
        # Math.round rounds halves up: -1 + 0.5 * [0, 1, 2, 3] = [-1, -0.5, 0, 0.5] -> [-1, 0, 0, 1]
        np.testing.assert_array_equal(w["i"].numpy(), [[-1, 0], [0, 1]])
        self.assertEqual(w["i"].dtype, torch.int32)

    def test_scalar_weights_stay_scalars(self):
        self.write_shard(np.array([7], np.int32).tobytes())
        w, _ = load_weights(self.tmp, [{"paths": ["w.bin"], "weights": [
            {"name": "s", "shape": [], "dtype": "int32"}]}])
        self.assertEqual(w["s"].dim(), 0)

    def test_short_shard_is_reported(self):
        self.write_shard(b"\0" * 8)
        with self.assertRaisesRegex(ConversionError, "w"):
            load_weights(self.tmp, [{"paths": ["w.bin"], "weights": [
                {"name": "w", "shape": [4], "dtype": "float32"}]}])


class GraphErrorsTest(ImporterTestCase):
    def test_unknown_op_fails_naming_the_op_and_the_node(self):
        g = GraphBuilder()
        g.placeholder("x", [1, 2])
        g.node("weird/node", "FrobnicateV7", ["x"])
        g.output("y", "weird/node:0")
        folder = os.path.join(self.tmp, "src")
        os.makedirs(folder)
        with self.assertRaises(ConversionError) as ctx:
            self.import_model("graph", g.write(folder))
        self.assertIn("FrobnicateV7", str(ctx.exception))
        self.assertIn("weird/node", str(ctx.exception))

    def test_cli_exits_2_and_names_the_op(self):
        g = GraphBuilder()
        g.placeholder("x", [1, 2])
        g.node("n1", "NoSuchOp", ["x"])
        g.output("y", "n1:0")
        folder = os.path.join(self.tmp, "src")
        os.makedirs(folder)
        env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "deploy", "models"))
        proc = subprocess.run([sys.executable, "-m", "tfjs_import", "graph", g.write(folder),
                               "--out", os.path.join(self.tmp, "out")], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.assertEqual(proc.returncode, 2)
        self.assertIn("NoSuchOp", proc.stderr)
        self.assertIn("n1", proc.stderr)

    def test_switch_on_a_constant_takes_one_branch(self):
        g = GraphBuilder()
        g.placeholder("x", [1, 3])
        g.const("pred", np.array(True))
        g.node("sw", "Switch", ["x", "pred"])
        g.const("two", np.float32(2.0))
        g.node("t", "Mul", ["sw:1", "two"])
        g.node("f", "Neg", ["sw:0"])
        g.node("m", "Merge", ["f", "t"])
        g.output("y", "m:0")
        _, got, _ = self.run_graph(g, np.array([[1, 2, 3]], np.float32))
        self.assertClose(got, [[2, 4, 6]])

    def test_switch_on_the_input_is_refused(self):
        g = GraphBuilder()
        g.placeholder("x", [1])
        g.const("zero", np.float32(0))
        g.node("p", "Greater", ["x", "zero"])
        g.node("sw", "Switch", ["x", "p"])
        g.output("y", "sw:1")
        folder = os.path.join(self.tmp, "src")
        os.makedirs(folder)
        with self.assertRaisesRegex(ConversionError, "Switch node 'sw'"):
            self.import_model("graph", g.write(folder))


def _keras_model(folder, layers, weights):
    specs, blobs = [], []
    for name, array in weights:
        specs.append({"name": name, "shape": list(array.shape), "dtype": "float32"})
        blobs.append(array.astype(np.float32).tobytes())
    model = {"format": "layers-model", "generatedBy": "keras v2.10.0",
             "convertedBy": "TensorFlow.js Converter v1.2.6",
             "modelTopology": {"keras_version": "2.10.0", "backend": "tensorflow",
                               "model_config": {"class_name": "Functional", "config": {
                                   "name": "m", "layers": layers,
                                   "input_layers": [["in", 0, 0]],
                                   "output_layers": [[layers[-1]["name"], 0, 0]]}}},
             "weightsManifest": [{"paths": ["group1-shard1of1.bin"], "weights": specs}]}
    with open(os.path.join(folder, "model.json"), "w") as f:
        json.dump(model, f)
    with open(os.path.join(folder, "group1-shard1of1.bin"), "wb") as f:
        f.write(b"".join(blobs))
    return os.path.join(folder, "model.json")


def _layer(cls, name, inbound, **config):
    config["name"] = name
    return {"class_name": cls, "name": name, "config": config,
            "inbound_nodes": [[[i, 0, 0, {}] for i in inbound]] if inbound else []}


class LayersModelTest(ImporterTestCase):
    def test_rdn_like_layers_model_matches_numpy_at_any_size(self):
        rng = np.random.default_rng(7)
        k1, b1 = rng.standard_normal((3, 3, 3, 4)), rng.standard_normal(4)
        k2, b2 = rng.standard_normal((1, 1, 7, 3)), rng.standard_normal(3)
        k3, b3 = rng.standard_normal((3, 3, 3, 2)), rng.standard_normal(2)
        layers = [
            _layer("InputLayer", "in", [], batch_input_shape=[None, None, None, 3],
                   dtype="float32"),
            _layer("Conv2D", "c1", ["in"], filters=4, kernel_size=[3, 3], strides=[1, 1],
                   padding="same", dilation_rate=[1, 1], activation="linear", use_bias=True,
                   data_format="channels_last"),
            _layer("Activation", "r1", ["c1"], activation="relu"),
            _layer("Concatenate", "cat", ["in", "r1"], axis=3),
            _layer("Conv2D", "c2", ["cat"], filters=3, kernel_size=[1, 1], strides=[1, 1],
                   padding="valid", activation="linear", use_bias=True),
            _layer("Add", "add", ["c2", "in"]),
            _layer("UpSampling2D", "up", ["add"], size=[3, 3], interpolation="nearest",
                   data_format="channels_last"),
            _layer("Conv2D", "c3", ["up"], filters=2, kernel_size=[3, 3], strides=[1, 1],
                   padding="same", activation="sigmoid", use_bias=True),
        ]
        weights = [("c1/kernel", k1), ("c1/bias", b1), ("c2/kernel", k2), ("c2/bias", b2),
                   ("c3/kernel", k3), ("c3/bias", b3)]
        folder = os.path.join(self.tmp, "src")
        os.makedirs(folder)
        summary, module, out = self.import_model("layers", _keras_model(folder, layers, weights))
        self.assertTrue(summary["dynamic_batch"])
        config = read_text(os.path.join(out, "config.pbtxt"))
        self.assertIn("shape: -1 shape: -1 shape: -1 shape: 3", config)
        self.assertIn("shape: -1 shape: -1 shape: -1 shape: 2", config)
        for shape in ((1, 5, 7, 3), (2, 4, 4, 3)):
            x = rng.standard_normal(shape).astype(np.float32)
            r1 = np.maximum(conv_ref(x, k1, (1, 1), (1, 1), (1, 1, 1, 1)) + b1, 0)
            c2 = conv_ref(np.concatenate([x, r1], 3), k2, (1, 1), (1, 1), (0, 0, 0, 0)) + b2
            up = (c2 + x).repeat(3, axis=1).repeat(3, axis=2)
            want = 1 / (1 + np.exp(-(conv_ref(up, k3, (1, 1), (1, 1), (1, 1, 1, 1)) + b3)))
            with torch.no_grad():
                got = module(torch.from_numpy(x)).numpy()
            self.assertClose(got, want.astype(np.float32), 1e-4)

    def test_custom_layer_fails_naming_class_and_layer(self):
        layers = [_layer("InputLayer", "in", [], batch_input_shape=[None, 4, 4, 3]),
                  _layer("MultiplyBeta", "mb1", ["in"])]
        folder = os.path.join(self.tmp, "src")
        os.makedirs(folder)
        with self.assertRaises(ConversionError) as ctx:
            self.import_model("layers", _keras_model(folder, layers, []))
        self.assertIn("MultiplyBeta", str(ctx.exception))
        self.assertIn("mb1", str(ctx.exception))


class ConfigTest(ImporterTestCase):
    def test_config_carries_signature_names_source_and_parameters(self):
        g = GraphBuilder()
        g.placeholder("input", [1, 4, 4, 3], dtype="int32")
        g.node("cast", "Cast", ["input"], DstT={"type": "DT_FLOAT"})
        g.const("half", np.float32(0.5))
        g.node("Identity", "Mul", ["cast", "half"])
        g.output("scaled:0", "Identity:0")
        folder = os.path.join(self.tmp, "src")
        os.makedirs(folder)
        from tfjs_import.convert import convert
        out = os.path.join(self.tmp, "store", "pose", "tiny")
        convert("graph", g.write(folder), out, "tiny", "npm:@x/y@1.0.0/models/tiny.json", "MIT",
                "a tiny model", {"kind": "movenet-singlepose", "input_range": "0..255"})
        config = read_text(os.path.join(out, "config.pbtxt"))
        for line in ['name: "tiny"', 'backend: "torchscript"',
                     'inputs { name: "input" dtype: DATA_TYPE_INT32',
                     'outputs { name: "scaled" dtype: DATA_TYPE_FLOAT32',
                     'source: "npm:@x/y@1.0.0/models/tiny.json"', 'licence: "MIT"',
                     'parameters { key: "kind" value: "movenet-singlepose" }']:
            self.assertIn(line, config)
        stamp = json.loads(read_text(os.path.join(out, "import-stamp.json")))
        self.assertEqual(len(stamp["source_sha256"]), 64)
        self.assertTrue(os.path.isfile(os.path.join(out, "1", "model.pt")))


if __name__ == "__main__":
    unittest.main()
