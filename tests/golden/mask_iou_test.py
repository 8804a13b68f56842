#!/usr/bin/env python3
"""The segment service's person mask against TensorFlow.js at full resolution.

The reference path is independent of the service: the photo is resized to the model's input with
PIL, the imported model's *TF.js original* runs under node (tests/golden/tfjs/run_model.mjs), and
its person probability is resized back to the photo with torch's bilinear sampling. The service
(imginterp-segment, started here on a free loopback port) decodes, fits, runs its TorchScript and
maps back in C++. Both masks are thresholded at 0.5; their IoU must be at least 0.9.

Usage: mask_iou_test.py SEGMENT_BINARY PYTHON_STUBS_DIR MODEL PHOTO
Exit codes: 0 pass, 1 fail, 77 skipped (a failure under CI=true).
"""
import io
import os
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_test as golden  # noqa: E402  (shared model/TF.js helpers)

MIN_IOU = 0.9


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tfjs_person_mask(model, photo):
    """Person probability >= 0.5 at the photo's size, by the TF.js reference path."""
    import torch
    from PIL import Image
    shape, _ = golden.input_signature(model["model_json"])
    height, width = shape[1], shape[2]
    resized = photo.resize((width, height), Image.BILINEAR)  # stretch, as MediaPipe does
    low, high = [float(v) for v in (model.get("input_range") or "0..1").split("..")]
    inputs = low + np.asarray(resized, dtype=np.float32) * ((high - low) / 255.0)
    result = golden.run_tfjs(model, np.ascontiguousarray(inputs[None]))
    output = result["outputs"][0]["values"].astype(np.float64)[0]  # H x W x C
    if output.shape[-1] == 2:  # meet: (background, person) logits
        exp = np.exp(output - output.max(axis=-1, keepdims=True))
        probability = exp[..., 1] / exp.sum(axis=-1)
    else:  # selfie: already a sigmoid probability
        probability = output[..., 0]
    full = torch.nn.functional.interpolate(
        torch.from_numpy(probability)[None, None], size=(photo.height, photo.width),
        mode="bilinear", align_corners=False)[0, 0].numpy()
    return full >= 0.5


def service_person_mask(binary, stubs, model_name, photo_path, work):
    """The mask the service returns, thresholded at 0.5 (128 of 255)."""
    sys.path.insert(0, stubs)
    import grpc
    from PIL import Image
    from imginterp.v1 import segment_pb2, segment_pb2_grpc
    port, metrics = free_port(), free_port()
    repository = os.path.join(golden.model_store(), "segment")
    log_path = os.path.join(work, "segment.log")
    with open(log_path, "w") as log:
        service = subprocess.Popen(
            [binary, "--bind_host=127.0.0.1", "--grpc_port=%d" % port,
             "--metrics_port=%d" % metrics, "--model_repository=" + repository],
            stdout=log, stderr=subprocess.STDOUT)
    try:
        channel = grpc.insecure_channel("127.0.0.1:%d" % port)
        stub = segment_pb2_grpc.SegmentServiceStub(channel)
        request = segment_pb2.SegmentRequest()
        request.model.name = model_name
        with open(photo_path, "rb") as f:
            request.image.data = f.read()
        deadline = time.time() + 180
        while True:
            try:
                response = stub.Segment(request, timeout=60)
                break
            except grpc.RpcError as e:
                # Not listening yet, or the model still loading: retry until the deadline.
                if time.time() > deadline or service.poll() is not None or e.code() not in (
                        grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND):
                    with open(log_path) as f:
                        raise golden.Failure("Segment failed: %s\nservice log:\n%s"
                                             % (e, f.read()[-3000:]))
                time.sleep(0.5)
    finally:
        service.terminate()
        service.wait(timeout=30)
    mask = np.asarray(Image.open(io.BytesIO(response.mask.data)).convert("L"))
    return mask >= 128


def main():
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    binary, stubs, model_name, photo_name = sys.argv[1:]
    ci = os.environ.get("CI") in ("true", "1")
    try:
        from PIL import Image
        model = golden.describe_model(model_name)
        for path, how in ((model["model_json"], "deploy/models/fetch-models.sh"),
                          (os.path.join(model["dir"], "config.pbtxt"),
                           "deploy/models/fetch-models.sh")):
            if not os.path.exists(path):
                raise golden.Skip("%s missing; run %s" % (path, how))
        photo_path = os.path.join(golden.samples_dir(), photo_name)
        if not os.path.exists(photo_path):
            raise golden.Skip("%s missing; run deploy/fetch-samples.sh" % photo_path)
        photo = Image.open(photo_path).convert("RGB")
        reference = tfjs_person_mask(model, photo)
        with tempfile.TemporaryDirectory() as work:
            served = service_person_mask(binary, stubs, model_name, photo_path, work)
    except golden.Skip as e:
        print("SKIP: %s" % e)
        return 1 if ci else 77
    except golden.Failure as e:
        print("FAIL: %s" % e)
        return 1
    if served.shape != reference.shape:
        print("FAIL: service mask %s, TF.js mask %s" % (served.shape, reference.shape))
        return 1
    union = np.logical_or(served, reference).sum()
    iou = np.logical_and(served, reference).sum() / max(union, 1)
    print("%s on %s (%dx%d): IoU %.4f (service %.3f, TF.js %.3f of the pixels are person)"
          % (model_name, photo_name, photo.width, photo.height, iou, served.mean(),
             reference.mean()))
    if union == 0:
        print("FAIL: neither mask has a person pixel")
        return 1
    return 0 if iou >= MIN_IOU else 1


if __name__ == "__main__":
    sys.exit(main())
