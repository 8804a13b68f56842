// Frames to an MP4 with OpenCV's VideoWriter (codec 'mp4v'): written to a temporary file, read
// back, and the file removed.
//
// Stateless and thread-safe.
#pragma once

#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace imginterp::generate {

// `rgb_frames`: CV_8UC3 RGB, all the same size. UNAVAILABLE when this OpenCV build cannot write
// mp4v (no FFmpeg backend), INVALID_ARGUMENT for no frames, mixed sizes or fps <= 0, INTERNAL
// for I/O failures.
absl::StatusOr<std::string> EncodeMp4(const std::vector<cv::Mat>& rgb_frames, double fps);

}  // namespace imginterp::generate
