"""Keras layers models (TF.js ``layers-model`` format), mapped onto the graph op handlers."""
import torch

from . import ops_array, ops_conv, ops_image, ops_math  # noqa: F401 (register ops)
from .builder import TORCH_DTYPE, Builder, Const
from .errors import ConversionError
from .graph import OPS, GraphImport, sample_input


class _LayerNode:
    """Looks like graph.Node to the op handlers; attrs given directly."""

    def __init__(self, op, name, **attrs):
        self.op, self.name, self._attrs = op, name, attrs

    def attr(self, name, default=None):
        return self._attrs.get(name, default)

    def __str__(self):
        return f"Keras layer '{self.name}' ({self.op})"


_ACT = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "elu": "Elu", "relu6": "Relu6",
        "softplus": "Softplus", "selu": "Selu"}


def _weight(weights, layer, name):
    exact = f"{layer}/{name}"
    if exact in weights:
        return Const(weights[exact])
    for key, value in weights.items():
        if key.endswith(exact) or key.endswith(exact + ":0"):
            return Const(value)
    raise ConversionError(f"Keras layer '{layer}': weight '{exact}' not in the manifest")


def _activation(b, name, act, x):
    if act in (None, "linear"):
        return x
    if act in _ACT:
        return OPS[_ACT[act]](b, _LayerNode(_ACT[act], name), [x])
    if act == "softmax":
        return OPS["Softmax"](b, _LayerNode("Softmax", name), [x])
    raise ConversionError(f"Keras layer '{name}': activation {act!r} is not supported")


def _pair(v):
    return list(v) if isinstance(v, (list, tuple)) else [v, v]


def _conv(b, name, cfg, x, weights, depthwise=False):
    if cfg.get("data_format", "channels_last") != "channels_last":
        raise ConversionError(f"Keras layer '{name}': only channels_last is supported")
    s, d = _pair(cfg.get("strides", 1)), _pair(cfg.get("dilation_rate", 1))
    kernel = _weight(weights, name, "depthwise_kernel" if depthwise else "kernel")
    ins = [x, kernel]
    fused = []
    if cfg.get("use_bias", True):
        ins.append(_weight(weights, name, "bias"))
        fused.append("BiasAdd")
    op = "FusedDepthwiseConv2dNative" if depthwise else "_FusedConv2D"
    node = _LayerNode(op, name, strides=[1, s[0], s[1], 1], dilations=[1, d[0], d[1], 1],
                      padding=cfg.get("padding", "valid").upper(), fused_ops=fused)
    return _activation(b, name, cfg.get("activation"), OPS[op](b, node, ins))


def _layer(b, cls, name, cfg, ins, weights):
    node = _LayerNode(cls, name)
    if cls == "Conv2D":
        return _conv(b, name, cfg, ins[0], weights)
    if cls == "DepthwiseConv2D":
        return _conv(b, name, cfg, ins[0], weights, depthwise=True)
    if cls == "Activation":
        return _activation(b, name, cfg.get("activation"), ins[0])
    if cls == "ReLU":
        if cfg.get("negative_slope") or cfg.get("threshold"):
            raise ConversionError(f"Keras layer '{name}': ReLU slope/threshold unsupported")
        x = OPS["Relu"](b, node, ins[:1])
        if cfg.get("max_value") is not None:
            x = OPS["Minimum"](b, node, [x, Const(torch.tensor(float(cfg["max_value"])))])
        return x
    if cls == "LeakyReLU":
        return OPS["LeakyRelu"](b, _LayerNode("LeakyRelu", name, alpha=cfg.get("alpha", 0.3)),
                                ins[:1])
    if cls == "PReLU":
        return OPS["Prelu"](b, node, [ins[0], _weight(weights, name, "alpha")])
    if cls in ("Add", "Multiply", "Subtract", "Maximum", "Minimum"):
        op = {"Add": "AddV2", "Multiply": "Mul", "Subtract": "Sub"}.get(cls, cls)
        acc = ins[0]
        for v in ins[1:]:
            acc = OPS[op](b, _LayerNode(op, name), [acc, v])
        return acc
    if cls == "Concatenate":
        axis = Const(torch.tensor(int(cfg.get("axis", -1)), dtype=torch.int32))
        return OPS["ConcatV2"](b, _LayerNode("ConcatV2", name), list(ins) + [axis])
    if cls == "UpSampling2D":
        from .ops_image import upsample_nearest

        if cfg.get("interpolation", "nearest") != "nearest":
            raise ConversionError(f"Keras layer '{name}': only nearest UpSampling2D")
        return upsample_nearest(b, ins[0], _pair(cfg.get("size", 2)))
    if cls in ("MaxPooling2D", "AveragePooling2D"):
        k = _pair(cfg.get("pool_size", 2))
        s = _pair(cfg.get("strides") or k)
        op = "MaxPool" if cls == "MaxPooling2D" else "AvgPool"
        pnode = _LayerNode(op, name, ksize=[1, k[0], k[1], 1], strides=[1, s[0], s[1], 1],
                           padding=cfg.get("padding", "valid").upper())
        return OPS[op](b, pnode, ins[:1])
    if cls == "ZeroPadding2D":
        p = cfg.get("padding", 1)
        p = [[p, p], [p, p]] if isinstance(p, int) else [_pair(q) for q in p]
        pads = Const(torch.tensor([[0, 0], p[0], p[1], [0, 0]], dtype=torch.int32))
        return OPS["Pad"](b, _LayerNode("Pad", name), [ins[0], pads])
    if cls == "BatchNormalization":
        eps = float(cfg.get("epsilon", 1e-3))
        mean = _weight(weights, name, "moving_mean").t
        var = _weight(weights, name, "moving_variance").t
        gamma = _weight(weights, name, "gamma").t if cfg.get("scale", True) else 1.0
        beta = _weight(weights, name, "beta").t if cfg.get("center", True) else 0.0
        scale = gamma / torch.sqrt(var + eps)
        x = OPS["Mul"](b, node, [ins[0], Const(scale)])
        return OPS["AddV2"](b, node, [x, Const(beta - mean * scale)])
    raise ConversionError(f"unsupported Keras layer class '{cls}' at layer '{name}'")


