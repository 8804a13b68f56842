"""Values, constant folding and TorchScript code generation.

Every TF tensor becomes a ``Const`` (known at import time: weights, shapes, anything computed
only from them) or a ``Dyn`` (depends on the model input). Op handlers describe their work as a
Python/TorchScript expression template; ``Builder.emit`` evaluates it right away when all inputs
are constant (constant folding) and otherwise appends a line to the generated ``forward`` and
evaluates it once on sample data, so every ``Dyn`` carries a concrete sample tensor: shapes and
dtypes come from running the op, not from per-op shape rules.

Layout: a ``Dyn`` stores its tensor permuted, ``stored = logical.permute(perm)``. 4-D activations
are kept NCHW (``perm == (0, 3, 1, 2)`` for a logical NHWC tensor); op handlers either understand
the permutation (elementwise, conv, pooling, concat, reductions, slices, ...) or ask for the
logical layout with ``Builder.logical``.
"""
import importlib.util
import os
import sys
import tempfile

import torch
import torch.nn.functional as F

from . import runtime
from .errors import ConversionError

NCHW = (0, 3, 1, 2)

TORCH_DTYPE = {
    "DT_FLOAT": torch.float32,
    "DT_INT32": torch.int32,
    "DT_INT64": torch.int64,
    "DT_BOOL": torch.bool,
    "DT_HALF": torch.float16,
    "DT_DOUBLE": torch.float64,
    "DT_UINT8": torch.uint8,
    "float32": torch.float32,
    "int32": torch.int32,
    "bool": torch.bool,
}

_DTYPE_CODE = {
    torch.float32: "torch.float32",
    torch.int32: "torch.int32",
    torch.int64: "torch.int64",
    torch.bool: "torch.bool",
    torch.float16: "torch.float16",
    torch.float64: "torch.float64",
    torch.uint8: "torch.uint8",
}


def dtype_code(dtype):
    return _DTYPE_CODE[dtype]


def num(value):
    """Python/TorchScript literal of a number, including infinities."""
    value = float(value) if isinstance(value, float) else value
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return "float('%s')" % value
    return repr(value)


def identity(rank):
    return tuple(range(rank))


def invert(perm):
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return tuple(inv)


class Value:
    """Base of Const and Dyn."""

    is_const = False
    batch = False  # dim 0 is the batch (only ever True for a Dyn)


class Const(Value):
    """A tensor known at import time, in logical (TF) layout."""

    is_const = True

    def __init__(self, tensor):
        if not isinstance(tensor, torch.Tensor):
            tensor = torch.tensor(tensor)
        self.t = tensor

    @property
    def shape(self):
        return list(self.t.shape)

    @property
    def rank(self):
        return self.t.dim()

    @property
    def dtype(self):
        return self.t.dtype

    def ints(self):
        return [int(v) for v in self.t.reshape(-1).tolist()]


class Dyn(Value):
    """A tensor computed in forward(): a variable name, its sample value and its layout."""

    def __init__(self, name, sample, perm=None, batch=False, fresh=False):
        self.name = name
        self.fresh = fresh  # a new tensor (not a view), so in-place ops on it are safe
        self.sample = sample
        self.perm = tuple(perm) if perm is not None else identity(sample.dim())
        if len(self.perm) != sample.dim():
            raise ConversionError(f"internal: layout {self.perm} for rank {sample.dim()}")
        self.batch = batch
        self.views = {}

    @property
    def rank(self):
        return self.sample.dim()

    @property
    def dtype(self):
        return self.sample.dtype

    @property
    def shape(self):
        """Logical (TF) shape of the sample."""
        logical = [0] * self.rank
        for i, p in enumerate(self.perm):
            logical[p] = int(self.sample.shape[i])
        return logical

    def is_identity(self):
        return self.perm == identity(self.rank)


class _Dead:
    """Output of the untaken side of a Switch."""


DEAD = _Dead()


