"""Shape, indexing and data-movement ops; control flow that folds to constants."""
import torch

from .builder import DEAD, TORCH_DTYPE, Const, Dyn, identity, invert, num
from .errors import ConversionError
from .graph import op


def _const(node, v, what):
    if not v.is_const:
        raise ConversionError(f"{node}: {what} must be known at import time")
    return v.ints()


def _norm_axis(axis, rank):
    return axis + rank if axis < 0 else axis


def _dropped_perm(perm, axes):
    """Layout of a tensor whose logical ``axes`` were removed."""
    kept = [p for p in perm if p not in axes]
    return tuple(p - sum(1 for a in axes if a < p) for p in kept)


@op("Shape")
def shape(b, node, ins):
    return Const(torch.tensor(ins[0].shape, dtype=torch.int32))


@op("Size")
def size(b, node, ins):
    n = 1
    for d in ins[0].shape:
        n *= d
    return Const(torch.tensor(n, dtype=torch.int32))


@op("Rank")
def rank(b, node, ins):
    return Const(torch.tensor(ins[0].rank, dtype=torch.int32))


@op("NoOp")
def no_op(b, node, ins):
    return []


@op("Reshape")
def reshape(b, node, ins):
    x, target = ins
    dims = _const(node, target, "the target shape")
    if x.is_const:
        return b.emit("{0}.reshape(%s)" % dims, [x])
    x = b.logical(x)
    total = x.sample.numel()
    known = 1
    for d in dims:
        if d != -1:
            known *= d
    resolved = [total // max(known, 1) if d == -1 else d for d in dims]
    src = x.shape
    if x.batch and resolved and src and resolved[0] == src[0] == 1:
        # Leading 1 == the batch: keep it dynamic.
        rest = ", ".join(str(d) for d in resolved[1:])
        expr = "{0}.reshape([{0}.size(0)%s])" % ((", " + rest) if rest else "")
        return b.emit(expr, [x], batch=True)
    return b.emit("{0}.reshape(%s)" % resolved, [x], batch=False)


@op("ExpandDims")
def expand_dims(b, node, ins):
    x, axis = ins
    a = _const(node, axis, "the axis")[0]
    a = a + x.rank + 1 if a < 0 else a
    return b.emit("{0}.unsqueeze(%d)" % a, [b.logical(x)], batch=(a != 0 and not x.is_const
                                                                   and x.batch))


@op("Squeeze")
def squeeze(b, node, ins):
    x = ins[0]
    axes = node.attr("squeeze_dims", None) or node.attr("axis", None) or []
    shape_ = x.shape
    axes = sorted({_norm_axis(a, x.rank) for a in axes}) or [i for i, d in enumerate(shape_)
                                                             if d == 1]
    for a in axes:
        if shape_[a] != 1:
            raise ConversionError(f"{node}: cannot squeeze axis {a} of shape {shape_}")
    if x.is_const:
        return Const(x.t.reshape([d for i, d in enumerate(shape_) if i not in axes]))
    pinv = invert(x.perm)
    stored = sorted((pinv[a] for a in axes), reverse=True)
    expr = "{0}" + "".join(".squeeze(%d)" % s for s in stored)
    return b.emit(expr, [x], perm=_dropped_perm(x.perm, axes), batch=x.batch and 0 not in axes)


@op("Transpose")
def transpose(b, node, ins):
    x, perm = ins
    t = _const(node, perm, "the permutation")
    if x.is_const:
        return Const(x.t.permute(t).contiguous())
    # Free: only the recorded layout changes (stored = logical.permute(perm)).
    tinv = invert(t)
    new_perm = tuple(tinv[p] for p in x.perm)
    return Dyn(x.name, x.sample, new_perm, batch=x.batch and t[0] == 0)


def _common_perm(values, rank):
    for v in values:
        if not v.is_const and v.rank == rank and not v.is_identity():
            return v.perm
    return identity(rank)


@op("ConcatV2", "Concat")
def concat(b, node, ins):
    if node.op == "Concat":
        axis_v, tensors = ins[0], ins[1:]
    else:
        tensors, axis_v = ins[:-1], ins[-1]
    rank_ = tensors[0].rank
    axis = _norm_axis(_const(node, axis_v, "the axis")[0], rank_)
    perm = _common_perm(tensors, rank_)
    args = [b.stored_const(t, rank_, perm) if t.is_const else b.to_perm(t, perm) for t in tensors]
    if len(args) == 1:
        return args[0]
    dim = invert(perm)[axis]
    refs = ", ".join("{%d}" % i for i in range(len(args)))
    return b.emit("torch.cat([%s], %d)" % (refs, dim), args, perm=perm,
                  batch=None if axis != 0 else False)


@op("Pack")
def pack(b, node, ins):
    axis = _norm_axis(int(node.attr("axis", 0)), ins[0].rank + 1)
    shape0 = ins[0].shape
    args = []
    for v in ins:
        v = b.logical(v)
        if v.shape != shape0:
            v = b.emit("{0}.reshape(%s)" % shape0, [v])
        args.append(v)
    refs = ", ".join("{%d}" % i for i in range(len(args)))
    return b.emit("torch.stack([%s], %d)" % (refs, axis), args,
                  batch=None if axis != 0 else False)


@op("Unpack")
def unpack(b, node, ins):
    x = b.logical(ins[0])
    axis = _norm_axis(int(node.attr("axis", 0)), x.rank)
    n = x.shape[axis]
    return b.emit("torch.unbind({0}, %d)" % axis, [x], count=n,
                  batch=None if axis != 0 else False)


def _split(b, node, x, axis, sizes):
    axis = _norm_axis(axis, x.rank)
    dim = x.shape[axis]
    if -1 in sizes:
        rest = dim - sum(s for s in sizes if s != -1)
        sizes = [rest if s == -1 else s for s in sizes]
    if sum(sizes) != dim:
        raise ConversionError(f"{node}: split sizes {sizes} do not add up to {dim}")
    if x.is_const:
        return [Const(t.clone()) for t in torch.split(x.t, sizes, axis)]
    dim_stored = invert(x.perm)[axis]
    return b.emit("torch.split({0}, %s, %d)" % (sizes, dim_stored), [x], count=len(sizes),
                  perm=[x.perm] * len(sizes), batch=None if axis != 0 else False)


@op("Split")
def split(b, node, ins):
    axis_v, x = ins
    n = int(node.attr("num_split", 1))
    axis = _norm_axis(_const(node, axis_v, "the axis")[0], x.rank)
    return _split(b, node, x, axis, [x.shape[axis] // n] * n)


@op("SplitV")
def split_v(b, node, ins):
    x, sizes, axis_v = ins
    return _split(b, node, x, _const(node, axis_v, "the axis")[0],
                  _const(node, sizes, "the sizes"))


def _slice_tokens(node, shape_, begin, end, strides, masks):
    """Canonical TF strided slice -> (tokens over output, per-input index lists).

    Tokens: ('new',), ('int', dim, k), ('range', dim, [indices]).
    """
    begin_m, end_m, ell_m, new_m, shrink_m = masks
    rank_ = len(shape_)
    n = len(begin)
    tokens = []
    d = 0
    has_ellipsis = False
    for i in range(n):
        if ell_m >> i & 1:
            if has_ellipsis:
                continue
            has_ellipsis = True
            rest = sum(1 for j in range(i + 1, n) if not (new_m >> j & 1))
            while d < rank_ - rest:
                tokens.append(("range", d, list(range(shape_[d]))))
                d += 1
        elif new_m >> i & 1:
            tokens.append(("new",))
        elif d >= rank_:
            raise ConversionError(f"{node}: slice spec longer than the rank {rank_}")
        elif shrink_m >> i & 1:
            k = begin[i] + shape_[d] if begin[i] < 0 else begin[i]
            if not 0 <= k < shape_[d]:
                raise ConversionError(f"{node}: index {begin[i]} out of range for dim {shape_[d]}")
            tokens.append(("int", d, k))
            d += 1
        else:
            if strides[i] == 0:
                raise ConversionError(f"{node}: stride 0")
            s = slice(None if begin_m >> i & 1 else begin[i],
                      None if end_m >> i & 1 else end[i], strides[i])
            tokens.append(("range", d, list(range(*s.indices(shape_[d])))))
            d += 1
    while d < rank_:
        tokens.append(("range", d, list(range(shape_[d]))))
        d += 1
    return tokens


def _range_code(idx, dim):
    """Basic-slice text for an index list, or None when it needs index_select."""
    if idx == list(range(dim)):
        return ":"
    if not idx:
        return "0:0"
    step = idx[1] - idx[0] if len(idx) > 1 else 1
    if step > 0 and idx == list(range(idx[0], idx[-1] + 1, step)):
        return f"{idx[0]}:{idx[-1] + 1}" + (f":{step}" if step != 1 else "")
    return None


def apply_slice(b, node, x, tokens):
    shape_ = x.shape
    simple = all(t[0] == "range" for t in tokens)
    batch = x.batch and bool(tokens) and tokens[0][0] == "range" and tokens[0][2] == list(
        range(shape_[0]))
    if x.is_const:
        t = x.t
        out = []
        for tok in tokens:
            if tok[0] == "new":
                out.append(None)
            elif tok[0] == "int":
                out.append(tok[2])
            else:
                out.append(torch.tensor(tok[2], dtype=torch.int64))
        # Apply one dim at a time so tensor indices do not combine into advanced indexing.
        res, dim = t, 0
        for o in out:
            if o is None:
                res, dim = res.unsqueeze(dim), dim + 1
            elif isinstance(o, int):
                res = res.select(dim, o)
            else:
                res, dim = res.index_select(dim, o), dim + 1
        return Const(res.contiguous())
    if simple and not x.is_identity():
        perm = x.perm
        by_logical = {t[1]: t for t in tokens}
        stored_tokens = [by_logical[p] for p in perm]
        dims = [x.sample.shape[i] for i in range(x.rank)]
        return _emit_slice(b, x, [("range", i, t[2]) for i, t in enumerate(stored_tokens)],
                           dims, perm, batch)
    x = b.logical(x)
    new_rank = sum(1 for t in tokens if t[0] != "int")
    return _emit_slice(b, x, tokens, shape_, identity(new_rank), batch)


def _emit_slice(b, x, tokens, dims, perm, batch):
    args = [x]
    expr = "{0}"
    parts = []
    # index_select needs the position of the dim in the tensor at that point: do them first.
    for tok in tokens:
        if tok[0] == "range" and _range_code(tok[2], dims[tok[1]]) is None:
            args.append(Const(torch.tensor(tok[2], dtype=torch.int64)))
            expr += ".index_select(%d, {%d})" % (tok[1], len(args) - 1)
    for tok in tokens:
        if tok[0] == "new":
            parts.append("None")
        elif tok[0] == "int":
            parts.append(str(tok[2]))
        else:
            parts.append(_range_code(tok[2], dims[tok[1]]) or ":")
    if any(p != ":" for p in parts):
        expr += "[%s]" % ", ".join(parts)
    if expr == "{0}":
        return x if perm == x.perm else Dyn(x.name, x.sample, perm, x.batch)
    return b.emit(expr, args, perm=perm, batch=batch)


@op("StridedSlice")
def strided_slice(b, node, ins):
    x, begin, end, strides = ins
    masks = [int(node.attr(m, 0)) for m in ("begin_mask", "end_mask", "ellipsis_mask",
                                            "new_axis_mask", "shrink_axis_mask")]
    tokens = _slice_tokens(node, x.shape, _const(node, begin, "begin"), _const(node, end, "end"),
                           _const(node, strides, "strides"), masks)
    return apply_slice(b, node, x, tokens)


@op("Slice")
def slice_op(b, node, ins):
    x, begin, size_ = ins
    begin_l, size_l = _const(node, begin, "begin"), _const(node, size_, "size")
    shape_ = x.shape
    tokens = []
    for d, (s, n) in enumerate(zip(begin_l, size_l)):
        stop = shape_[d] if n == -1 else s + n
        tokens.append(("range", d, list(range(s, stop))))
    for d in range(len(begin_l), x.rank):
        tokens.append(("range", d, list(range(shape_[d]))))
    return apply_slice(b, node, x, tokens)


@op("GatherV2", "Gather")
def gather(b, node, ins):
    x, idx = ins[0], ins[1]
    axis = _const(node, ins[2], "the axis")[0] if len(ins) > 2 else 0
    if int(node.attr("batch_dims", 0) or 0) != 0:
        raise ConversionError(f"{node}: batch_dims != 0 is not supported")
    axis = _norm_axis(axis, x.rank)
    return b.emit("rt.gather({0}, {1}, %d)" % axis, [b.logical(x), b.logical(idx)],
                  batch=None if axis != 0 else False)


@op("GatherNd")
def gather_nd(b, node, ins):
    return b.emit("rt.gather_nd({0}, {1})", [b.logical(ins[0]), b.logical(ins[1])], batch=False)


@op("Tile")
def tile(b, node, ins):
    x, reps = ins
    r = _const(node, reps, "the multiples")
    return b.emit("{0}.repeat(%s)" % r, [b.logical(x)], batch=None if r[0] == 1 else False)


@op("Fill")
def fill(b, node, ins):
    dims, value = ins
    d = _const(node, dims, "the shape")
    return b.emit("torch.zeros(%s, dtype={0}.dtype) + {0}" % d, [value], batch=False)


@op("Range")
def range_op(b, node, ins):
    if not all(v.is_const for v in ins):
        raise ConversionError(f"{node}: start/limit/delta must be known at import time")
    dtype = TORCH_DTYPE.get(node.attr("Tidx", "DT_INT32"), torch.int32)
    vals = [v.t.item() for v in ins]
    return Const(torch.arange(vals[0], vals[1], vals[2]).to(dtype))


@op("BroadcastTo")
def broadcast_to(b, node, ins):
    x, dims = ins
    d = _const(node, dims, "the shape")
    x = b.logical(x)
    while x.rank < len(d):
        x = b.emit("{0}.unsqueeze(0)", [x])
    return b.emit("{0}.expand(%s).contiguous()" % d, [x])


@op("Pad", "PadV2")
def pad(b, node, ins):
    x, pads = ins[0], ins[1]
    p = _const(node, pads, "the paddings")
    value = 0.0
    if len(ins) > 2:
        if not ins[2].is_const:
            raise ConversionError(f"{node}: the pad value must be constant")
        value = ins[2].t.item()
    elif node.attr("constant_value") is not None:
        value = float(node.attr("constant_value"))
    pairs = [(p[2 * i], p[2 * i + 1]) for i in range(len(p) // 2)]
    if x.is_const:
        flat = []
        for before, after in reversed(pairs):
            flat += [before, after]
        return Const(torch.nn.functional.pad(x.t, flat, "constant", value))
    perm = x.perm
    flat = []
    for i in reversed(range(x.rank)):
        flat += list(pairs[perm[i]])
    while flat and flat[-2:] == [0, 0]:
        flat = flat[:-2]
    if not flat:
        return x
    if not x.dtype.is_floating_point:
        value = int(value)
    return b.emit("F.pad({0}, %s, 'constant', %s)" % (flat, num(value)), [x], perm=perm,
                  batch=None if pairs[0] == (0, 0) else False)


@op("TopKV2")
def top_k(b, node, ins):
    x, k = ins
    kk = _const(node, k, "k")[0]
    return b.emit("rt.top_k({0}, %d)" % kk, [b.logical(x)], count=2)


@op("SparseToDense")
def sparse_to_dense(b, node, ins):
    idx, dims, vals, default = ins
    d = _const(node, dims, "the output shape")
    return b.emit("rt.sparse_to_dense({0}, %s, {1}, {2})" % d,
                  [b.logical(idx), b.logical(vals), default], batch=False)


@op("Switch")
def switch(b, node, ins):
    data, pred = ins
    if not pred.is_const:
        raise ConversionError(f"{node}: its condition depends on the input; only conditions "
                              "known at import time are supported")
    return [DEAD, data] if bool(pred.t.reshape(-1)[0]) else [data, DEAD]


@op("Merge")
def merge(b, node, ins):
    for i, v in enumerate(ins):
        if v is not DEAD:
            return [v, Const(torch.tensor(i, dtype=torch.int32))]
    return [DEAD, DEAD]


@op("SpaceToBatchND")
def space_to_batch(b, node, ins):
    x, block, pads = ins
    bh, bw = _const(node, block, "the block shape")
    p = _const(node, pads, "the paddings")
    x = b.logical(x)
    n, h, w, c = x.shape
    hp, wp = h + p[0] + p[1], w + p[2] + p[3]
    expr = ("F.pad({0}, [0, 0, %d, %d, %d, %d]).reshape(%s).permute(2, 4, 0, 1, 3, 5)"
            ".reshape(%s)" % (p[2], p[3], p[0], p[1], [n, hp // bh, bh, wp // bw, bw, c],
                              [bh * bw * n, hp // bh, wp // bw, c]))
    return b.emit(expr, [x], batch=False)


@op("BatchToSpaceND")
def batch_to_space(b, node, ins):
    x, block, crops = ins
    bh, bw = _const(node, block, "the block shape")
    cr = _const(node, crops, "the crops")
    x = b.logical(x)
    nb, h, w, c = x.shape
    n = nb // (bh * bw)
    expr = ("{0}.reshape(%s).permute(2, 3, 0, 4, 1, 5).reshape(%s)[:, %d:%d, %d:%d, :]"
            % ([bh, bw, n, h, w, c], [n, h * bh, w * bw, c], cr[0], h * bh - cr[1], cr[2],
               w * bw - cr[3]))
    return b.emit(expr, [x], batch=False)

