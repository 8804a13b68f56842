// Everything serving_bench measured, printed as a table and written as JSON.
#pragma once

#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "benchmarks/serving/in_process_forward.h"
#include "benchmarks/serving/load_generator.h"
#include "benchmarks/serving/prometheus_text.h"

namespace imginterp::bench {

// One measured closed-loop run against a server, with what the service reported
// for it.
struct Scenario {
  std::string name;  // "direct_c1", "direct_c8", "async_c1"
  LoadResult load;
  std::optional<ServerSplit> server;  // absent when /metrics could not be scraped
};

// A plain value; externally synchronized.
struct BenchReport {
  // Run description.
  std::string date;    // UTC, ISO 8601
  std::string cpu;     // /proc/cpuinfo "model name"
  std::string kernel;  // uname -sr
  int cores = 0;       // online CPUs
  double warmup_seconds = 0;
  double duration_seconds = 0;
  std::string model;
  std::string image;  // "640x480 PNG (synthetic)" or the file name
  int64_t image_bytes = 0;

  std::optional<InProcessResult> in_process;
  std::vector<Scenario> direct;   // one per concurrency, ascending
  std::optional<Scenario> async;  // concurrency 1

  // The direct run at `concurrency`, if measured.
  const Scenario* Direct(int concurrency) const;

  void PrintTable(std::ostream& out) const;
  std::string ToJson() const;
};

}  // namespace imginterp::bench
