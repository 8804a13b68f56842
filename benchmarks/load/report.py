#!/usr/bin/python3
"""Turns imginterp-load JSON summaries into report.md with tables and PNG plots.

    benchmarks/load/report.py --out out/load out/load/json/*.json
    benchmarks/load/report.py --out out/load out/load/json          # every *.json in a folder

Summaries are grouped into series by their labels (`--labels` of imginterp-load: `series`, else
`service`, `backend` and `model`), so runs of different services, or of the same service on
different backends, are drawn side by side. Plots: latency percentiles against load, throughput
against concurrency, the server-side phase split (stacked bars) and, when a service was measured
on more than one backend, backend against backend. Each closed-loop series is marked where
queueing starts (the rule is written into the report).

Needs only the standard library and Debian's python3-matplotlib.
"""

import argparse
import collections
import json
import os
import sys

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

PHASES = ("queue", "preprocess", "inference", "postprocess")
PHASE_COLOURS = {"queue": "#d62728", "preprocess": "#1f77b4", "inference": "#2ca02c",
                 "postprocess": "#9467bd"}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("inputs", nargs="+", help="summary JSON files or folders holding them")
    parser.add_argument("--out", required=True, help="folder for report.md and the PNGs")
    parser.add_argument("--title", default="imginterp-load report")
    parser.add_argument("--note", action="append", default=[],
                        help="a paragraph for the top of the report (repeatable)")
    parser.add_argument("--slowdown", type=float, default=1.5,
                        help="queueing starts when the server's time per request reaches this "
                             "multiple of its value at the lowest concurrency [1.5]")
    parser.add_argument("--min-growth", type=float, default=0.10,
                        help="... or when throughput grows by less than this over the previous "
                             "concurrency [0.10]")
    return parser.parse_args(argv)


def load_summaries(inputs):
    paths = []
    for item in inputs:
        if os.path.isdir(item):
            paths += sorted(os.path.join(item, name) for name in os.listdir(item)
                            if name.endswith(".json"))
        else:
            paths.append(item)
    summaries = []
    for path in paths:
        with open(path) as f:
            try:
                summary = json.load(f)
            except json.JSONDecodeError as error:
                sys.exit(f"report.py: {path} is not JSON: {error}")
        if summary.get("tool") != "imginterp-load":
            print(f"report.py: skipping {path}: not an imginterp-load summary", file=sys.stderr)
            continue
        summary["_path"] = path
        summaries.append(summary)
    if not summaries:
        sys.exit("report.py: no imginterp-load summaries in " + " ".join(inputs))
    return summaries


def backend_of(summary):
    labels = summary.get("labels", {})
    if labels.get("backend"):
        return labels["backend"]
    backends = summary.get("server", {}).get("labels", {}).get("backend", [])
    return ",".join(backends)


def service_of(summary):
    labels = summary.get("labels", {})
    if labels.get("service"):
        return labels["service"]
    services = summary.get("server", {}).get("labels", {}).get("service", [])
    if services:
        return ",".join(services)
    method = summary.get("method", "")
    return method.strip("/").split("/")[0].split(".")[-1] or summary.get("target", "?")


def series_of(summary):
    """A short name for the line a summary belongs to."""
    labels = summary.get("labels", {})
    if labels.get("series"):
        return labels["series"]
    parts = [service_of(summary)]
    details = [d for d in (summary.get("model") or summary.get("pipeline"), backend_of(summary))
               if d]
    if summary.get("kind") not in (None, "unary"):
        details.append(summary["kind"])
    if details:
        parts.append("(" + ", ".join(details) + ")")
    return " ".join(parts)


def ms(seconds):
    return 1e3 * seconds


def phase_ms(summary, phase):
    phases = summary.get("server", {}).get("phases", {})
    return ms(phases[phase]["mean_seconds"]) if phase in phases else None


def fmt(value, digits=1):
    return "–" if value is None else f"{value:.{digits}f}"


def server_ms(summary):
    """Mean server-side time per request: the sum of the phase means (None without a split)."""
    values = [phase_ms(summary, p) for p in PHASES]
    values = [v for v in values if v is not None]
    return sum(values) if values else None


