// Latency percentiles from the load generator's own timings.
//
// Percentiles are nearest-rank (the smallest sample with at least p% of the samples at or below
// it), so every reported value is a latency that a request really had; no interpolation.
//
// Stateless functions: thread-safe.
#pragma once

#include <cstdint>
#include <vector>

namespace imginterp::loadgen {

// A summary of latencies, in seconds. All zero when there were no samples.
struct LatencySummary {
  int64_t count = 0;
  double min = 0;
  double mean = 0;
  double p50 = 0;
  double p90 = 0;
  double p95 = 0;
  double p99 = 0;
  double max = 0;
};

// The nearest-rank p-th percentile (0 < p <= 100) of `sorted` (ascending, not empty).
double NearestRankPercentile(const std::vector<double>& sorted, double p);

// Summarizes `seconds` (any order).
LatencySummary Summarize(std::vector<double> seconds);

}  // namespace imginterp::loadgen
