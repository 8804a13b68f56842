// The gateway's own Prometheus families, registered in an injected registry (the one the
// process's MetricsServer exposes). Labels are bounded: pipeline, stage and family names come
// from the validated pipelines file, states from the JobState enum; never a job id.
//
// Thread-safe (prometheus-cpp metrics are).
#pragma once

#include <string>

#include "imginterp/v1/bus.pb.h"

namespace prometheus {
class Registry;
template <typename T>
class Family;
class Counter;
class Gauge;
class Histogram;
}  // namespace prometheus

namespace imginterp::gateway {

class GatewayMetrics {
 public:
  // `registry` must outlive this object.
  explicit GatewayMetrics(prometheus::Registry& registry);
  GatewayMetrics(const GatewayMetrics&) = delete;
  GatewayMetrics& operator=(const GatewayMetrics&) = delete;

  // Observes a job that just reached a terminal state: jobs_total, pipeline_duration_seconds
  // (created -> finished) and, per stage, stage_duration_seconds (queued -> finished) and
  // stage_queue_seconds (queued -> started) where those times are known.
  void JobFinished(const v1::JobRecord& record);
  // imginterp_gateway_active_jobs: non-terminal jobs in the bucket.
  void SetActiveJobs(double count);

 private:
  prometheus::Family<prometheus::Counter>& jobs_total_;
  prometheus::Family<prometheus::Histogram>& pipeline_duration_;
  prometheus::Family<prometheus::Histogram>& stage_duration_;
  prometheus::Family<prometheus::Histogram>& stage_queue_;
  prometheus::Gauge& active_jobs_;
};

// Lower-case state name without prefix, e.g. "succeeded".
std::string JobStateLabel(v1::JobState state);

}  // namespace imginterp::gateway
