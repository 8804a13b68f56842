#include "services/core/runtime/dynamic_batcher.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace imginterp::runtime {
namespace {

using Clock = std::chrono::steady_clock;
using Batch = std::vector<std::unique_ptr<BatchTask>>;

// A guard against hanging forever when a test's expectation is not met; not a timing assertion.
constexpr auto kHangGuard = std::chrono::seconds(20);

// What happened to every task of a test: which ran, in which batches, and which failed how.
class Journal {
 public:
  void RecordBatch(const std::vector<int>& ids) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      batches_.push_back(ids);
      for (int id : ids) ++completions_[id];
    }
    cv_.notify_all();
  }
  void RecordFailure(int id, const absl::Status& status) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      failures_[id] = status;
      ++completions_[id];
    }
    cv_.notify_all();
  }
  // True once `count` tasks have been completed one way or the other.
  bool WaitForCompletions(size_t count) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, kHangGuard, [&] { return completions_.size() >= count; });
  }

  std::vector<std::vector<int>> batches() const {
    std::lock_guard<std::mutex> lock(mu_);
    return batches_;
  }
  std::map<int, absl::Status> failures() const {
    std::lock_guard<std::mutex> lock(mu_);
    return failures_;
  }
  std::vector<int> executed() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<int> out;
    for (const auto& batch : batches_) out.insert(out.end(), batch.begin(), batch.end());
    return out;
  }
  // Every task completed exactly once (ran or failed, never both, never twice).
  bool EachCompletedOnce(int task_count) const {
    std::lock_guard<std::mutex> lock(mu_);
    if (completions_.size() != static_cast<size_t>(task_count)) return false;
    for (const auto& [id, count] : completions_) {
      if (count != 1) return false;
    }
    return true;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::vector<int>> batches_;
  std::map<int, absl::Status> failures_;
  std::map<int, int> completions_;
  std::condition_variable cv_;
};

class TestTask : public BatchTask {
 public:
  TestTask(int id, Journal& journal) : id_(id), journal_(journal) {}
  void Fail(const absl::Status& status) override { journal_.RecordFailure(id_, status); }
  bool IsCancelled() const override { return cancelled_.load(); }
  void Cancel() { cancelled_.store(true); }
  int id() const { return id_; }

 private:
  const int id_;
  Journal& journal_;
  std::atomic<bool> cancelled_{false};
};

// Holds the executor inside the execute function until opened, so queues fill deterministically.
class Gate {
 public:
  void Enter() {
    std::unique_lock<std::mutex> lock(mu_);
    ++entered_;
    cv_.notify_all();
    // Bounded so that a failed assertion (which skips Open) cannot hang the batcher's destructor.
    cv_.wait_for(lock, kHangGuard, [&] { return open_; });
  }
  bool WaitUntilEntered(int times = 1) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, kHangGuard, [&] { return entered_ >= times; });
  }
  void Open() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  int entered_ = 0;
  bool open_ = false;
  std::condition_variable cv_;
};

std::vector<int> Ids(const Batch& batch) {
  std::vector<int> ids;
  for (const auto& task : batch) ids.push_back(static_cast<const TestTask&>(*task).id());
  return ids;
}

// An execute function as a service writes it: takes the batch by value (it owns the tasks) and
// completes every task.
DynamicBatcher::ExecuteFn Recording(Journal& journal, Gate* gate = nullptr) {
  return [&journal, gate](Batch batch) {
    if (gate != nullptr) gate->Enter();
    journal.RecordBatch(Ids(batch));
    batch.clear();  // the tasks are done with
  };
}

BatcherOptions Options(int max_batch_size, int64_t max_queue_delay_us = 0,
                       size_t max_queue_size = 64, std::string name = "m") {
  BatcherOptions options;
  options.name = std::move(name);
  options.max_batch_size = max_batch_size;
  options.max_queue_delay_us = max_queue_delay_us;
  options.max_queue_size = max_queue_size;
  return options;
}

