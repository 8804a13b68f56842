#!/usr/bin/env python3
"""models_bench: every imported pretrained model, four ways, side by side.

For each model of deploy/models/catalogue.json that is in the model store:
  - TorchScript forward in process (torch.jit.load, 1 intra-op thread as the services run it),
    on the golden tests' input (a real photo fitted to the model's input), median of N runs;
  - through its service (imginterp-<family>, started here on free loopback ports): the typed
    gRPC call at concurrency 1 (latency p50/p90, one request at a time) and at concurrency 8
    (throughput; the dynamic batcher forms batches of up to max_batch_size);
  - pure-JS TensorFlow.js (tfjs-backend-cpu under node) on the same input, median wall time;
and the ratio TF.js / TorchScript. Prints a Markdown table and writes JSON. Speed goals (not
gates): MoveNet-lightning <= 15 ms in process; every model >= 20x faster than pure-JS TF.js.

Usage: models_bench.py --build BUILD_DIR [--models a,b] [--runs N] [--seconds S] [--no-tfjs]
                       [--no-service] [--json PATH]
"""
import argparse
import concurrent.futures
import io
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "golden"))
import golden_test as golden  # noqa: E402  (model descriptions, inputs, TF.js runner)

# The request message of each family's typed API and the call that serves it.
FAMILIES = {
    "pose": ("pose_pb2", "PoseRequest", "PoseServiceStub", "Estimate"),
    "segment": ("segment_pb2", "SegmentRequest", "SegmentServiceStub", "Segment"),
    "detect": ("detect_pb2", "DetectRequest", "DetectServiceStub", "Detect"),
    "upscale": ("upscale_pb2", "UpscaleRequest", "UpscaleServiceStub", "Upscale"),
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered) + 0.5)) - 1))]


def in_process_ms(model, inputs, runs):
    import torch
    torch.set_num_threads(1)
    module = torch.jit.load(model["torchscript"])
    tensor = torch.from_numpy(inputs)
    with torch.inference_mode():
        for _ in range(3):
            module(tensor)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            module(tensor)
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def photo_bytes(family):
    """What the service is sent: the photo itself (upscale: a 128x128 crop, as PNG)."""
    from PIL import Image
    path = os.path.join(golden.samples_dir(), "person.jpg")
    if family != "upscale":
        with open(path, "rb") as f:
            return f.read()
    crop = Image.open(path).convert("RGB").crop((180, 100, 308, 228))
    buffer = io.BytesIO()
    crop.save(buffer, format="PNG")
    return buffer.getvalue()


class Service:
    """One imginterp-<family> process on free loopback ports, stopped on exit."""

    def __init__(self, build, family, log_dir):
        self.port = free_port()
        binary = os.path.join(build, "services", family, "imginterp-" + family)
        self.log = open(os.path.join(log_dir, family + ".log"), "w")
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
        self.process = subprocess.Popen(
            [binary, "--bind_host=127.0.0.1", "--grpc_port=%d" % self.port,
             "--metrics_port=%d" % free_port(),
             "--model_repository=" + os.path.join(golden.model_store(), family)],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)

    def close(self):
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


