#include "benchmarks/serving/load_generator.h"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <numeric>
#include <thread>

namespace imginterp::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Percentile(const std::vector<double>& sorted, double p) {
  // Nearest rank: the smallest value with at least p% of the samples at or
  // below it.
  const auto rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

}  // namespace

LatencyStats Summarize(std::vector<double> seconds) {
  LatencyStats stats;
  if (seconds.empty()) return stats;
  std::sort(seconds.begin(), seconds.end());
  stats.count = static_cast<int64_t>(seconds.size());
  stats.mean_ms = 1e3 * std::accumulate(seconds.begin(), seconds.end(), 0.0) / seconds.size();
  stats.min_ms = 1e3 * seconds.front();
  stats.p50_ms = 1e3 * Percentile(seconds, 50);
  stats.p90_ms = 1e3 * Percentile(seconds, 90);
  stats.p99_ms = 1e3 * Percentile(seconds, 99);
  stats.max_ms = 1e3 * seconds.back();
  return stats;
}

LoadResult RunClosedLoop(const LoadOptions& options, const RequestFn& request) {
  const int concurrency = std::max(1, options.concurrency);
  const Clock::time_point start = Clock::now();
  const Clock::time_point measure_start =
      start + std::chrono::duration_cast<Clock::duration>(options.warmup);
  const Clock::time_point measure_end =
      measure_start + std::chrono::duration_cast<Clock::duration>(options.duration);

  struct Worker {
    std::vector<double> latencies;
    Clock::time_point last_end;
    int64_t errors = 0;
  };
  std::vector<Worker> workers(concurrency);
  std::mutex mu;
  std::string first_error;  // guarded by mu

  std::vector<std::thread> threads;
  threads.reserve(concurrency);
  for (int w = 0; w < concurrency; ++w) {
    threads.emplace_back([&, w] {
      Worker& mine = workers[w];
      mine.last_end = measure_start;
      while (true) {
        const Clock::time_point sent = Clock::now();
        if (sent >= measure_end) break;
        const absl::Status status = request(w);
        const Clock::time_point done = Clock::now();
        const bool measured = sent >= measure_start;
        if (!status.ok()) {
          if (measured) ++mine.errors;
          std::lock_guard<std::mutex> lock(mu);
          if (first_error.empty()) first_error = status.ToString();
          continue;
        }
        if (measured) {
          mine.latencies.push_back(std::chrono::duration<double>(done - sent).count());
          mine.last_end = std::max(mine.last_end, done);
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();

  LoadResult result;
  result.concurrency = concurrency;
  std::vector<double> all;
  Clock::time_point last_end = measure_start;
  for (const Worker& worker : workers) {
    all.insert(all.end(), worker.latencies.begin(), worker.latencies.end());
    last_end = std::max(last_end, worker.last_end);
    result.errors += worker.errors;
  }
  result.seconds = std::chrono::duration<double>(last_end - measure_start).count();
  result.throughput_rps = result.seconds > 0 ? static_cast<double>(all.size()) / result.seconds : 0;
  result.latency = Summarize(std::move(all));
  result.first_error = first_error;
  return result;
}

}  // namespace imginterp::bench
