// Reading a whole file into memory: an image to send, a request or config text.
//
// Stateless: thread-safe.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace imginterp::common {

// The bytes of the file at `path`. `what` names the file in errors, as the user gave it ("--image",
// "the request file"): NOT_FOUND "--image: cannot read 'x.png' (No such file or directory)" when
// it cannot be opened, INVALID_ARGUMENT for a directory, DATA_LOSS when reading fails midway.
absl::StatusOr<std::string> ReadFile(const std::string& path, absl::string_view what);

}  // namespace imginterp::common
