#!/usr/bin/python3
"""Every Grafana dashboard query, run against a real Prometheus scraping the real local stack.

The contract is deploy/metrics.md. This test
  - checks the dashboards of deploy/grafana/dashboards/ without a stack: each is a Grafana model
    (uid, title, schemaVersion, panels with gridPos and the ${datasource} variable), every metric
    a query names is a family documented in metrics.md, and every documented family is on a panel;
  - starts deploy/local/stack.sh with IMGINTERP_PROMETHEUS=1 (free loopback ports, its own state
    dir, 1 s scrapes) and always stops it;
  - drives real traffic through the gateway CLI, after Prometheus's first scrape and in two
    rounds with a scrape between them (so that series made by the first round rise in the
    second and rates are not all 0): `priors` through RunPipeline and through SubmitJob, `edges`
    (a second model of a service), a 1-step 64x64 `generate` (generate, clip, upscale) and
    `priors` on bytes that are no image (non-OK answers, a failed job). The services are reached
    through the job bus only: the CLI has no direct service command, and bus requests feed the
    same batcher and metrics as direct gRPC calls (deploy/metrics.md);
  - waits until Prometheus has scraped every process after the traffic, then runs every panel
    expression and every template variable query with the variables substituted ($service -> .*,
    $__rate_interval -> 1m, $__range -> 10m) and asserts status success and a non-empty result;
    expressions over families that metrics.md marks "CUDA only" must only parse;
  - asserts every queried metric is exported by some target and that the exported series carry
    the labels metrics.md documents for their family (a `=~".*"` matcher would not notice a
    missing label).
Failures name the dashboard, the panel and the expression.

Needs the binaries (--build-dir), prometheus, the model store with the families of `priors`
and `generate` (IMGINTERP_MODEL_STORE, deploy/models/fetch-models.sh) and the sample photos
(IMGINTERP_SAMPLES_DIR, else deploy/fetch-samples.sh). Without them it skips (exit 77), except
under CI=true where that fails.

  tests/integration/dashboards/dashboards_test.py --build-dir build [-v]
"""
import argparse
import glob
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
METRICS_MD = os.path.join(REPO, "deploy", "metrics.md")
DASHBOARDS_DIR = os.path.join(REPO, "deploy", "grafana", "dashboards")
STACK = os.path.join(REPO, "deploy", "local", "stack.sh")
EXIT_SKIP = 77
BUILD_DIR = None

# Families the driven pipelines need in the model store (edges needs none).
NEEDED_FAMILIES = ("pose", "segment", "detect", "generate", "clip", "upscale")
# What Grafana would put for its built-in variables. The traffic and the scrapes all happen within
# the last minute before the queries; the range covers the whole run.
BUILTINS = {"__rate_interval": "1m", "__interval": "1s", "__range": "10m", "__range_s": "600",
            "__range_ms": "600000"}
GENERATE_PARAMS = {"prompt": "a dancer on a stage", "steps": 1, "width": 64, "height": 64,
                   "seed": 7}
# Per round priors (sync), priors, edges, generate and priors on a non-image, two rounds with a
# scrape between them: a counter child is made at its first increment, so only the second round
# makes every series rise between samples (a rate of a series seen once at its final value is 0).
ROUNDS = 2
EXPECTED_JOBS = 5 * ROUNDS
SCRAPE_INTERVAL_SECONDS = 1
# Prometheus applies its targets up to 5 s after it is ready; then one scrape of each.
FIRST_SCRAPE_WAIT_SECONDS = 30
SCRAPE_WAIT_SECONDS = 30
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and",
                   "or", "unless", "offset", "inf", "nan", "atan2"}


def prerequisite_missing(message):
    """Skips, except under CI=true where a missing prerequisite fails."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        raise AssertionError(message + " (CI=true: required)")
    raise unittest.SkipTest(message)


# ---- the contract: deploy/metrics.md --------------------------------------------------------


def documented_families():
    """{family: {"type": ..., "labels": [...], "cuda_only": bool}} from metrics.md's tables."""
    families = {}
    in_table = False
    with open(METRICS_MD, encoding="utf-8") as f:
        for line in f:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not line.startswith("|"):
                in_table = False
                continue
            if cells[:2] == ["family", "type"]:
                in_table = True
                continue
            if not in_table or set(cells[0]) <= set("-: "):
                continue
            name = cells[0].strip("`")
            labels = [l.strip() for l in cells[2].split(",") if l.strip()]
            families[name] = {"type": cells[1], "labels": labels,
                              "cuda_only": cells[3].startswith("CUDA only")}
    if not families:
        raise AssertionError("no metric family tables found in %s" % METRICS_MD)
    return families


