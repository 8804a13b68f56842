"""StridedSlice masks, Slice, GatherV2, GatherNd, TopKV2, layout-changing ops, Reshape batch."""
import unittest

import numpy as np

from tfjs_fixture import ImporterTestCase, GraphBuilder, a_b, a_i, a_ints, a_s, read_text

X = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)


def _identity_conv(g, src, channels):
    g.const("eye", np.eye(channels, dtype=np.float32).reshape(1, 1, channels, channels))
    return g.node("c", "Conv2D", [src, "eye"], strides=a_ints([1, 1, 1, 1]), padding=a_s("VALID"),
                  dilations=a_ints([1, 1, 1, 1]))


class StridedSliceTest(ImporterTestCase):
    def slice(self, begin, end, strides, through_conv=False, **masks):
        g = GraphBuilder()
        g.placeholder("x", X.shape)
        src = _identity_conv(g, "x", X.shape[3]) if through_conv else "x"
        g.const("b", np.array(begin, np.int32))
        g.const("e", np.array(end, np.int32))
        g.const("s", np.array(strides, np.int32))
        g.node("y", "StridedSlice", [src, "b", "e", "s"],
               **{k: a_i(v) for k, v in masks.items()})
        g.output("y", "y:0")
        return self.run_graph(g, X)[1]

    def test_begin_and_end_masks(self):
        got = self.slice([0, 1, 0], [0, 3, 0], [1, 1, 2], begin_mask=0b101, end_mask=0b101)
        self.assertClose(got, X[:, 1:3, ::2])

    def test_begin_and_end_masks_on_an_nchw_stored_tensor(self):
        got = self.slice([0, 1, 0, 1], [0, 3, 0, 4], [1, 1, 2, 2], through_conv=True,
                         begin_mask=0b101, end_mask=0b101)
        self.assertClose(got, X[:, 1:3, ::2, 1:4:2])

    def test_negative_begin_and_clamped_end(self):
        self.assertClose(self.slice([0, -2], [2, 100], [1, 1]), X[0:2, -2:100])

    def test_negative_stride_reverses(self):
        got = self.slice([-1, 0, 3], [0, 0, 0], [-1, 1, -2], end_mask=0b011, begin_mask=0b010)
        self.assertClose(got, X[::-1, :, 3::-2])

    def test_shrink_axis_drops_dims(self):
        got = self.slice([1, 0, 2], [2, 0, 3], [1, 1, 1], begin_mask=0b010, end_mask=0b010,
                         shrink_axis_mask=0b101)
        self.assertClose(got, X[1, :, 2])

    def test_new_axis_inserts_dims(self):
        got = self.slice([0, 0, 1], [1, 0, 3], [1, 1, 1], new_axis_mask=0b010)
        self.assertClose(got, X[0:1, None, 1:3])

    def test_ellipsis_covers_the_middle_dims(self):
        got = self.slice([0, 1], [0, 3], [1, 1], ellipsis_mask=0b01)
        self.assertClose(got, X[..., 1:3])

    def test_ellipsis_with_new_axis_and_shrink(self):
        got = self.slice([1, 0, 0, 2], [2, 0, 0, 3], [1, 1, 1, 1], ellipsis_mask=0b0010,
                         new_axis_mask=0b0100, shrink_axis_mask=0b1001)
        self.assertClose(got, X[1, ..., None, 2])

    def test_slice_op_with_minus_one_size(self):
        g = GraphBuilder()
        g.placeholder("x", X.shape)
        g.const("b", np.array([1, 0, 2, 1], np.int32))
        g.const("n", np.array([1, -1, 2, 3], np.int32))
        g.node("y", "Slice", ["x", "b", "n"])
        g.output("y", "y:0")
        self.assertClose(self.run_graph(g, X)[1], X[1:2, :, 2:4, 1:4])


class GatherTest(ImporterTestCase):
    def test_gather_v2_on_axis_1_with_2d_indices(self):
        g = GraphBuilder()
        g.placeholder("x", X.shape)
        g.const("i", np.array([[2, 0], [1, 1]], np.int32))
        g.const("axis", np.array(1, np.int32))
        g.node("y", "GatherV2", ["x", "i", "axis"], batch_dims=a_i(0))
        g.output("y", "y:0")
        self.assertClose(self.run_graph(g, X)[1], np.take(X, [[2, 0], [1, 1]], axis=1))

    def test_gather_nd_partial_index(self):
        idx = np.array([[[0, 2], [1, 1]], [[1, 0], [0, 0]]], np.int32)  # [2, 2, 2]
        g = GraphBuilder()
        g.placeholder("x", X.shape)
        g.const("i", idx)
        g.node("y", "GatherNd", ["x", "i"])
        g.output("y", "y:0")
        want = X[idx[..., 0], idx[..., 1]]  # -> [2, 2, 4, 5]
        self.assertClose(self.run_graph(g, X)[1], want)

    def test_gather_nd_with_computed_indices(self):
        # Indices from ArgMax on the input: the dynamic path (movenet's keypoint lookup).
        x = np.array([[[0.1, 0.9, 0.3], [0.8, 0.2, 0.5]]], np.float32)  # [1, 2, 3]
        g = GraphBuilder()
        g.placeholder("x", x.shape)
        g.const("axis", np.array(2, np.int32))
        g.node("am", "ArgMax", ["x", "axis"])
        g.const("rows", np.array([[0, 0], [0, 1]], np.int32))
        g.const("shape", np.array([2, 1], np.int32))
        g.node("col", "Reshape", ["am", "shape"])
        g.const("cat_axis", np.array(1, np.int32))
        g.node("idx", "ConcatV2", ["rows", "col", "cat_axis"])
        g.node("y", "GatherNd", ["x", "idx"])
        g.output("y", "y:0")
        self.assertClose(self.run_graph(g, x)[1], [0.9, 0.8])


