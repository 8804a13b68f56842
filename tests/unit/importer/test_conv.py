"""Conv2D / _FusedConv2D / depthwise / transposed conv and pooling against numpy references."""
import unittest

import numpy as np

from tfjs_fixture import (ImporterTestCase, GraphBuilder, a_f, a_ints, a_s, a_strs, conv_ref,
                          dequantized)
from tfjs_import.ops_conv import same_pads


def _pads(padding, shape, k, s, d):
    if padding == "VALID":
        return (0, 0, 0, 0)
    t, b = same_pads(shape[1], k[0], s[0], d[0])
    l, r = same_pads(shape[2], k[1], s[1], d[1])
    return (t, b, l, r)


class ConvTest(ImporterTestCase):
    def conv_case(self, padding, stride, dilation, shape=(1, 9, 8, 3), k=(3, 3), cout=4,
                  depthwise=False, fused=(), storage=None):
        rng = np.random.default_rng(1)
        x = rng.standard_normal(shape).astype(np.float32)
        wshape = (k[0], k[1], shape[3], 2 if depthwise else cout)
        w = rng.standard_normal(wshape).astype(np.float32)
        bias = rng.standard_normal(wshape[2] * 2 if depthwise else cout).astype(np.float32)
        g = GraphBuilder()
        g.placeholder("x", shape)
        g.const("w", w, storage)
        attrs = dict(strides=a_ints([1, stride, stride, 1]), padding=a_s(padding),
                     dilations=a_ints([1, dilation, dilation, 1]), data_format=a_s("NHWC"))
        inputs = ["x", "w"]
        if fused:
            g.const("b", bias)
            inputs.append("b")
            attrs["fused_ops"] = a_strs(list(fused))
            attrs["num_args"] = {"i": "1"}
            op = "FusedDepthwiseConv2dNative" if depthwise else "_FusedConv2D"
        else:
            op = "DepthwiseConv2dNative" if depthwise else "Conv2D"
        g.node("y", op, inputs, **attrs)
        g.output("y", "y:0")
        _, got, _ = self.run_graph(g, x)
        w_read = dequantized(w, storage)
        want = conv_ref(x, w_read, (stride, stride), (dilation, dilation),
                        _pads(padding, shape, k, (stride,) * 2, (dilation,) * 2), depthwise)
        if fused:
            want = want + bias
            if "Relu" in fused:
                want = np.maximum(want, 0)
            if "Relu6" in fused:
                want = np.clip(want, 0, 6)
        self.assertClose(got, want, 1e-4)

    def test_same_padding_stride_1(self):
        self.conv_case("SAME", 1, 1)

    def test_same_padding_stride_2_pads_more_after_than_before(self):
        self.conv_case("SAME", 2, 1, shape=(1, 8, 8, 3))

    def test_same_padding_stride_2_odd_size(self):
        self.conv_case("SAME", 2, 1, shape=(1, 9, 7, 3))

    def test_valid_padding_stride_2(self):
        self.conv_case("VALID", 2, 1)

    def test_same_padding_dilation_2(self):
        self.conv_case("SAME", 1, 2, shape=(1, 10, 9, 3))

    def test_fused_bias_relu6_with_float16_weights(self):
        self.conv_case("SAME", 1, 1, fused=("BiasAdd", "Relu6"), storage="float16")

    def test_fused_bias_relu_with_uint8_quantized_weights(self):
        self.conv_case("VALID", 1, 1, fused=("BiasAdd", "Relu"), storage="uint8")

    def test_depthwise_same_stride_1(self):
        self.conv_case("SAME", 1, 1, depthwise=True)

    def test_depthwise_same_stride_2_even_size_uses_asymmetric_padding(self):
        self.conv_case("SAME", 2, 1, shape=(1, 8, 10, 3), depthwise=True, fused=("BiasAdd",))

    def test_depthwise_valid_stride_2(self):
        self.conv_case("VALID", 2, 1, depthwise=True)

    def test_depthwise_dilation_2(self):
        self.conv_case("SAME", 1, 2, shape=(1, 9, 9, 3), depthwise=True)

    def test_explicit_padding(self):
        rng = np.random.default_rng(2)
        x = rng.standard_normal((1, 6, 6, 2)).astype(np.float32)
        w = rng.standard_normal((3, 3, 2, 3)).astype(np.float32)
        g = GraphBuilder()
        g.placeholder("x", x.shape)
        g.const("w", w)
        g.node("y", "Conv2D", ["x", "w"], strides=a_ints([1, 1, 1, 1]), padding=a_s("EXPLICIT"),
               explicit_paddings=a_ints([0, 0, 2, 0, 1, 1, 0, 0]), dilations=a_ints([1, 1, 1, 1]))
        g.output("y", "y:0")
        _, got, _ = self.run_graph(g, x)
        self.assertClose(got, conv_ref(x, w, (1, 1), (1, 1), (2, 0, 1, 1)), 1e-4)

    def test_transposed_conv_same_stride_2(self):
        rng = np.random.default_rng(3)
        x = rng.standard_normal((1, 4, 4, 3)).astype(np.float32)
        w = rng.standard_normal((3, 3, 2, 3)).astype(np.float32)  # [kh, kw, out, in]
        g = GraphBuilder()
        g.placeholder("x", x.shape)
        g.const("w", w)
        g.const("size", np.array([1, 8, 8, 2], np.int32))
        g.node("y", "Conv2DBackpropInput", ["size", "w", "x"], strides=a_ints([1, 2, 2, 1]),
               padding=a_s("SAME"), dilations=a_ints([1, 1, 1, 1]))
        g.output("y", "y:0")
        _, got, _ = self.run_graph(g, x)
        # Reference: scatter every input pixel through the kernel, then crop TF's SAME padding.
        top, _ = same_pads(8, 3, 2, 1)
        full = np.zeros((1, 9, 9, 2), np.float32)
        for i in range(4):
            for j in range(4):
                full[0, 2 * i:2 * i + 3, 2 * j:2 * j + 3] += np.einsum("c,hwoc->hwo", x[0, i, j], w)
        self.assertClose(got, full[:, top:top + 8, top:top + 8], 1e-4)


