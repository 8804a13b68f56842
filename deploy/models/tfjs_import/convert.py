"""One model: model.json -> <out>/1/model.pt + <out>/config.pbtxt + <out>/import-stamp.json."""
import hashlib
import json
import os
import sys
import time

import torch

from . import IMPORTER_VERSION
from .config import render
from .errors import ConversionError
from .graph import import_graph, sample_input
from .layers import import_layers
from .weights import load_weights

STAMP = "import-stamp.json"


def log(msg):
    print(f"tfjs_import: {msg}", file=sys.stderr, flush=True)


def source_sha256(model_json):
    """sha256 over model.json followed by its weight shards in manifest order."""
    with open(model_json, "rb") as f:
        raw = f.read()
    digest = hashlib.sha256(raw)
    model = json.loads(raw)
    for group in model.get("weightsManifest", []):
        for rel in group["paths"]:
            with open(os.path.join(os.path.dirname(model_json), rel), "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()


def _run(module, inputs):
    with torch.no_grad():
        out = module(*inputs)
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _close(a, b, tol=1e-3):
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if not a.dtype.is_floating_point:
        return bool(torch.equal(a, b))
    scale = max(1.0, float(b.abs().max())) if b.numel() else 1.0
    return float((a - b).abs().max()) <= tol * scale if a.numel() else True


def batch_check(module, inputs, outs_a, gen):
    """True when a batch of 2 gives the two batch-1 results (then dim 0 is dynamic)."""
    others = [sample_input(x.dtype, list(x.shape), gen) for x in inputs]
    try:
        outs_b = _run(module, others)
        outs_ab = _run(module, [torch.cat([x, y]) for x, y in zip(inputs, others)])
    except Exception:  # any failure means: not batchable
        return False
    return all(_close(ab, torch.cat([a, b])) for ab, a, b in zip(outs_ab, outs_a, outs_b))


def bench(path, inputs, runs=20, threads=1):
    """(wall ms, CPU ms) per forward of the saved model, loaded with torch.jit.load.

    Median of ``runs``. At 1 thread LibTorch computes on the calling thread, so the thread's
    CPU time is the cost of the model even when other processes load the machine.
    """
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        module = torch.jit.load(path)
        module.eval()
        with torch.no_grad():
            for _ in range(5):
                module(*inputs)
            wall, cpu = [], []
            for _ in range(runs):
                t, c = time.perf_counter(), time.thread_time()
                module(*inputs)
                cpu.append((time.thread_time() - c) * 1000.0)
                wall.append((time.perf_counter() - t) * 1000.0)
    finally:
        torch.set_num_threads(old)
    wall.sort()
    cpu.sort()
    return wall[len(wall) // 2], cpu[len(cpu) // 2]


def _layout(shape, declared):
    if declared:
        return declared
    if len(shape) == 4:
        return "NCHW" if shape[1] == 3 and shape[3] != 3 else "NHWC"
    return ""


def convert(kind, model_json, out_dir, name=None, source="", licence="", description="",
            parameters=None, input_layout="", keep_source=False, bench_runs=0,
            conv_backend="auto", trace=False):
    start = time.time()
    with open(model_json, "rb") as f:
        model = json.loads(f.read())
    weights, _ = load_weights(os.path.dirname(model_json), model.get("weightsManifest", []))
    sha = source_sha256(model_json)
    if kind == "graph":
        if model.get("format") not in (None, "graph-model"):
            raise ConversionError(f"{model_json} is a {model.get('format')}, not a graph model")
        gi = import_graph(model, weights, options={"conv_backend": conv_backend, "trace": trace})
    elif kind == "layers":
        gi = import_layers(model, weights, options={"conv_backend": conv_backend})
    else:
        raise ConversionError(f"kind must be 'graph' or 'layers', not {kind!r}")
    os.makedirs(os.path.join(out_dir, "1"), exist_ok=True)
    outputs = [v for _, v in gi.outputs]
    module, _ = gi.builder.build_module(
        outputs, os.path.join(out_dir, "model_source.py") if keep_source else None)

    inputs = [v.sample for _, _, _, v in gi.inputs]
    got = _run(module, inputs)
    for (key, v), g in zip(gi.outputs, got):
        want = v.t if v.is_const else v.sample
        if not _close(g, want, 1e-4):
            raise ConversionError(f"internal: TorchScript output {key} differs from the import run")
    gen = torch.Generator().manual_seed(1)
    dynamic_batch = batch_check(module, inputs, got, gen)

    # Dims that follow a variable-size input dim (layers models): run once at another size.
    variable = [[i for i, d in enumerate(dims) if d < 0 and i > 0] for _, _, dims, _ in gi.inputs]
    out_var = [set() for _ in got]
    if any(variable):
        alt = []
        for x, var in zip(inputs, variable):
            shape = list(x.shape)
            for i in var:
                shape[i] += 8
            alt.append(sample_input(x.dtype, shape, gen))
        for s, o, a in zip(out_var, got, _run(module, alt)):
            s.update(i for i in range(1, o.dim()) if o.shape[i] != a.shape[i])

    path = os.path.join(out_dir, "1", "model.pt")
    tmp = path + ".tmp"
    torch.jit.save(module, tmp)
    os.replace(tmp, path)

    in_specs = []
    for (key, dtype, dims, v), var in zip(gi.inputs, variable):
        shape = [(-1 if dynamic_batch else 1) if i == 0 else d for i, d in enumerate(dims)]
        in_specs.append((key, dtype, shape, _layout(dims, input_layout)))
    out_specs = []
    for (key, _), g, var in zip(gi.outputs, got, out_var):
        shape = [-1 if (i == 0 and dynamic_batch) or i in var else d
                 for i, d in enumerate(g.shape)]
        out_specs.append((key, g.dtype, shape, "NHWC" if g.dim() == 4 else ""))
    model_name = name or os.path.basename(os.path.normpath(out_dir))
    text = render(model_name, in_specs, out_specs, 8 if dynamic_batch else 1, source, licence,
                  sha, description, parameters or {})
    with open(os.path.join(out_dir, "config.pbtxt"), "w") as f:
        f.write(text)

    seconds = time.time() - start
    summary = {
        "importer_version": IMPORTER_VERSION,
        "source_sha256": sha,
        "model": model_name,
        "kind": kind,
        "nodes": sum(gi.op_counts.values()),
        "ops": dict(sorted(gi.op_counts.items())),
        "distinct_ops": len(gi.op_counts),
        "generated_lines": len(gi.builder.lines),
        "dynamic_batch": dynamic_batch,
        "inputs": [[k, str(d), s] for k, d, s, _ in in_specs],
        "outputs": [[k, str(d), s] for k, d, s, _ in out_specs],
        "import_seconds": round(seconds, 2),
    }
    if bench_runs:
        wall, cpu = bench(path, inputs, bench_runs)
        summary["ms_per_frame_1_thread"] = round(wall, 2)
        summary["cpu_ms_per_frame_1_thread"] = round(cpu, 2)
    with open(os.path.join(out_dir, STAMP), "w") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")
    return summary
