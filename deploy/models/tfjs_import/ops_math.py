"""Elementwise math, comparisons, casts, reductions and matmul."""
import torch

from .builder import TORCH_DTYPE, Const, dtype_code, identity, invert
from .errors import ConversionError
from .graph import op


def _expand_rank(b, v, rank):
    """Logical unsqueeze of a Dyn to ``rank`` (leading 1s, as broadcasting does)."""
    v = b.logical(v)
    while v.rank < rank:
        v = b.emit("{0}.unsqueeze(0)", [v], batch=False)
    return v


def elementwise(b, expr, args, inplace=None):
    """Broadcasting op over args in a common stored layout; Consts are permuted to match.

    ``inplace``: [(template, arg index)] variants that overwrite an argument (see emit()).
    """
    if all(a.is_const for a in args):
        return b.emit(expr, args)
    rank = max(a.rank for a in args)
    target = identity(rank)
    for a in args:
        if not a.is_const and a.rank == rank and not a.is_identity():
            target = a.perm
            break
    ready = []
    for a in args:
        if a.is_const:
            ready.append(a if a.rank == 0 else b.stored_const(a, rank, target))
        else:
            if a.rank < rank:
                a = _expand_rank(b, a, rank)
            ready.append(b.to_perm(a, target))
    return b.emit(expr, ready, perm=target, fresh=True, inplace=inplace)


_BINARY = {
    "Add": "{0} + {1}",
    "AddV2": "{0} + {1}",
    "BiasAdd": "{0} + {1}",
    "Sub": "{0} - {1}",
    "Mul": "{0} * {1}",
    "Maximum": "torch.maximum({0}, {1})",
    "Minimum": "torch.minimum({0}, {1})",
    "SquaredDifference": "torch.square({0} - {1})",
    "Pow": "torch.pow({0}, {1})",
    "FloorMod": "torch.remainder({0}, {1})",
    "FloorDiv": "torch.div({0}, {1}, rounding_mode='floor')",
    "Equal": "torch.eq({0}, {1})",
    "NotEqual": "torch.ne({0}, {1})",
    "Greater": "torch.gt({0}, {1})",
    "GreaterEqual": "torch.ge({0}, {1})",
    "Less": "torch.lt({0}, {1})",
    "LessEqual": "torch.le({0}, {1})",
    "LogicalAnd": "torch.logical_and({0}, {1})",
    "LogicalOr": "torch.logical_or({0}, {1})",
}


_ADD = [("{0}.add_({1})", 0), ("{1}.add_({0})", 1)]
_BINARY_INPLACE = {
    "Add": _ADD, "AddV2": _ADD, "BiasAdd": _ADD,
    "Sub": [("{0}.sub_({1})", 0)],
    "Mul": [("{0}.mul_({1})", 0), ("{1}.mul_({0})", 1)],
}


@op(*_BINARY)
def binary(b, node, ins):
    if node.op == "BiasAdd" and node.attr("data_format", "NHWC") not in ("NHWC", ""):
        raise ConversionError(f"{node}: BiasAdd with data_format {node.attr('data_format')}")
    return elementwise(b, _BINARY[node.op], ins[:2], _BINARY_INPLACE.get(node.op))


@op("RealDiv", "Div", "DivNoNan")
def divide(b, node, ins):
    x, y = ins
    is_int = not x.dtype.is_floating_point
    if node.op == "Div" and is_int:  # tfjs: int32 / int32 divides with floor
        return elementwise(b, "torch.div({0}, {1}, rounding_mode='floor')", ins)
    if node.op == "DivNoNan":
        return elementwise(b, "torch.where({1} == 0, torch.zeros_like({0}), {0} / {1})", ins)
    return elementwise(b, "{0} / {1}", ins, [("{0}.div_({1})", 0)])


@op("AddN")
def add_n(b, node, ins):
    acc = ins[0]
    for v in ins[1:]:
        acc = elementwise(b, "{0} + {1}", [acc, v], _ADD)
    return acc


_UNARY = {
    "Abs": "torch.abs({0})",
    "Exp": "torch.exp({0})",
    "Log": "torch.log({0})",
    "Log1p": "torch.log1p({0})",
    "Neg": "torch.neg({0})",
    "Sqrt": "torch.sqrt({0})",
    "Rsqrt": "torch.rsqrt({0})",
    "Square": "torch.square({0})",
    "Reciprocal": "torch.reciprocal({0})",
    "Sigmoid": "torch.sigmoid({0})",
    "Tanh": "torch.tanh({0})",
    "Relu": "torch.relu({0})",
    "Relu6": "torch.clamp({0}, 0.0, 6.0)",
    "Elu": "F.elu({0})",
    "Selu": "torch.selu({0})",
    "Softplus": "F.softplus({0})",
    "Floor": "torch.floor({0})",
    "Ceil": "torch.ceil({0})",
    "Round": "torch.round({0})",
    "Sign": "torch.sign({0})",
    "Sin": "torch.sin({0})",
    "Cos": "torch.cos({0})",
    "Erf": "torch.erf({0})",
    "LogicalNot": "torch.logical_not({0})",
    "IsNan": "torch.isnan({0})",
    "ZerosLike": "torch.zeros_like({0})",
    "OnesLike": "torch.ones_like({0})",
}


_UNARY_INPLACE = {
    "Relu": "torch.relu_({0})",
    "Relu6": "torch.clamp_({0}, 0.0, 6.0)",
    "Sigmoid": "torch.sigmoid_({0})",
    "Tanh": "torch.tanh_({0})",
    "Exp": "torch.exp_({0})",
    "Sqrt": "torch.sqrt_({0})",
}


