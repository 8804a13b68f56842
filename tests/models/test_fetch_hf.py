"""deploy/models/fetch_hf.py against a fake Hugging Face hub (file:// endpoint and an HTTP server).

The hub holds the tiny reference models (tests/data/reference/, laid out by make_tiny_set.py) under
the real catalogue's repositories and file paths, so the test catalogue is the real one with the
sha256 values of the tiny files. Every test runs the fetcher as users do: as a subprocess.
"""
import copy
import hashlib
import http.server
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest

REPO = pathlib.Path(__file__).resolve().parents[2]
FETCH = REPO / "deploy" / "models" / "fetch_hf.py"
CATALOGUE = REPO / "deploy" / "models" / "hf_catalogue.json"
MAKE_TINY = REPO / "deploy" / "models" / "make_tiny_set.py"


def sha256(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def tiny_source(tiny, model, path):
    """The tiny file standing in for a catalogue file."""
    sd = tiny / "generate" / "tiny-sd15" / "1"
    if model["kind"] == "pipeline":
        if path == "tokenizer/special_tokens_map.json":
            return None  # make_tiny_set does not write it; the hub gets a small JSON
        return sd / path
    if model["kind"] == "controlnet":
        return sd / "controlnet" / "tiny" / path
    return tiny / "clip" / "tiny-clip" / "1" / path


class FetchHfTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = pathlib.Path(tempfile.mkdtemp(prefix="fetch-hf-test-"))
        cls.tiny = cls.tmp / "tiny"
        subprocess.run([sys.executable, str(MAKE_TINY), "--store", str(cls.tiny)], check=True,
                       stdout=subprocess.DEVNULL)
        cls.real = json.loads(CATALOGUE.read_text())

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.dir = pathlib.Path(tempfile.mkdtemp(dir=self.tmp))
        self.hub = self.dir / "hub"
        self.store = self.dir / "store"
        self.catalogue = copy.deepcopy(self.real)
        for model in self.catalogue["models"]:
            for spec in model["files"]:
                entries = [spec] + list(spec.get("variants", {}).values())
                for i, entry in enumerate(entries):
                    target = self.hub_path(model, entry["path"])
                    target.parent.mkdir(parents=True, exist_ok=True)
                    source = tiny_source(self.tiny, model, spec["path"])
                    if source is None:
                        target.write_text('{"bos_token": "<|startoftext|>"}\n')
                    else:
                        data = source.read_bytes()
                        # A variant file differs from the main one, as fp16 weights do.
                        target.write_bytes(data + b" " * i if source.suffix == ".json" else
                                           data + b"\0" * i)
                    entry["sha256"] = sha256(target)
                    entry["size"] = target.stat().st_size
        self.write_catalogue()

    def hub_path(self, model, path, revision="main"):
        return self.hub / model["repository"] / "resolve" / revision / path

    def model(self, name):
        return next(m for m in self.catalogue["models"] if m["name"] == name)

    def write_catalogue(self):
        self.catalogue_path = self.dir / "catalogue.json"
        self.catalogue_path.write_text(json.dumps(self.catalogue, indent=1))

    def run_fetch(self, *args, endpoint=None, env=None):
        full_env = dict(os.environ, OPENBLAS_NUM_THREADS="1",
                        IMGINTERP_HF_ENDPOINT=endpoint or self.hub.as_uri())
        full_env.pop("HF_TOKEN", None)
        full_env.update(env or {})
        return subprocess.run(
            [sys.executable, str(FETCH), "--catalogue", str(self.catalogue_path),
             "--store", str(self.store), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env, timeout=300)

    def pbtxt_parameters(self, path):
        return dict(re.findall(r'parameters \{ key: "([^"]+)" value: "([^"]+)" \}',
                               path.read_text()))

    # ------------------------------------------------------------------------------------------

    def test_fetch_lays_out_the_services_store(self):
        result = self.run_fetch()
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout.strip(), str(self.store))
        sd = self.store / "generate" / "sd15"
        for spec in self.model("sd15")["files"]:
            got = sd / "1" / spec["path"]
            self.assertEqual(got.read_bytes(), self.hub_path(self.model("sd15"),
                                                             spec["path"]).read_bytes(), got)
        config = (sd / "config.pbtxt").read_text()
        self.assertIn('name: "sd15"', config)
        self.assertIn('backend: "native"', config)
        parameters = self.pbtxt_parameters(sd / "config.pbtxt")
        controlnets = [m for m in self.catalogue["models"] if m["kind"] == "controlnet"]
        self.assertEqual(set(parameters), {f"controlnet.{m['prior_kind']}" for m in controlnets})
        self.assertEqual(
            {"canny", "pose", "segmentation", "lineart", "scribble", "depth"},
            {k.split(".", 1)[1] for k in parameters})
        for m in controlnets:
            folder = sd / "1" / parameters[f"controlnet.{m['prior_kind']}"]
            self.assertEqual(folder.name, m["folder"])
            # The same files make_tiny_set gives the services for its one ControlNet.
            tiny_cn = self.tiny / "generate" / "tiny-sd15" / "1" / "controlnet" / "tiny"
            self.assertEqual(sorted(p.name for p in folder.iterdir()),
                             sorted(p.name for p in tiny_cn.iterdir()))
        for name in ("clip-vit-b32", "clip-vit-l14"):
            root = self.store / "clip" / name
            self.assertIn('backend: "native"', (root / "config.pbtxt").read_text())
            for f in ("config.json", "model.safetensors", "vocab.json", "merges.txt",
                      "preprocessor_config.json"):
                self.assertTrue((root / "1" / f).is_file(), root / "1" / f)
        self.assertEqual(list(self.store.rglob("*.part")), [])

    def test_second_run_downloads_nothing(self):
        self.assertEqual(self.run_fetch("--only", "sd15,controlnet-canny").returncode, 0)
        weights = self.store / "generate/sd15/1/unet/diffusion_pytorch_model.safetensors"
        mtime = weights.stat().st_mtime_ns
        shutil.rmtree(self.hub)  # nothing left to download from
        again = self.run_fetch("--only", "sd15,controlnet-canny")
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertNotIn("<-", again.stderr)
        self.assertIn("0 file(s) fetched", again.stderr)
        self.assertEqual(weights.stat().st_mtime_ns, mtime)
        self.assertEqual(self.pbtxt_parameters(self.store / "generate/sd15/config.pbtxt"),
                         {"controlnet.canny": "controlnet/control_v11p_sd15_canny"})

    def test_corrupted_file_is_refused(self):
        model = self.model("controlnet-depth")
        hub_file = self.hub_path(model, "diffusion_pytorch_model.safetensors")
        data = bytearray(hub_file.read_bytes())
        data[-1] ^= 0xFF
        hub_file.write_bytes(bytes(data))
        result = self.run_fetch("--only", "controlnet-depth")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("lllyasviel/control_v11f1p_sd15_depth@main/diffusion_pytorch_model."
                      "safetensors", result.stderr)
        self.assertIn("sha256", result.stderr)
        dest = (self.store / "generate/sd15/1/controlnet/control_v11f1p_sd15_depth/"
                "diffusion_pytorch_model.safetensors")
        self.assertFalse(dest.exists())
        self.assertEqual(list(self.store.rglob("*.part")), [])

    def test_check_lists_missing_files(self):
        result = self.run_fetch("--check")
        self.assertEqual(result.returncode, 1)
        dest = self.store / "clip/clip-vit-l14/1/model.safetensors"
        self.assertIn(f"missing {dest}", result.stdout)
        self.assertIn("openai/clip-vit-large-patch14/resolve/main/model.safetensors",
                      result.stdout)
        self.assertEqual(self.run_fetch("--only", "clip-vit-l14").returncode, 0)
        after = self.run_fetch("--check")
        self.assertEqual(after.returncode, 1)
        self.assertIn("clip-vit-l14: complete", after.stdout)
        self.assertNotIn(f"missing {dest}", after.stdout)
        self.assertIn("sd15: 12 of 12 files missing", after.stdout)
        self.assertEqual(self.run_fetch("--check", "--only", "clip-vit-l14").returncode, 0)

    def test_trust_on_first_use_is_recorded_then_enforced(self):
        model = self.model("clip-vit-b32")
        for spec in model["files"]:
            spec["sha256"] = None
            spec["size"] = None
        self.write_catalogue()
        first = self.run_fetch("--only", "clip-vit-b32")
        self.assertEqual(first.returncode, 0, first.stderr)
        self.assertIn("TRUST ON FIRST USE", first.stderr)
        lock = json.loads((self.store / ".hf-lock.json").read_text())
        key = "openai/clip-vit-base-patch32@main/model.safetensors"
        hub_file = self.hub_path(model, "model.safetensors")
        self.assertEqual(lock["files"][key]["sha256"], sha256(hub_file))
        # Upstream changes; the store copy is lost: the changed file is refused.
        hub_file.write_bytes(hub_file.read_bytes() + b"\0")
        dest = self.store / "clip/clip-vit-b32/1/model.safetensors"
        dest.unlink()
        second = self.run_fetch("--only", "clip-vit-b32")
        self.assertNotEqual(second.returncode, 0)
        self.assertIn(key, second.stderr)
        self.assertIn("recorded", second.stderr)
        self.assertFalse(dest.exists())
        # A store file edited in place is detected too, and not replaced by the changed upstream.
        self.assertEqual(self.run_fetch("--only", "clip-vit-l14").returncode, 0)
        vocab = self.store / "clip/clip-vit-b32/1/vocab.json"
        vocab.write_text(vocab.read_text() + " ")
        third = self.run_fetch("--only", "clip-vit-b32")
        self.assertIn("vocab.json: sha256", third.stderr)

    def test_require_checksums_refuses_null_sha256(self):
        self.model("controlnet-scribble")["files"][0]["sha256"] = None
        self.write_catalogue()
        result = self.run_fetch("--require-checksums", "--only", "controlnet-canny,"
                                "controlnet-scribble")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("lllyasviel/control_v11p_sd15_scribble@main/config.json", result.stderr)
        self.assertFalse(self.store.exists() and any(p.is_file() for p in self.store.rglob("*")))
        ok = self.run_fetch("--require-checksums", "--only", "controlnet-canny")
        self.assertEqual(ok.returncode, 0, ok.stderr)

    def test_variant_is_stored_under_the_canonical_name(self):
        model = self.model("controlnet-canny")
        result = self.run_fetch("--only", "controlnet-canny", "--variant", "fp16")
        self.assertEqual(result.returncode, 0, result.stderr)
        dest = (self.store / "generate/sd15/1/controlnet/control_v11p_sd15_canny/"
                "diffusion_pytorch_model.safetensors")
        self.assertEqual(dest.read_bytes(), self.hub_path(
            model, "diffusion_pytorch_model.fp16.safetensors").read_bytes())
        # Switching back to the full-precision file replaces it.
        back = self.run_fetch("--only", "controlnet-canny")
        self.assertEqual(back.returncode, 0, back.stderr)
        self.assertEqual(dest.read_bytes(), self.hub_path(
            model, "diffusion_pytorch_model.safetensors").read_bytes())

    def test_dry_run_prints_urls_and_destinations_only(self):
        result = self.run_fetch("--dry-run", "--only", "sd15", "--variant", "fp16",
                                endpoint="https://hub.example")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("https://hub.example/stable-diffusion-v1-5/stable-diffusion-v1-5/resolve/"
                      "main/unet/diffusion_pytorch_model.fp16.safetensors\t"
                      f"{self.store}/generate/sd15/1/unet/diffusion_pytorch_model.safetensors",
                      result.stdout)
        self.assertFalse(self.store.exists())

    def test_offline_failure_names_url_destination_and_remedy(self):
        result = self.run_fetch("--only", "controlnet-lineart", endpoint="http://127.0.0.1:9")
        self.assertNotEqual(result.returncode, 0)
        dest = self.store / "generate/sd15/1/controlnet/control_v11p_sd15_lineart/config.json"
        self.assertIn("http://127.0.0.1:9/lllyasviel/control_v11p_sd15_lineart/resolve/main/"
                      "config.json", result.stderr)
        self.assertIn(f"copy the file to {dest}", result.stderr)
        self.assertIn("IMGINTERP_HF_ENDPOINT", result.stderr)
        self.assertFalse(dest.exists())

    def test_http_download_sends_token_and_resumes(self):
        hub, seen = self.hub, []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append((self.path, self.headers.get("Authorization"),
                             self.headers.get("Range")))
                path = hub / self.path.lstrip("/")
                if not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if match:
                    data = data[int(match.group(1)):]
                    self.send_response(206)
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            model = self.model("controlnet-openpose")
            weights = self.hub_path(model, "diffusion_pytorch_model.safetensors")
            dest = (self.store / "generate/sd15/1/controlnet/control_v11p_sd15_openpose/"
                    "diffusion_pytorch_model.safetensors")
            dest.parent.mkdir(parents=True)
            half = weights.stat().st_size // 2
            pathlib.Path(str(dest) + ".part").write_bytes(weights.read_bytes()[:half])
            result = self.run_fetch("--only", "controlnet-openpose",
                                    endpoint=f"http://127.0.0.1:{server.server_port}",
                                    env={"HF_TOKEN": "hf_test_token"})
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertEqual(dest.read_bytes(), weights.read_bytes())
            self.assertTrue(seen)
            self.assertTrue(all(auth == "Bearer hf_test_token" for _, auth, _ in seen), seen)
            self.assertIn(("/lllyasviel/control_v11p_sd15_openpose/resolve/main/"
                           "diffusion_pytorch_model.safetensors", "Bearer hf_test_token",
                           f"bytes={half}-"), seen)
            missing = self.run_fetch("--only", "clip-vit-b32",
                                     endpoint=f"http://127.0.0.1:{server.server_port}/nowhere")
            self.assertIn("HTTP 404", missing.stderr)
        finally:
            server.shutdown()
            server.server_close()


if __name__ == "__main__":
    unittest.main()