class _Deferred:
    """A nearest UpSampling2D whose only consumer is a conv it will be folded into."""

    def __init__(self, value, factors):
        self.value, self.factors = value, factors


def _fusable_upsample(cfg, name, layers):
    if cfg.get("interpolation", "nearest") != "nearest":
        return False
    consumers = [l for l in layers for call in (l.get("inbound_nodes") or [])
                 for src in call if src[0] == name]
    if len(consumers) != 1 or consumers[0]["class_name"] != "Conv2D":
        return False
    c = consumers[0]["config"]
    return (c.get("padding") == "same" and _pair(c.get("strides", 1)) == [1, 1]
            and _pair(c.get("dilation_rate", 1)) == [1, 1] and c.get("groups", 1) == 1
            and c.get("data_format", "channels_last") == "channels_last"
            and c.get("activation") in (None, "linear", "relu", "sigmoid", "tanh"))


def _upsample_conv(b, name, cfg, deferred, weights):
    from .ops_conv import _ACTIVATIONS
    from .ops_image import upsample_conv

    kernel = _weight(weights, name, "kernel").t
    bias = _weight(weights, name, "bias").t if cfg.get("use_bias", True) else None
    act = _ACTIVATIONS.get(_ACT.get(cfg.get("activation"), ""))
    return upsample_conv(b, deferred.value, deferred.factors, kernel, bias, act)


def import_layers(model, weights, dynamic_size=48, seed=0, options=None):
    topo = model["modelTopology"]
    mc = topo.get("model_config", topo)
    cls, cfg = mc.get("class_name"), mc.get("config")
    if cls == "Sequential":
        layers = cfg["layers"] if isinstance(cfg, dict) else cfg
        chain, prev = [], None
        for layer in layers:
            layer = dict(layer)
            layer["inbound_nodes"] = [] if prev is None else [[[prev, 0, 0, {}]]]
            layer["name"] = layer.get("name") or layer["config"]["name"]
            prev = layer["name"]
            chain.append(layer)
        layers, outputs = chain, [[prev, 0, 0]]
    elif cls in ("Functional", "Model"):
        layers, outputs = cfg["layers"], cfg["output_layers"]
    else:
        raise ConversionError(f"Keras model class {cls!r} is not supported")
    b = Builder(options)
    gen = torch.Generator().manual_seed(seed)
    values, input_specs, counts = {}, [], {}
    for layer in layers:
        lcls, name, lcfg = layer["class_name"], layer["name"], layer.get("config", {})
        counts[lcls] = counts.get(lcls, 0) + 1
        if lcls == "InputLayer" or (not layer.get("inbound_nodes") and cls == "Sequential"):
            dims = lcfg.get("batch_input_shape") or lcfg.get("batch_shape")
            dims = [-1 if d is None else int(d) for d in dims]
            dtype = TORCH_DTYPE.get(lcfg.get("dtype", "float32"), torch.float32)
            shape = [1 if i == 0 else (dynamic_size if d < 0 else d) for i, d in enumerate(dims)]
            v = b.add_input(name, sample_input(dtype, shape, gen))
            input_specs.append((name, dtype, dims, v))
            values[name] = v
            if lcls == "InputLayer":
                continue
        inbound = layer.get("inbound_nodes") or []
        if len(inbound) > 1:
            raise ConversionError(f"Keras layer '{name}' is shared ({len(inbound)} calls)")
        srcs = [src[0] for src in inbound[0]] if inbound else [name]
        if lcls == "UpSampling2D" and _fusable_upsample(lcfg, name, layers):
            values[name] = _Deferred(values[srcs[0]], _pair(lcfg.get("size", 2)))
            continue
        if len(srcs) == 1 and isinstance(values[srcs[0]], _Deferred):
            values[name] = _upsample_conv(b, name, lcfg, values[srcs[0]], weights)
            continue
        ins = [values[s] for s in srcs]
        values[name] = _layer(b, lcls, name, lcfg, ins, weights)
    outs = [(o[0], b.logical(values[o[0]])) for o in outputs]
    return GraphImport(b, input_specs, outs, counts)
