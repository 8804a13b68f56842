#include "services/core/codec/image_fit.h"

#include <algorithm>
#include <cmath>
#include <opencv2/imgproc.hpp>

namespace imginterp::codec {

Fit ComputeFit(int image_width, int image_height, int model_width, int model_height, FitMode mode) {
  Fit fit;
  fit.image_width = image_width;
  fit.image_height = image_height;
  fit.model_width = model_width;
  fit.model_height = model_height;
  fit.content_width = model_width;
  fit.content_height = model_height;
  if (mode == FitMode::kLetterbox) {
    const double scale = std::min(static_cast<double>(model_width) / image_width,
                                  static_cast<double>(model_height) / image_height);
    fit.content_width =
        std::clamp(static_cast<int>(std::lround(image_width * scale)), 1, model_width);
    fit.content_height =
        std::clamp(static_cast<int>(std::lround(image_height * scale)), 1, model_height);
    fit.offset_x = (model_width - fit.content_width) / 2;
    fit.offset_y = (model_height - fit.content_height) / 2;
  }
  fit.scale_x = static_cast<double>(fit.content_width) / image_width;
  fit.scale_y = static_cast<double>(fit.content_height) / image_height;
  return fit;
}

cv::Mat FitImage(const cv::Mat& rgb, const Fit& fit) {
  const bool shrink_a_lot = fit.scale_x < 0.5 && fit.scale_y < 0.5;
  cv::Mat resized;
  cv::resize(rgb, resized, cv::Size(fit.content_width, fit.content_height), 0, 0,
             shrink_a_lot ? cv::INTER_AREA : cv::INTER_LINEAR);
  if (fit.content_width == fit.model_width && fit.content_height == fit.model_height) {
    return resized;
  }
  cv::Mat out(fit.model_height, fit.model_width, CV_8UC3, cv::Scalar(0, 0, 0));
  resized.copyTo(out(cv::Rect(static_cast<int>(fit.offset_x), static_cast<int>(fit.offset_y),
                              fit.content_width, fit.content_height)));
  return out;
}

}  // namespace imginterp::codec
