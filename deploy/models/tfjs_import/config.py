"""Writes config.pbtxt (protobuf text of imginterp.v1.ModelConfig)."""
import torch

_DTYPE = {
    torch.float32: "DATA_TYPE_FLOAT32",
    torch.float16: "DATA_TYPE_FLOAT16",
    torch.int32: "DATA_TYPE_INT32",
    torch.int64: "DATA_TYPE_INT64",
    torch.uint8: "DATA_TYPE_UINT8",
    torch.bool: "DATA_TYPE_BOOL",
    torch.float64: "DATA_TYPE_FLOAT64",
}


def _q(s):
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _tensor(kind, name, dtype, shape, layout):
    parts = [f"name: {_q(name)}", f"dtype: {_DTYPE[dtype]}"]
    parts += [f"shape: {int(d)}" for d in shape]
    if layout:
        parts.append(f"layout: {_q(layout)}")
    return f"{kind} {{ " + " ".join(parts) + " }"


def render(name, inputs, outputs, max_batch_size, source, licence, sha256, description,
           parameters):
    """inputs/outputs: [(name, torch dtype, shape with -1 for variable dims, layout)]."""
    lines = [f"name: {_q(name)}", 'backend: "torchscript"']
    lines += [_tensor("inputs", *t) for t in inputs]
    lines += [_tensor("outputs", *t) for t in outputs]
    lines.append(f"max_batch_size: {int(max_batch_size)}")
    if source:
        lines.append(f"source: {_q(source)}")
    if licence:
        lines.append(f"licence: {_q(licence)}")
    if sha256:
        lines.append(f"sha256: {_q(sha256)}")
    if description:
        lines.append(f"description: {_q(description)}")
    for key in sorted(parameters):
        lines.append(f"parameters {{ key: {_q(key)} value: {_q(parameters[key])} }}")
    return "\n".join(lines) + "\n"
