#include "benchmarks/load/loadgen/load_summary.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_format.h"

namespace imginterp::loadgen {
namespace {

nlohmann::json LatencyJson(const LatencySummary& summary) {
  return {{"min", summary.min}, {"mean", summary.mean}, {"p50", summary.p50}, {"p90", summary.p90},
          {"p95", summary.p95}, {"p99", summary.p99},   {"max", summary.max}};
}

nlohmann::json ServerJson(const ServerReport& server, const RunResult& result) {
  nlohmann::json out = {{"metrics_url", server.metrics_url}, {"filter", server.filter}};
  // The window-start scrape runs while the window's first requests are sent; those sent before
  // it returned may be counted before it (and so missing from the split) or after it.
  const double scrape_seconds = result.window_start_hook_seconds;
  out["window_start_scrape_seconds"] = scrape_seconds;
  out["requests_sent_during_scrape"] =
      std::count_if(result.records.begin(), result.records.end(),
                    [scrape_seconds](const RequestRecord& r) { return r.start < scrape_seconds; });
  if (!server.split.has_value()) {
    out["error"] = server.error;
    return out;
  }
  const ServerSplit& split = *server.split;
  nlohmann::json phases = nlohmann::json::object();
  for (const auto& [phase, delta] : split.phases) {
    phases[phase] = {{"count", delta.count}, {"mean_seconds", delta.mean()}};
  }
  out["phases"] = phases;
  out["requests"] = split.requests.count;
  out["request_mean_seconds"] = split.requests.mean();
  out["batches"] = split.batch_size.count;
  out["mean_batch_size"] = split.batch_size.mean();
  nlohmann::json labels = nlohmann::json::object();
  for (const auto& [label, values] : split.label_values) labels[label] = values;
  out["labels"] = labels;
  return out;
}

}  // namespace

RunStats SummarizeRun(const RunResult& result) {
  RunStats stats;
  std::vector<double> ok_latencies;
  std::vector<double> ok_since_due;
  for (const RequestRecord& record : result.records) {
    if (record.code == "OK") {
      ok_latencies.push_back(record.latency);
      ok_since_due.push_back(record.start - record.due + record.latency);
    } else {
      ++stats.errors[record.code];
    }
  }
  stats.count = static_cast<int64_t>(result.records.size());
  stats.ok = static_cast<int64_t>(ok_latencies.size());
  stats.window_seconds = result.window_seconds;
  stats.throughput_rps =
      result.window_seconds > 0 ? static_cast<double>(stats.ok) / result.window_seconds : 0.0;
  stats.latency = Summarize(std::move(ok_latencies));
  stats.latency_from_due = Summarize(std::move(ok_since_due));
  stats.first_error = result.first_error;
  return stats;
}

nlohmann::json SummaryJson(const RunDescription& description, const RunResult& result,
                           const ServerReport* server) {
  const RunOptions& options = description.options;
  nlohmann::json out;
  out["tool"] = "imginterp-load";
  const MachineDescription& machine = description.machine;
  out["date"] = machine.date;
  out["machine"] = {{"cpu", machine.cpu}, {"cores", machine.cores}, {"kernel", machine.kernel}};
  out["target"] = description.target;
  out["kind"] = description.kind;
  out["method"] = description.method;
  out["model"] = description.model;
  out["pipeline"] = description.pipeline;
  out["labels"] = description.labels;
  out["mode"] = description.open_loop ? "open" : "closed";
  if (description.open_loop) {
    out["rate_rps"] = options.rate;
    out["seed"] = options.seed;
    out["max_in_flight"] = options.max_in_flight;
  } else {
    out["concurrency"] = options.concurrency;
  }
  out["warmup_seconds"] = options.warmup_seconds;
  out["duration_seconds"] = options.duration_seconds;
  out["deadline_seconds"] = description.deadline_seconds;

  const RunStats stats = SummarizeRun(result);
  out["count"] = stats.count;
  out["ok"] = stats.ok;
  out["error_count"] = stats.error_count();
  out["errors"] = stats.errors;
  out["first_error"] = stats.first_error;
  out["warmup_requests"] = result.warmup_requests;
  out["window_seconds"] = stats.window_seconds;
  out["throughput_rps"] = stats.throughput_rps;
  out["latency_seconds"] = LatencyJson(stats.latency);
  if (description.open_loop) {
    out["offered_rps"] = static_cast<double>(stats.count) / options.duration_seconds;
    out["open_loop"] = {{"late_starts", result.late_starts},
                        {"late_start_threshold_seconds", kLateStartSeconds},
                        {"max_start_delay_seconds", result.max_start_delay},
                        {"max_in_flight_seen", result.max_in_flight_seen},
                        {"latency_from_due_seconds", LatencyJson(stats.latency_from_due)}};
  }
  if (server != nullptr) out["server"] = ServerJson(*server, result);
  return out;
}

std::string OneLineSummary(const nlohmann::json& summary) {
  const nlohmann::json& latency = summary["latency_seconds"];
  std::string line =
      absl::StrFormat("%s %s", summary.value("target", ""), summary.value("method", ""));
  if (summary.value("mode", "") == "open") {
    absl::StrAppendFormat(&line, " open %.1f req/s offered:", summary.value("rate_rps", 0.0));
  } else {
    absl::StrAppendFormat(&line, " closed c=%d:", summary.value("concurrency", 0));
  }
  absl::StrAppendFormat(&line, " %d ok, %d errors, %.1f req/s, p50 %.2f ms, p99 %.2f ms",
                        summary.value("ok", int64_t{0}), summary.value("error_count", int64_t{0}),
                        summary.value("throughput_rps", 0.0), 1e3 * latency.value("p50", 0.0),
                        1e3 * latency.value("p99", 0.0));
  if (summary.contains("open_loop")) {
    absl::StrAppendFormat(&line, ", %d late starts",
                          summary["open_loop"].value("late_starts", int64_t{0}));
  }
  if (summary.contains("server") && summary["server"].contains("phases")) {
    line += "; server";
    for (const char* phase : kPhases) {
      const nlohmann::json& phases = summary["server"]["phases"];
      if (!phases.contains(phase)) continue;
      absl::StrAppendFormat(&line, " %s %.2f ms", phase,
                            1e3 * phases[phase].value("mean_seconds", 0.0));
    }
  } else if (summary.contains("server")) {
    line += "; no server split (" + summary["server"].value("error", std::string()) + ")";
  }
  return line;
}

void WriteCsv(const RunResult& result, std::ostream& out) {
  out << "due_s,start_s,latency_s,code\n";
  for (const RequestRecord& record : result.records) {
    out << absl::StrFormat("%.6f,%.6f,%.6f,%s\n", record.due, record.start, record.latency,
                           record.code);
  }
}

}  // namespace imginterp::loadgen
