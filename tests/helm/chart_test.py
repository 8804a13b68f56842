#!/usr/bin/env python3
"""Checks the Helm chart helm/image-interpreter offline.

The chart is rendered with deploy/helm-render (a `helm template` built here from Debian's Go
packages) with the default values and with tests/helm/values-gpu.yaml; every rendered object is
validated against the Kubernetes API schemas of the npm package kubernetes-models
(tests/helm/install-k8s-models.sh), and the objects are checked against the values they came
from: one Deployment per enabled family with its replicas, resources and GPUs, Services that
select those Deployments' pods, gRPC probes on the gRPC port, the read-only model store. Missing
required values must make the renderer fail with the chart's `required` message.

  /usr/bin/python3 tests/helm/chart_test.py --build-dir DIR [unittest args, e.g. a class name]

Exit codes: 0 pass, 1 fail, 77 every test skipped because Go, the Go packages or node/npm are
missing. Under CI=true a missing prerequisite is a failure, not a skip.
Environment: IMGINTERP_K8S_MODELS_DIR (else tests/helm/install-k8s-models.sh is run), CI.
"""
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CHART = os.path.join(REPO, "helm", "image-interpreter")
RENDERER_SRC = os.path.join(REPO, "deploy", "helm-render")
GPU_VALUES = os.path.join(HERE, "values-gpu.yaml")
GOPATH = "/usr/share/gocode"
GO_PACKAGES = ("github.com/Masterminds/sprig", "gopkg.in/yaml.v3")
EXIT_SKIP = 77
BUILD_DIR = None  # set in main()


def running_in_ci():
    return os.environ.get("CI", "").lower() in ("true", "1")


def require(test, ok, message):
    """Skips `test` (fails it under CI=true) when a prerequisite is missing."""
    if ok:
        return
    if running_in_ci():
        test.fail(f"{message} (CI=true, so this fails)")
    test.skipTest(message)


_renderer = {}


def renderer(test):
    """Builds deploy/helm-render once into the build dir; a compile error is a failure."""
    if "path" not in _renderer:
        go = shutil.which("go")
        missing = [p for p in GO_PACKAGES if not os.path.isdir(os.path.join(GOPATH, "src", p))]
        if go is None or missing:
            _renderer["path"] = None
            _renderer["why"] = ("go or the Go packages " + ", ".join(missing or GO_PACKAGES) +
                                " are missing; apt-get install golang-go "
                                "golang-github-masterminds-sprig-dev golang-gopkg-yaml.v3-dev "
                                "(deploy/install-deps.sh)")
        else:
            out = os.path.join(BUILD_DIR, "helm-render")
            env = dict(os.environ, GO111MODULE="off", GOPATH=GOPATH, GOFLAGS="",
                       GOCACHE=os.path.join(BUILD_DIR, "gocache"))
            build = subprocess.run([go, "build", "-o", out, "."], cwd=RENDERER_SRC, env=env,
                                   capture_output=True, text=True)
            _renderer["path"] = out
            _renderer["error"] = None if build.returncode == 0 else build.stderr
    require(test, _renderer["path"] is not None, _renderer.get("why", ""))
    if _renderer["error"]:
        test.fail("deploy/helm-render does not build:\n" + _renderer["error"])
    return _renderer["path"]


_models_dir = {}


def k8s_models_dir(test):
    if "dir" not in _models_dir:
        path, why = os.environ.get("IMGINTERP_K8S_MODELS_DIR"), ""
        if not path:
            run = subprocess.run([os.path.join(HERE, "install-k8s-models.sh")],
                                 capture_output=True, text=True)
            path = run.stdout.strip() if run.returncode == 0 else None
            why = run.stderr.strip()[-600:]
        _models_dir["dir"], _models_dir["why"] = path, why
    require(test, _models_dir["dir"] and shutil.which("node"),
            "kubernetes-models is not installed (node/npm or the npm registry missing): " +
            _models_dir["why"])
    return _models_dir["dir"]


def run_renderer(test, *args, chart=CHART):
    return subprocess.run([renderer(test), "test-release", chart, "-n", "imginterp", *args],
                          capture_output=True, text=True)


def render(test, *args, chart=CHART):
    """Rendered objects (list of dicts) and the merged values they came from."""
    run = run_renderer(test, "-o", "json", *args, chart=chart)
    test.assertEqual(run.returncode, 0, "render failed: " + run.stderr)
    values = run_renderer(test, "-o", "json", "--show-values", *args, chart=chart)
    test.assertEqual(values.returncode, 0, values.stderr)
    return json.loads(run.stdout), json.loads(values.stdout)


def component(obj):
    return obj["metadata"].get("labels", {}).get("app.kubernetes.io/component")


def by_kind(objects, kind):
    return [o for o in objects if o["kind"] == kind]