class Builder:
    """Collects constants and forward() lines; one per imported model. Not thread-safe."""

    def __init__(self, options=None):
        self.options = dict(options or {})
        self.lines = []
        self.buffers = {}
        self._const_names = {}
        self._inplace = {}  # line index -> (variable overwritten, in-place line)
        self._counter = 0
        self.ns = {"torch": torch, "F": F, "rt": runtime}
        self.input_names = []
        self.input_annotations = []

    # ---- naming -------------------------------------------------------------------------
    def fresh(self, prefix="v"):
        self._counter += 1
        return f"{prefix}{self._counter}"

    def const_ref(self, value):
        """Registers a constant tensor as a buffer; returns its expression (self.kN)."""
        t = value.t if isinstance(value, Const) else value
        key = id(t)
        if key in self._const_names:
            return self._const_names[key][0]
        name = self.fresh("k")
        self.buffers[name] = t.contiguous()
        ref = f"self.{name}"
        self._const_names[key] = (ref, t)  # keep t alive so id() stays unique
        return ref

    # ---- emission -----------------------------------------------------------------------
    def add_input(self, name, sample, perm=None, batch=True, annotation="torch.Tensor"):
        var = f"x{len(self.input_names)}"
        self.input_names.append(var)
        self.input_annotations.append(annotation)
        return Dyn(var, sample, perm, batch)

    def emit(self, expr, args, perm=None, batch=None, count=None, fresh=False, inplace=None):
        """Evaluates or emits ``expr`` (placeholders {0}, {1}, ... for args).

        Returns a Const when every arg is a Const, else a Dyn with ``perm`` (identity when
        None). With ``count`` the expression yields a sequence and a list of values returns.
        ``fresh``: the result is a new tensor. ``inplace``: [(template, i)] computing the same
        into args[i]; the first is used whose args[i] is fresh, of the result's shape, strides
        and dtype and read nowhere else (decided in source()).
        """
        for a in args:
            if not isinstance(a, Value):
                raise ConversionError(f"internal: emit() got {type(a)} for {expr}")
        local_names = [f"_a{i}" for i in range(len(args))]
        env = {}
        for n, a in zip(local_names, args):
            env[n] = a.t if a.is_const else a.sample
        try:
            result = eval(expr.format(*local_names), self.ns, env)  # noqa: S307 (own templates)
        except Exception as e:  # shown with the op that failed by the caller
            raise ConversionError(f"evaluating {expr.format(*local_names)}: {e}") from e
        if all(a.is_const for a in args):
            if count is not None:
                return [Const(r) for r in list(result)[:count]]
            return Const(result)
        refs = [self.const_ref(a) if a.is_const else a.name for a in args]
        var = self.fresh()
        line = f"{var} = {expr.format(*refs)}"
        for template, i in (inplace or []) if count is None else []:
            a = args[i]
            if (not a.is_const and a.fresh and isinstance(result, torch.Tensor)
                    and a.sample.shape == result.shape and a.sample.dtype == result.dtype
                    and a.sample.stride() == result.stride()):
                self._inplace.setdefault(len(self.lines), []).append(
                    (a.name, f"{var} = {template.format(*refs)}"))
        self.lines.append(line)
        if batch is None:
            batch = any(a.batch for a in args if not a.is_const)
        if count is not None:
            seq = list(result)
            return [Dyn(f"{var}[{i}]", seq[i], perm[i] if isinstance(perm, list) else None,
                        batch) for i in range(count)]
        return Dyn(var, result, perm, batch, fresh=fresh)

    def to_perm(self, v, perm):
        """The same logical tensor stored with layout ``perm`` (Consts stay logical)."""
        if v.is_const:
            return v
        perm = tuple(perm)
        if v.perm == perm:
            return v
        if perm in v.views:
            return v.views[perm]
        pinv = invert(v.perm)
        q = [pinv[d] for d in perm]
        # No copy: an NHWC-contiguous tensor viewed as NCHW is channels_last, which conv,
        # pooling and elementwise kernels keep and mkldnn reads without reordering.
        out = self.emit("{0}.permute(%s)" % (q,), [v], perm=perm, batch=v.batch)
        v.views[perm] = out
        return out

    def logical(self, v):
        if v.is_const:
            return v
        return self.to_perm(v, identity(v.rank))

    def stored_const(self, c, rank, perm):
        """A constant broadcast to ``rank`` (leading 1s) and permuted like a Dyn with ``perm``."""
        t = c.t
        if t.dim() > rank:
            raise ConversionError(f"internal: constant of rank {t.dim()} into rank {rank}")
        t = t.reshape([1] * (rank - t.dim()) + list(t.shape))
        if perm != identity(rank):
            t = t.permute(perm).contiguous()
        return Const(t)

    # ---- module generation --------------------------------------------------------------
    def _final_lines(self, ret_refs):
        """Lines with in-place variants where the overwritten variable has no other reader."""
        if not self._inplace:
            return list(self.lines)
        import re

        uses = {}
        for text in self.lines + ret_refs:
            rhs = text.split(" = ", 1)[-1]
            for name in re.findall(r"\bv\d+\b", rhs):
                uses[name] = uses.get(name, 0) + 1
        out = []
        for i, line in enumerate(self.lines):
            for name, text in self._inplace.get(i, []):
                if uses.get(name, 0) == 1:
                    line = text
                    break
            out.append(line)
        return out

    def source(self, outputs, class_name="ImportedModel"):
        ret_refs = []
        for o in outputs:
            ret_refs.append(self.const_ref(o) + ".clone()" if o.is_const else o.name)
        params = ", ".join(f"{n}: {a}" for n, a in zip(self.input_names, self.input_annotations))
        if len(outputs) == 1:
            ret_type, ret = "torch.Tensor", ret_refs[0]
        else:
            ret_type = "Tuple[%s]" % ", ".join(["torch.Tensor"] * len(outputs))
            ret = "(" + ", ".join(ret_refs) + ")"
        body = "\n".join("        " + line for line in self._final_lines(ret_refs))
        return (
            "# Generated by tfjs_import; do not edit.\n"
            "from typing import List, Tuple\n\n"
            "import torch\n"
            "import torch.nn.functional as F\n\n"
            "from tfjs_import import runtime as rt\n\n\n"
            f"class {class_name}(torch.nn.Module):\n"
            "    def __init__(self, buffers):\n"
            "        super().__init__()\n"
            "        for name, tensor in buffers.items():\n"
            "            self.register_buffer(name, tensor)\n\n"
            f"    def forward(self, {params}) -> {ret_type}:\n"
            f"{body}\n"
            f"        return {ret}\n")

    def build_module(self, outputs, keep_source=None):
        """Generates, scripts and freezes the module. Returns (scripted, source text)."""
        src = self.source(outputs)
        tmp = tempfile.mkdtemp(prefix="tfjs_import_")
        path = os.path.join(tmp, "generated_model.py")
        with open(path, "w") as f:
            f.write(src)
        if keep_source:
            with open(keep_source, "w") as f:
                f.write(src)
        mod_name = f"tfjs_import_generated_{os.getpid()}_{self._counter}_{id(self)}"
        spec = importlib.util.spec_from_file_location(mod_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        spec.loader.exec_module(module)
        eager = module.ImportedModel(self.buffers).eval()
        scripted = torch.jit.script(eager)
        scripted.eval()
        frozen = torch.jit.freeze(scripted)
        return frozen, src
