// Process and GPU figures collected at scrape time, for every service and the gateway
// (deploy/metrics.md): process_cpu_seconds_total, process_resident_memory_bytes,
// process_virtual_memory_bytes, process_open_fds, process_threads, process_start_time_seconds,
// and, where NVML sees a CUDA device, imginterp_gpu_memory_used_bytes / _total_bytes{device}.
//
// prometheus-cpp has no process collector, so this reads /proc/self. GPU memory comes from NVML
// loaded with dlopen: the same binary runs on CPU-only machines (no libnvidia-ml, no families)
// and on GPU nodes, and it reports memory whichever library (LibTorch, TensorRT, ...) allocated
// it. Every sample carries the process's `service` label so panels need no scrape relabelling.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "prometheus/collectable.h"

namespace imginterp::metrics {

// Thread-safe (Collect reads /proc and NVML each time; the NVML handle is opened once).
class ProcessCollector : public prometheus::Collectable {
 public:
  // `service` is the value of the `service` label ("classify", "gateway"); empty leaves it out.
  explicit ProcessCollector(std::string service);
  ~ProcessCollector() override;

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  class Nvml;
  const std::string service_;
  // Null when libnvidia-ml.so.1 cannot be loaded or initialised.
  std::unique_ptr<Nvml> nvml_;
};

}  // namespace imginterp::metrics
