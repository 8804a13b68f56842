#include "services/core/runtime/dynamic_batcher.h"

#include <algorithm>
#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/core/common/logging.h"

namespace imginterp::runtime {

namespace {

using Clock = std::chrono::steady_clock;

int64_t MillisSince(Clock::time_point start, Clock::time_point now) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(now - start).count();
}

}  // namespace

absl::StatusOr<std::unique_ptr<DynamicBatcher>> DynamicBatcher::Create(
    const BatcherOptions& options, ExecuteFn execute) {
  if (!execute) {
    return absl::InvalidArgumentError(
        absl::StrCat("batcher of model '", options.name, "' needs an execute function"));
  }
  if (options.max_queue_size == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_queue_size of model '", options.name, "' is 0; it must be at least 1"));
  }
  if (options.max_queue_delay_us < 0) {
    return absl::InvalidArgumentError(absl::StrCat("max_queue_delay_us of model '", options.name,
                                                   "' is ", options.max_queue_delay_us,
                                                   "; it must be 0 or more"));
  }
  std::unique_ptr<DynamicBatcher> batcher(new DynamicBatcher(options, std::move(execute)));
  // Started only once the object is complete, so the thread never sees a half-built batcher.
  DynamicBatcher* raw = batcher.get();
  batcher->executor_ = std::thread([raw] { raw->Run(); });
  return batcher;
}

DynamicBatcher::DynamicBatcher(const BatcherOptions& options, ExecuteFn execute)
    : options_(options),
      max_batch_size_(static_cast<size_t>(std::max(options.max_batch_size, 1))),
      max_queue_delay_(options.max_queue_delay_us),
      execute_(std::move(execute)) {}

DynamicBatcher::~DynamicBatcher() { Stop(); }

absl::Status DynamicBatcher::Submit(std::unique_ptr<BatchTask> task) {
  if (task == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("null task submitted to the queue of model '", options_.name, "'"));
  }
  task->enqueued_at = Clock::now();
  absl::Status refused;
  std::unique_ptr<BatchTask> refused_task;  // failed below, outside the lock
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      refused = absl::UnavailableError(
          absl::StrCat("model '", options_.name, "' is shutting down and accepts no new requests"));
    } else if (queue_.size() >= options_.max_queue_size) {
      refused = absl::ResourceExhaustedError(absl::StrCat("queue of model '", options_.name,
                                                          "' is full (", queue_.size(),
                                                          " waiting); retry later"));
    }
    if (refused.ok()) {
      queue_.push_back(std::move(task));
    } else {
      refused_task = std::move(task);
    }
  }
  if (refused_task != nullptr) {
    refused_task->Fail(refused);
    return refused;
  }
  cv_.notify_one();
  return absl::OkStatus();
}

void DynamicBatcher::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  std::lock_guard<std::mutex> join_lock(join_mu_);
  if (executor_.joinable()) executor_.join();
}

size_t DynamicBatcher::queue_size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

void DynamicBatcher::Run() {
  for (;;) {
    Batch batch;
    std::vector<Rejected> rejected;
    const bool more = NextBatch(batch, rejected);
    for (Rejected& r : rejected) r.task->Fail(r.status);
    if (!batch.empty()) Execute(std::move(batch));
    if (!more) return;
  }
}

bool DynamicBatcher::NextBatch(Batch& batch, std::vector<Rejected>& rejected) {
  std::unique_lock<std::mutex> lock(mu_);
  Clock::time_point batch_deadline;
  while (batch.size() < max_batch_size_) {
    if (queue_.empty()) {
      if (batch.empty()) {
        if (!rejected.empty()) return true;
        if (stopping_) return false;
        cv_.wait(lock);
        continue;
      }
      // Draining after Stop does not wait for company.
      if (stopping_ || Clock::now() >= batch_deadline) break;
      cv_.wait_until(lock, batch_deadline);
      continue;
    }
    std::unique_ptr<BatchTask> task = std::move(queue_.front());
    queue_.pop_front();
    absl::Status runnable = CheckRunnable(*task, Clock::now());
    if (!runnable.ok()) {
      rejected.push_back({std::move(task), std::move(runnable)});
      continue;
    }
    // The delay counts from the first task that will actually run.
    if (batch.empty()) batch_deadline = task->enqueued_at + max_queue_delay_;
    batch.push_back(std::move(task));
  }
  return true;
}

absl::Status DynamicBatcher::CheckRunnable(const BatchTask& task, Clock::time_point now) const {
  if (task.IsCancelled()) {
    return absl::CancelledError(absl::StrCat(
        "request was cancelled while waiting in the queue of model '", options_.name, "'"));
  }
  if (task.deadline <= now) {
    return absl::DeadlineExceededError(
        absl::StrCat("deadline passed after ", MillisSince(task.enqueued_at, now),
                     " ms in the queue of model '", options_.name, "'"));
  }
  return absl::OkStatus();
}

void DynamicBatcher::Execute(Batch batch) {
  // Tasks may have expired or been cancelled while the batch waited for company.
  const Clock::time_point now = Clock::now();
  Batch runnable;
  runnable.reserve(batch.size());
  for (std::unique_ptr<BatchTask>& task : batch) {
    absl::Status status = CheckRunnable(*task, now);
    if (status.ok()) {
      runnable.push_back(std::move(task));
    } else {
      task->Fail(status);
    }
  }
  if (runnable.empty()) return;

  std::string error;
  try {
    // `runnable` is read again below on purpose: the function takes it by rvalue reference and
    // leaves in it whatever it did not take.
    execute_(std::move(runnable));
    return;
  } catch (const std::exception& e) {
    error = e.what();
  } catch (...) {
    error = "unknown exception";
  }
  IMGINTERP_LOG(Error) << "execute function of model '" << options_.name << "' threw: " << error;
  const absl::Status internal = absl::InternalError(
      absl::StrCat("model '", options_.name, "' failed while running a batch: ", error));
  // Whatever the execute function did not take or release is still ours to complete.
  for (std::unique_ptr<BatchTask>& task : runnable) {  // NOLINT(bugprone-use-after-move)
    if (task != nullptr) task->Fail(internal);
  }
}

}  // namespace imginterp::runtime
