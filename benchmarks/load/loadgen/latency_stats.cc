#include "benchmarks/load/loadgen/latency_stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace imginterp::loadgen {

double NearestRankPercentile(const std::vector<double>& sorted, double p) {
  // Rank ceil(p/100 * n), 1-based, clamped so that p near 0 picks the minimum. The product is
  // rounded first so that 99% of 100 samples is rank 99, not 100 by a floating-point hair.
  const double exact = p / 100.0 * static_cast<double>(sorted.size());
  const auto rank = static_cast<size_t>(std::ceil(exact - 1e-9));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

LatencySummary Summarize(std::vector<double> seconds) {
  LatencySummary summary;
  if (seconds.empty()) return summary;
  std::sort(seconds.begin(), seconds.end());
  summary.count = static_cast<int64_t>(seconds.size());
  summary.min = seconds.front();
  summary.max = seconds.back();
  summary.mean = std::accumulate(seconds.begin(), seconds.end(), 0.0) / seconds.size();
  summary.p50 = NearestRankPercentile(seconds, 50);
  summary.p90 = NearestRankPercentile(seconds, 90);
  summary.p95 = NearestRankPercentile(seconds, 95);
  summary.p99 = NearestRankPercentile(seconds, 99);
  return summary;
}

}  // namespace imginterp::loadgen
