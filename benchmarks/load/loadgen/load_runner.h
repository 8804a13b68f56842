// Drives a request function under load and records every request's timing.
//
// Closed loop (RunClosedLoop): `concurrency` workers, each sending its next request as soon as
// the previous one is answered; the offered load follows the server, so latencies are what a
// caller with N requests outstanding waits.
//
// Open loop (RunOpenLoop): requests are due at Poisson arrival times whatever the server does.
// A pool of workers, grown on demand up to `max_in_flight`, sends each request when it is due;
// when every worker is busy the request waits for one and starts late. Each record keeps the due
// time and the send time, so a report can show both the server's latency (sent to answered)
// and what an arriving user waited (due to answered, free of coordinated omission).
//
// Both run a warm-up first (requests sent and not recorded), then the measured window: requests
// due inside it are recorded, none is started after it, and the runner returns once every
// started request is answered. Blocking; thread-safe as long as the request function is.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace imginterp::loadgen {

// The outcome of one request. `code` is "OK", a gRPC status code name ("UNAVAILABLE"), or a
// caller-specific failure ("JOB_FAILED"); `message` says what went wrong.
struct CallResult {
  std::string code = "OK";
  std::string message;
  bool ok() const { return code == "OK"; }
};

// The outcome of a request made by code that reports an absl::Status: the code's name
// ("INTERNAL") and the status message.
CallResult CallResultOf(const absl::Status& status);

// Sends one request and returns when it is answered; `worker` is the calling worker's index.
// Called concurrently from every worker.
using RequestFn = std::function<CallResult(int worker)>;

// A request was "late" when it was sent more than this after it was due (open loop).
inline constexpr double kLateStartSeconds = 0.001;

struct RunOptions {
  double warmup_seconds = 2;
  double duration_seconds = 10;
  // Closed loop: requests outstanding at all times.
  int concurrency = 1;
  // Open loop: mean arrivals per second, the schedule's seed, and the most requests in flight
  // (workers); arrivals beyond it wait and start late.
  double rate = 0;
  uint64_t seed = 1;
  int max_in_flight = 256;
  // Called once from a timer thread when the measured window opens (a metrics scrape); the
  // window is already running, so the runner reports how long it took
  // (RunResult::window_start_hook_seconds).
  std::function<void()> on_window_start;
};

// One recorded request; times in seconds from the start of the measured window.
struct RequestRecord {
  double due = 0;      // when it should have been sent (closed loop: when it was sent)
  double start = 0;    // when it was sent
  double latency = 0;  // sent to answered
  std::string code;    // CallResult::code
};

struct RunResult {
  // Requests due in the measured window, ordered by due time.
  std::vector<RequestRecord> records;
  // From the window's start to the answer of its last request (0 when none was recorded); the
  // denominator of the achieved throughput.
  double window_seconds = 0;
  int64_t warmup_requests = 0;
  // The first failure's code and message (warm-up included), for the report.
  std::string first_error;
  // Open loop: recorded requests sent more than kLateStartSeconds after they were due, the
  // largest delay, and the most requests that were in flight at once.
  int64_t late_starts = 0;
  double max_start_delay = 0;
  int max_in_flight_seen = 0;
  // From the window's start to the return of RunOptions::on_window_start (0 without one). The
  // requests sent before then ran while the hook did: a scrape in the hook may count them.
  double window_start_hook_seconds = 0;
};

// INVALID_ARGUMENT for a negative warm-up, a non-positive duration or a concurrency below 1.
absl::StatusOr<RunResult> RunClosedLoop(const RunOptions& options, const RequestFn& request);

// INVALID_ARGUMENT as RunClosedLoop, and for a non-positive rate or max_in_flight.
absl::StatusOr<RunResult> RunOpenLoop(const RunOptions& options, const RequestFn& request);

}  // namespace imginterp::loadgen
