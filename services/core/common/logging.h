// Line-oriented logging to stderr. Every line carries the trace id of the job or call being
// served on this thread (see ScopedTraceId), so one job can be followed across processes.
//
// Thread-safe: each line is written with one call.
#pragma once

#include <sstream>
#include <string>

namespace imginterp::common {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Lines below this level are dropped. Default kInfo; IMGINTERP_LOG_LEVEL=debug|info|warning|error.
void SetMinLogLevel(LogLevel level);
LogLevel MinLogLevel();

// The trace id of the current thread ("" when none).
const std::string& CurrentTraceId();

// Sets the current thread's trace id for its lifetime and restores the previous one after.
class ScopedTraceId {
 public:
  explicit ScopedTraceId(std::string trace_id);
  ~ScopedTraceId();
  ScopedTraceId(const ScopedTraceId&) = delete;
  ScopedTraceId& operator=(const ScopedTraceId&) = delete;

 private:
  std::string previous_;
};

// A random 16-hex-digit id for a new trace.
std::string NewTraceId();

namespace detail {
class LogLine {
 public:
  LogLine(LogLevel level, const char* file, int line);
  ~LogLine();
  std::ostream& stream() { return stream_; }

 private:
  LogLevel level_;
  std::ostringstream stream_;
};
}  // namespace detail

}  // namespace imginterp::common

#define IMGINTERP_LOG(level)                                                                \
  if (::imginterp::common::LogLevel::k##level < ::imginterp::common::MinLogLevel()) {       \
  } else                                                                                    \
    ::imginterp::common::detail::LogLine(::imginterp::common::LogLevel::k##level, __FILE__, \
                                         __LINE__)                                          \
        .stream()
