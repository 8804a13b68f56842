"""Convolutions (plain, fused, depthwise, transposed) and pooling, computed in NCHW."""
import torch

from .builder import NCHW, Const, identity, num
from .errors import ConversionError
from .graph import op

_ACTIVATIONS = {
    "Relu": "torch.relu({})",
    "Relu6": "torch.clamp({}, 0.0, 6.0)",
    "Elu": "F.elu({})",
    "Sigmoid": "torch.sigmoid({})",
    "Tanh": "torch.tanh({})",
}

_CLAMP = {None: ("None", "None"), "torch.relu({})": ("0.0", "None"),
          "torch.clamp({}, 0.0, 6.0)": ("0.0", "6.0")}
# The conv output is a fresh tensor: activations may overwrite it.
_INPLACE = {"torch.relu({})": "torch.relu_({})", "torch.clamp({}, 0.0, 6.0)": "torch.clamp_({}, 0.0, 6.0)",
            "torch.sigmoid({})": "torch.sigmoid_({})", "torch.tanh({})": "torch.tanh_({})"}


def same_pads(size, k, stride, dilation):
    """TF SAME padding of one spatial dim: (before, after)."""
    eff = (k - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + eff - size, 0)
    return total // 2, total - total // 2


def resolve_pads(node, padding, hw, kernel, strides, dilations, explicit=None):
    """(top, bottom, left, right) for SAME/VALID/EXPLICIT padding."""
    if padding == "VALID":
        return (0, 0, 0, 0)
    if padding == "SAME":
        pads = []
        for size, k, s, d in zip(hw, kernel, strides, dilations):
            if s == 1:
                total = (k - 1) * d  # independent of the size: works for dynamic sizes too
                pads.append((total // 2, total - total // 2))
            else:
                pads.append(same_pads(size, k, s, d))
        return (pads[0][0], pads[0][1], pads[1][0], pads[1][1])
    if padding == "EXPLICIT":
        e = list(explicit or [])
        if len(e) != 8:
            raise ConversionError(f"{node}: EXPLICIT padding needs 8 explicit_paddings, got {e}")
        return (e[2], e[3], e[4], e[5])  # NHWC order: [[0,0],[t,b],[l,r],[0,0]]
    raise ConversionError(f"{node}: padding {padding!r} is not supported")


def _nchw_input(b, node, x):
    fmt = node.attr("data_format", "NHWC") or "NHWC"
    if x.rank != 4:
        raise ConversionError(f"{node}: expects a 4-D input, got rank {x.rank}")
    if fmt == "NHWC":
        return b.to_perm(x, NCHW), NCHW
    if fmt == "NCHW":
        return b.logical(x), identity(4)
    raise ConversionError(f"{node}: data_format {fmt} is not supported")


def _spatial(node, attr, default):
    vals = node.attr(attr, default) or default
    fmt = node.attr("data_format", "NHWC") or "NHWC"
    if len(vals) == 4:
        return [vals[1], vals[2]] if fmt == "NHWC" else [vals[2], vals[3]]
    if len(vals) == 2:
        return list(vals)
    raise ConversionError(f"{node}: attribute {attr}={vals} is not understood")


def _pad_input(b, x, pads, perm, value=0.0):
    top, bottom, left, right = pads
    if not any(pads):
        return x
    return b.emit("F.pad({0}, %s, 'constant', %s)" % ([left, right, top, bottom], num(value)),
                  [x], perm=perm)


def _shift_kernel(weight, pads, dilations):
    """Turns asymmetric padding into symmetric padding plus zero taps on the short side.

    Padding both sides by max(before, after) and adding (after - before) / dilation zero taps
    in front (or behind) reads the same input positions and gives the same output size, and
    saves F.pad's copy of the whole input. Returns (weight, [pad_h, pad_w]) or None.
    """
    top, bottom, left, right = pads
    w = weight.t
    padding = []
    for axis, (before, after), d in ((2, (top, bottom), dilations[0]),
                                     (3, (left, right), dilations[1])):
        diff = after - before
        if diff % d:
            return None
        taps = abs(diff) // d
        if taps:
            shape = list(w.shape)
            shape[axis] = taps
            zeros = torch.zeros(shape, dtype=w.dtype)
            w = torch.cat([zeros, w] if diff > 0 else [w, zeros], axis)
        padding.append(max(before, after))
    return Const(w.contiguous()), padding


def conv_core(b, node, x, weight, bias, strides, dilations, pads, groups, act=None, perm=NCHW):
    """Emits conv2d(+bias)(+activation, in place) on an NCHW input.

    Asymmetric TF padding: depthwise convs get a shifted kernel (cheaper than copying the
    input), others an explicit F.pad.
    """
    top, bottom, left, right = pads
    if top == bottom and left == right:
        padding = [top, left]
    else:
        shifted = _shift_kernel(weight, pads, dilations) if groups > 1 else None
        if shifted is not None:
            weight, padding = shifted
        else:
            x = _pad_input(b, x, pads, perm)
            padding = [0, 0]
    args = [x, weight] + ([bias] if bias is not None else [])
    bias_ref = "{2}" if bias is not None else "None"
    backend = b.options.get("conv_backend", "auto")
    if backend == "auto":
        backend = "mkldnn" if torch.backends.mkldnn.is_available() else "torch"
    if backend == "xnnpack" and act in _CLAMP:
        lo, hi = _CLAMP[act]
        expr = ("torch.ops.prepacked.conv2d_clamp_run({0}, torch.ops.prepacked."
                "conv2d_clamp_prepack({1}, %s, %s, %s, %s, %d, %s, %s))"
                % (bias_ref, list(strides), padding, list(dilations), groups, lo, hi))
        return b.emit(expr, args, perm=perm, fresh=True)
    if backend == "mkldnn":
        # Called directly: torch.conv2d sends 1x1 convs at one thread to a slow im2col path.
        expr = "torch.mkldnn_convolution({0}, {1}, %s, %s, %s, %s, %d)" % (
            bias_ref, padding, list(strides), list(dilations), groups)
    else:
        expr = "torch.conv2d({0}, {1}, %s, %s, %s, %s, %d)" % (bias_ref, list(strides), padding,
                                                                list(dilations), groups)
    if act is not None:
        expr = _INPLACE.get(act, act).format(expr)
    return b.emit(expr, args, perm=perm, fresh=True)


def _kernel(node, filt):
    if not filt.is_const:
        raise ConversionError(f"{node}: filters computed at run time are not supported")
    if filt.rank != 4:
        raise ConversionError(f"{node}: filter must be 4-D, got {filt.shape}")
    return filt.t.to(torch.float32)


def _fused(node, args):
    """(bias Const or None, activation template or None) from fused_ops and extra inputs."""
    fused = node.attr("fused_ops", []) or []
    bias, act = None, None
    rest = list(args)
    for f in fused:
        if f == "BiasAdd":
            if not rest or not rest[0].is_const:
                raise ConversionError(f"{node}: BiasAdd needs a constant bias")
            bias = rest.pop(0)
        elif f in _ACTIVATIONS:
            act = _ACTIVATIONS[f]
        elif f == "LeakyRelu":
            act = "F.leaky_relu({}, %r)" % float(node.attr("leakyrelu_alpha", 0.2))
        elif f == "Prelu":
            if not rest or not rest[0].is_const:
                raise ConversionError(f"{node}: Prelu needs a constant alpha")
            alpha = rest.pop(0).t.reshape(-1).to(torch.float32)
            act = ("prelu", alpha)
        else:
            raise ConversionError(f"{node}: fused op {f!r} is not supported")
    return bias, act


def _apply_fused(b, node, x, w, bias, act, strides, dilations, pads, groups, perm):
    if isinstance(act, tuple):  # Prelu: per-channel alpha, applied as its own op
        y = conv_core(b, node, x, w, bias, strides, dilations, pads, groups, None, perm)
        alpha = act[1]
        if alpha.numel() == 1:
            alpha = alpha.expand(w.t.shape[0]).clone()
        return b.emit("torch.where({0} > 0, {0}, {0} * {1})", [y, Const(alpha.reshape(1, -1, 1, 1))],
                      perm=perm)
    return conv_core(b, node, x, w, bias, strides, dilations, pads, groups, act, perm)


@op("Conv2D", "_FusedConv2D")
def conv2d(b, node, ins):
    x, perm = _nchw_input(b, node, ins[0])
    k = _kernel(node, ins[1])  # [kh, kw, in, out]
    strides = _spatial(node, "strides", [1, 1, 1, 1])
    dilations = _spatial(node, "dilations", [1, 1, 1, 1])
    in_ch = x.sample.shape[1]
    if in_ch % k.shape[2]:
        raise ConversionError(f"{node}: {in_ch} input channels vs filter {list(k.shape)}")
    groups = in_ch // k.shape[2]
    hw = list(x.sample.shape[2:])
    pads = resolve_pads(node, node.attr("padding"), hw, k.shape[:2], strides, dilations,
                        node.attr("explicit_paddings"))
    w = Const(k.permute(3, 2, 0, 1).contiguous())
    bias, act = _fused(node, ins[2:]) if node.op == "_FusedConv2D" else (None, None)
    if bias is not None:
        bias = Const(bias.t.reshape(-1).to(torch.float32))
    return _apply_fused(b, node, x, w, bias, act, strides, dilations, pads, groups, perm)


@op("DepthwiseConv2dNative", "FusedDepthwiseConv2dNative")
def depthwise(b, node, ins):
    x, perm = _nchw_input(b, node, ins[0])
    k = _kernel(node, ins[1])  # [kh, kw, in, multiplier]
    kh, kw, cin, mult = k.shape
    strides = _spatial(node, "strides", [1, 1, 1, 1])
    dilations = _spatial(node, "dilations", [1, 1, 1, 1])
    hw = list(x.sample.shape[2:])
    pads = resolve_pads(node, node.attr("padding"), hw, [kh, kw], strides, dilations,
                        node.attr("explicit_paddings"))
    w = Const(k.permute(2, 3, 0, 1).reshape(cin * mult, 1, kh, kw).contiguous())
    bias, act = _fused(node, ins[2:]) if node.op.startswith("Fused") else (None, None)
    if bias is not None:
        bias = Const(bias.t.reshape(-1).to(torch.float32))
    return _apply_fused(b, node, x, w, bias, act, strides, dilations, pads, cin, perm)


@op("Conv2DBackpropInput")
def conv_transpose(b, node, ins):
    sizes, filt, x = ins
    if not sizes.is_const:
        raise ConversionError(f"{node}: output size must be constant")
    x, perm = _nchw_input(b, node, x)
    k = _kernel(node, filt)  # [kh, kw, out_channels, in_channels]
    strides = _spatial(node, "strides", [1, 1, 1, 1])
    dilations = _spatial(node, "dilations", [1, 1, 1, 1])
    out_size = sizes.ints()
    oh, ow = (out_size[1], out_size[2]) if perm == NCHW else (out_size[2], out_size[3])
    top, _, left, _ = resolve_pads(node, node.attr("padding"), [oh, ow], k.shape[:2], strides,
                                   dilations, node.attr("explicit_paddings"))
    in_h, in_w = x.sample.shape[2:]
    full = [(n - 1) * s + (kk - 1) * d + 1
            for n, s, kk, d in zip([in_h, in_w], strides, k.shape[:2], dilations)]
    extra = [max(0, p + o - f) for p, o, f in zip([top, left], [oh, ow], full)]
    w = Const(k.permute(3, 2, 0, 1).contiguous())
    expr = ("torch.conv_transpose2d({0}, {1}, None, %s, [0, 0], %s, 1, %s)"
            "[:, :, %d:%d, %d:%d]" % (list(strides), extra, list(dilations), top, top + oh, left,
                                      left + ow))
    return b.emit(expr, [x, w], perm=perm)


def _pool_params(node, x):
    ksize = _spatial(node, "ksize", None)
    strides = _spatial(node, "strides", [1, 1, 1, 1])
    hw = list(x.sample.shape[2:])
    pads = resolve_pads(node, node.attr("padding"), hw, ksize, strides, [1, 1],
                        node.attr("explicit_paddings"))
    return ksize, strides, pads


@op("MaxPool")
def max_pool(b, node, ins):
    x, perm = _nchw_input(b, node, ins[0])
    ksize, strides, pads = _pool_params(node, x)
    top, bottom, left, right = pads
    if top == bottom and left == right and 2 * top <= ksize[0] and 2 * left <= ksize[1]:
        padding = [top, left]
    else:
        x = _pad_input(b, x, pads, perm, float("-inf"))
        padding = [0, 0]
    return b.emit("F.max_pool2d({0}, %s, %s, %s)" % (ksize, strides, padding), [x], perm=perm)


@op("AvgPool")
def avg_pool(b, node, ins):
    x, perm = _nchw_input(b, node, ins[0])
    ksize, strides, pads = _pool_params(node, x)
    top, bottom, left, right = pads
    if not any(pads):
        return b.emit("F.avg_pool2d({0}, %s, %s)" % (ksize, strides), [x], perm=perm)
    if top == bottom and left == right and 2 * top <= ksize[0] and 2 * left <= ksize[1]:
        return b.emit("F.avg_pool2d({0}, %s, %s, %s, False, False)"
                      % (ksize, strides, [top, left]), [x], perm=perm)
    # TF averages over the valid elements only: sum over the padded window / valid count.
    h, w = x.sample.shape[2:]
    ones = torch.nn.functional.pad(torch.ones(1, 1, h, w), [left, right, top, bottom])
    count = torch.nn.functional.avg_pool2d(ones, ksize, strides) * (ksize[0] * ksize[1])
    scale = Const((ksize[0] * ksize[1]) / count)
    xp = _pad_input(b, x, pads, perm)
    return b.emit("F.avg_pool2d({0}, %s, %s) * {1}" % (ksize, strides), [xp, scale], perm=perm)
