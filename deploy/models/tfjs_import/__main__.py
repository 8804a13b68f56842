"""CLI: python3 -m tfjs_import graph|layers <model.json> --out <dir> [metadata]."""
import argparse
import json
import sys

from .convert import convert, log
from .errors import ConversionError


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="python3 -m tfjs_import",
        description="Import a TF.js graph or layers model as TorchScript: writes "
                    "<out>/1/model.pt, <out>/config.pbtxt and <out>/import-stamp.json.")
    p.add_argument("kind", choices=["graph", "layers"], help="TF.js model format")
    p.add_argument("model_json", help="path of model.json (weight shards next to it)")
    p.add_argument("--out", required=True, help="model folder, e.g. <store>/pose/movenet-lightning")
    p.add_argument("--name", help="model name in config.pbtxt (default: folder name)")
    p.add_argument("--source", default="", help='e.g. "npm:@scope/pkg@1.0.0/models/x.json"')
    p.add_argument("--licence", default="")
    p.add_argument("--description", default="")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="config.pbtxt parameters entry (repeatable)")
    p.add_argument("--input-layout", default="", help="NHWC or NCHW (default: guessed)")
    p.add_argument("--keep-source", action="store_true",
                   help="also write the generated Python as <out>/model_source.py")
    p.add_argument("--bench", type=int, default=0, metavar="RUNS",
                   help="time RUNS forwards of the saved model at 1 thread")
    p.add_argument("--conv-backend", default="auto", choices=["auto", "mkldnn", "torch", "xnnpack"],
                   help="conv kernel call: auto = torch.mkldnn_convolution when MKLDNN is "
                        "built in (fastest at 1 thread), else torch.conv2d")
    p.add_argument("--trace", action="store_true",
                   help="log every graph node with its input/output shapes (debugging)")
    a = p.parse_args(argv)
    params = {}
    for kv in a.param:
        if "=" not in kv:
            p.error(f"--param needs KEY=VALUE, got {kv!r}")
        k, v = kv.split("=", 1)
        params[k] = v
    try:
        summary = convert(a.kind, a.model_json, a.out, a.name, a.source, a.licence,
                          a.description, params, a.input_layout, a.keep_source, a.bench,
                          a.conv_backend, a.trace)
    except ConversionError as e:
        log(f"cannot import {a.model_json}: {e}")
        return 2
    except (OSError, ValueError) as e:
        log(f"cannot import {a.model_json}: {e}")
        return 2
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
