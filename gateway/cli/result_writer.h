// Turns a finished job into files: one PNG (or JPEG) per image found anywhere in a stage's
// typed response, and result.json with every stage's response as JSON (image bytes replaced by
// the file they were written to). Generic over families: it walks the messages by reflection.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "google/protobuf/message.h"
#include "nlohmann/json.hpp"

namespace imginterp::cli {

struct WrittenImage {
  std::string field_path;  // e.g. "map.image"
  std::string file;        // relative to the output folder
};

// Writes every non-empty imginterp.v1.Image of `response` into `out_dir` as
// "<stage>.png" (first image) or "<stage>_<field path>.png" and clears its bytes in `response`.
absl::StatusOr<std::vector<WrittenImage>> ExtractImages(google::protobuf::Message& response,
                                                        const std::string& stage,
                                                        const std::string& out_dir);

// A message as JSON (proto3 JSON mapping, original field names).
nlohmann::json MessageToJson(const google::protobuf::Message& message);

}  // namespace imginterp::cli
