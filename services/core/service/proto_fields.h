// Reflection helpers for the request conventions every family follows: a `ModelId model`
// field, an `Image image` field, and scalar parameters addressable by dotted path
// ("top_k", "canny.low_threshold") from KServe v2 parameters.
#pragma once

#include <cstdint>
#include <string>
#include <variant>

#include "absl/status/status.h"
#include "google/protobuf/message.h"

namespace imginterp::service {

struct ModelRef {
  std::string name;
  int64_t version = 0;
};

// The request's `model` field (empty if absent).
ModelRef GetModelRef(const google::protobuf::Message& message);
// Sets `model` if the message has such a field.
void SetModelRef(google::protobuf::Message* message, const ModelRef& ref);
// Sets image.data (and media_type when given); INVALID_ARGUMENT if there is no `image` field.
absl::Status SetImage(google::protobuf::Message* message, const std::string& data,
                      const std::string& media_type);

using ScalarValue = std::variant<bool, int64_t, uint64_t, double, std::string>;
// Sets a scalar field by dotted path, converting numbers to the field's type; INVALID_ARGUMENT
// naming the path for unknown fields or incompatible values (an enum takes its value name).
absl::Status SetScalarByPath(google::protobuf::Message* message, const std::string& path,
                             const ScalarValue& value);

}  // namespace imginterp::service
