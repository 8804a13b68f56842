"""TF.js graph models: node parsing, op registry and the import loop."""
import base64
import sys

import torch

from .builder import DEAD, TORCH_DTYPE, Builder, Const
from .errors import ConversionError

OPS = {}


def op(*names):
    """Registers an op handler ``fn(b, node, inputs) -> Value | list[Value]``."""

    def register(fn):
        for n in names:
            OPS[n] = fn
        return fn

    return register


def _decode_tensor(t):
    dtype = TORCH_DTYPE.get(t.get("dtype", "DT_FLOAT"))
    if dtype is None:
        raise ConversionError(f"constant of dtype {t.get('dtype')} is not supported")
    dims = [int(d.get("size", 0)) for d in t.get("tensorShape", {}).get("dim", [])]
    if "tensorContent" in t:
        import numpy as np

        np_dtype = {torch.float32: np.float32, torch.int32: np.int32, torch.bool: np.bool_,
                    torch.int64: np.int64, torch.float64: np.float64}[dtype]
        raw = np.frombuffer(base64.b64decode(t["tensorContent"]), dtype=np_dtype).copy()
        return torch.from_numpy(raw.reshape(dims))
    for key in ("floatVal", "intVal", "int64Val", "boolVal", "doubleVal"):
        if key in t:
            vals = t[key]
            if key in ("intVal", "int64Val"):
                vals = [int(v) for v in vals]
            out = torch.tensor(vals, dtype=dtype)
            size = 1
            for d in dims:
                size *= d
            return out.expand(size).reshape(dims).clone() if out.numel() == 1 else out.reshape(dims)
    return torch.zeros(dims, dtype=dtype)


def decode_attr(a):
    if "s" in a:
        return base64.b64decode(a["s"]).decode("utf-8", "replace")
    if "list" in a:
        lst = a["list"]
        if "s" in lst:
            return [base64.b64decode(s).decode("utf-8", "replace") for s in lst["s"]]
        if "i" in lst:
            return [int(i) for i in lst["i"]]
        if "f" in lst:
            return [float(f) for f in lst["f"]]
        if "type" in lst:
            return list(lst["type"])
        return []
    if "i" in a:
        return int(a["i"])
    if "f" in a:
        return float(a["f"])
    if "b" in a:
        return bool(a["b"])
    if "type" in a:
        return a["type"]
    if "tensor" in a:
        return _decode_tensor(a["tensor"])
    if "shape" in a:
        return [int(d.get("size", -1)) for d in a["shape"].get("dim", [])]
    if "func" in a:
        return a["func"]
    return None


class Node:
    """One graph node: name, op, data inputs (``name`` or ``name:k``) and decoded attrs."""

    def __init__(self, raw):
        self.name = raw["name"]
        self.op = raw["op"]
        self.inputs = [i for i in raw.get("input", []) if not i.startswith("^")]
        self.raw_attr = raw.get("attr", {})
        self._attr = {}
        self.overrides = {}  # attrs set by graph rewrites

    def attr(self, name, default=None):
        if name in self.overrides:
            return self.overrides[name]
        if name not in self.raw_attr:
            return default
        if name not in self._attr:
            self._attr[name] = decode_attr(self.raw_attr[name])
        return self._attr[name]

    def __str__(self):
        return f"{self.op} node '{self.name}'"


def split_input(name):
    if ":" in name:
        node, idx = name.rsplit(":", 1)
        if idx.isdigit():
            return node, int(idx)
    return name, 0


def _strip(tensor_name):
    return split_input(tensor_name)[0]


class GraphImport:
    """Result of import: the builder, the output values and the I/O specs."""

    def __init__(self, builder, inputs, outputs, op_counts):
        self.builder = builder
        self.inputs = inputs  # [(name, dtype, shape, Dyn)]
        self.outputs = outputs  # [(name, Value)]
        self.op_counts = op_counts