class RenderingChecks:
    """Checks shared by the renderings; subclasses set EXTRA_ARGS."""

    EXTRA_ARGS = ()

    @classmethod
    def setUpClass(cls):
        cls._rendered = None

    def rendered(self):
        if type(self)._rendered is None:
            type(self)._rendered = render(self, *self.EXTRA_ARGS)
        return type(self)._rendered

    def test_every_object_validates_against_the_kubernetes_schemas(self):
        objects, _ = self.rendered()
        models = k8s_models_dir(self)
        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            json.dump(objects, f)
            f.flush()
            run = subprocess.run(["node", os.path.join(HERE, "validate_objects.cjs"),
                                  "--models-dir", models, f.name], capture_output=True, text=True)
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        self.assertIn(f"{len(objects)}/{len(objects)} objects valid", run.stdout)

    def test_one_deployment_per_enabled_family_with_its_replicas_resources_and_gpus(self):
        objects, values = self.rendered()
        deployments = by_kind(objects, "Deployment")
        hpas = {o["spec"]["scaleTargetRef"]["name"]: o
                for o in by_kind(objects, "HorizontalPodAutoscaler")}
        enabled = {name for name, f in values["families"].items() if f["enabled"]}
        self.assertTrue(enabled)
        for name, family in values["families"].items():
            mine = [d for d in deployments if component(d) == name]
            if name not in enabled:
                self.assertEqual(mine, [], f"{name} is disabled but has a Deployment")
                continue
            self.assertEqual(len(mine), 1, f"{name}: {len(mine)} Deployments")
            deployment = mine[0]
            spec = deployment["spec"]
            autoscaling = family.get("autoscaling") or {}
            if autoscaling.get("enabled"):
                self.assertNotIn("replicas", spec, f"{name}: the HPA owns the replica count")
                hpa = hpas[deployment["metadata"]["name"]]
                self.assertEqual(hpa["spec"]["minReplicas"],
                                 autoscaling.get("minReplicas", family["replicas"]))
                self.assertEqual(hpa["spec"]["maxReplicas"], autoscaling["maxReplicas"])
            else:
                self.assertEqual(spec["replicas"], family["replicas"], name)
            containers = spec["template"]["spec"]["containers"]
            self.assertEqual(len(containers), 1)
            resources = containers[0]["resources"]
            gpu = family.get("gpu", 0)
            for section in ("requests", "limits"):
                expected = dict(family["resources"].get(section, {}))
                if gpu:
                    expected["nvidia.com/gpu"] = gpu
                self.assertEqual(resources.get(section, {}), expected, f"{name} {section}")
            env = {e["name"]: e.get("value") for e in containers[0]["env"]}
            self.assertEqual(env["IMGINTERP_USE_CUDA"], "true" if gpu else "false", name)
            self.assertEqual(env["IMGINTERP_GRPC_PORT"], str(family["grpcPort"]))
            self.assertEqual(env["IMGINTERP_METRICS_PORT"], str(family["metricsPort"]))
            self.assertTrue(env["IMGINTERP_NATS_URL"].startswith("nats://"))
            self.assertTrue(containers[0]["image"].startswith(family["image"]["repository"]))

    def test_services_select_their_deployments_pods(self):
        objects, _ = self.rendered()
        services = by_kind(objects, "Service")
        for deployment in by_kind(objects, "Deployment") + by_kind(objects, "StatefulSet"):
            pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
            match = deployment["spec"]["selector"]["matchLabels"]
            self.assertTrue(match.items() <= pod_labels.items())
            selecting = [s for s in services
                         if s["spec"]["selector"].items() <= pod_labels.items()]
            self.assertTrue(selecting, f"no Service selects {deployment['metadata']['name']}")
            container_ports = {p["name"]: p["containerPort"]
                               for c in deployment["spec"]["template"]["spec"]["containers"]
                               for p in c.get("ports", [])}
            for service in selecting:
                self.assertEqual(service["spec"]["selector"], match,
                                 "a Service selects exactly one component's pods")
                for port in service["spec"]["ports"]:
                    self.assertIn(port["targetPort"], container_ports, service["metadata"]["name"])
            # No Service of another component selects these pods.
            for service in services:
                if service not in selecting:
                    self.assertNotEqual(service["spec"]["selector"], match)

    def test_probes_are_grpc_on_the_grpc_port(self):
        objects, values = self.rendered()
        expected_ports = {n: f["grpcPort"] for n, f in values["families"].items()}
        expected_ports["gateway"] = values["gateway"]["grpcPort"]
        checked = 0
        for deployment in by_kind(objects, "Deployment"):
            name = component(deployment)
            container = deployment["spec"]["template"]["spec"]["containers"][0]
            grpc_port = {p["name"]: p["containerPort"] for p in container["ports"]}["grpc"]
            self.assertEqual(grpc_port, expected_ports[name], name)
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                self.assertEqual(container[probe].get("grpc", {}).get("port"), grpc_port,
                                 f"{name} {probe}")
                self.assertNotIn("httpGet", container[probe])
            checked += 1
        self.assertGreater(checked, 1)

    def test_model_store_is_mounted_read_only_and_fetched_by_an_init_container(self):
        objects, values = self.rendered()
        claims = by_kind(objects, "PersistentVolumeClaim")
        self.assertEqual(len(claims), 1)
        claim = claims[0]["metadata"]["name"]
        for deployment in by_kind(objects, "Deployment"):
            name = component(deployment)
            if name == "gateway":
                continue
            family = values["families"][name]
            pod = deployment["spec"]["template"]["spec"]
            mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
            volumes = {v["name"]: v for v in pod["volumes"]}
            if not family["modelRepository"]:
                self.assertNotIn("models", mounts, name)
                continue
            self.assertTrue(mounts["models"].get("readOnly"), name)
            self.assertEqual(volumes["models"]["persistentVolumeClaim"]["claimName"], claim)
            init = pod.get("initContainers", [])
            if family["models"]:
                self.assertEqual(len(init), 1, name)
                self.assertTrue(init[0]["command"][0].endswith("deploy/models/fetch-models.sh"))
                self.assertEqual(init[0]["args"], ["--only", ",".join(family["models"])])
                self.assertFalse(
                    any(m.get("readOnly") for m in init[0]["volumeMounts"] if m["name"] == "models"))
            else:
                self.assertEqual(init, [], name)

    def test_standard_labels_on_every_object(self):
        objects, _ = self.rendered()
        for obj in objects:
            labels = obj["metadata"].get("labels", {})
            for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance",
                        "app.kubernetes.io/managed-by", "helm.sh/chart"):
                self.assertIn(key, labels, f"{obj['kind']} {obj['metadata']['name']}")
            self.assertEqual(labels["app.kubernetes.io/instance"], "test-release")
            self.assertEqual(obj["metadata"]["namespace"], "imginterp")


