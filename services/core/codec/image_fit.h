// Fitting an image to a model's fixed input size, and mapping model coordinates back: shared by
// every family whose model takes one size (segment, detect, ...).
#pragma once

#include <opencv2/core.hpp>

namespace imginterp::codec {

// How an image is fitted to the model's input size.
enum class FitMode {
  kStretch,    // resize both sides independently
  kLetterbox,  // keep the aspect ratio, centre, pad with black
};

// The affine map between image pixels and model-input pixels: model = image * scale + offset
// (continuous coordinates, pixel edges at integers). The image, resized to content_width x
// content_height, sits at (offset_x, offset_y) of the model input; scale = content / image size.
// A plain value type.
struct Fit {
  int image_width = 0;
  int image_height = 0;
  int model_width = 0;
  int model_height = 0;
  int content_width = 0;
  int content_height = 0;
  double scale_x = 1;
  double scale_y = 1;
  double offset_x = 0;
  double offset_y = 0;
};

// The fit of an image_width x image_height image into model_width x model_height. A letterbox
// uses whole pixels with the padding split evenly, so the resized image sits on the pixel grid.
Fit ComputeFit(int image_width, int image_height, int model_width, int model_height, FitMode mode);

// The RGB image resized (bilinear; area averaging when shrinking more than 2x) and, for a
// letterbox, padded with black: CV_8UC3 of the model's size.
cv::Mat FitImage(const cv::Mat& rgb, const Fit& fit);

}  // namespace imginterp::codec