def _signature_io(model):
    topo = model["modelTopology"]
    sig = model.get("signature") or topo.get("signature") or {}
    nodes = {n["name"]: n for n in topo["node"]}
    ins, outs = [], []
    for key, spec in (sig.get("inputs") or {}).items():
        dims = [int(d.get("size", -1)) for d in spec.get("tensorShape", {}).get("dim", [])]
        ins.append((key.split(":")[0], _strip(spec["name"]), spec.get("dtype", "DT_FLOAT"), dims))
    for key, spec in (sig.get("outputs") or {}).items():
        outs.append((key.split(":")[0], spec["name"]))
    if not ins:
        for n in topo["node"]:
            if n["op"] == "Placeholder":
                node = Node(n)
                ins.append((n["name"], n["name"], node.attr("dtype", "DT_FLOAT"),
                            node.attr("shape", [])))
    if not outs:
        consumed = {_strip(i) for n in topo["node"] for i in n.get("input", [])}
        outs = [(n["name"], n["name"]) for n in topo["node"] if n["name"] not in consumed
                and n["op"] not in ("Const", "NoOp", "Placeholder")]
    return nodes, ins, outs


def sample_input(dtype, shape, generator):
    """Sample data for the import-time run: image-like values in the dtype's usual range."""
    if dtype == torch.int32:
        return torch.randint(0, 256, shape, generator=generator, dtype=torch.int32)
    if dtype == torch.float32:
        return torch.rand(shape, generator=generator)
    raise ConversionError(f"model input dtype {dtype} is not supported")


def import_graph(model, weights, dynamic_size=64, seed=0, options=None):
    """Builds the forward() of a TF.js graph model. ``weights``: name -> torch tensor."""
    from . import ops_array, ops_conv, ops_image, ops_math  # noqa: F401 (register ops)

    raw_nodes, sig_inputs, sig_outputs = _signature_io(model)
    nodes = {name: Node(raw) for name, raw in raw_nodes.items()}
    b = Builder(options)
    gen = torch.Generator().manual_seed(seed)
    values = {}
    input_specs = []
    for key, node_name, dtype_name, dims in sig_inputs:
        dtype = TORCH_DTYPE.get(dtype_name)
        if node_name not in nodes:
            raise ConversionError(f"signature input {key} names missing node {node_name}")
        shape = [1 if i == 0 and d < 0 else (dynamic_size if d < 0 else d)
                 for i, d in enumerate(dims)]
        sample = sample_input(dtype, shape, gen)
        annotation = "torch.Tensor"
        v = b.add_input(key, sample, batch=True, annotation=annotation)
        values[node_name] = [v]
        input_specs.append((key, dtype, dims, v))

    outputs_needed = [split_input(t)[0] for _, t in sig_outputs]
    op_counts = {}  # of the graph as converted (before fusing), as in model.json
    for name in _topological(nodes, outputs_needed, dict(values)) + list(values):
        op_counts[nodes[name].op] = op_counts.get(nodes[name].op, 0) + 1
    fuse_conv_bias(nodes, weights, set(outputs_needed))
    for name in _topological(nodes, outputs_needed, values):
        values[name] = _run_node(b, nodes[name], values, weights)

    outputs = []
    for key, tensor_name in sig_outputs:
        node_name, idx = split_input(tensor_name)
        v = values[node_name][idx]
        if v is DEAD:
            raise ConversionError(f"output {key} is on an untaken Switch branch")
        outputs.append((key, b.logical(v)))
    return GraphImport(b, input_specs, outputs, op_counts)


_FUSED = {"Conv2D": "_FusedConv2D", "DepthwiseConv2dNative": "FusedDepthwiseConv2dNative"}