class DefaultValues(RenderingChecks, unittest.TestCase):
    def test_nats_jetstream_statefulset_is_the_job_bus(self):
        objects, _ = self.rendered()
        statefulsets = by_kind(objects, "StatefulSet")
        self.assertEqual([component(s) for s in statefulsets], ["nats"])
        config = [c for c in by_kind(objects, "ConfigMap") if component(c) == "nats"][0]
        self.assertIn("jetstream", config["data"]["nats-server.conf"])
        nats_services = [s["metadata"]["name"] for s in by_kind(objects, "Service")
                         if component(s) == "nats" and s["spec"].get("clusterIP") != "None"]
        for deployment in by_kind(objects, "Deployment"):
            env = {e["name"]: e.get("value")
                   for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
            self.assertEqual(env["IMGINTERP_NATS_URL"], f"nats://{nats_services[0]}:4222")

    def test_no_service_monitor_or_gpu_by_default(self):
        objects, _ = self.rendered()
        self.assertEqual(by_kind(objects, "ServiceMonitor"), [])
        self.assertNotIn("nvidia.com/gpu", json.dumps(by_kind(objects, "Deployment")))


class GpuValues(RenderingChecks, unittest.TestCase):
    EXTRA_ARGS = ("-f", GPU_VALUES)

    def test_gpu_families_request_and_limit_their_gpus(self):
        objects, values = self.rendered()
        gpu_families = {n for n, f in values["families"].items() if f["enabled"] and f.get("gpu")}
        self.assertEqual(gpu_families, {"generate", "upscale"})
        for deployment in by_kind(objects, "Deployment"):
            pod = deployment["spec"]["template"]["spec"]
            resources = pod["containers"][0]["resources"]
            if component(deployment) in gpu_families:
                self.assertEqual(resources["limits"]["nvidia.com/gpu"], 1)
                self.assertEqual(resources["requests"]["nvidia.com/gpu"], 1)
                self.assertIn("nvidia.com/gpu", [t["key"] for t in pod["tolerations"]])
            else:
                self.assertNotIn("nvidia.com/gpu", resources.get("limits", {}))

    def test_gpu_file_changes_replicas_and_adds_autoscalers(self):
        objects, values = self.rendered()
        generate = [d for d in by_kind(objects, "Deployment") if component(d) == "generate"][0]
        self.assertEqual(generate["spec"]["replicas"], values["families"]["generate"]["replicas"])
        self.assertNotEqual(values["families"]["generate"]["replicas"], 1)
        hpas = {component(h): h for h in by_kind(objects, "HorizontalPodAutoscaler")}
        self.assertEqual(set(hpas), {"upscale", "detect"})
        self.assertEqual(hpas["upscale"]["spec"]["metrics"][0]["type"], "Pods")
        self.assertEqual(hpas["detect"]["spec"]["metrics"][0]["resource"]["name"], "cpu")

    def test_service_monitor_scrapes_the_metrics_ports(self):
        objects, _ = self.rendered()
        monitors = by_kind(objects, "ServiceMonitor")
        self.assertEqual(len(monitors), 1)
        selector = monitors[0]["spec"]["selector"]["matchLabels"]
        scraped = [s for s in by_kind(objects, "Service")
                   if selector.items() <= s["metadata"]["labels"].items()]
        components = {component(s) for s in scraped}
        deployed = {component(d) for d in by_kind(objects, "Deployment")}
        self.assertEqual(components, deployed)
        for service in scraped:
            self.assertIn("metrics", [p["name"] for p in service["spec"]["ports"]])


class RequiredValues(unittest.TestCase):
    def assert_fails_with(self, message, *args):
        run = run_renderer(self, *args)
        self.assertNotEqual(run.returncode, 0, "rendering should have failed")
        self.assertIn(message, run.stderr)

    def test_no_job_bus(self):
        self.assert_fails_with("nats.external.url is required when nats.statefulset.enabled=false",
                               "--set", "nats.statefulset.enabled=false")

    def test_external_job_bus_replaces_the_statefulset(self):
        objects, _ = render(self, "--set", "nats.statefulset.enabled=false",
                            "--set", "nats.external.url=nats://bus.example:4222")
        self.assertEqual(by_kind(objects, "StatefulSet"), [])
        for deployment in by_kind(objects, "Deployment"):
            env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
            self.assertIn({"name": "IMGINTERP_NATS_URL", "value": "nats://bus.example:4222"}, env)

    def test_image_repository(self):
        self.assert_fails_with("families.pose.image.repository is required",
                               "--set", "families.pose.image.repository=")

    def test_autoscaler_bounds(self):
        self.assert_fails_with("families.segment.autoscaling.maxReplicas is required",
                               "--set", "families.segment.autoscaling.enabled=true")

    def test_schema_rejects_wrong_types_and_unknown_keys(self):
        self.assert_fails_with("families.upscale.gpu: got string, want integer",
                               "--set-string", "families.upscale.gpu=one")
        self.assert_fails_with('additional property "replica" is not allowed',
                               "--set", "families.pose.replica=2")

    def test_enabled_official_nats_chart_is_not_silently_ignored(self):
        self.assert_fails_with("helm dependency build", "--set", "natsChart.enabled=true",
                               "--set", "natsChart.fullnameOverride=bus")


class Dashboards(unittest.TestCase):
    def dashboard_maps(self, objects):
        return [c for c in by_kind(objects, "ConfigMap")
                if c["metadata"]["labels"].get("grafana_dashboard") == "1"]

    def test_one_config_map_per_dashboard_of_the_repository(self):
        objects, _ = render(self)
        files = glob.glob(os.path.join(REPO, "deploy", "grafana", "dashboards", "*.json"))
        self.assertEqual(len(self.dashboard_maps(objects)), len(files))

    def test_dashboard_files_become_labelled_config_maps(self):
        with tempfile.TemporaryDirectory() as tmp:
            chart = os.path.join(tmp, "image-interpreter")
            shutil.copytree(CHART, chart, symlinks=False)  # the dashboards link becomes a folder
            dashboards = os.path.join(chart, "dashboards")
            for old in glob.glob(os.path.join(dashboards, "*.json")):
                os.remove(old)
            contents = {}
            for name in ("serving.json", "Job_Bus.json"):
                contents[name] = json.dumps({"title": name, "panels": [{"id": 1}]})
                with open(os.path.join(dashboards, name), "w") as f:
                    f.write(contents[name])
            objects, _ = render(self, chart=chart)
        maps = self.dashboard_maps(objects)
        self.assertEqual(len(maps), 2)
        data = {}
        for config_map in maps:
            data.update(config_map["data"])
        self.assertEqual(data, contents)
        names = sorted(m["metadata"]["name"] for m in maps)
        self.assertEqual(names, ["test-release-image-interpreter-dashboard-job-bus",
                                 "test-release-image-interpreter-dashboard-serving"])


def main():
    global BUILD_DIR
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build-dir", required=True, help="where helm-render is built")
    args, rest = parser.parse_known_args()
    BUILD_DIR = os.path.abspath(args.build_dir)
    os.makedirs(BUILD_DIR, exist_ok=True)
    program = unittest.main(argv=[sys.argv[0]] + rest, exit=False, verbosity=2)
    result = program.result
    if not result.wasSuccessful():
        return 1
    if result.testsRun and len(result.skipped) == result.testsRun:
        return EXIT_SKIP
    return 0


if __name__ == "__main__":
    sys.exit(main())
