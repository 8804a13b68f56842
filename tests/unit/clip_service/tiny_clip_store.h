// The tiny CLIP model laid out as a model store by deploy/models/make_tiny_set.py, once per test
// process, in a temp dir removed at exit.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "imginterp/v1/model_config.pb.h"

namespace imginterp::clip_service::testing {

// <store>/clip/tiny-clip (FAILED_PRECONDITION with the script's output when it fails).
absl::StatusOr<std::string> TinyClipModelDir();
// The model's parsed config.pbtxt.
absl::StatusOr<v1::ModelConfig> TinyClipConfig();
// A PNG of width x height with a few shapes; different seeds give different images.
std::string MakePng(int width, int height, int seed);

}  // namespace imginterp::clip_service::testing
