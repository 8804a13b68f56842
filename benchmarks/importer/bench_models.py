"""Speed of the imported TorchScript models: ms per frame from torch.jit.load, like the services.

Usage: /usr/bin/python3 benchmarks/importer/bench_models.py [--store DIR] [--threads 1,2]
       [--runs 30] [--only movenet-lightning,selfie] [--size 128] (esrgan input side)
Prints a markdown table: median wall ms, min wall ms and median thread-CPU ms per model and
thread count. Inputs are random data of the config.pbtxt input shape (batch 1).
Thread CPU time is what the model costs when other processes share the cores.
"""
import argparse
import os
import re
import sys
import time

import torch


def _input(config, size):
    m = re.search(r'inputs \{ name: "[^"]*" dtype: (\S+) ((?:shape: -?\d+ )+)', config)
    shape = [int(s) for s in re.findall(r"-?\d+", m.group(2))]
    shape = [1 if (i == 0 and d < 0) else (size if d < 0 else d) for i, d in enumerate(shape)]
    if "INT32" in m.group(1):
        return torch.randint(0, 256, shape, dtype=torch.int32)
    return torch.rand(shape) * (255.0 if '"0..255"' in config else 1.0)


def bench(path, x, threads, runs):
    torch.set_num_threads(threads)
    module = torch.jit.load(path).eval()
    wall, cpu = [], []
    with torch.no_grad():
        for _ in range(5):
            module(x)
        for _ in range(runs):
            t, c = time.perf_counter(), time.thread_time()
            module(x)
            cpu.append((time.thread_time() - c) * 1e3)
            wall.append((time.perf_counter() - t) * 1e3)
    wall.sort()
    cpu.sort()
    return wall[len(wall) // 2], wall[0], cpu[len(cpu) // 2]


def main():
    default_store = os.environ.get("IMGINTERP_MODEL_STORE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
        "image-interpreter", "models")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", default=default_store)
    p.add_argument("--threads", default="1")
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--only", default="")
    p.add_argument("--size", type=int, default=128)
    a = p.parse_args()
    only = {n for n in a.only.split(",") if n}
    print("| model | threads | median ms | min ms | median thread-CPU ms |")
    print("|---|---|---|---|---|")
    for family in sorted(os.listdir(a.store)):
        for model in sorted(os.listdir(os.path.join(a.store, family))):
            if only and model not in only:
                continue
            folder = os.path.join(a.store, family, model)
            path = os.path.join(folder, "1", "model.pt")
            if not os.path.isfile(path):
                continue
            with open(os.path.join(folder, "config.pbtxt")) as f:
                x = _input(f.read(), a.size)
            for threads in (int(t) for t in a.threads.split(",")):
                med, best, cpu = bench(path, x, threads, a.runs)
                print(f"| {family}/{model} | {threads} | {med:.1f} | {best:.1f} | {cpu:.1f} |",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
