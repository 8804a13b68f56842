"""ResizeBilinear / ResizeNearestNeighbor in every TF pixel-centre mode, DepthToSpace."""
import unittest

import numpy as np

from tfjs_fixture import ImporterTestCase, GraphBuilder, a_b, a_i, a_ints, a_s

# in[a, b] = 2a + b; bilinear output is 2 * ry[i] + rx[j] with 1-D source positions r.
_IN = np.array([[0.0, 1.0], [2.0, 3.0]], np.float32).reshape(1, 2, 2, 1)


def _grid(r):
    r = np.array(r, np.float32)
    return (2 * r[:, None] + r[None, :]).reshape(1, 4, 4, 1)


class ResizeTest(ImporterTestCase):
    def resize(self, op, x, size, align, half, through_conv=False):
        g = GraphBuilder()
        g.placeholder("x", x.shape)
        src = "x"
        if through_conv:  # 1x1 identity conv: the resize then sees an NCHW-stored tensor
            g.const("eye", np.eye(x.shape[3], dtype=np.float32).reshape(1, 1, x.shape[3], -1))
            src = g.node("c", "Conv2D", ["x", "eye"], strides=a_ints([1, 1, 1, 1]),
                         padding=a_s("VALID"), dilations=a_ints([1, 1, 1, 1]))
        g.const("size", np.array(size, np.int32))
        g.node("y", op, [src, "size"], align_corners=a_b(align), half_pixel_centers=a_b(half))
        g.output("y", "y:0")
        _, got, _ = self.run_graph(g, x)
        return got

    def test_bilinear_half_pixel_centers_2x2_to_4x4(self):
        # src = (dst + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25 -> clamped weights
        want = np.array([[0.0, 0.25, 0.75, 1.0],
                         [0.5, 0.75, 1.25, 1.5],
                         [1.5, 1.75, 2.25, 2.5],
                         [2.0, 2.25, 2.75, 3.0]], np.float32).reshape(1, 4, 4, 1)
        self.assertClose(self.resize("ResizeBilinear", _IN, [4, 4], False, True), want)

    def test_bilinear_legacy_mode_2x2_to_4x4(self):
        # half_pixel_centers=false: src = dst / 2 = 0, 0.5, 1, 1.5 (last clamps to row 1)
        want = np.array([[0.0, 0.5, 1.0, 1.0],
                         [1.0, 1.5, 2.0, 2.0],
                         [2.0, 2.5, 3.0, 3.0],
                         [2.0, 2.5, 3.0, 3.0]], np.float32).reshape(1, 4, 4, 1)
        self.assertClose(self.resize("ResizeBilinear", _IN, [4, 4], False, False), want)

    def test_bilinear_align_corners_2x2_to_4x4(self):
        got = self.resize("ResizeBilinear", _IN, [4, 4], True, False)
        self.assertClose(got, _grid([0, 1 / 3, 2 / 3, 1]))

    def test_bilinear_modes_agree_after_a_conv_in_nchw(self):
        rng = np.random.default_rng(0)
        x = rng.standard_normal((1, 5, 7, 3)).astype(np.float32)
        for align, half in ((False, True), (False, False), (True, False)):
            plain = self.resize("ResizeBilinear", x, [9, 4], align, half)
            conv = self.resize("ResizeBilinear", x, [9, 4], align, half, through_conv=True)
            self.assertClose(conv, plain)

    def test_nearest_modes(self):
        x = np.arange(3, dtype=np.float32).reshape(1, 1, 3, 1)
        # legacy: floor(dst * 3/5); half pixel: floor((dst + .5) * 3/5); align: round(dst * 2/4)
        cases = {(False, False): [0, 0, 1, 1, 2], (False, True): [0, 0, 1, 2, 2],
                 (True, False): [0, 1, 1, 2, 2]}
        for (align, half), idx in cases.items():
            got = self.resize("ResizeNearestNeighbor", x, [1, 5], align, half)
            self.assertClose(got, np.array(idx, np.float32).reshape(1, 1, 5, 1))


class DepthToSpaceTest(ImporterTestCase):
    def test_depth_to_space_uses_tf_channel_order(self):
        x = np.arange(1 * 2 * 3 * 8, dtype=np.float32).reshape(1, 2, 3, 8)
        g = GraphBuilder()
        g.placeholder("x", x.shape)
        g.node("y", "DepthToSpace", ["x"], block_size=a_i(2), data_format=a_s("NHWC"))
        g.output("y", "y:0")
        _, got, _ = self.run_graph(g, x)
        # TF: out[h*2+i, w*2+j, c] = in[h, w, (i*2 + j)*C + c] with C = 2
        want = x.reshape(1, 2, 3, 2, 2, 2).transpose(0, 1, 3, 2, 4, 5).reshape(1, 4, 6, 2)
        self.assertClose(got, want)


if __name__ == "__main__":
    unittest.main()