std::unique_ptr<DynamicBatcher> MakeBatcher(const BatcherOptions& options,
                                            DynamicBatcher::ExecuteFn execute) {
  auto batcher = DynamicBatcher::Create(options, std::move(execute));
  EXPECT_TRUE(batcher.ok()) << batcher.status();
  return batcher.ok() ? std::move(batcher).value() : nullptr;
}

TEST(DynamicBatcherTest, BatchesNeverExceedMaxBatchSize) {
  Journal journal;
  Gate gate;
  auto batcher = MakeBatcher(Options(4, 1000), Recording(journal, &gate));
  ASSERT_TRUE(batcher->Submit(std::make_unique<TestTask>(0, journal)).ok());
  ASSERT_TRUE(gate.WaitUntilEntered());
  for (int id = 1; id <= 21; ++id) {
    ASSERT_TRUE(batcher->Submit(std::make_unique<TestTask>(id, journal)).ok());
  }
  gate.Open();
  batcher->Stop();

  size_t largest = 0;
  for (const auto& batch : journal.batches()) {
    EXPECT_GE(batch.size(), 1u);
    EXPECT_LE(batch.size(), 4u);
    largest = std::max(largest, batch.size());
  }
  EXPECT_EQ(largest, 4u) << "21 waiting tasks should have filled a batch of 4";
  EXPECT_EQ(journal.executed().size(), 22u);
  EXPECT_TRUE(journal.EachCompletedOnce(22));
}

TEST(DynamicBatcherTest, ConcurrentSubmissionsWithinTheDelayArriveInOneBatch) {
  Journal journal;
  // The delay is long so the test does not depend on thread scheduling; the batch leaves as soon
  // as it is full, so the test does not wait for it.
  auto batcher = MakeBatcher(Options(8, 5'000'000), Recording(journal));
  std::atomic<bool> go{false};
  std::vector<std::thread> submitters;
  submitters.reserve(8);
  for (int id = 0; id < 8; ++id) {
    submitters.emplace_back([&, id] {
      while (!go.load()) std::this_thread::yield();
      EXPECT_TRUE(batcher->Submit(std::make_unique<TestTask>(id, journal)).ok());
    });
  }
  go.store(true);
  for (auto& t : submitters) t.join();
  ASSERT_TRUE(journal.WaitForCompletions(8));

  const auto batches = journal.batches();
  ASSERT_FALSE(batches.empty());
  EXPECT_GT(batches.front().size(), 1u);
  EXPECT_TRUE(journal.EachCompletedOnce(8));
}