def fuse_conv_bias(nodes, weights, keep):
    """Rewrites conv -> Add(per-channel constant) [-> Relu/Relu6] into one fused conv node.

    The same rewrite tfjs-converter does for most models; graphs converted without it (selfie,
    meet) then get bias and activation inside the conv call. Nodes in ``keep`` (outputs) and
    nodes read by more than one consumer are left alone.
    """
    consumers = {}
    for n in nodes.values():
        for inp in n.inputs:
            consumers.setdefault(split_input(inp)[0], []).append(n)

    def only_consumer(name, ops):
        users = consumers.get(name, [])
        if name in keep or len(users) != 1 or users[0].op not in ops:
            return None
        return users[0]

    for conv in list(nodes.values()):
        if conv.op not in _FUSED or len(conv.inputs) != 2:
            continue
        add = only_consumer(conv.name, ("Add", "AddV2", "BiasAdd"))
        filt = weights.get(split_input(conv.inputs[1])[0])
        if add is None or filt is None or filt.dim() != 4 or len(add.inputs) != 2:
            continue
        out_ch = filt.shape[3] * (filt.shape[2] if conv.op == "DepthwiseConv2dNative" else 1)
        other = [i for i in add.inputs if split_input(i)[0] != conv.name]
        if len(other) != 1:
            continue
        bias = weights.get(split_input(other[0])[0])
        if (bias is None or nodes[split_input(other[0])[0]].op != "Const"
                or list(bias.shape) not in ([out_ch], [1, 1, 1, out_ch])):
            continue
        fused = ["BiasAdd"]
        act = only_consumer(add.name, ("Relu", "Relu6"))
        if act is not None:
            fused.append(act.op)
            act.op, act.inputs = "Identity", [conv.name]
        conv.op = _FUSED[conv.op]
        conv.inputs = conv.inputs + other
        conv.overrides["fused_ops"] = fused
        add.op, add.inputs = "Identity", [conv.name]


def _topological(nodes, targets, done):
    order, state = [], {}
    for t in targets:
        if t not in nodes:
            raise ConversionError(f"output node '{t}' is not in the graph")
        stack = [(t, False)]
        while stack:
            name, expanded = stack.pop()
            if name in done or state.get(name) == 2:
                continue
            if expanded:
                state[name] = 2
                order.append(name)
                continue
            if state.get(name) == 1:
                continue
            state[name] = 1
            stack.append((name, True))
            for inp in nodes[name].inputs:
                src = split_input(inp)[0]
                if src not in nodes:
                    raise ConversionError(f"{nodes[name]} reads missing node '{src}'")
                if src not in done and state.get(src) != 2:
                    if state.get(src) == 1:
                        raise ConversionError(f"graph has a cycle through '{src}' "
                                              "(loops are not supported)")
                    stack.append((src, False))
    return order


def _trace(node, ins, outs):
    """--trace: one line per node with shapes (and small constant values)."""
    def show(v):
        if v is DEAD:
            return "dead"
        if v.is_const and v.t.numel() <= 8:
            return f"const{v.t.reshape(-1).tolist()}"
        return ("const" if v.is_const else "dyn") + str(v.shape)

    print(f"trace: {node}: {', '.join(map(show, ins))} -> {', '.join(map(show, outs))}",
          file=sys.stderr)


def _run_node(b, node, values, weights):
    if node.op == "Const":
        if node.name in weights:
            return [Const(weights[node.name])]
        value = node.attr("value")
        if value is None:
            raise ConversionError(f"{node}: no weight named '{node.name}' in the manifest")
        return [Const(value)]
    if node.op == "Placeholder":
        raise ConversionError(f"{node} is not a signature input; feed it or fix the signature")
    handler = OPS.get(node.op)
    if handler is None:
        raise ConversionError(f"unsupported TF op '{node.op}' at node '{node.name}'")
    ins = []
    for inp in node.inputs:
        src, idx = split_input(inp)
        outs = values[src]
        if idx >= len(outs):
            raise ConversionError(f"{node} reads output {idx} of '{src}' which has {len(outs)}")
        ins.append(outs[idx])
    if node.op != "Merge" and any(v is DEAD for v in ins):
        return [DEAD] * 4
    try:
        out = handler(b, node, ins)
        if b.options.get("trace"):
            _trace(node, ins, out if isinstance(out, list) else [out])
    except ConversionError as e:
        if str(node.name) in str(e):
            raise
        raise ConversionError(f"{node}: {e}") from e
    return out if isinstance(out, list) else [out]