def through_service(service, family, model_name, image, seconds):
    import grpc
    module_name, request_name, stub_name, method = FAMILIES[family]
    module = __import__("imginterp.v1." + module_name, fromlist=[request_name])
    grpc_module = __import__("imginterp.v1." + module_name + "_grpc", fromlist=[stub_name])
    channel = grpc.insecure_channel("127.0.0.1:%d" % service.port)
    call = getattr(getattr(grpc_module, stub_name)(channel), method)
    request = getattr(module, request_name)()
    request.model.name = model_name
    request.image.data = image
    deadline = time.time() + 300
    while True:  # until the service listens and the model is ready
        try:
            call(request, timeout=120)
            break
        except grpc.RpcError as e:
            if time.time() > deadline or service.process.poll() is not None:
                raise RuntimeError("%s/%s not serving: %s" % (family, model_name, e))
            time.sleep(0.5)

    def closed_loop(concurrency):
        latencies, lock, stop = [], threading.Lock(), time.time() + seconds

        def worker():
            while time.time() < stop:
                start = time.perf_counter()
                call(request, timeout=120)
                with lock:
                    latencies.append((time.perf_counter() - start) * 1000)

        begin = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
            for future in [pool.submit(worker) for _ in range(concurrency)]:
                future.result()
        return latencies, len(latencies) / (time.perf_counter() - begin)

    for _ in range(2):
        call(request, timeout=120)
    single, _ = closed_loop(1)
    _, throughput = closed_loop(8)
    return {"p50_ms": percentile(single, 0.5), "p90_ms": percentile(single, 0.9),
            "throughput_c8": throughput, "requests_c1": len(single)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default=os.path.join(REPO, "build"))
    parser.add_argument("--models", default="", help="comma-separated; default: all imported")
    parser.add_argument("--runs", type=int, default=20, help="in-process forward runs")
    parser.add_argument("--tfjs-runs", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5, help="per service load level")
    parser.add_argument("--no-tfjs", action="store_true")
    parser.add_argument("--no-service", action="store_true")
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    sys.path.insert(0, os.path.join(args.build, "python"))
    with open(golden.CATALOGUE, encoding="utf-8") as f:
        names = [m["model"] for m in json.load(f)["models"]]
    if args.models:
        names = [n for n in names if n in args.models.split(",")]
    log_dir = os.path.join(args.build, "benchmarks", "results")
    os.makedirs(log_dir, exist_ok=True)
    services, rows = {}, []
    try:
        for name in names:
            model = golden.describe_model(name)
            if not os.path.exists(model["torchscript"]):
                print("skip %s: not imported (deploy/models/fetch-models.sh)" % name,
                      file=sys.stderr)
                continue
            inputs, description = golden.build_input(model)
            row = {"model": name, "family": model["family"], "input": description,
                   "in_process_ms": in_process_ms(model, inputs, args.runs)}
            if not args.no_tfjs:
                result = golden.run_tfjs(model, inputs, runs=args.tfjs_runs)
                row["tfjs_ms"] = result["timing"]["median_ms"]
                row["tfjs_cpu_ms"] = result["timing"]["median_cpu_ms"]
                if row["tfjs_ms"]:
                    row["tfjs_over_torchscript"] = row["tfjs_ms"] / row["in_process_ms"]
            if not args.no_service and model["family"] in FAMILIES:
                family = model["family"]
                if family not in services:
                    services[family] = Service(args.build, family, log_dir)
                row["service"] = through_service(services[family], family, name,
                                                 photo_bytes(family), args.seconds)
            rows.append(row)
            print("measured %s" % name, file=sys.stderr)
    finally:
        for service in services.values():
            service.close()
    print("\n| model | in-process TorchScript ms | gRPC c1 p50 ms | gRPC c1 p90 ms |"
          " gRPC c8 req/s | TF.js (pure JS) ms | TF.js / TorchScript |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        service = row.get("service", {})
        fmt = lambda v, spec: (spec % v) if isinstance(v, (int, float)) else "-"  # noqa: E731
        print("| %s | %s | %s | %s | %s | %s | %s |" % (
            row["model"], fmt(row["in_process_ms"], "%.1f"), fmt(service.get("p50_ms"), "%.1f"),
            fmt(service.get("p90_ms"), "%.1f"), fmt(service.get("throughput_c8"), "%.1f"),
            fmt(row.get("tfjs_ms"), "%.0f"), fmt(row.get("tfjs_over_torchscript"), "%.0fx")))
    out = args.json or os.path.join(log_dir, "models.json")
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"machine": platform.node(), "cpus": os.cpu_count(),
                   "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rows": rows},
                  f, indent=2)
    print("\nJSON: %s" % out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