def queueing_point(points, slowdown, min_growth):
    """The first closed-loop point where queueing starts, and why; (None, reason) if none.

    `points` are one series' closed-loop summaries sorted by concurrency.
    """
    if len(points) < 2:
        return None, "one concurrency level only"
    base = points[0]
    base_server = server_ms(base)
    for previous, point in zip(points, points[1:]):
        reasons = []
        server = server_ms(point)
        if base_server and server is not None:
            if server >= slowdown * base_server:
                queue_growth = (phase_ms(point, "queue") or 0) - (phase_ms(base, "queue") or 0)
                reasons.append(f"server time {server:.1f} ms = {server / base_server:.2f}x "
                               f"c={base['concurrency']} ({queue_growth:+.1f} ms of it in the "
                               f"queue)")
        else:
            client, base_client = point["latency_seconds"]["mean"], base["latency_seconds"]["mean"]
            if base_client > 0 and client >= slowdown * base_client:
                reasons.append(f"client mean latency {client / base_client:.2f}x "
                               f"c={base['concurrency']} (no server split)")
        grown = point["throughput_rps"] / previous["throughput_rps"] - 1 \
            if previous["throughput_rps"] > 0 else 0
        if grown < min_growth:
            reasons.append(f"throughput {grown:+.0%} over c={previous['concurrency']}"
                           f" (< {min_growth:+.0%})")
        if reasons:
            return point, "; ".join(reasons)
    return None, f"no queueing up to c={points[-1]['concurrency']}"


def series_axes(count, width=4.2, height=4.2):
    """One subplot per series, side by side (series differ by orders of magnitude)."""
    fig, axes = plt.subplots(1, count, figsize=(max(6.0, width * count), height), squeeze=False)
    return fig, list(axes[0])


def concurrency_axis(ax, points):
    ax.set_xscale("log", base=2)
    ax.set_xticks([p["concurrency"] for p in points])
    ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel("concurrency (requests outstanding)")