@op(*_UNARY)
def unary(b, node, ins):
    inplace = _UNARY_INPLACE.get(node.op)
    return elementwise(b, _UNARY[node.op], ins[:1], [(inplace, 0)] if inplace else None)


@op("LeakyRelu")
def leaky_relu(b, node, ins):
    alpha = float(node.attr("alpha", 0.2))
    return elementwise(b, "F.leaky_relu({0}, %r)" % alpha, ins[:1])


@op("Prelu")
def prelu(b, node, ins):
    return elementwise(b, "torch.where({0} > 0, {0}, {0} * {1})", ins[:2])


@op("Cast")
def cast(b, node, ins):
    dtype = TORCH_DTYPE.get(node.attr("DstT"))
    if dtype is None:
        raise ConversionError(f"{node}: cast to {node.attr('DstT')} is not supported")
    return elementwise(b, "{0}.to(%s)" % dtype_code(dtype), ins[:1])


@op("Identity", "Snapshot", "StopGradient", "PreventGradient", "EnsureShape")
def identity_op(b, node, ins):
    return ins[0]


@op("Select", "SelectV2")
def select(b, node, ins):
    cond, x, y = ins
    if node.op == "Select" and cond.rank == 1 and x.rank > 1:
        cond = b.emit("{0}.reshape(%s)" % ([-1] + [1] * (x.rank - 1)), [b.logical(cond)])
    return elementwise(b, "torch.where({0}, {1}, {2})", [cond, x, y])


def _axes(node, v, axis_value):
    if not axis_value.is_const:
        raise ConversionError(f"{node}: the axis must be a constant")
    axes = axis_value.ints()
    return sorted({a + v.rank if a < 0 else a for a in axes})


def reduce(b, v, axes, keep, expr):
    """Reduces logical ``axes`` of v; ``expr`` gets {0} and a stored ``dims`` list."""
    if v.is_const or v.is_identity():
        if not axes:
            return v
        return b.emit(expr.format("{0}", dims=axes, keep=keep), [v])
    pinv = invert(v.perm)
    stored = sorted(pinv[a] for a in axes)
    if keep:
        perm = v.perm
    else:
        kept = [p for p in v.perm if p not in axes]
        perm = tuple(p - sum(1 for a in axes if a < p) for p in kept)
    if not axes:
        return v
    return b.emit(expr.format("{0}", dims=stored, keep=keep), [v], perm=perm,
                  batch=v.batch and 0 not in axes)


_REDUCE = {
    "Mean": "torch.mean({0}, dim={dims}, keepdim={keep})",
    "Sum": "torch.sum({0}, dim={dims}, keepdim={keep})",
    "Max": "torch.amax({0}, dim={dims}, keepdim={keep})",
    "Min": "torch.amin({0}, dim={dims}, keepdim={keep})",
    "All": "torch.amin({0}.to(torch.int32), dim={dims}, keepdim={keep}).to(torch.bool)",
    "Any": "torch.amax({0}.to(torch.int32), dim={dims}, keepdim={keep}).to(torch.bool)",
}


@op(*_REDUCE)
def reduction(b, node, ins):
    x, axis = ins
    axes = _axes(node, x, axis)
    keep = bool(node.attr("keep_dims", False))
    if node.op == "Mean" and not x.dtype.is_floating_point:
        raise ConversionError(f"{node}: Mean of integer tensors is not supported")
    return reduce(b, x, axes, keep, _REDUCE[node.op])


@op("Prod")
def prod(b, node, ins):
    x, axis = ins
    axes = _axes(node, x, axis)
    keep = bool(node.attr("keep_dims", False))
    x = b.logical(x)
    for a in sorted(axes, reverse=True):
        x = b.emit("torch.prod({0}, dim=%d, keepdim=%s)" % (a, keep), [x])
    return x


@op("ArgMax", "ArgMin")
def arg_reduce(b, node, ins):
    x, axis = ins
    axes = _axes(node, x, axis)
    if len(axes) != 1:
        raise ConversionError(f"{node}: needs exactly one axis")
    fn = "argmax" if node.op == "ArgMax" else "argmin"
    out = TORCH_DTYPE.get(node.attr("output_type", "DT_INT64"), torch.int64)
    if out == torch.int64:
        out = torch.int32  # TF.js has no int64; indices are int32 there
    expr = "torch.%s({0}, dim={dims[0]}, keepdim=False).to(%s)" % (fn, dtype_code(out))
    return reduce(b, x, axes, False, expr)


@op("Softmax", "LogSoftmax")
def softmax(b, node, ins):
    x = ins[0]
    fn = "torch.softmax" if node.op == "Softmax" else "torch.log_softmax"
    if x.is_const:
        return b.emit(fn + "({0}, -1)", [x])
    dim = invert(x.perm)[x.rank - 1]
    return b.emit(fn + "({0}, %d)" % dim, [x], perm=x.perm)


@op("MatMul", "BatchMatMul", "BatchMatMulV2")
def matmul(b, node, ins):
    x, y = (b.logical(v) for v in ins[:2])
    ta = node.attr("transpose_a", node.attr("adj_x", False))
    tb = node.attr("transpose_b", node.attr("adj_y", False))
    ex = "{0}.transpose(-1, -2)" if ta else "{0}"
    ey = "{1}.transpose(-1, -2)" if tb else "{1}"
    if y.is_const and tb:
        y, ey = Const(y.t.transpose(-1, -2).contiguous()), "{1}"
    return b.emit(f"torch.matmul({ex}, {ey})", [x, y])
