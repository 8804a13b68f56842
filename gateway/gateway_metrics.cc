#include "gateway/gateway_metrics.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "gateway/job_logic.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace imginterp::gateway {
namespace {

// 1 ms ... 120 s: from a cached classical map to a long generation.
const prometheus::Histogram::BucketBoundaries& Buckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
  return *buckets;
}

}  // namespace

std::string JobStateLabel(v1::JobState state) {
  std::string name = v1::JobState_Name(state);
  constexpr char kPrefix[] = "JOB_STATE_";
  if (absl::StartsWith(name, kPrefix)) name = name.substr(sizeof(kPrefix) - 1);
  return absl::AsciiStrToLower(name);
}

GatewayMetrics::GatewayMetrics(prometheus::Registry& registry)
    : jobs_total_(prometheus::BuildCounter()
                      .Name("imginterp_gateway_jobs_total")
                      .Help("Jobs that reached a terminal state, by pipeline and state.")
                      .Register(registry)),
      pipeline_duration_(prometheus::BuildHistogram()
                             .Name("imginterp_gateway_pipeline_duration_seconds")
                             .Help("Job duration from creation to its terminal state.")
                             .Register(registry)),
      stage_duration_(prometheus::BuildHistogram()
                          .Name("imginterp_gateway_stage_duration_seconds")
                          .Help("Stage duration from queued to finished.")
                          .Register(registry)),
      stage_queue_(prometheus::BuildHistogram()
                       .Name("imginterp_gateway_stage_queue_seconds")
                       .Help("Time a stage waited for a worker, queued to started.")
                       .Register(registry)),
      active_jobs_(prometheus::BuildGauge()
                       .Name("imginterp_gateway_active_jobs")
                       .Help("Jobs not yet in a terminal state.")
                       .Register(registry)
                       .Add({})),
      consumer_pending_(prometheus::BuildGauge()
                            .Name("imginterp_bus_consumer_pending_messages")
                            .Help("Tasks of a family not yet delivered to any of its workers "
                                  "(queue depth).")
                            .Register(registry)),
      consumer_ack_pending_(prometheus::BuildGauge()
                                .Name("imginterp_bus_consumer_ack_pending_messages")
                                .Help("Tasks delivered to a family's workers and not yet acked.")
                                .Register(registry)),
      consumer_redelivered_(prometheus::BuildGauge()
                                .Name("imginterp_bus_consumer_redelivered_messages")
                                .Help("Unacked tasks of a family delivered more than once.")
                                .Register(registry)),
      consumer_waiting_(prometheus::BuildGauge()
                            .Name("imginterp_bus_consumer_waiting_requests")
                            .Help("Pull requests of a family's workers waiting for tasks (idle "
                                  "capacity).")
                            .Register(registry)) {}

void GatewayMetrics::JobFinished(const v1::JobRecord& record) {
  const std::string state = JobStateLabel(record.state());
  jobs_total_.Add({{"pipeline", record.pipeline()}, {"state", state}}).Increment();
  pipeline_duration_.Add({{"pipeline", record.pipeline()}, {"state", state}}, Buckets())
      .Observe(SecondsBetween(record.created_at(), record.finished_at()));
  for (const v1::StageRecord& stage : record.stages()) {
    const prometheus::Labels labels = {
        {"pipeline", record.pipeline()}, {"stage", stage.name()}, {"family", stage.family()}};
    if (stage.has_queued_at() && stage.has_finished_at()) {
      stage_duration_.Add(labels, Buckets())
          .Observe(SecondsBetween(stage.queued_at(), stage.finished_at()));
    }
    if (stage.has_queued_at() && stage.has_started_at()) {
      stage_queue_.Add(labels, Buckets())
          .Observe(SecondsBetween(stage.queued_at(), stage.started_at()));
    }
  }
}

void GatewayMetrics::DeclarePipelines(const std::vector<std::string>& pipelines) {
  for (const std::string& pipeline : pipelines) {
    for (v1::JobState state :
         {v1::JOB_STATE_SUCCEEDED, v1::JOB_STATE_FAILED, v1::JOB_STATE_CANCELLED}) {
      jobs_total_.Add({{"pipeline", pipeline}, {"state", JobStateLabel(state)}});
    }
  }
}

void GatewayMetrics::SetActiveJobs(double count) { active_jobs_.Set(count); }

void GatewayMetrics::SetConsumerLag(const std::string& family, const jobbus::ConsumerLag& lag) {
  const prometheus::Labels labels = {{"family", family}};
  consumer_pending_.Add(labels).Set(static_cast<double>(lag.pending));
  consumer_ack_pending_.Add(labels).Set(static_cast<double>(lag.ack_pending));
  consumer_redelivered_.Add(labels).Set(static_cast<double>(lag.redelivered));
  consumer_waiting_.Add(labels).Set(static_cast<double>(lag.waiting));
}

}  // namespace imginterp::gateway
