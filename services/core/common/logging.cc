#include "services/core/common/logging.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>
#include <string_view>

namespace imginterp::common {
namespace {

LogLevel LevelFromEnv() {
  const char* env = std::getenv("IMGINTERP_LOG_LEVEL");
  if (env == nullptr) return LogLevel::kInfo;
  std::string_view v(env);
  if (v == "debug") return LogLevel::kDebug;
  if (v == "warning") return LogLevel::kWarning;
  if (v == "error") return LogLevel::kError;
  return LogLevel::kInfo;
}

std::atomic<LogLevel>& MinLevel() {
  static std::atomic<LogLevel> level{LevelFromEnv()};
  return level;
}

thread_local std::string tls_trace_id;

char LevelChar(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return 'D';
    case LogLevel::kInfo:
      return 'I';
    case LogLevel::kWarning:
      return 'W';
    case LogLevel::kError:
      return 'E';
  }
  return '?';
}

}  // namespace

void SetMinLogLevel(LogLevel level) { MinLevel().store(level); }
LogLevel MinLogLevel() { return MinLevel().load(std::memory_order_relaxed); }

const std::string& CurrentTraceId() { return tls_trace_id; }

ScopedTraceId::ScopedTraceId(std::string trace_id) : previous_(std::move(tls_trace_id)) {
  tls_trace_id = std::move(trace_id);
}
ScopedTraceId::~ScopedTraceId() { tls_trace_id = std::move(previous_); }

std::string NewTraceId() {
  thread_local std::mt19937_64 rng{std::random_device{}() ^ static_cast<uint64_t>(::getpid())
                                                                << 32};
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

namespace detail {

LogLine::LogLine(LogLevel level, const char* file, int line) : level_(level) {
  using Clock = std::chrono::system_clock;
  const auto now = Clock::now();
  const std::time_t secs = Clock::to_time_t(now);
  const auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count() %
      1000000;
  std::tm tm_utc{};
  gmtime_r(&secs, &tm_utc);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm_utc);
  std::string_view path(file);
  const auto slash = path.rfind('/');
  if (slash != std::string_view::npos) path.remove_prefix(slash + 1);
  char micro_buf[8];
  std::snprintf(micro_buf, sizeof(micro_buf), "%06lld", static_cast<long long>(micros));
  stream_ << LevelChar(level) << ' ' << stamp << '.' << micro_buf << "Z ";
  if (!tls_trace_id.empty()) stream_ << "trace=" << tls_trace_id << ' ';
  stream_ << path << ':' << line << "] ";
}

LogLine::~LogLine() {
  stream_ << '\n';
  const std::string text = stream_.str();
  std::fwrite(text.data(), 1, text.size(), stderr);
  if (level_ >= LogLevel::kWarning) std::fflush(stderr);
}

}  // namespace detail
}  // namespace imginterp::common