def plot_latency(series, knees, path):
    fig, axes = series_axes(len(series))
    for index, ((name, points), ax) in enumerate(zip(series.items(), axes)):
        x = [p["concurrency"] for p in points]
        for key, style in (("p50", ":"), ("p90", "--"), ("p99", "-")):
            ax.plot(x, [ms(p["latency_seconds"][key]) for p in points], style, marker="o",
                    color=f"C{index}", label=key)
        knee = knees.get(name)
        if knee is not None:
            ax.axvline(knee["concurrency"], color="grey", alpha=0.5, linestyle="-.",
                       label="queueing starts")
        concurrency_axis(ax, points)
        ax.set_ylim(bottom=0)
        ax.set_ylabel("latency (ms, client side)")
        ax.set_title(name, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Latency percentiles vs load (closed loop)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_throughput(series, knees, path):
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    top = 0
    for index, (name, points) in enumerate(series.items()):
        colour = f"C{index}"
        x = [p["concurrency"] for p in points]
        y = [p["throughput_rps"] for p in points]
        top = max(top, max(y))
        ax.plot(x, y, "-o", color=colour, label=name)
        # Linear scaling from the lowest level: what no queueing at all would give.
        ax.plot(x, [y[0] * c / x[0] for c in x], ":", color=colour, alpha=0.5)
        knee = knees.get(name)
        if knee is not None:
            ax.annotate("queueing starts", (knee["concurrency"], knee["throughput_rps"]),
                        xytext=(0, 22), textcoords="offset points", ha="center", fontsize=8,
                        color=colour, arrowprops={"arrowstyle": "->", "color": colour})
    concurrency_axis(ax, max(series.values(), key=len))
    ax.set_ylim(0, 1.5 * top)
    ax.set_ylabel("throughput (successful requests/s)")
    ax.set_title("Throughput vs concurrency (dotted: linear scaling from the first level)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_server_split(series, path):
    with_split = {name: [p for p in points if "phases" in p.get("server", {})]
                  for name, points in series.items()}
    with_split = {name: points for name, points in with_split.items() if points}
    if not with_split:
        return False
    fig, axes = series_axes(len(with_split))
    for (name, points), ax in zip(with_split.items(), axes):
        x = range(len(points))
        bottom = [0.0] * len(points)
        for phase in PHASES:
            heights = [phase_ms(p, phase) or 0.0 for p in points]
            ax.bar(x, heights, bottom=bottom, color=PHASE_COLOURS[phase], label=phase)
            bottom = [b + h for b, h in zip(bottom, heights)]
        ax.plot(x, [ms(p["latency_seconds"]["mean"]) for p in points], "k_", markersize=18,
                markeredgewidth=2, label="client mean")
        ax.set_xticks(list(x))
        ax.set_xticklabels([f"c={p['concurrency']}" for p in points])
        ax.set_ylabel("mean ms per request")
        ax.set_title(name, fontsize=10)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Server-side phase split (/metrics, per measured window)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_backends(by_service, path):
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    index = 0
    for service, backends in by_service.items():
        for backend, points in backends.items():
            x = [p["concurrency"] for p in points]
            label = f"{service} [{backend or 'unlabelled'}]"
            left.plot(x, [p["throughput_rps"] for p in points], "-o", color=f"C{index}",
                      label=label)
            right.plot(x, [ms(p["latency_seconds"]["p99"]) for p in points], "-o",
                       color=f"C{index}", label=label)
            index += 1
    levels = [{"concurrency": c} for c in sorted(
        {p["concurrency"] for backends in by_service.values() for points in backends.values()
         for p in points})]
    for ax, ylabel in ((left, "throughput (req/s)"), (right, "p99 latency (ms)")):
        concurrency_axis(ax, levels)
        ax.set_ylim(bottom=0)
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Backend vs backend")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_open_loop(series, path):
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for index, (name, points) in enumerate(series.items()):
        x = [p["rate_rps"] for p in points]
        ax.plot(x, [ms(p["latency_seconds"]["p99"]) for p in points], "-o", color=f"C{index}",
                label=f"{name} p99 (sent→answer)")
        ax.plot(x, [ms(p["open_loop"]["latency_from_due_seconds"]["p99"]) for p in points], "--",
                color=f"C{index}", label=f"{name} p99 (due→answer)")
    ax.set_xlabel("offered rate (requests/s, Poisson)")
    ax.set_ylabel("latency (ms)")
    ax.set_title("Open loop: latency vs offered rate")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def closed_table(name, points, knee):
    lines = [f"### {name}", "",
             "| c | requests | errors | throughput req/s | p50 ms | p90 ms | p99 ms | "
             "server queue ms | preprocess ms | inference ms | postprocess ms | server total ms | "
             "mean batch | |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for p in points:
        lat = p["latency_seconds"]
        server = p.get("server", {})
        mark = "← queueing starts" if knee is p else ""
        lines.append(
            f"| {p['concurrency']} | {p['count']} | {p['error_count']} | "
            f"{p['throughput_rps']:.1f} | {ms(lat['p50']):.1f} | {ms(lat['p90']):.1f} | "
            f"{ms(lat['p99']):.1f} | {fmt(phase_ms(p, 'queue'))} | "
            f"{fmt(phase_ms(p, 'preprocess'))} | {fmt(phase_ms(p, 'inference'))} | "
            f"{fmt(phase_ms(p, 'postprocess'))} | {fmt(server_ms(p))} | "
            f"{fmt(server.get('mean_batch_size'), 2)} | "
            f"{mark} |")
    errors = collections.Counter()
    for p in points:
        errors.update(p.get("errors", {}))
    if errors:
        lines += ["", "Errors by code: " + ", ".join(f"{c} {n}" for c, n in errors.items())]
    missing = [p for p in points if "phases" not in p.get("server", {})]
    if missing:
        why = missing[0].get("server", {}).get("error", "no --metrics_url")
        lines += ["", f"No server-side split for {len(missing)} run(s): {why}"]
    return lines


def open_table(name, points):
    lines = [f"### {name} (open loop)", "",
             "| rate req/s | due in window req/s | requests | errors | achieved req/s | p50 ms | "
             "p99 ms | "
             "p99 from due ms | late starts | most in flight | server queue ms |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for p in points:
        lat, open_loop = p["latency_seconds"], p["open_loop"]
        lines.append(
            f"| {p['rate_rps']:.1f} | {p['offered_rps']:.1f} | {p['count']} | {p['error_count']} | "
            f"{p['throughput_rps']:.1f} | {ms(lat['p50']):.1f} | {ms(lat['p99']):.1f} | "
            f"{ms(open_loop['latency_from_due_seconds']['p99']):.1f} | "
            f"{open_loop['late_starts']} | {open_loop['max_in_flight_seen']} | "
            f"{fmt(phase_ms(p, 'queue'))} |")
    return lines


def main(argv):
    args = parse_args(argv)
    summaries = load_summaries(args.inputs)
    os.makedirs(args.out, exist_ok=True)

    closed = collections.OrderedDict()
    opened = collections.OrderedDict()
    for summary in sorted(summaries, key=lambda s: (series_of(s), s.get("concurrency", 0),
                                                    s.get("rate_rps", 0))):
        target = opened if summary["mode"] == "open" else closed
        target.setdefault(series_of(summary), []).append(summary)

    knees, reasons = {}, {}
    for name, points in closed.items():
        knees[name], reasons[name] = queueing_point(points, args.slowdown, args.min_growth)

    first = summaries[0]
    machine = first.get("machine", {})
    dates = sorted(s.get("date", "") for s in summaries)
    md = [f"# {args.title}", "",
          f"{len(summaries)} runs from {dates[0]} to {dates[-1]} on {machine.get('cpu', '?')}, "
          f"{machine.get('cores', '?')} cores, {machine.get('kernel', '?')}; each run "
          f"{first.get('warmup_seconds')} s warm-up then {first.get('duration_seconds')} s "
          "measured.", ""]
    for note in args.note:
        md += [note, ""]
    md += ["How to read it: latencies are the load generator's own timings of successful "
           "requests (sent to answered; nearest-rank percentiles); throughput is successful "
           "requests over the measured window (end of warm-up to the last answer). The server "
           "columns are the service's own mean seconds per request in each phase of "
           "`imginterp_request_phase_seconds`, from its `/metrics` scraped when the window "
           "opened and after it closed; `inference` is the run of the whole batch the request "
           "rode in. The client and the services share the machine.", ""]

    if closed:
        md += ["## Where queueing starts", "",
               f"Rule: for each series, the lowest concurrency at which either (a) the server's "
               f"time per request (queue + preprocess + inference + postprocess, from /metrics) "
               f"is at least {args.slowdown:g}x its value at the lowest concurrency measured, or "
               f"(b) throughput grows by less than {args.min_growth:.0%} over the previous "
               f"concurrency. (a) counts waiting wherever it happens: in the queue for a busy "
               f"executor, or inside a batch, where a request waits for the whole batch's "
               f"forward pass (its `inference` phase grows with the batch). Without a server "
               f"split, (a) uses the client's mean latency. From that level on, extra requests "
               f"mostly wait: by Little's law mean latency ≈ concurrency / throughput, so "
               f"latency grows with concurrency while throughput flattens.", "",
               "| series | queueing starts at | why | peak throughput req/s | p99 ms, lowest → "
               "highest concurrency |", "|---|---:|---|---:|---|"]
        for name, points in closed.items():
            knee = knees[name]
            peak = max(points, key=lambda p: p["throughput_rps"])
            md.append(f"| {name} | {'c=' + str(knee['concurrency']) if knee else '–'} | "
                      f"{reasons[name]} | {peak['throughput_rps']:.1f} (c={peak['concurrency']}) "
                      f"| {ms(points[0]['latency_seconds']['p99']):.1f} → "
                      f"{ms(points[-1]['latency_seconds']['p99']):.1f} |")
        md.append("")

        plot_throughput(closed, knees, os.path.join(args.out, "throughput_vs_concurrency.png"))
        plot_latency(closed, knees, os.path.join(args.out, "latency_vs_concurrency.png"))
        md += ["## Plots", "", "![throughput](throughput_vs_concurrency.png)", "",
               "![latency](latency_vs_concurrency.png)", ""]
        if plot_server_split(closed, os.path.join(args.out, "server_phase_split.png")):
            md += ["![server split](server_phase_split.png)", ""]

        by_service = collections.OrderedDict()
        for name, points in closed.items():
            by_service.setdefault(service_of(points[0]), {})[backend_of(points[0])] = points
        compared = {s: b for s, b in by_service.items() if len(b) > 1}
        if compared:
            plot_backends(compared, os.path.join(args.out, "backend_vs_backend.png"))
            md += ["## Backend vs backend", "", "![backends](backend_vs_backend.png)", ""]
        elif len(by_service) > 1:
            md += ["Services are compared in the plots above; each was measured on one backend "
                   "(" + ", ".join(f"{s}: {next(iter(b)) or 'unlabelled'}"
                                   for s, b in by_service.items()) +
                   "), so there is no backend-vs-backend plot.", ""]

        md += ["## Closed loop, per series", ""]
        for name, points in closed.items():
            md += closed_table(name, points, knees[name]) + [""]

    if opened:
        plot_open_loop(opened, os.path.join(args.out, "open_loop_latency.png"))
        md += ["## Open loop", "", "![open loop](open_loop_latency.png)", "",
               "`p99 from due` counts from when a request was due by the Poisson schedule, so "
               "it includes any wait for a free client worker (late starts).", ""]
        for name, points in opened.items():
            md += open_table(name, points) + [""]

    md += ["## Runs", ""] + [f"- `{os.path.basename(s['_path'])}`: {s['target']} "
                            f"{s['method']} {s['mode']}" for s in summaries] + [""]
    report = os.path.join(args.out, "report.md")
    with open(report, "w") as f:
        f.write("\n".join(md))
    print(report)
    for name in closed:
        knee = knees[name]
        print(f"{name}: queueing starts at "
              f"{'c=' + str(knee['concurrency']) if knee else 'no level measured'} "
              f"({reasons[name]})")


if __name__ == "__main__":
    main(sys.argv[1:])
