// Serves a family's stage tasks from the job bus through the same ModelHost as gRPC calls.
//
// For each delivered task: mark the stage RUNNING on this worker in the job record
// (compare-and-set), run it, store the result artifact, write the stage result into the record
// (compare-and-set: the first result wins), and only then ack. Retryable failures are naked
// with a delay; bad input is recorded as the stage's error and termed. Long stages send
// in-progress heartbeats so a slow worker keeps its task and a dead one loses it after AckWait.
//
// Thread-safe; owns a fetch thread, a completion thread and a heartbeat thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "services/core/jobbus/bus_layout.h"
#include "services/core/jobbus/task_queue.h"

namespace imginterp::jobbus {
class NatsConnection;
class KeyValue;
class JobStore;
class ArtifactStore;
}  // namespace imginterp::jobbus

namespace imginterp::service {

class FamilyHandler;
class ModelHost;

struct JobWorkerOptions {
  jobbus::BusLayout layout;
  jobbus::ConsumerOptions consumer;
  // Tasks fetched at once (feeds the dynamic batcher).
  int fetch_batch = 8;
  // Tasks this worker runs at once; fetching pauses at the limit.
  int max_in_flight = 16;
  // Test seam for crash-recovery tests: hold each task this long after marking it RUNNING.
  int64_t hold_before_run_ms = 0;
  // Worker identity written into the record: "<host>/<pid>" by default.
  std::string worker_id;
};

class JobWorker {
 public:
  // `connection`, `handler` and `host` outlive the worker.
  static absl::StatusOr<std::unique_ptr<JobWorker>> Start(jobbus::NatsConnection& connection,
                                                          const FamilyHandler& handler,
                                                          ModelHost& host,
                                                          const JobWorkerOptions& options);
  ~JobWorker();
  JobWorker(const JobWorker&) = delete;
  JobWorker& operator=(const JobWorker&) = delete;

  // Stops fetching, waits for tasks in flight to finish and be acked.
  void Stop();

 private:
  struct Running;
  JobWorker(jobbus::NatsConnection& connection, const FamilyHandler& handler, ModelHost& host,
            JobWorkerOptions options);
  void FetchLoop();
  void CompletionLoop();
  void HeartbeatLoop();
  void Begin(std::unique_ptr<jobbus::TaskDelivery> delivery);
  void Finish(std::shared_ptr<Running> running, absl::Status status);
  void Settle(Running& running, const absl::Status& status);

  jobbus::NatsConnection& connection_;
  const FamilyHandler& handler_;
  ModelHost& host_;
  const JobWorkerOptions options_;
  std::unique_ptr<jobbus::KeyValue> jobs_kv_;
  std::unique_ptr<jobbus::KeyValue> artifacts_kv_;
  std::unique_ptr<jobbus::JobStore> jobs_;
  std::unique_ptr<jobbus::ArtifactStore> artifacts_;
  std::unique_ptr<jobbus::TaskConsumer> consumer_;
  std::atomic<bool> stopping_{false};

  std::mutex mu_;
  std::condition_variable cv_;
  std::map<uint64_t, std::shared_ptr<Running>> running_;                    // guarded by mu_
  std::deque<std::pair<std::shared_ptr<Running>, absl::Status>> finished_;  // guarded by mu_
  uint64_t next_id_ = 0;                                                    // guarded by mu_
  bool completion_stop_ = false;                                            // guarded by mu_

  // Tasks held by hold_before_run_ms (testing only); joined by Stop.
  std::vector<std::thread> held_;  // guarded by mu_
  std::thread fetch_thread_;
  std::thread completion_thread_;
  std::thread heartbeat_thread_;
};

}  // namespace imginterp::service
