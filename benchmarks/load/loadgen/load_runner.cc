#include "benchmarks/load/loadgen/load_runner.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "benchmarks/load/loadgen/poisson_arrivals.h"

namespace imginterp::loadgen {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsBetween(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

Clock::time_point After(Clock::time_point start, double seconds) {
  return start +
         std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

absl::Status CheckWindow(const RunOptions& options) {
  if (!(options.warmup_seconds >= 0) || !std::isfinite(options.warmup_seconds)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the warm-up must be >= 0 seconds; got ", options.warmup_seconds));
  }
  if (!(options.duration_seconds > 0) || !std::isfinite(options.duration_seconds)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the measured duration must be > 0 seconds; got ", options.duration_seconds));
  }
  return absl::OkStatus();
}

// Runs `callback` on its own thread at `when`; Finish() joins and returns the seconds from
// `when` to the callback's return (0 without a callback).
class WindowStartHook {
 public:
  WindowStartHook(Clock::time_point when, std::function<void()> callback) {
    if (callback) {
      thread_ = std::thread([this, when, callback = std::move(callback)] {
        std::this_thread::sleep_until(when);
        callback();
        returned_after_ = SecondsBetween(when, Clock::now());
      });
    }
  }
  ~WindowStartHook() { Finish(); }
  WindowStartHook(const WindowStartHook&) = delete;
  WindowStartHook& operator=(const WindowStartHook&) = delete;

  double Finish() {
    if (thread_.joinable()) thread_.join();
    return returned_after_;
  }

 private:
  double returned_after_ = 0;  // written by thread_ before it ends
  std::thread thread_;
};

void SortAndClose(RunResult& result) {
  std::sort(result.records.begin(), result.records.end(),
            [](const RequestRecord& a, const RequestRecord& b) { return a.due < b.due; });
  for (const RequestRecord& record : result.records) {
    result.window_seconds = std::max(result.window_seconds, record.start + record.latency);
  }
}

std::string Describe(const CallResult& call) { return absl::StrCat(call.code, ": ", call.message); }

}  // namespace

CallResult CallResultOf(const absl::Status& status) {
  if (status.ok()) return CallResult{};
  return CallResult{absl::StatusCodeToString(status.code()), std::string(status.message())};
}

absl::StatusOr<RunResult> RunClosedLoop(const RunOptions& options, const RequestFn& request) {
  if (absl::Status status = CheckWindow(options); !status.ok()) return status;
  if (options.concurrency < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("the concurrency must be at least 1; got ", options.concurrency));
  }
  const Clock::time_point start = Clock::now();
  const Clock::time_point window_start = After(start, options.warmup_seconds);
  const Clock::time_point window_end = After(window_start, options.duration_seconds);

  struct Worker {
    std::vector<RequestRecord> records;
    int64_t warmup_requests = 0;
    std::string first_error;
  };
  std::vector<Worker> workers(options.concurrency);
  double hook_seconds = 0;
  {
    WindowStartHook hook(window_start, options.on_window_start);
    std::vector<std::thread> threads;
    threads.reserve(options.concurrency);
    for (int w = 0; w < options.concurrency; ++w) {
      threads.emplace_back([&, w] {
        Worker& mine = workers[w];
        while (true) {
          const Clock::time_point sent = Clock::now();
          if (sent >= window_end) break;
          const CallResult call = request(w);
          const Clock::time_point answered = Clock::now();
          if (!call.ok() && mine.first_error.empty()) mine.first_error = Describe(call);
          if (sent < window_start) {
            ++mine.warmup_requests;
            continue;
          }
          const double offset = SecondsBetween(window_start, sent);
          mine.records.push_back(
              RequestRecord{offset, offset, SecondsBetween(sent, answered), call.code});
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
    hook_seconds = hook.Finish();
  }

  RunResult result;
  result.window_start_hook_seconds = hook_seconds;
  for (Worker& worker : workers) {
    result.records.insert(result.records.end(), worker.records.begin(), worker.records.end());
    result.warmup_requests += worker.warmup_requests;
    if (result.first_error.empty()) result.first_error = worker.first_error;
  }
  result.max_in_flight_seen = options.concurrency;
  SortAndClose(result);
  return result;
}

absl::StatusOr<RunResult> RunOpenLoop(const RunOptions& options, const RequestFn& request) {
  if (absl::Status status = CheckWindow(options); !status.ok()) return status;
  if (options.max_in_flight < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the most requests in flight must be at least 1; got ", options.max_in_flight));
  }
  absl::StatusOr<PoissonArrivals> arrivals = PoissonArrivals::Create(options.rate, options.seed);
  if (!arrivals.ok()) return arrivals.status();

  const Clock::time_point start = Clock::now();
  const Clock::time_point window_start = After(start, options.warmup_seconds);
  const double schedule_end = options.warmup_seconds + options.duration_seconds;

  struct Due {
    Clock::time_point when;
    bool measured;
  };
  std::mutex mu;
  std::condition_variable wake;
  // Guarded by mu:
  std::deque<Due> queue;
  int idle = 0;
  int in_flight = 0;
  bool done = false;
  RunResult result;

  auto work = [&](int worker) {
    std::unique_lock<std::mutex> lock(mu);
    while (true) {
      ++idle;
      wake.wait(lock, [&] { return !queue.empty() || done; });
      --idle;
      if (queue.empty()) return;  // done, and nothing left to send
      const Due due = queue.front();
      queue.pop_front();
      ++in_flight;
      result.max_in_flight_seen = std::max(result.max_in_flight_seen, in_flight);
      lock.unlock();

      const Clock::time_point sent = Clock::now();
      const CallResult call = request(worker);
      const Clock::time_point answered = Clock::now();

      lock.lock();
      --in_flight;
      if (!call.ok() && result.first_error.empty()) result.first_error = Describe(call);
      if (!due.measured) {
        ++result.warmup_requests;
        continue;
      }
      const double delay = SecondsBetween(due.when, sent);
      if (delay > kLateStartSeconds) ++result.late_starts;
      result.max_start_delay = std::max(result.max_start_delay, delay);
      result.records.push_back(RequestRecord{SecondsBetween(window_start, due.when),
                                             SecondsBetween(window_start, sent),
                                             SecondsBetween(sent, answered), call.code});
    }
  };

  {
    WindowStartHook hook(window_start, options.on_window_start);
    std::vector<std::thread> workers;
    for (double t = arrivals->Next(); t < schedule_end; t = arrivals->Next()) {
      const Clock::time_point when = After(start, t);
      std::this_thread::sleep_until(when);
      std::lock_guard<std::mutex> lock(mu);
      queue.push_back(Due{when, t >= options.warmup_seconds});
      // Grow the pool while more requests wait than workers are free, up to the cap.
      if (static_cast<int>(queue.size()) > idle &&
          static_cast<int>(workers.size()) < options.max_in_flight) {
        workers.emplace_back(work, static_cast<int>(workers.size()));
      }
      wake.notify_one();
    }
    {
      std::lock_guard<std::mutex> lock(mu);
      done = true;
    }
    wake.notify_all();
    for (std::thread& worker : workers) worker.join();
    result.window_start_hook_seconds = hook.Finish();
  }
  SortAndClose(result);
  return result;
}

}  // namespace imginterp::loadgen
