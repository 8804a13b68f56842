#!/usr/bin/env python3
"""Checks deploy/docker/Dockerfile and Dockerfile.cuda without building them.

Each file is parsed into stages and instructions (continuation lines joined, comments dropped).
The build stage must RUN the same project scripts CI runs (those deploy/run-tests.sh calls
before the tests: install-deps.sh and build.sh); the runtime stage (the last one, the default
target) and the model-fetcher stage must switch to a non-root USER; the runtime stage must have a
HEALTHCHECK; no stage may COPY or ADD model weights or the model store into an image.

  /usr/bin/python3 tests/helm/dockerfile_test.py     (exit 0 pass, 1 fail)
"""
import os
import re
import shlex
import sys
import unittest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCKER_DIR = os.path.join(REPO, "deploy", "docker")
DOCKERFILES = ("Dockerfile", "Dockerfile.cuda")
WEIGHT_PATTERN = re.compile(
    r"(\.pt|\.pth|\.safetensors|\.onnx|\.ckpt|\.bin|model\.json)$|(^|/)models?(/|$)|"
    r"image-interpreter/models|\.cache", re.IGNORECASE)


def parse(path):
    """[(stage name or index, [(INSTRUCTION, arguments)])]."""
    lines, current = [], ""
    with open(path) as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not current and (line.lstrip().startswith("#") or not line.strip()):
                continue
            if current and line.lstrip().startswith("#"):
                continue  # comment lines inside a continued instruction
            if line.endswith("\\"):
                current += line[:-1] + " "
                continue
            lines.append(current + line)
            current = ""
    stages = []
    for line in lines:
        instruction, _, args = line.strip().partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            match = re.search(r"\s+AS\s+(\S+)\s*$", args, re.IGNORECASE)
            stages.append((match.group(1) if match else str(len(stages)), []))
        if stages:
            stages[-1][1].append((instruction, args.strip()))
    return stages


def ci_scripts():
    """Project scripts deploy/run-tests.sh runs before ctest: the build CI does."""
    with open(os.path.join(REPO, "deploy", "run-tests.sh")) as f:
        text = f.read()
    before_tests = text.split("ctest")[0]
    scripts = re.findall(r'"\$repo/(deploy/[\w.-]+\.sh)"', before_tests)
    return [s for s in scripts if "fetch" not in s]  # fetching data is not building


class DockerfileChecks:
    NAME = None

    def setUp(self):
        self.path = os.path.join(DOCKER_DIR, self.NAME)
        self.stages = dict(parse(self.path))
        self.order = [name for name, _ in parse(self.path)]

    def instructions(self, stage, kind):
        return [args for instruction, args in self.stages[stage] if instruction == kind]

    def test_build_stage_runs_the_scripts_ci_runs(self):
        scripts = ci_scripts()
        self.assertIn("deploy/install-deps.sh", scripts)
        self.assertIn("deploy/build.sh", scripts)
        runs = self.instructions("build", "RUN")
        positions = []
        for script in scripts:
            self.assertTrue(os.access(os.path.join(REPO, script), os.X_OK), script)
            found = [i for i, run in enumerate(runs) if re.search(rf"(^|\s|/){re.escape(script)}\b", run)]
            self.assertTrue(found, f"{self.NAME}: build stage does not RUN {script}")
            positions.append(found[0])
        self.assertEqual(positions, sorted(positions), "scripts run in CI's order")

    def test_family_is_a_build_argument(self):
        args = [a.split("=")[0] for stage in self.stages for a in self.instructions(stage, "ARG")]
        self.assertIn("FAMILY", args)

    def test_runtime_stage_is_the_default_target(self):
        self.assertEqual(self.order[-1], "runtime")

    def assert_non_root_user(self, stage):
        users = self.instructions(stage, "USER")
        self.assertTrue(users, f"{self.NAME}: stage {stage} sets no USER")
        user = users[-1].split(":")[0]
        self.assertNotIn(user, ("root", "0"), f"{self.NAME}: stage {stage} runs as root")
        # The USER comes after everything that needs root in that stage.
        last_user = max(i for i, (ins, _) in enumerate(self.stages[stage]) if ins == "USER")
        later = [ins for ins, _ in self.stages[stage][last_user + 1:]]
        self.assertNotIn("RUN", later, f"{self.NAME}: {stage} RUNs after switching USER")

    def test_runtime_runs_as_non_root(self):
        self.assert_non_root_user("runtime")

    def test_runtime_has_a_grpc_health_check(self):
        checks = self.instructions("runtime", "HEALTHCHECK")
        self.assertEqual(len(checks), 1)
        self.assertNotEqual(checks[0].upper(), "NONE")
        self.assertRegex(checks[0], r"CMD .*imginterp health ")

    def test_no_model_weights_are_copied_into_any_stage(self):
        for stage, instructions in self.stages.items():
            for instruction, args in instructions:
                if instruction not in ("COPY", "ADD"):
                    continue
                words = [w for w in shlex.split(args) if not w.startswith("--")]
                sources = words[:-1]
                from_stage = re.search(r"--from=(\S+)", args)
                for source in sources:
                    if from_stage and from_stage.group(1) == "libtorch":
                        continue  # the LibTorch runtime libraries, not weights
                    if stage == "model-fetcher" and source == "deploy/models":
                        continue  # the fetch scripts and catalogue: code, no weights
                    self.assertIsNone(WEIGHT_PATTERN.search(source),
                                      f"{self.NAME}: stage {stage} copies {source}")

    def test_build_context_ignores_weights_and_build_trees(self):
        with open(self.path + ".dockerignore") as f:
            patterns = {line.strip() for line in f if line.strip() and not line.startswith("#")}
        for pattern in ("build", "**/*.pt", "**/*.safetensors"):
            self.assertIn(pattern, patterns)


class CpuDockerfile(DockerfileChecks, unittest.TestCase):
    NAME = "Dockerfile"

    def test_model_fetcher_runs_fetch_models_as_non_root(self):
        self.assert_non_root_user("model-fetcher")
        entry = self.instructions("model-fetcher", "ENTRYPOINT")[-1]
        self.assertIn("deploy/models/fetch-models.sh", entry)
        script = os.path.join(REPO, "deploy", "models", "fetch-models.sh")
        self.assertTrue(os.access(script, os.X_OK))

    def test_every_stage_is_debian_12(self):
        with open(self.path) as f:
            text = f.read()
        self.assertRegex(text, r"(?m)^ARG DEBIAN_IMAGE=debian:12$")
        for base in re.findall(r"(?m)^FROM\s+(\S+)", text):
            self.assertIn(base, ("${DEBIAN_IMAGE}", "debian:12", "debian:12-slim"))


class CudaDockerfile(DockerfileChecks, unittest.TestCase):
    NAME = "Dockerfile.cuda"

    def test_libtorch_is_pinned_by_url_and_checksum(self):
        args = dict(a.partition("=")[::2] for a in self.instructions("libtorch", "ARG"))
        self.assertIn("download.pytorch.org/libtorch/cu", args["LIBTORCH_URL"])
        self.assertIn("LIBTORCH_SHA256", args)
        runs = " ".join(self.instructions("libtorch", "RUN"))
        self.assertIn("sha256sum -c", runs)


if __name__ == "__main__":
    program = unittest.main(exit=False, verbosity=2)
    sys.exit(0 if program.result.wasSuccessful() else 1)
