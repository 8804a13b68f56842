#include "benchmarks/load/loadgen/load_runner.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

#include "benchmarks/load/loadgen/poisson_arrivals.h"
#include "gtest/gtest.h"

namespace imginterp::loadgen {
namespace {

using std::chrono::milliseconds;

// A request that takes `duration` and tracks how many run at once.
class SlowRequest {
 public:
  explicit SlowRequest(milliseconds duration) : duration_(duration) {}
  CallResult operator()(int) {
    const int now = ++running_;
    int seen = most_;
    while (now > seen && !most_.compare_exchange_weak(seen, now)) {
    }
    std::this_thread::sleep_for(duration_);
    --running_;
    ++calls_;
    return CallResult{};
  }
  int most() const { return most_; }
  int calls() const { return calls_; }

 private:
  milliseconds duration_;
  std::atomic<int> running_{0};
  std::atomic<int> most_{0};
  std::atomic<int> calls_{0};
};

TEST(RunClosedLoop, KeepsExactlyConcurrencyRequestsOutstanding) {
  SlowRequest slow(milliseconds(10));
  RunOptions options;
  options.concurrency = 3;
  options.warmup_seconds = 0.1;
  options.duration_seconds = 0.5;
  absl::StatusOr<RunResult> result = RunClosedLoop(options, [&](int w) { return slow(w); });
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(slow.most(), 3);
  // 3 workers x 0.5 s / 10 ms = 150 at most; sleeping overshoots, so fewer.
  EXPECT_GT(result->records.size(), 60u);
  EXPECT_LE(result->records.size(), 153u);
  EXPECT_GT(result->warmup_requests, 0);
  EXPECT_EQ(result->warmup_requests + static_cast<int64_t>(result->records.size()), slow.calls());
  for (const RequestRecord& record : result->records) {
    EXPECT_GE(record.start, 0);
    EXPECT_LT(record.start, options.duration_seconds);
    EXPECT_EQ(record.due, record.start);
    EXPECT_GE(record.latency, 0.010);
    EXPECT_EQ(record.code, "OK");
  }
  EXPECT_TRUE(
      std::is_sorted(result->records.begin(), result->records.end(),
                     [](const RequestRecord& a, const RequestRecord& b) { return a.due < b.due; }));
  EXPECT_GE(result->window_seconds, options.duration_seconds);
  EXPECT_LT(result->window_seconds, options.duration_seconds + 0.5);
}

TEST(RunClosedLoop, RecordsFailuresByCodeAndKeepsTheFirstMessage) {
  std::atomic<int> calls{0};
  RunOptions options;
  options.concurrency = 1;
  options.warmup_seconds = 0;
  options.duration_seconds = 0.2;
  absl::StatusOr<RunResult> result = RunClosedLoop(options, [&](int) {
    std::this_thread::sleep_for(milliseconds(2));
    return ++calls % 2 == 0 ? CallResult{"UNAVAILABLE", "connection refused"} : CallResult{};
  });
  ASSERT_TRUE(result.ok()) << result.status();
  const auto failed = std::count_if(result->records.begin(), result->records.end(),
                                    [](const RequestRecord& r) { return r.code == "UNAVAILABLE"; });
  EXPECT_GT(failed, 0);
  EXPECT_NEAR(static_cast<double>(failed), result->records.size() / 2.0, 1.0);
  EXPECT_EQ(result->first_error, "UNAVAILABLE: connection refused");
}

TEST(RunClosedLoop, CallsTheWindowHookOnceAtTheEndOfTheWarmUp) {
  std::atomic<int> hooks{0};
  const auto start = std::chrono::steady_clock::now();
  std::atomic<double> hook_at{-1};
  RunOptions options;
  options.warmup_seconds = 0.15;
  options.duration_seconds = 0.1;
  options.on_window_start = [&] {
    ++hooks;
    hook_at = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  ASSERT_TRUE(RunClosedLoop(options, [](int) {
                std::this_thread::sleep_for(milliseconds(1));
                return CallResult{};
              }).ok());
  EXPECT_EQ(hooks, 1);
  EXPECT_GE(hook_at, 0.15);
  EXPECT_LT(hook_at, 0.5);
}

TEST(RunClosedLoop, ReportsHowLongTheWindowHookRanWhileRequestsWereSent) {
  RunOptions options;
  options.warmup_seconds = 0.05;
  options.duration_seconds = 0.3;
  options.concurrency = 2;
  options.on_window_start = [] { std::this_thread::sleep_for(milliseconds(80)); };
  absl::StatusOr<RunResult> result = RunClosedLoop(options, [](int) {
    std::this_thread::sleep_for(milliseconds(2));
    return CallResult{};
  });
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_GE(result->window_start_hook_seconds, 0.08);
  EXPECT_LT(result->window_start_hook_seconds, options.duration_seconds);
  // The workers did not wait for the hook.
  const auto during = std::count_if(
      result->records.begin(), result->records.end(),
      [&](const RequestRecord& r) { return r.start < result->window_start_hook_seconds; });
  EXPECT_GT(during, 10);

  options.on_window_start = nullptr;
  result = RunClosedLoop(options, [](int) { return CallResult{}; });
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->window_start_hook_seconds, 0);
}

TEST(RunOpenLoop, SendsExactlyTheScheduledArrivalsOfTheWindow) {
  RunOptions options;
  options.rate = 300;
  options.seed = 42;
  options.warmup_seconds = 0.2;
  options.duration_seconds = 0.8;
  // The same schedule, drawn independently.
  PoissonArrivals arrivals = *PoissonArrivals::Create(options.rate, options.seed);
  int64_t warmup = 0, measured = 0;
  for (double t = arrivals.Next(); t < 1.0; t = arrivals.Next()) (t < 0.2 ? warmup : measured)++;

  SlowRequest fast(milliseconds(1));
  absl::StatusOr<RunResult> result = RunOpenLoop(options, [&](int w) { return fast(w); });
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(static_cast<int64_t>(result->records.size()), measured);
  EXPECT_EQ(result->warmup_requests, warmup);
  for (const RequestRecord& record : result->records) {
    EXPECT_GE(record.due, 0);
    EXPECT_LT(record.due, options.duration_seconds);
    EXPECT_GE(record.start, record.due);
  }
  // 300/s of 1 ms requests: a handful of workers suffice.
  EXPECT_LT(result->max_in_flight_seen, 20);
}

TEST(RunOpenLoop, ArrivalsBeyondTheCapStartLate) {
  RunOptions options;
  options.rate = 200;
  options.max_in_flight = 1;
  options.warmup_seconds = 0;
  options.duration_seconds = 0.3;
  // One worker of 20 ms requests serves 50/s of the 200/s offered.
  SlowRequest slow(milliseconds(20));
  absl::StatusOr<RunResult> result = RunOpenLoop(options, [&](int w) { return slow(w); });
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(slow.most(), 1);
  EXPECT_EQ(result->max_in_flight_seen, 1);
  EXPECT_GT(result->late_starts, static_cast<int64_t>(result->records.size()) / 2);
  EXPECT_GT(result->max_start_delay, 0.3);  // the backlog outlasts the window
  // Every due request is still sent once the worker is free.
  EXPECT_EQ(slow.calls(), static_cast<int>(result->records.size()));
}

TEST(RunOpenLoop, GrowsTheWorkerPoolToCoverSlowRequests) {
  RunOptions options;
  options.rate = 100;
  options.warmup_seconds = 0;
  options.duration_seconds = 0.5;
  // 100/s of 50 ms requests keeps about 5 in flight.
  SlowRequest slow(milliseconds(50));
  absl::StatusOr<RunResult> result = RunOpenLoop(options, [&](int w) { return slow(w); });
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_GE(result->max_in_flight_seen, 3);
}

TEST(CallResultOf, NamesTheStatusCodeAndKeepsTheMessage) {
  EXPECT_TRUE(CallResultOf(absl::OkStatus()).ok());
  const CallResult failed = CallResultOf(absl::ResourceExhaustedError("queue full"));
  EXPECT_FALSE(failed.ok());
  EXPECT_EQ(failed.code, "RESOURCE_EXHAUSTED");
  EXPECT_EQ(failed.message, "queue full");
}

TEST(Runners, RejectBadOptions) {
  const RequestFn request = [](int) { return CallResult{}; };
  RunOptions options;
  options.duration_seconds = 0;
  EXPECT_EQ(RunClosedLoop(options, request).status().code(), absl::StatusCode::kInvalidArgument);
  options.duration_seconds = 1;
  options.warmup_seconds = -1;
  EXPECT_EQ(RunClosedLoop(options, request).status().code(), absl::StatusCode::kInvalidArgument);
  options.warmup_seconds = 0;
  options.concurrency = 0;
  EXPECT_EQ(RunClosedLoop(options, request).status().code(), absl::StatusCode::kInvalidArgument);
  options.rate = 0;
  EXPECT_EQ(RunOpenLoop(options, request).status().code(), absl::StatusCode::kInvalidArgument);
  options.rate = 10;
  options.max_in_flight = 0;
  EXPECT_EQ(RunOpenLoop(options, request).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace imginterp::loadgen
