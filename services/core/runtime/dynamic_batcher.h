// The dynamic batcher in front of one model instance: a bounded queue of tasks and one executor
// thread that groups them into batches (after Triton's dynamic batcher: max_batch_size and
// max_queue_delay_us).
//
// A task is completed exactly once: either by the batcher through BatchTask::Fail (refused,
// stopped, deadline passed or cancelled while waiting) or by the execute function it is handed to.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace imginterp::runtime {

// One request waiting to run. Subclasses hold the request and its completion.
//
// Thread-safety: owned by one thread at a time (the submitter, then the batcher, then the execute
// function). IsCancelled may be called from the executor thread while another thread cancels, so
// subclasses back it with an atomic; it is called with the batcher's lock held and must be cheap.
class BatchTask {
 public:
  virtual ~BatchTask() = default;
  // Completes a task that will not run (refused, queue stopped, deadline passed or cancelled while
  // queued). Called at most once, by the batcher, instead of handing the task to the execute
  // function.
  virtual void Fail(const absl::Status& status) = 0;
  virtual bool IsCancelled() const { return false; }

  // The task is failed with DEADLINE_EXCEEDED instead of run if this passes while it waits.
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  std::chrono::steady_clock::time_point enqueued_at;  // set by Submit
};

struct BatcherOptions {
  // Model name, used in messages: "queue of model 'squeezenet' is full (64 waiting)".
  std::string name;
  // Most tasks handed to one execute call; <= 1 means no batching.
  int max_batch_size = 1;
  // How long the first task of a batch may wait for company, in microseconds; 0 takes only what
  // is already waiting.
  int64_t max_queue_delay_us = 0;
  // Most tasks waiting (not counting the batch being executed); more are refused.
  size_t max_queue_size = 64;
};

// One executor thread per batcher (= per model instance).
//
// Thread-safe: Submit, Stop and queue_size may be called from any thread, except that Stop must not
// be called from inside the execute function (it joins the executor thread).
// Neither copyable nor movable.
class DynamicBatcher {
 public:
  // Runs on the executor thread with 1..max_batch_size tasks and must complete every task it is
  // given. Exceptions are caught: every task still held in `batch` when it throws is failed with
  // INTERNAL. A function that may throw should therefore take the batch by rvalue reference and
  // release each task (move it out or reset it) once it has completed it; one that takes the batch
  // by value owns the tasks, and they are destroyed with the exception.
  using ExecuteFn = std::function<void(std::vector<std::unique_ptr<BatchTask>>&& batch)>;

  // INVALID_ARGUMENT if `execute` is empty, max_queue_size is 0 or max_queue_delay_us is negative.
  static absl::StatusOr<std::unique_ptr<DynamicBatcher>> Create(const BatcherOptions& options,
                                                                ExecuteFn execute);
  ~DynamicBatcher();  // Stop()

  DynamicBatcher(const DynamicBatcher&) = delete;
  DynamicBatcher& operator=(const DynamicBatcher&) = delete;

  // Consumes the task and sets its enqueued_at. When refused, calls task->Fail(status) itself and
  // returns that status: RESOURCE_EXHAUSTED when max_queue_size tasks wait (the message names the
  // model and the limit); UNAVAILABLE after Stop; INVALID_ARGUMENT for a null task.
  absl::Status Submit(std::unique_ptr<BatchTask> task);

  // Refuses new tasks, runs everything already queued (drain, without waiting for company), joins
  // the executor. Idempotent.
  void Stop();

  // Tasks waiting, not counting the batch being executed.
  size_t queue_size() const;

 private:
  using Batch = std::vector<std::unique_ptr<BatchTask>>;
  struct Rejected {
    std::unique_ptr<BatchTask> task;
    absl::Status status;
  };

  DynamicBatcher(const BatcherOptions& options, ExecuteFn execute);

  void Run();
  // Waits for the next batch. Returns false once stopped and drained. `batch` may come back empty
  // when only rejected tasks were found, so that they are failed without delay.
  bool NextBatch(Batch& batch, std::vector<Rejected>& rejected);
  // The reason `task` must not run at `now`, or OK.
  absl::Status CheckRunnable(const BatchTask& task,
                             std::chrono::steady_clock::time_point now) const;
  void Execute(Batch batch);

  const BatcherOptions options_;
  const size_t max_batch_size_;
  const std::chrono::microseconds max_queue_delay_;
  const ExecuteFn execute_;

  mutable std::mutex mu_;
  std::deque<std::unique_ptr<BatchTask>> queue_;
  bool stopping_ = false;
  std::condition_variable cv_;

  std::mutex join_mu_;  // serializes concurrent Stop calls around the join
  std::thread executor_;
};

}  // namespace imginterp::runtime
