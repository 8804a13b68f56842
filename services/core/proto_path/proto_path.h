// Addressing fields of protobuf messages by path, for wiring one stage's result into another
// stage's request: "controls.1.image", "ranked.0.image", "candidates", "prompt".
//
// A path is dot-separated field names; a number after a repeated field picks an element
// ("ranked.0.image"). Reading, a repeated imginterp.v1.Image field without an index means all of
// its images. Writing, a repeated field without an index, or an index one past its end, appends
// an element; intermediate messages are created as needed.
//
// Stateless: thread-safe.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "imginterp/v1/common.pb.h"

namespace imginterp::proto_path {

struct PathStep {
  std::string field;
  std::optional<int> index;  // an element of a repeated field
};

// "controls.1.image" -> {controls, 1}, {image}. INVALID_ARGUMENT for an empty path or part, a
// part that is neither a field name ([A-Za-z0-9_]) nor an index, a path starting with a number,
// two numbers in a row, or an index above 2^20.
absl::StatusOr<std::vector<PathStep>> ParsePath(absl::string_view path);

// The images at `path` in `message` (one, or every element of a repeated Image field without an
// index). INVALID_ARGUMENT naming the path and the message type for an unknown field, an index
// past the end, an index on a singular field, a repeated message field crossed without an index,
// or a path that does not end at imginterp.v1.Image.
absl::StatusOr<std::vector<const v1::Image*>> FindImages(const google::protobuf::Message& message,
                                                         absl::string_view path);

// Stores `image` at `path` (see the writing rules above). INVALID_ARGUMENT as FindImages, and
// for an index more than one past the end.
absl::Status PutImage(google::protobuf::Message* message, absl::string_view path,
                      const v1::Image& image);

// Sets the scalar field at `path` from text: integers and floats parsed (whole text, in range),
// bools "true"/"false"/"1"/"0", enums by value name, strings as they are; a repeated scalar field
// without an index is appended to. INVALID_ARGUMENT naming the path and what was expected.
absl::Status SetFromText(google::protobuf::Message* message, absl::string_view path,
                         absl::string_view text);

// OK when `path`, followed through the field types of `type`, ends at a field SetFromText can
// set (a scalar, string or enum; indices are not checked against any data): how a pipeline file
// is checked before any job runs. INVALID_ARGUMENT naming the field otherwise.
absl::Status CheckScalarPath(const google::protobuf::Descriptor* type, absl::string_view path);

}  // namespace imginterp::proto_path