def family_of(name, families):
    """The documented family a series name belongs to, or None."""
    if name in families and families[name]["type"] != "histogram":
        return name
    for suffix in HISTOGRAM_SUFFIXES:
        base = name[:-len(suffix)]
        if name.endswith(suffix) and families.get(base, {}).get("type") == "histogram":
            return base
    return None


# ---- the dashboards ---------------------------------------------------------------------------


class Query:
    """One PromQL expression of a dashboard: a panel target or a template variable."""

    def __init__(self, dashboard, panel, ref, expr, variable_label=None):
        self.dashboard, self.panel, self.ref, self.expr = dashboard, panel, ref, expr
        self.variable_label = variable_label  # set for label_values(selector, label)

    def where(self):
        return "%s / %s [%s]" % (self.dashboard, self.panel, self.ref)


def load_dashboards():
    files = sorted(glob.glob(os.path.join(DASHBOARDS_DIR, "*.json")))
    if not files:
        raise AssertionError("no dashboards in %s" % DASHBOARDS_DIR)
    dashboards = {}
    for path in files:
        with open(path, encoding="utf-8") as f:
            dashboards[os.path.basename(path)] = json.load(f)
    return dashboards


def all_panels(panels):
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))  # rows, collapsed or not


def variable_query_text(variable):
    query = variable.get("query")
    if isinstance(query, dict):
        query = query.get("query", "")
    return query or variable.get("definition", "")


def dashboard_queries(dashboards):
    """(panel queries, variable queries) of every dashboard."""
    panel_queries, variable_queries = [], []
    for name, model in dashboards.items():
        title = model.get("title", name)
        for panel in all_panels(model.get("panels", [])):
            for target in panel.get("targets", []):
                if target.get("expr"):
                    panel_queries.append(Query(title, panel.get("title", "?"),
                                               target.get("refId", "?"), target["expr"]))
        for variable in model.get("templating", {}).get("list", []):
            if variable.get("type") != "query":
                continue
            text = variable_query_text(variable).strip()
            where = "variable $%s" % variable["name"]
            match = re.fullmatch(r"label_values\((.*),\s*(\w+)\s*\)", text, re.S)
            if match:
                variable_queries.append(Query(title, where, "label_values", match.group(1),
                                              match.group(2)))
                continue
            match = re.fullmatch(r"query_result\((.*)\)", text, re.S)
            if match:
                variable_queries.append(Query(title, where, "query_result", match.group(1)))
                continue
            # label_values(label) without a selector, metrics(), label_names(): not PromQL; this
            # test does not know how to check them yet.
            variable_queries.append(Query(title, where, "unsupported", text))
    return panel_queries, variable_queries


def variable_values(dashboards):
    """What each dashboard's template variables stand for in the test: All, else the current."""
    values = {}
    for name, model in dashboards.items():
        mine = dict(BUILTINS)
        for variable in model.get("templating", {}).get("list", []):
            if variable.get("includeAll"):
                mine[variable["name"]] = variable.get("allValue") or ".*"
            else:
                current = variable.get("current", {}).get("value")
                if isinstance(current, list):
                    current = "|".join(current)
                if current:
                    mine[variable["name"]] = current
        values[model.get("title", name)] = mine
    return values


def substitute(expr, values):
    """Grafana's $var, ${var}, ${var:format} and [[var]]; unknown names stay (and fail to parse)."""
    def replace(match):
        name = match.group(1) or match.group(2) or match.group(3)
        return values.get(name, match.group(0))
    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)", replace, expr)


def metric_names(expr):
    """Metric names an expression selects: identifiers that are not functions, keywords, label
    names (in braces or grouping clauses), strings, durations or numbers."""
    text = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in PROMQL_KEYWORDS:
            continue
        names.add(name)
    return names


# ---- the stack and Prometheus -----------------------------------------------------------------


def free_base_port():
    """A base port whose whole range (gateway, services, NATS, Prometheus, metrics) is free."""
    offsets = list(range(0, 9)) + [22, 23, 90] + list(range(100, 109))
    for _ in range(100):
        base = random.randrange(20000, 60000, 10)
        sockets = []
        try:
            for offset in offsets:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sockets.append(s)
                s.bind(("127.0.0.1", base + offset))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise AssertionError("no free port range for the stack on 127.0.0.1")