class TopKTest(ImporterTestCase):
    def test_top_k_sorts_descending_and_breaks_ties_by_lower_index(self):
        x = np.array([[1, 3, 3, 2, 3, 0], [5, 4, 7, 1, 0, 6]], np.float32)
        g = GraphBuilder()
        g.placeholder("x", x.shape)
        g.const("k", np.array(4, np.int32))
        g.node("t", "TopKV2", ["x", "k"], sorted=a_b(True))
        g.output("values", "t:0")
        g.output("indices", "t:1")
        _, (values, indices), _ = self.run_graph(g, x)
        self.assertClose(values, [[3, 3, 3, 2], [7, 6, 5, 4]])
        np.testing.assert_array_equal(indices, [[1, 2, 4, 3], [2, 5, 0, 1]])
        self.assertEqual(indices.dtype, np.int32)

    def test_top_k_tie_at_the_cut_keeps_the_first_indices(self):
        x = np.array([[0, 2, 0, 0, 1, 0]], np.float32)
        g = GraphBuilder()
        g.placeholder("x", x.shape)
        g.const("k", np.array(4, np.int32))
        g.node("t", "TopKV2", ["x", "k"], sorted=a_b(True))
        g.output("indices", "t:1")
        np.testing.assert_array_equal(self.run_graph(g, x)[1], [[1, 4, 0, 2]])


class LayoutTest(ImporterTestCase):
    def test_concat_mean_and_transpose_after_conv_keep_tf_axes(self):
        rng = np.random.default_rng(5)
        x = rng.standard_normal((1, 4, 6, 3)).astype(np.float32)
        g = GraphBuilder()
        g.placeholder("x", x.shape)
        c = _identity_conv(g, "x", 3)
        g.const("axis3", np.array(3, np.int32))
        g.node("cat", "ConcatV2", [c, "x", "axis3"])  # NCHW-stored + NHWC input
        g.const("axes", np.array([1, 2], np.int32))
        g.node("mean", "Mean", ["cat", "axes"], keep_dims=a_b(False))
        g.const("perm", np.array([0, 2, 1, 3], np.int32))
        g.node("tr", "Transpose", ["cat", "perm"])
        g.const("pads", np.array([[0, 0], [1, 0], [0, 2], [0, 0]], np.int32))
        g.node("pad", "Pad", ["tr", "pads"])
        g.output("mean", "mean:0")
        g.output("pad", "pad:0")
        _, (mean, pad), _ = self.run_graph(g, x)
        cat = np.concatenate([x, x], 3)
        self.assertClose(mean, cat.mean((1, 2)))
        self.assertClose(pad, np.pad(cat.transpose(0, 2, 1, 3), [(0, 0), (1, 0), (0, 2), (0, 0)]))

    def test_reshape_with_leading_batch_makes_the_batch_dynamic(self):
        rng = np.random.default_rng(6)
        x = rng.standard_normal((1, 4, 4, 2)).astype(np.float32)
        g = GraphBuilder()
        g.placeholder("x", [-1, 4, 4, 2])
        c = _identity_conv(g, "x", 2)
        g.const("shape", np.array([-1, 32], np.int32))
        g.node("y", "Reshape", [c, "shape"])
        g.output("y", "y:0")
        summary, got, out = self.run_graph(g, x)
        self.assertTrue(summary["dynamic_batch"])
        self.assertClose(got, x.reshape(1, 32))
        config = read_text(f"{out}/config.pbtxt")
        self.assertIn("max_batch_size: 8", config)
        self.assertIn("shape: -1 shape: 32", config)

    def test_flattening_the_batch_keeps_max_batch_size_1(self):
        x = np.ones((1, 2, 3), np.float32)
        g = GraphBuilder()
        g.placeholder("x", [1, 2, 3])
        g.const("shape", np.array([6], np.int32))
        g.node("y", "Reshape", ["x", "shape"])
        g.output("y", "y:0")
        summary, _, out = self.run_graph(g, x)
        self.assertFalse(summary["dynamic_batch"])
        self.assertIn("max_batch_size: 1", read_text(f"{out}/config.pbtxt"))


if __name__ == "__main__":
    unittest.main()
