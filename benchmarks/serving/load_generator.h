// A closed-loop load generator and latency statistics for the serving
// benchmark.
//
// Closed loop: `concurrency` client threads each send the next request as soon
// as the previous one returns, so the offered load adapts to the server (no
// coordinated-omission correction is needed because nothing is scheduled ahead
// of time; latencies are what a caller waits).
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace imginterp::bench {

// Summary of a set of latencies, in milliseconds. Percentiles are nearest-rank.
struct LatencyStats {
  int64_t count = 0;
  double mean_ms = 0;
  double min_ms = 0;
  double p50_ms = 0;
  double p90_ms = 0;
  double p99_ms = 0;
  double max_ms = 0;
};

// Nearest-rank summary of `seconds` (any order); all zero when empty.
LatencyStats Summarize(std::vector<double> seconds);

struct LoadOptions {
  // Client threads, each with one request outstanding.
  int concurrency = 1;
  // Requests in this period are sent but not recorded (connections, caches,
  // batcher settle).
  std::chrono::duration<double> warmup{2.0};
  // Recorded period: requests that start inside it are measured; none start
  // after it.
  std::chrono::duration<double> duration{10.0};
};

struct LoadResult {
  int concurrency = 0;
  LatencyStats latency;
  // Successful measured requests per second of measured wall time.
  double throughput_rps = 0;
  // Measured wall time: from the end of warm-up to the end of the last measured
  // request.
  double seconds = 0;
  int64_t errors = 0;
  // The first error seen (warm-up included), for the report.
  std::string first_error;
};

// One request by client thread `worker` (0..concurrency-1); returns when the
// answer is in. Called concurrently from all client threads.
using RequestFn = std::function<absl::Status(int worker)>;

// Runs the closed loop for warm-up + duration and returns the measured part.
// Blocks the caller; thread-safe as long as `request` is.
LoadResult RunClosedLoop(const LoadOptions& options, const RequestFn& request);

}  // namespace imginterp::bench
