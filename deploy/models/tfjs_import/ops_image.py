"""Image ops: bilinear and nearest resize (all TF pixel-centre modes), depth/space shuffles."""
import math

import torch

from .builder import NCHW, Const
from .errors import ConversionError
from .graph import op


def _ratio(in_size, out_size, align_corners):
    if align_corners and out_size > 1:
        return (in_size - 1) / (out_size - 1)
    return in_size / out_size


def bilinear_matrix(in_size, out_size, align_corners, half_pixel):
    """[out, in] interpolation weights exactly as TF/TF.js compute them (float64 -> float32)."""
    ratio = _ratio(in_size, out_size, align_corners)
    m = torch.zeros(out_size, in_size, dtype=torch.float64)
    for d in range(out_size):
        src = (d + 0.5) * ratio - 0.5 if half_pixel else d * ratio
        lower = max(0, math.floor(src))
        upper = min(in_size - 1, math.ceil(src))
        frac = src - lower
        m[d, lower] += 1.0 - frac
        m[d, upper] += frac
    return m.to(torch.float32)


def nearest_index(in_size, out_size, align_corners, half_pixel):
    ratio = _ratio(in_size, out_size, align_corners)
    idx = []
    for d in range(out_size):
        src = ratio * (d + 0.5 if half_pixel else d)
        # JS Math.round rounds halves up; Python round() would round them to even.
        n = math.floor(src + 0.5) if align_corners else math.floor(src)
        n = min(in_size - 1, n)
        idx.append(max(0, n) if half_pixel else n)
    return torch.tensor(idx, dtype=torch.int64)


def _resize_args(b, node, ins):
    x, size = ins
    if not size.is_const:
        raise ConversionError(f"{node}: the output size must be constant")
    if x.rank != 4:
        raise ConversionError(f"{node}: expects NHWC images, got rank {x.rank}")
    oh, ow = size.ints()
    align = bool(node.attr("align_corners", False))
    half = bool(node.attr("half_pixel_centers", False))
    if align and half:
        raise ConversionError(f"{node}: align_corners and half_pixel_centers are exclusive")
    return b.to_perm(x, NCHW), oh, ow, align, half


@op("ResizeBilinear")
def resize_bilinear(b, node, ins):
    x, oh, ow, align, half = _resize_args(b, node, ins)
    if not x.dtype.is_floating_point:
        x = b.emit("{0}.to(torch.float32)", [x], perm=NCHW)
    ih, iw = x.sample.shape[2:]
    if half or align:  # torch's bilinear kernel computes these two modes like TF does
        mode = "True" if align else "False"
        return b.emit("F.interpolate({0}, size=[%d, %d], mode='bilinear', align_corners=%s)"
                      % (oh, ow, mode), [x], perm=NCHW)
    # Legacy TF mode (src = dst * in/out) has no torch equivalent: two small matmuls.
    my = Const(bilinear_matrix(ih, oh, align, half))
    mxt = Const(bilinear_matrix(iw, ow, align, half).t().contiguous())
    return b.emit("torch.matmul(torch.matmul({1}, {0}), {2})", [x, my, mxt], perm=NCHW)


@op("ResizeNearestNeighbor")
def resize_nearest(b, node, ins):
    x, oh, ow, align, half = _resize_args(b, node, ins)
    ih, iw = x.sample.shape[2:]
    iy = Const(nearest_index(ih, oh, align, half))
    ix = Const(nearest_index(iw, ow, align, half))
    return b.emit("{0}.index_select(2, {1}).index_select(3, {2})", [x, iy, ix], perm=NCHW)


def upsample_nearest(b, x, factors):
    """Keras UpSampling2D(interpolation='nearest') on an NHWC value; works for any size.

    Done on the NHWC view (free for a channels_last tensor) so the one broadcast copy moves
    whole pixels; repeat_interleave (index_select) or an NCHW expand are far slower.
    """
    x = b.logical(x)
    fy, fx = factors
    return b.emit("{0}[:, :, None, :, None, :].expand(-1, -1, %d, -1, %d, -1).reshape("
                  "{0}.size(0), {0}.size(1) * %d, {0}.size(2) * %d, {0}.size(3))"
                  % (fy, fx, fy, fx), [x], fresh=True)


def _block(node):
    if (node.attr("data_format", "NHWC") or "NHWC") != "NHWC":
        raise ConversionError(f"{node}: only NHWC is supported")
    return int(node.attr("block_size"))


@op("DepthToSpace")
def depth_to_space(b, node, ins):
    x = b.to_perm(ins[0], NCHW)
    return b.emit("rt.depth_to_space_nchw({0}, %d)" % _block(node), [x], perm=NCHW)


@op("SpaceToDepth")
def space_to_depth(b, node, ins):
    x = b.to_perm(ins[0], NCHW)
    return b.emit("rt.space_to_depth_nchw({0}, %d)" % _block(node), [x], perm=NCHW)


def upsample_conv(b, x, factors, kernel, bias, act):
    """Nearest upsampling by ``factors`` followed by a SAME, stride-1 conv, as one conv.

    Output pixel (f*y + i, f*x + j) of conv(upsample(x)) reads low-res pixels at offsets
    floor((i + t - pad) / f) for kernel tap t, so each of the f*f phases is a small conv of
    the low-res input. All phases run as one conv with f*f*C_out channels (zero padding maps
    to zero padding), then a pixel shuffle interleaves them. Same arithmetic, but C_out = 3
    at the high resolution (ESRGAN's last conv) is the slowest shape for mkldnn, while one
    wide conv at the low resolution is its fastest.
    kernel: TF [kh, kw, cin, cout] tensor; bias: [cout] tensor or None; act: template or None.
    """
    fy, fx = factors
    kh, kw, cin, cout = kernel.shape
    offs = []
    for f, k in ((fy, kh), (fx, kw)):
        pad = (k - 1) // 2
        offs.append([[math.floor((i + t - pad) / f) for t in range(k)] for i in range(f)])
    lo = [min(min(o) for o in offs[0]), min(min(o) for o in offs[1])]
    hi = [max(max(o) for o in offs[0]), max(max(o) for o in offs[1])]
    w = torch.zeros(hi[0] - lo[0] + 1, hi[1] - lo[1] + 1, cin, fy * fx * cout, dtype=torch.float64)
    k64 = kernel.to(torch.float64)
    for i in range(fy):
        for j in range(fx):
            phase = (i * fx + j) * cout
            for ty in range(kh):
                for tx in range(kw):
                    a, c = offs[0][i][ty] - lo[0], offs[1][j][tx] - lo[1]
                    w[a, c, :, phase:phase + cout] += k64[ty, tx]
    from .ops_conv import conv_core

    weight = Const(w.to(torch.float32).permute(3, 2, 0, 1).contiguous())
    b_rep = Const(bias.to(torch.float32).repeat(fy * fx)) if bias is not None else None
    pads = (-lo[0], hi[0], -lo[1], hi[1])
    x = b.to_perm(x, NCHW)
    y = conv_core(b, None, x, weight, b_rep, [1, 1], [1, 1], pads, 1, act)
    y = b.logical(y)  # NHWC view of the channels_last result: free
    return b.emit("{0}.reshape({0}.size(0), {0}.size(1), {0}.size(2), %d, %d, %d)"
                  ".permute(0, 1, 3, 2, 4, 5).reshape({0}.size(0), {0}.size(1) * %d, "
                  "{0}.size(2) * %d, %d)" % (fy, fx, cout, fy, fx, cout), [y], fresh=True)
