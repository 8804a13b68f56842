// A minimal HTTP/1.0 GET, for reading a Prometheus /metrics page: plain http, no redirects, no
// proxies, the whole body in memory. What the load harness scrapes and what the metrics tests
// read the exporter with.
//
// Stateless functions: thread-safe.
#pragma once

#include <chrono>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace imginterp::common {

struct HttpUrl {
  std::string host;
  int port = 80;
  std::string path = "/";
};

// "http://127.0.0.1:9101/metrics" -> {127.0.0.1, 9101, /metrics}; a missing path is "/", a
// missing port 80, "[::1]:9101" is IPv6. INVALID_ARGUMENT for another scheme, an empty host or a
// port outside 1..65535.
absl::StatusOr<HttpUrl> ParseHttpUrl(absl::string_view url);

// The body of a 200 answer (a chunked body is undone). UNAVAILABLE when the host cannot be
// resolved or reached or the exchange takes longer than `timeout`; FAILED_PRECONDITION for any
// other status line.
absl::StatusOr<std::string> HttpGet(const HttpUrl& url, std::chrono::milliseconds timeout);

}  // namespace imginterp::common
