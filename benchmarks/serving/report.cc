#include "benchmarks/serving/report.h"

#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"

namespace imginterp::bench {
namespace {

using nlohmann::json;

double Ms(double seconds) { return 1e3 * seconds; }

// The service's mean milliseconds per request in `phase`; 0 when it reported none.
double PhaseMs(const loadgen::ServerSplit& split, const std::string& phase) {
  auto it = split.phases.find(phase);
  return it == split.phases.end() ? 0.0 : Ms(it->second.mean());
}

// Requests that went through the executor: the preprocess phase's count.
double ExecutedRequests(const loadgen::ServerSplit& split) {
  auto it = split.phases.find("preprocess");
  return it == split.phases.end() ? 0.0 : it->second.count;
}

// The comparisons the report exists for; each is absent when a side was not
// measured.
struct Derived {
  // gRPC p50 at concurrency 1 / in-process batch-1 forward p50.
  std::optional<double> overhead_ratio_c1;
  // Wall time per request at concurrency 8 (1 / throughput) and in-process
  // batch-8 forward / 8.
  std::optional<double> per_request_c8_ms;
  std::optional<double> forward_batch_per_item_ms;
  std::optional<double> per_request_ratio_c8;
  // Async minus direct, concurrency 1.
  std::optional<double> async_minus_direct_p50_ms;
  std::optional<double> async_minus_direct_p99_ms;
};

Derived Derive(const BenchReport& report) {
  Derived d;
  const Scenario* c1 = report.Direct(1);
  const Scenario* c8 = report.Direct(8);
  if (report.in_process.has_value()) {
    const InProcessResult& in = *report.in_process;
    if (c1 != nullptr && in.forward_batch1.latency.p50 > 0) {
      d.overhead_ratio_c1 = c1->load.latency.p50 / in.forward_batch1.latency.p50;
    }
    if (in.large_batch > 0 && in.forward_large_batch.latency.count > 0) {
      d.forward_batch_per_item_ms = Ms(in.forward_large_batch.latency.p50) / in.large_batch;
    }
  }
  if (c8 != nullptr && c8->load.throughput_rps > 0) {
    d.per_request_c8_ms = 1e3 / c8->load.throughput_rps;
    if (d.forward_batch_per_item_ms.has_value() && *d.forward_batch_per_item_ms > 0) {
      d.per_request_ratio_c8 = *d.per_request_c8_ms / *d.forward_batch_per_item_ms;
    }
  }
  if (report.async.has_value() && c1 != nullptr) {
    d.async_minus_direct_p50_ms = Ms(report.async->load.latency.p50 - c1->load.latency.p50);
    d.async_minus_direct_p99_ms = Ms(report.async->load.latency.p99 - c1->load.latency.p99);
  }
  return d;
}

json StatsJson(const loadgen::LatencySummary& s) {
  return {{"count", s.count},    {"mean_ms", Ms(s.mean)}, {"min_ms", Ms(s.min)},
          {"p50_ms", Ms(s.p50)}, {"p90_ms", Ms(s.p90)},   {"p99_ms", Ms(s.p99)},
          {"max_ms", Ms(s.max)}};
}

json LoadJson(const loadgen::RunStats& r, int concurrency) {
  json j = {{"concurrency", concurrency},
            {"latency", StatsJson(r.latency)},
            {"throughput_rps", r.throughput_rps},
            {"measured_seconds", r.window_seconds},
            {"errors", r.error_count()}};
  if (!r.first_error.empty()) j["first_error"] = r.first_error;
  return j;
}

json SplitJson(const loadgen::ServerSplit& s) {
  return {{"requests", ExecutedRequests(s)},
          {"queue_ms", PhaseMs(s, "queue")},
          {"preprocess_ms", PhaseMs(s, "preprocess")},
          {"inference_ms", PhaseMs(s, "inference")},
          {"postprocess_ms", PhaseMs(s, "postprocess")},
          {"batches", s.batch_size.count},
          {"mean_batch_size", s.batch_size.mean()}};
}

json Optional(const std::optional<double>& value) {
  return value.has_value() ? json(*value) : json(nullptr);
}

std::string Num(const std::optional<double>& value, const char* unit = "") {
  return value.has_value() ? absl::StrFormat("%.2f%s", *value, unit) : std::string("n/a");
}

void LatencyRow(std::ostream& out, const std::string& label, const loadgen::RunStats& r) {
  out << absl::StrFormat("  %-34s %7d %6d %9.1f %8.2f %8.2f %8.2f %8.2f\n", label, r.latency.count,
                         r.error_count(), r.throughput_rps, Ms(r.latency.p50), Ms(r.latency.p90),
                         Ms(r.latency.p99), Ms(r.latency.mean));
}

void LatencyHeader(std::ostream& out, const std::string& title) {
  out << absl::StrFormat("%-36s %7s %6s %9s %8s %8s %8s %8s\n", title, "n", "errors", "per s",
                         "p50 ms", "p90 ms", "p99 ms", "mean ms");
}

}  // namespace

const Scenario* BenchReport::Direct(int concurrency) const {
  for (const Scenario& s : direct) {
    if (s.concurrency == concurrency) return &s;
  }
  return nullptr;
}

void BenchReport::PrintTable(std::ostream& out) const {
  const Derived d = Derive(*this);
  out << absl::StrFormat("serving_bench: classify model '%s', %s\n", model, machine.date);
  out << absl::StrFormat("machine: %s, %d cores, %s\n", machine.cpu, machine.cores, machine.kernel);
  out << absl::StrFormat("image: %s, %d bytes; warm-up %.1f s, measured %.1f s per run\n\n", image,
                         image_bytes, warmup_seconds, duration_seconds);

  if (in_process.has_value()) {
    const InProcessResult& in = *in_process;
    LatencyHeader(out, absl::StrFormat("In process (1 thread, %s, %d intra-op)", in.device,
                                       in.intra_op_threads));
    LatencyRow(out, "decode + preprocess", in.preprocess);
    LatencyRow(out, absl::StrFormat("forward batch 1 (%s)", in.input_shape), in.forward_batch1);
    LatencyRow(out, absl::StrFormat("forward batch %d (per batch)", in.large_batch),
               in.forward_large_batch);
    out << "\n";
  }
  if (!direct.empty()) {
    LatencyHeader(out, "Direct gRPC Classify (closed loop)");
    for (const Scenario& s : direct) {
      LatencyRow(out, absl::StrFormat("concurrency %d", s.concurrency), s.load);
    }
    out << "\n";
  }
  if (async.has_value()) {
    LatencyHeader(out, "Async via gateway vs direct, conc. 1");
    LatencyRow(out, "SubmitJob + WatchJob to SUCCEEDED", async->load);
    if (const Scenario* c1 = Direct(1); c1 != nullptr) LatencyRow(out, "direct Classify", c1->load);
    out << absl::StrFormat("  %-34s p50 %s, p99 %s\n\n", "async minus direct",
                           Num(d.async_minus_direct_p50_ms, " ms"),
                           Num(d.async_minus_direct_p99_ms, " ms"));
  }

  std::vector<const Scenario*> with_split;
  for (const Scenario& s : direct) {
    if (s.server.has_value()) with_split.push_back(&s);
  }
  if (async.has_value() && async->server.has_value()) with_split.push_back(&*async);
  if (!with_split.empty()) {
    out << absl::StrFormat("%-36s %7s %8s %8s %8s %8s %8s %8s\n",
                           "Server side (/metrics, mean/request)", "reqs", "queue", "preproc",
                           "infer", "postproc", "batches", "batch");
    for (const Scenario* s : with_split) {
      const loadgen::ServerSplit& p = *s->server;
      out << absl::StrFormat("  %-34s %7.0f %8.2f %8.2f %8.2f %8.2f %8.0f %8.2f\n", s->name,
                             ExecutedRequests(p), PhaseMs(p, "queue"), PhaseMs(p, "preprocess"),
                             PhaseMs(p, "inference"), PhaseMs(p, "postprocess"), p.batch_size.count,
                             p.batch_size.mean());
    }
    out << "  (phase columns in ms; inference is the forward of the batch the "
           "request rode in)\n\n";
  }

  out << "Serving overhead\n";
  const Scenario* c1 = Direct(1);
  if (c1 != nullptr && in_process.has_value()) {
    out << absl::StrFormat(
        "  concurrency 1: gRPC p50 %.2f ms / in-process "
        "forward p50 %.2f ms = %s\n",
        Ms(c1->load.latency.p50), Ms(in_process->forward_batch1.latency.p50),
        Num(d.overhead_ratio_c1, "x"));
  }
  if (d.per_request_c8_ms.has_value()) {
    if (in_process.has_value()) {
      out << absl::StrFormat(
          "  concurrency 8: wall time per request (1/throughput) %.2f ms vs batch-%d forward / %d "
          "%s = %s\n",
          *d.per_request_c8_ms, in_process->large_batch, in_process->large_batch,
          Num(d.forward_batch_per_item_ms, " ms"), Num(d.per_request_ratio_c8, "x"));
    } else {
      out << absl::StrFormat("  concurrency 8: wall time per request (1/throughput) %.2f ms\n",
                             *d.per_request_c8_ms);
    }
  }
}

std::string BenchReport::ToJson() const {
  const Derived d = Derive(*this);
  json j;
  j["benchmark"] = "serving_bench";
  j["date"] = machine.date;
  j["machine"] = {{"cpu", machine.cpu}, {"cores", machine.cores}, {"kernel", machine.kernel}};
  j["config"] = {{"model", model},
                 {"image", image},
                 {"image_bytes", image_bytes},
                 {"warmup_seconds", warmup_seconds},
                 {"duration_seconds", duration_seconds}};
  if (in_process.has_value()) {
    const InProcessResult& in = *in_process;
    j["config"]["intra_op_threads"] = in.intra_op_threads;
    j["config"]["max_batch_size"] = in.max_batch_size;
    j["config"]["max_queue_delay_us"] = in.max_queue_delay_us;
    j["in_process"] = {{"device", in.device},
                       {"input_shape", in.input_shape},
                       {"decode_preprocess", LoadJson(in.preprocess, 1)},
                       {"forward_batch1", LoadJson(in.forward_batch1, 1)},
                       {"forward_large_batch", LoadJson(in.forward_large_batch, 1)},
                       {"large_batch", in.large_batch}};
  }
  j["direct"] = json::array();
  for (const Scenario& s : direct) {
    json entry = {{"name", s.name}, {"client", LoadJson(s.load, s.concurrency)}};
    if (s.server.has_value()) entry["server"] = SplitJson(*s.server);
    j["direct"].push_back(entry);
  }
  if (async.has_value()) {
    j["async"] = {{"name", async->name}, {"client", LoadJson(async->load, async->concurrency)}};
    if (async->server.has_value()) j["async"]["server"] = SplitJson(*async->server);
  }
  j["derived"] = {{"overhead_ratio_c1_p50", Optional(d.overhead_ratio_c1)},
                  {"per_request_c8_ms", Optional(d.per_request_c8_ms)},
                  {"forward_large_batch_per_item_ms", Optional(d.forward_batch_per_item_ms)},
                  {"per_request_ratio_c8", Optional(d.per_request_ratio_c8)},
                  {"async_minus_direct_p50_ms", Optional(d.async_minus_direct_p50_ms)},
                  {"async_minus_direct_p99_ms", Optional(d.async_minus_direct_p99_ms)}};
  return j.dump(2);
}

}  // namespace imginterp::bench
