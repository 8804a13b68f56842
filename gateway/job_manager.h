// Job lifecycle on the job bus: submit (record + input artifact + idempotency key), DAG
// advancement (queue ready stages by compare-and-set, then publish their tasks), start
// timeouts, cancellation, waiting and watching.
//
// Several gateways may run against the same bus: every change is a JobStore::Mutate
// (compare-and-set), so only the gateway whose write moved a stage to QUEUED publishes it, and
// only the one that made a job terminal counts it in the metrics.
//
// Thread-safe. Start() runs two background threads (the jobs-bucket watch loop and the
// start-timeout ticker); Stop() (or the destructor) joins them. Neither copyable nor movable.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gateway/job_logic.h"
#include "imginterp/v1/gateway.pb.h"
#include "services/core/jobbus/job_store.h"

namespace imginterp::jobbus {
class ArtifactStore;
class KeyValue;
class KvWatcher;
class TaskPublisher;
}  // namespace imginterp::jobbus

namespace imginterp::gateway {

class GatewayMetrics;
class PipelineRegistry;

struct JobManagerOptions {
  // Largest input image accepted, bytes (RESOURCE_EXHAUSTED above).
  int64_t max_image_bytes = 32 << 20;
  // Start timeout of stages whose StageSpec.start_timeout_seconds is 0.
  absl::Duration default_start_timeout = absl::Seconds(30);
  // How often queued stages are checked against their start timeout.
  absl::Duration tick_interval = absl::Milliseconds(200);
  // Longest single wait on a KV watcher, so waits notice deadlines, cancellation and Stop().
  absl::Duration poll_interval = absl::Milliseconds(200);
};

struct SubmitResult {
  std::string job_id;
  // False when the idempotency key matched an existing job.
  bool created = false;
};

// Bytes of one artifact and what they are.
struct ResultPayload {
  std::string content_type;
  std::string data;
};

class JobManager {
 public:
  // Everything borrowed must outlive the manager; `metrics` may be null.
  static absl::StatusOr<std::unique_ptr<JobManager>> Create(
      const JobManagerOptions& options, const PipelineRegistry& pipelines, jobbus::JobStore& jobs,
      jobbus::ArtifactStore& artifacts, jobbus::KeyValue& idempotency,
      jobbus::TaskPublisher& publisher, GatewayMetrics* metrics);
  ~JobManager();
  JobManager(const JobManager&) = delete;
  JobManager& operator=(const JobManager&) = delete;

  // Recovers the jobs already in the bucket (advances each non-terminal job and re-publishes
  // its QUEUED stages; the stream's duplicate window drops tasks it already holds), then starts
  // the watch loop and the ticker.
  absl::Status Start();
  // Idempotent.
  void Stop();

  // Validates (NOT_FOUND unknown pipeline, INVALID_ARGUMENT empty image, RESOURCE_EXHAUSTED
  // image above max_image_bytes), honours the idempotency key, creates the record and
  // publishes the first stages. `trace_id` becomes the job's trace id.
  absl::StatusOr<SubmitResult> Submit(const v1::JobRequest& request,
                                      const std::string& idempotency_key,
                                      const std::string& trace_id);
  // Applies ComputeAdvance by compare-and-set and publishes the stages it queued.
  absl::StatusOr<jobbus::VersionedRecord> Advance(const std::string& job_id);
  // NOT_FOUND names the id.
  absl::StatusOr<jobbus::VersionedRecord> Get(const std::string& job_id);
  // Sets cancel_requested and advances; a terminal job is returned unchanged.
  absl::StatusOr<jobbus::VersionedRecord> Cancel(const std::string& job_id);
  // Newest first by created_at; `states` empty means all; limit <= 0 means 100.
  absl::StatusOr<std::vector<jobbus::VersionedRecord>> List(const std::vector<v1::JobState>& states,
                                                            int limit);
  // Deletes the record, the job's artifacts and its idempotency key.
  absl::Status Delete(const std::string& job_id);

  // Returns true to stop waiting (the client went away).
  using CancelledFn = std::function<bool()>;
  // Waits until the job is terminal. DEADLINE_EXCEEDED (naming the job id, which keeps
  // running) at `deadline`; CANCELLED when `cancelled` says so; NOT_FOUND if it is deleted.
  absl::StatusOr<jobbus::VersionedRecord> WaitForTerminal(const std::string& job_id,
                                                          absl::Time deadline,
                                                          const CancelledFn& cancelled);
  // Calls `on_revision` for every revision of the job, starting with the current one, until
  // a terminal revision was delivered (OK), `on_revision` returns false (OK), `cancelled`
  // says so (CANCELLED), the job is deleted (NOT_FOUND) or the manager stops (UNAVAILABLE).
  absl::Status Watch(const std::string& job_id,
                     const std::function<bool(const jobbus::VersionedRecord&)>& on_revision,
                     const CancelledFn& cancelled);

  // The stored result of a SUCCEEDED stage (FAILED_PRECONDITION otherwise; NOT_FOUND for an
  // unknown job or stage).
  absl::StatusOr<ResultPayload> FetchResult(const std::string& job_id, const std::string& stage);
  // The bytes of an artifact of the job.
  absl::StatusOr<std::string> FetchArtifact(const std::string& job_id, const v1::ArtifactRef& ref);

  // One pass of the start-timeout check over the jobs the watch loop knows of (the ticker
  // calls it every tick_interval).
  void CheckStartTimeouts(absl::Time now);

 private:
  JobManager(const JobManagerOptions& options, const PipelineRegistry& pipelines,
             jobbus::JobStore& jobs, jobbus::ArtifactStore& artifacts,
             jobbus::KeyValue& idempotency, jobbus::TaskPublisher& publisher,
             GatewayMetrics* metrics);

  // Runs `extra` (may be null) then the advance rules in one compare-and-set, publishes the
  // stages this write queued and observes metrics when this write made the job terminal.
  absl::StatusOr<jobbus::VersionedRecord> MutateAndAdvance(const std::string& job_id,
                                                           const jobbus::JobStore::Mutation& extra);
  // Publishes the task of each named stage; a stage whose task cannot be published fails.
  void PublishStages(const v1::JobRecord& record, const std::vector<std::string>& stages);
  // Puts the stage's images into its task: the job's input image (stages without inputs), the
  // image named by image_from, or one TaskImage per image input (results' images stored as
  // artifacts "input-<stage>-<n>").
  absl::Status AddInputImages(const v1::JobRecord& record, const v1::StageRecord& stage,
                              v1::StageTask* task);
  StartTimeouts TimeoutsFor(const v1::JobRecord& record) const;
  // Keeps `active_` and the active-jobs gauge in step with one watched revision.
  void Track(const std::string& job_id, const v1::JobRecord* record);
  void WatchLoop();
  void TickLoop();

  const JobManagerOptions options_;
  const PipelineRegistry& pipelines_;
  jobbus::JobStore& jobs_;
  jobbus::ArtifactStore& artifacts_;
  jobbus::KeyValue& idempotency_;
  jobbus::TaskPublisher& publisher_;
  GatewayMetrics* metrics_;

  std::atomic<bool> stopping_{false};
  std::unique_ptr<jobbus::KvWatcher> watcher_;
  std::thread watch_thread_;
  std::thread tick_thread_;

  std::mutex mu_;
  std::condition_variable tick_cv_;
  // Non-terminal jobs seen by the watch loop, without payloads.
  std::map<std::string, v1::JobRecord> active_;
  bool started_ = false;
};

// 32 random lower-case hex digits.
std::string NewJobId();

}  // namespace imginterp::gateway
