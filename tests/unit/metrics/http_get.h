// A minimal HTTP/1.0 GET over a raw socket, so the tests scrape /metrics without curl.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace imginterp::metrics::testing {

// The body of GET http://127.0.0.1:<port><path>; an error if connecting fails or the status is
// not 200.
absl::StatusOr<std::string> HttpGet(int port, const std::string& path);

}  // namespace imginterp::metrics::testing