class PoolTest(ImporterTestCase):
    def pool(self, op, padding, k, s, shape=(1, 7, 6, 2)):
        rng = np.random.default_rng(4)
        x = rng.standard_normal(shape).astype(np.float32)
        g = GraphBuilder()
        g.placeholder("x", shape)
        g.node("y", op, ["x"], ksize=a_ints([1, k, k, 1]), strides=a_ints([1, s, s, 1]),
               padding=a_s(padding))
        g.output("y", "y:0")
        _, got, _ = self.run_graph(g, x)
        t, b, l, r = _pads(padding, shape, (k, k), (s, s), (1, 1))
        fill = -np.inf if op == "MaxPool" else np.nan
        xp = np.pad(x, [(0, 0), (t, b), (l, r), (0, 0)], constant_values=fill)
        oh, ow = (xp.shape[1] - k) // s + 1, (xp.shape[2] - k) // s + 1
        want = np.zeros((shape[0], oh, ow, shape[3]), np.float32)
        for i in range(oh):
            for j in range(ow):
                win = xp[:, i * s:i * s + k, j * s:j * s + k, :]
                # TF averages over the valid (unpadded) elements only.
                want[:, i, j] = win.max((1, 2)) if op == "MaxPool" else np.nanmean(win, (1, 2))
        self.assertClose(got, want, 1e-5)

    def test_max_pool_same_stride_1(self):
        self.pool("MaxPool", "SAME", 3, 1)

    def test_max_pool_same_stride_2_asymmetric(self):
        self.pool("MaxPool", "SAME", 3, 2, shape=(1, 8, 8, 2))

    def test_avg_pool_valid(self):
        self.pool("AvgPool", "VALID", 2, 2)

    def test_avg_pool_same_excludes_padding_from_the_mean(self):
        self.pool("AvgPool", "SAME", 3, 2, shape=(1, 8, 7, 2))


class FusedLeakyReluTest(ImporterTestCase):
    def test_leaky_relu_alpha_is_read_from_the_node(self):
        x = np.array([[-2.0, -0.5, 0.0, 3.0]], np.float32)
        g = GraphBuilder()
        g.placeholder("x", x.shape)
        g.node("y", "LeakyRelu", ["x"], alpha=a_f(0.1))
        g.output("y", "y:0")
        _, got, _ = self.run_graph(g, x)
        self.assertClose(got, [[-0.2, -0.05, 0.0, 3.0]])


if __name__ == "__main__":
    unittest.main()
