// Everything serving_bench measured, printed as a table and written as JSON.
#pragma once

#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "benchmarks/load/loadgen/load_summary.h"
#include "benchmarks/load/loadgen/machine_description.h"
#include "benchmarks/load/loadgen/prometheus_text.h"
#include "benchmarks/serving/in_process_forward.h"

namespace imginterp::bench {

// One measured closed-loop run against a server, with what the service reported
// for it.
struct Scenario {
  std::string name;  // "direct_c1", "direct_c8", "async_c1"
  int concurrency = 1;
  loadgen::RunStats load;
  // Over the requests of the model between the scrapes before and after the
  // measured run; absent when /metrics could not be scraped or split.
  std::optional<loadgen::ServerSplit> server;
};

// A plain value; externally synchronized.
struct BenchReport {
  // Run description.
  loadgen::MachineDescription machine;
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