def samples_dir():
    env = os.environ.get("IMGINTERP_SAMPLES_DIR")
    if env:
        return env
    run = subprocess.run([os.path.join(REPO, "deploy", "fetch-samples.sh")],
                         capture_output=True, text=True)
    if run.returncode != 0:
        prerequisite_missing("sample photos missing and deploy/fetch-samples.sh failed: %s"
                             % run.stderr)
    return run.stdout.strip().splitlines()[-1]


def model_store():
    return os.environ.get("IMGINTERP_MODEL_STORE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "image-interpreter",
        "models")


class Prometheus:
    def __init__(self, address):
        self.base = "http://%s" % address

    def get(self, path, **params):
        url = "%s%s?%s" % (self.base, path, urllib.parse.urlencode(params, doseq=True))
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.load(response)
        except urllib.error.HTTPError as e:  # 400/422 carry the PromQL error as JSON
            try:
                return json.load(e)
            except ValueError:
                return {"status": "error", "error": "HTTP %d" % e.code}

    def query(self, expr):
        return self.get("/api/v1/query", query=expr)

    def scalar(self, expr):
        """The single value of an expression, or None when it has none."""
        result = self.query(expr).get("data", {}).get("result", [])
        return float(result[0]["value"][1]) if result else None

    def names(self):
        return set(self.get("/api/v1/label/__name__/values").get("data", []))