TEST(DynamicBatcherTest, MaxBatchSizeOneRunsEveryTaskAlone) {
  Journal journal;
  Gate gate;
  auto batcher = MakeBatcher(Options(1, 100'000), Recording(journal, &gate));
  ASSERT_TRUE(batcher->Submit(std::make_unique<TestTask>(0, journal)).ok());
  ASSERT_TRUE(gate.WaitUntilEntered());
  for (int id = 1; id < 10; ++id) {
    ASSERT_TRUE(batcher->Submit(std::make_unique<TestTask>(id, journal)).ok());
  }
  gate.Open();
  batcher->Stop();

  const auto batches = journal.batches();
  EXPECT_EQ(batches.size(), 10u);
  for (const auto& batch : batches) EXPECT_EQ(batch.size(), 1u);
}

TEST(DynamicBatcherTest, NonPositiveMaxBatchSizeMeansNoBatching) {
  Journal journal;
  Gate gate;
  auto batcher = MakeBatcher(Options(0), Recording(journal, &gate));
  ASSERT_TRUE(batcher->Submit(std::make_unique<TestTask>(0, journal)).ok());
  ASSERT_TRUE(gate.WaitUntilEntered());
  for (int id = 1; id < 4; ++id) {
    ASSERT_TRUE(batcher->Submit(std::make_unique<TestTask>(id, journal)).ok());
  }
  gate.Open();
  batcher->Stop();
  for (const auto& batch : journal.batches()) EXPECT_EQ(batch.size(), 1u);
  EXPECT_EQ(journal.executed().size(), 4u);
}

TEST(DynamicBatcherTest, FullQueueRefusesWithResourceExhaustedAndFailsTheTask) {
  Journal journal;
  Gate gate;
  auto batcher = MakeBatcher(Options(1, 0, 2, "squeezenet"), Recording(journal, &gate));
  ASSERT_TRUE(batcher->Submit(std::make_unique<TestTask>(0, journal)).ok());
  ASSERT_TRUE(gate.WaitUntilEntered());  // task 0 is running, the queue is empty
  ASSERT_TRUE(batcher->Submit(std::make_unique<TestTask>(1, journal)).ok());
  ASSERT_TRUE(batcher->Submit(std::make_unique<TestTask>(2, journal)).ok());
  EXPECT_EQ(batcher->queue_size(), 2u);

  const absl::Status refused = batcher->Submit(std::make_unique<TestTask>(3, journal));
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(refused.message().find("queue of model 'squeezenet' is full (2 waiting)"),
            std::string::npos)
      << refused;
  const auto failures = journal.failures();
  ASSERT_EQ(failures.count(3), 1u);
  EXPECT_EQ(failures.at(3), refused);

  gate.Open();
  batcher->Stop();
  EXPECT_EQ(journal.executed(), (std::vector<int>{0, 1, 2}));
  EXPECT_TRUE(journal.EachCompletedOnce(4));
}

TEST(DynamicBatcherTest, SubmitAfterStopIsUnavailableAndFailsTheTask) {
  Journal journal;
  auto batcher = MakeBatcher(Options(1), Recording(journal));
  batcher->Stop();
  batcher->Stop();  // idempotent

  const absl::Status refused = batcher->Submit(std::make_unique<TestTask>(7, journal));
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnavailable);
  const auto failures = journal.failures();
  ASSERT_EQ(failures.count(7), 1u);
  EXPECT_EQ(failures.at(7).code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(journal.executed().empty());
}

TEST(DynamicBatcherTest, StopRunsEveryQueuedTaskBeforeReturning) {
  Journal journal;
  Gate gate;
  // A long delay: draining must not wait for company, or Stop would take a minute.
  auto batcher = MakeBatcher(Options(4, 60'000'000, 1'000'000), Recording(journal, &gate));
  // A full first batch leaves at once.
  for (int id = 0; id < 4; ++id) {
    ASSERT_TRUE(batcher->Submit(std::make_unique<TestTask>(id, journal)).ok());
  }
  ASSERT_TRUE(gate.WaitUntilEntered());
  for (int id = 4; id <= 9; ++id) {
    ASSERT_TRUE(batcher->Submit(std::make_unique<TestTask>(id, journal)).ok());
  }
  std::thread stopper([&] { batcher->Stop(); });
  // Once Stop has begun, new tasks are refused; the accepted ones stay queued.
  int next_id = 10;
  while (batcher->Submit(std::make_unique<TestTask>(next_id, journal)).ok()) ++next_id;
  const int refused_id = next_id;
  gate.Open();
  stopper.join();

  EXPECT_EQ(journal.executed().size(), static_cast<size_t>(refused_id));
  const auto failures = journal.failures();
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_EQ(failures.begin()->first, refused_id);
  EXPECT_TRUE(journal.EachCompletedOnce(refused_id + 1));
}

TEST(DynamicBatcherTest, TaskWhoseDeadlinePassedFailsWithDeadlineExceededWithoutRunning) {
  Journal journal;
  Gate gate;
  auto batcher = MakeBatcher(Options(4, 0, 64, "slow"), Recording(journal, &gate));
  ASSERT_TRUE(batcher->Submit(std::make_unique<TestTask>(0, journal)).ok());
  ASSERT_TRUE(gate.WaitUntilEntered());
  auto expired = std::make_unique<TestTask>(1, journal);
  expired->deadline = Clock::now() - std::chrono::milliseconds(1);
  ASSERT_TRUE(batcher->Submit(std::move(expired)).ok());
  auto in_time = std::make_unique<TestTask>(2, journal);
  in_time->deadline = Clock::now() + std::chrono::hours(1);
  ASSERT_TRUE(batcher->Submit(std::move(in_time)).ok());
  gate.Open();
  batcher->Stop();

  const auto failures = journal.failures();
  ASSERT_EQ(failures.count(1), 1u);
  EXPECT_EQ(failures.at(1).code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_NE(failures.at(1).message().find("in the queue of model 'slow'"), std::string::npos)
      << failures.at(1);
  EXPECT_EQ(journal.executed(), (std::vector<int>{0, 2}));
  EXPECT_TRUE(journal.EachCompletedOnce(3));
}

TEST(DynamicBatcherTest, TaskCancelledWhileQueuedFailsWithCancelledWithoutRunning) {
  Journal journal;
  Gate gate;
  auto batcher = MakeBatcher(Options(4), Recording(journal, &gate));
  ASSERT_TRUE(batcher->Submit(std::make_unique<TestTask>(0, journal)).ok());
  ASSERT_TRUE(gate.WaitUntilEntered());
  auto task = std::make_unique<TestTask>(1, journal);
  TestTask* cancelled = task.get();  // owned by the batcher until it completes the task
  ASSERT_TRUE(batcher->Submit(std::move(task)).ok());
  cancelled->Cancel();
  gate.Open();
  batcher->Stop();

  const auto failures = journal.failures();
  ASSERT_EQ(failures.count(1), 1u);
  EXPECT_EQ(failures.at(1).code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(journal.executed(), (std::vector<int>{0}));
}

TEST(DynamicBatcherTest, ThrowingExecuteFailsItsTasksWithInternalAndTheBatcherKeepsWorking) {
  Journal journal;
  std::atomic<bool> throw_next{true};
  auto batcher = MakeBatcher(Options(4, 0, 64, "flaky"), [&](Batch&& batch) {
    if (throw_next.exchange(false)) throw std::runtime_error("out of memory");
    journal.RecordBatch(Ids(batch));
  });
  ASSERT_TRUE(batcher->Submit(std::make_unique<TestTask>(0, journal)).ok());
  ASSERT_TRUE(journal.WaitForCompletions(1));
  ASSERT_TRUE(batcher->Submit(std::make_unique<TestTask>(1, journal)).ok());
  ASSERT_TRUE(journal.WaitForCompletions(2));

  const auto failures = journal.failures();
  ASSERT_EQ(failures.count(0), 1u);
  EXPECT_EQ(failures.at(0).code(), absl::StatusCode::kInternal);
  EXPECT_NE(failures.at(0).message().find("out of memory"), std::string::npos) << failures.at(0);
  EXPECT_EQ(journal.executed(), (std::vector<int>{1}));
  EXPECT_TRUE(journal.EachCompletedOnce(2));
}

TEST(DynamicBatcherTest, ThrowingExecuteDoesNotFailTasksItAlreadyReleased) {
  Journal journal;
  auto batcher = MakeBatcher(Options(4), [&](Batch&& batch) {
    // Completes the first task, releases it, then throws with the rest still in the batch.
    journal.RecordBatch({static_cast<TestTask&>(*batch.front()).id()});
    batch.front().reset();
    throw std::runtime_error("boom");
  });
  ASSERT_TRUE(batcher->Submit(std::make_unique<TestTask>(0, journal)).ok());
  ASSERT_TRUE(journal.WaitForCompletions(1));
  batcher->Stop();
  EXPECT_EQ(journal.executed(), (std::vector<int>{0}));
  EXPECT_TRUE(journal.failures().empty());
  EXPECT_TRUE(journal.EachCompletedOnce(1));
}

TEST(DynamicBatcherTest, CreateRejectsInvalidOptions) {
  Journal journal;
  EXPECT_EQ(DynamicBatcher::Create(Options(1), nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DynamicBatcher::Create(Options(1, 0, 0), Recording(journal)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DynamicBatcher::Create(Options(1, -1), Recording(journal)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(DynamicBatcherTest, NullTaskIsRefused) {
  Journal journal;
  auto batcher = MakeBatcher(Options(1), Recording(journal));
  EXPECT_EQ(batcher->Submit(nullptr).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace imginterp::runtime
