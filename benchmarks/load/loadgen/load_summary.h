// What one load run measured: its counts, throughput and latency percentiles (RunStats), and
// those as the JSON summary, the per-request CSV and a one-line text.
//
// Units are base units (seconds, requests per second) as in deploy/metrics.md. Latency
// percentiles cover successful requests only; failures are counted by code.
//
// Stateless functions: thread-safe.
#pragma once

#include <map>
#include <optional>
#include <ostream>
#include <string>

#include "benchmarks/load/loadgen/latency_stats.h"
#include "benchmarks/load/loadgen/load_runner.h"
#include "benchmarks/load/loadgen/machine_description.h"
#include "benchmarks/load/loadgen/prometheus_text.h"
#include "nlohmann/json.hpp"

namespace imginterp::loadgen {

// How the run was set up; copied into the summary so a report can group and label runs.
struct RunDescription {
  std::string target;  // host:port
  std::string kind;    // "unary", "kserve" or "gateway_async"
  std::string method;  // full gRPC method, e.g. "/imginterp.v1.EdgesService/Detect"
  std::string model;
  std::string pipeline;
  bool open_loop = false;
  RunOptions options;
  double deadline_seconds = 0;
  // Free-form labels for the report (service=edges,backend=opencv).
  std::map<std::string, std::string> labels;
  MachineDescription machine;
};

// The client-side numbers of a run's measured window.
struct RunStats {
  int64_t count = 0;                      // requests recorded
  int64_t ok = 0;                         // of which succeeded
  std::map<std::string, int64_t> errors;  // the others, by CallResult::code
  double window_seconds = 0;              // RunResult::window_seconds
  double throughput_rps = 0;              // ok / window_seconds; 0 for an empty window
  LatencySummary latency;                 // successful requests, sent to answered
  // Successful requests, due to answered: what an arriving user waited (open loop; the same as
  // `latency` in a closed loop, where a request is due when it is sent).
  LatencySummary latency_from_due;
  std::string first_error;  // RunResult::first_error (warm-up included)

  int64_t error_count() const { return count - ok; }
};

RunStats SummarizeRun(const RunResult& result);

// The server-side part: where it was scraped and either the split or why there is none.
struct ServerReport {
  std::string metrics_url;
  LabelFilter filter;
  std::optional<ServerSplit> split;
  std::string error;
};

nlohmann::json SummaryJson(const RunDescription& description, const RunResult& result,
                           const ServerReport* server);

// "edges closed c=2: 812 ok, 0 errors, 81.1 req/s, p50 23.9 ms, p99 41.0 ms; server queue
// 11.2 ms, inference 9.8 ms" from a SummaryJson.
std::string OneLineSummary(const nlohmann::json& summary);

// One row per recorded request: due_s,start_s,latency_s,code (times from the window's start).
void WriteCsv(const RunResult& result, std::ostream& out);

}  // namespace imginterp::loadgen