class Stack:
    """deploy/local/stack.sh with Prometheus on free ports and its own state dir."""

    def __init__(self, build_dir, store):
        self.dir = tempfile.mkdtemp(prefix="imginterp-dashboards-")
        self.state = os.path.join(self.dir, "state")
        self.base = free_base_port()
        self.gateway = "127.0.0.1:%d" % self.base
        self.cli = os.path.join(build_dir, "gateway", "imginterp")
        # Every binary reads IMGINTERP_<FLAG> variables: none of the caller's may leak in (an
        # IMGINTERP_PARAMS or IMGINTERP_IDEMPOTENCY_KEY would change the jobs).
        clean = {k: v for k, v in os.environ.items() if not k.startswith("IMGINTERP_")}
        self.env = dict(clean, IMGINTERP_BUILD_DIR=build_dir, IMGINTERP_STATE_DIR=self.state,
                        IMGINTERP_MODEL_STORE=store, IMGINTERP_BASE_PORT=str(self.base),
                        IMGINTERP_PROMETHEUS="1",
                        IMGINTERP_PROMETHEUS_SCRAPE_INTERVAL="%ds" % SCRAPE_INTERVAL_SECONDS,
                        # The gateway's consumer poll (--bus_poll_seconds), fast for the test.
                        IMGINTERP_BUS_POLL_SECONDS="1", OPENBLAS_NUM_THREADS="1")
        self.prometheus = Prometheus("127.0.0.1:%d" % (self.base + 90))
        self.runs = 0

    def start(self):
        run = subprocess.run([STACK, "start"], env=self.env, capture_output=True, text=True,
                             timeout=300)
        if run.returncode != 0:
            raise AssertionError("deploy/local/stack.sh start failed (exit %d):\n%s"
                                 % (run.returncode, run.stderr))

    def stop(self):
        subprocess.run([STACK, "stop"], env=self.env, capture_output=True, text=True, timeout=120)

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def processes(self):
        """Names of the processes the stack started (its pid files), Prometheus and NATS aside."""
        names = [os.path.basename(p)[:-len(".pid")]
                 for p in glob.glob(os.path.join(self.state, "*.pid"))]
        return sorted(n for n in names if n not in ("nats", "prometheus"))

    def run_cli(self, image, pipeline, *flags):
        self.runs += 1
        out = os.path.join(self.dir, "out", "%d-%s" % (self.runs, pipeline))
        return subprocess.Popen(
            [self.cli, "run", image, "--gateway=" + self.gateway, "--pipeline=" + pipeline,
             "--quiet", "--out=" + out] + list(flags),
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait(process, what, expect_ok=True):
    try:
        out, err = process.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError("%s did not finish within 180 s" % what)
    if expect_ok and process.returncode != 0:
        raise AssertionError("%s failed (exit %d): %s%s" % (what, process.returncode, out, err))
    if not expect_ok and process.returncode == 0:
        raise AssertionError("%s succeeded; it should have failed: %s" % (what, out))
    return err


def describe(response):
    """(series count, how many have a finite non-zero value) of an instant query's answer."""
    data = response.get("data", {})
    result = data.get("result", [])
    if data.get("resultType") == "scalar":
        result = [{"value": result}]
    values = [float(series["value"][1]) for series in result]
    return len(result), sum(1 for v in values if math.isfinite(v) and v != 0)


# ---- the tests --------------------------------------------------------------------------------


class DashboardFiles(unittest.TestCase):
    """Checks of the dashboard files against metrics.md; no stack needed."""

    @classmethod
    def setUpClass(cls):
        cls.families = documented_families()
        cls.dashboards = load_dashboards()
        cls.panel_queries, cls.variable_queries = dashboard_queries(cls.dashboards)

    def test_dashboards_are_grafana_models_on_the_datasource_variable(self):
        uids = set()
        for name, model in self.dashboards.items():
            for key in ("uid", "title", "schemaVersion", "panels", "templating"):
                self.assertIn(key, model, "%s: no %s" % (name, key))
            self.assertNotIn(model["uid"], uids, "%s: uid %s used twice" % (name, model["uid"]))
            uids.add(model["uid"])
            self.assertGreaterEqual(model["schemaVersion"], 36, name)
            variables = {v["name"]: v for v in model["templating"]["list"]}
            self.assertEqual(variables.get("datasource", {}).get("type"), "datasource",
                             "%s: no datasource variable" % name)
            ids = set()
            for panel in all_panels(model["panels"]):
                where = "%s / %s" % (name, panel.get("title"))
                self.assertIn("gridPos", panel, where)
                self.assertEqual(set(panel["gridPos"]), {"h", "w", "x", "y"}, where)
                self.assertLessEqual(panel["gridPos"]["x"] + panel["gridPos"]["w"], 24, where)
                self.assertNotIn(panel["id"], ids, "%s: panel id %s twice" % (where, panel["id"]))
                ids.add(panel["id"])
                if panel["type"] == "row":
                    continue
                self.assertTrue(panel.get("title"), where)
                self.assertTrue(panel.get("targets"), "%s: no targets" % where)
                self.assertEqual(panel.get("datasource", {}).get("uid"), "${datasource}", where)
                for target in panel["targets"]:
                    self.assertTrue(target.get("expr"), "%s: a target without expr" % where)
                    self.assertEqual(target.get("datasource", {}).get("uid", "${datasource}"),
                                     "${datasource}", where)

    def test_rate_windows_use_the_rate_interval_or_the_range(self):
        for query in self.panel_queries:
            for window in re.findall(r"\[([^\]]*)\]", query.expr):
                self.assertIn(window, ("$__rate_interval", "$__range"),
                              "%s: window [%s] in %s" % (query.where(), window, query.expr))

    def test_every_queried_metric_is_a_documented_family(self):
        failures = []
        for query in self.panel_queries + self.variable_queries:
            if query.ref == "unsupported":
                failures.append("%s: a variable query this test cannot run: %s"
                                % (query.where(), query.expr))
            for name in sorted(metric_names(query.expr)):
                if family_of(name, self.families) is None:
                    failures.append("%s: %s in %s" % (query.where(), name, query.expr))
        self.assertEqual(failures, [], "metrics that are no family of deploy/metrics.md "
                         "(histograms take _bucket/_sum/_count):\n" + "\n".join(failures))

    def test_every_documented_family_is_on_a_panel(self):
        used = set()
        for query in self.panel_queries:
            used |= {family_of(name, self.families) for name in metric_names(query.expr)}
        missing = sorted(set(self.families) - used)
        self.assertEqual(missing, [], "families of deploy/metrics.md on no dashboard panel")


class LiveQueries(unittest.TestCase):
    """Every query against Prometheus scraping the local stack after real traffic."""

    stack = None

    @classmethod
    def setUpClass(cls):
        cls.families = documented_families()
        cls.dashboards = load_dashboards()
        cls.panel_queries, cls.variable_queries = dashboard_queries(cls.dashboards)
        cls.values = variable_values(cls.dashboards)
        store = model_store()
        missing = [f for f in NEEDED_FAMILIES
                   if not glob.glob(os.path.join(store, f, "*", "config.pbtxt"))]
        if missing:
            prerequisite_missing("model store %s has no %s models: run "
                                 "deploy/models/fetch-models.sh" % (store, ", ".join(missing)))
        if not (shutil.which("prometheus") or os.access("/usr/bin/prometheus", os.X_OK)):
            prerequisite_missing("prometheus is not installed: run deploy/install-deps.sh")
        photo = os.path.join(samples_dir(), "person.jpg")
        if not os.path.exists(photo):
            prerequisite_missing("%s missing: run deploy/fetch-samples.sh" % photo)
        cls.stack = Stack(BUILD_DIR, store)
        started = time.monotonic()
        try:
            cls.stack.start()
            # Traffic after the first scrape, so that counters and histograms rise between
            # samples and rates show it.
            cls.wait_for_first_scrape()
            for round_ in range(ROUNDS):
                if round_:
                    cls.wait_for_scrape_after(cls.traffic_ended)
                cls.drive(photo)
                cls.traffic_ended = time.time()
            cls.wait_for_scrapes()
        except BaseException:
            cls.tearDownClass()
            raise
        print("\nstack started and traffic scraped in %.1f s (base port %d)"
              % (time.monotonic() - started, cls.stack.base), file=sys.stderr)

    @classmethod
    def tearDownClass(cls):
        if cls.stack is not None:
            cls.stack.stop()
            cls.stack.remove()
            cls.stack = None

    @classmethod
    def drive(cls, photo):
        stack = cls.stack
        bad = os.path.join(stack.dir, "not-an-image.jpg")
        with open(bad, "wb") as f:
            f.write(b"these bytes are no PNG, JPEG, WebP or BMP\n" * 20)
        wait(stack.run_cli(photo, "priors", "--sync"), "priors (RunPipeline)")
        # The asynchronous jobs together, through SubmitJob and the job bus.
        jobs = [
            (stack.run_cli(photo, "priors"), "priors (SubmitJob)", True),
            (stack.run_cli(photo, "edges"), "edges", True),
            (stack.run_cli(photo, "generate", "--params=" + json.dumps(GENERATE_PARAMS)),
             "generate", True),
            (stack.run_cli(bad, "priors"), "priors on a non-image", False),
        ]
        for process, what, ok in jobs:
            wait(process, what, ok)

    @classmethod
    def wait_for_first_scrape(cls):
        targets = len(cls.stack.processes())
        deadline = time.monotonic() + FIRST_SCRAPE_WAIT_SECONDS
        while time.monotonic() < deadline:
            if cls.stack.prometheus.scalar("count(up == 1)") == targets:
                return
            time.sleep(0.2)
        raise AssertionError("Prometheus did not scrape all %d processes within %d s: %s"
                             % (targets, FIRST_SCRAPE_WAIT_SECONDS,
                                cls.stack.prometheus.get("/api/v1/targets")))

    @classmethod
    def wait_for_scrape_after(cls, moment):
        deadline = time.monotonic() + SCRAPE_WAIT_SECONDS
        while time.monotonic() < deadline:
            oldest = cls.stack.prometheus.scalar("min(timestamp(up))")
            if oldest is not None and oldest > moment + 0.1:
                return
            time.sleep(0.2)
        raise AssertionError("Prometheus did not scrape every process within %d s"
                             % SCRAPE_WAIT_SECONDS)

    @classmethod
    def wait_for_scrapes(cls):
        """Until every process was scraped twice after the traffic (a rate needs two samples)
        and every documented family (but the CUDA ones) and all jobs are there; bounded, the
        tests report what is still missing."""
        prometheus = cls.stack.prometheus
        targets = len(cls.stack.processes())
        needed = {name for name, f in cls.families.items() if not f["cuda_only"]}
        # The newest sample this late means the one before it came after the traffic too.
        scraped_after = cls.traffic_ended + 2.5 * SCRAPE_INTERVAL_SECONDS
        deadline = time.monotonic() + SCRAPE_WAIT_SECONDS
        while time.monotonic() < deadline:
            up = prometheus.scalar("count(up == 1)")
            oldest = prometheus.scalar("min(timestamp(up))")
            jobs = prometheus.scalar("sum(imginterp_gateway_jobs_total)")
            exported = {family_of(n, cls.families) for n in prometheus.names()}
            if (up == targets and oldest is not None and oldest > scraped_after
                    and jobs is not None and jobs >= EXPECTED_JOBS and needed <= exported):
                return
            time.sleep(0.5)
        print("\nwarning: after %d s Prometheus still lacks some of the traffic (up targets %s of "
              "%d, jobs %s of %d, families missing: %s)"
              % (SCRAPE_WAIT_SECONDS, up, targets, jobs, EXPECTED_JOBS,
                 ", ".join(sorted(needed - exported)) or "none"), file=sys.stderr)

    def uses_cuda_only(self, expr):
        return any(self.families.get(family_of(n, self.families) or "", {}).get("cuda_only")
                   for n in metric_names(expr))

    def test_every_process_of_the_stack_is_a_healthy_target(self):
        targets = self.stack.prometheus.get("/api/v1/targets")["data"]["activeTargets"]
        components = sorted(t["labels"].get("component", "?") for t in targets)
        self.assertEqual(components, self.stack.processes())
        for target in targets:
            self.assertEqual(target["health"], "up", "%s: %s" % (target["scrapeUrl"],
                                                                 target.get("lastError")))

    def test_every_panel_query_returns_data(self):
        failures, report = [], []
        for query in self.panel_queries:
            expr = substitute(query.expr, self.values[query.dashboard])
            response = self.stack.prometheus.query(expr)
            if response.get("status") != "success":
                failures.append("%s: %s\n    %s" % (query.where(), response.get("error"), expr))
                continue
            series, finite = describe(response)
            if self.uses_cuda_only(query.expr):
                report.append("%-32s %s" % ("parse only (CUDA only)", query.where()))
                continue
            if series == 0:
                failures.append("%s: no data\n    %s" % (query.where(), expr))
            report.append("%-32s %s" % ("%d series, %d finite non-zero" % (series, finite),
                                        query.where()))
        print("\n" + "\n".join(report), file=sys.stderr)
        self.assertEqual(failures, [], "dashboard queries that failed:\n" + "\n".join(failures))

    def test_every_variable_query_has_values(self):
        failures = []
        for query in self.variable_queries:
            expr = substitute(query.expr, self.values[query.dashboard])
            if query.variable_label:
                expr = "count by (%s) (%s)" % (query.variable_label, expr)
            response = self.stack.prometheus.query(expr)
            if response.get("status") != "success":
                failures.append("%s: %s\n    %s" % (query.where(), response.get("error"), expr))
                continue
            result = response["data"]["result"]
            if query.variable_label:
                result = [r for r in result if r["metric"].get(query.variable_label)]
            if not result:
                failures.append("%s: no values\n    %s" % (query.where(), expr))
        self.assertEqual(failures, [], "variable queries that failed:\n" + "\n".join(failures))

    def test_every_queried_metric_is_exported(self):
        exported = self.stack.prometheus.names()
        missing = []
        for query in self.panel_queries + self.variable_queries:
            for name in metric_names(query.expr):
                family = family_of(name, self.families)
                if family and self.families[family]["cuda_only"]:
                    continue
                if name not in exported:
                    missing.append("%s: %s in %s" % (query.where(), name, query.expr))
        self.assertEqual(missing, [], "metrics no target exports:\n" + "\n".join(missing))

    def test_exported_series_carry_the_documented_labels(self):
        failures = []
        for family, spec in sorted(self.families.items()):
            if spec["cuda_only"]:
                continue
            name = family + ("_count" if spec["type"] == "histogram" else "")
            result = self.stack.prometheus.query(name).get("data", {}).get("result", [])
            if not result:
                failures.append("%s: no series" % family)
            for series in result:
                lacking = [l for l in spec["labels"] if not series["metric"].get(l)]
                if lacking:
                    failures.append("%s: series %s lacks %s" % (family, series["metric"],
                                                                ", ".join(lacking)))
                    break
        self.assertEqual(failures, [], "series against deploy/metrics.md's labels:\n"
                         + "\n".join(failures))


def main():
    global BUILD_DIR
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build-dir", default=os.path.join(REPO, "build"),
                        help="build tree with the binaries")
    args, rest = parser.parse_known_args()
    BUILD_DIR = os.path.abspath(args.build_dir)
    # ctest or a user stopping the test (SIGTERM, Ctrl-C) still stops the stack.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        program = unittest.main(argv=[sys.argv[0]] + rest, exit=False, verbosity=2)
    finally:
        LiveQueries.tearDownClass()
    result = program.result
    if not result.wasSuccessful():
        return 1
    return EXIT_SKIP if result.skipped else 0


if __name__ == "__main__":
    sys.exit(main())
