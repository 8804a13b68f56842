// The largest per-channel difference between two images, for upscale_test's exactness checks.
#pragma once

#include <opencv2/core.hpp>

namespace imginterp::upscale::test_util {

inline double MaxDifference(const cv::Mat& a, const cv::Mat& b) {
  cv::Mat diff;
  cv::absdiff(a, b, diff);
  double max_value = 0;
  cv::minMaxLoc(diff.reshape(1), nullptr, &max_value);
  return max_value;
}

}  // namespace imginterp::upscale::test_util
