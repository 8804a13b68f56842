// The gateway's own Prometheus families, registered in an injected registry (the one the
// process's MetricsServer exposes). Labels are bounded: pipeline, stage and family names come
// from the validated pipelines file, states from the JobState enum; never a job id.
//
// Thread-safe (prometheus-cpp metrics are).
#pragma once

#include <string>
#include <vector>

#include "imginterp/v1/bus.pb.h"
#include "services/core/jobbus/task_queue.h"

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
  // Creates imginterp_gateway_jobs_total at 0 for each pipeline and terminal state, so the
  // first job that ends in a state shows in increase().
  void DeclarePipelines(const std::vector<std::string>& pipelines);
  // imginterp_gateway_active_jobs: non-terminal jobs in the bucket.
  void SetActiveJobs(double count);
  // imginterp_bus_consumer_{pending,ack_pending,redelivered}_messages and _waiting_requests of
  // the family's durable consumer.
  void SetConsumerLag(const std::string& family, const jobbus::ConsumerLag& lag);

 private:
  prometheus::Family<prometheus::Counter>& jobs_total_;
  prometheus::Family<prometheus::Histogram>& pipeline_duration_;
  prometheus::Family<prometheus::Histogram>& stage_duration_;
  prometheus::Family<prometheus::Histogram>& stage_queue_;
  prometheus::Gauge& active_jobs_;
  prometheus::Family<prometheus::Gauge>& consumer_pending_;
  prometheus::Family<prometheus::Gauge>& consumer_ack_pending_;
  prometheus::Family<prometheus::Gauge>& consumer_redelivered_;
  prometheus::Family<prometheus::Gauge>& consumer_waiting_;
};

// Lower-case state name without prefix, e.g. "succeeded".
std::string JobStateLabel(v1::JobState state);

}  // namespace imginterp::gateway
