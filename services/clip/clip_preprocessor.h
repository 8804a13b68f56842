// CLIP image preprocessing as transformers' CLIPImageProcessor does it, configured from a
// model folder's preprocessor_config.json: resize (shortest edge to `size`, bicubic), centre crop
// to `crop_size`, scale by `rescale_factor` (1/255), normalise with `image_mean` / `image_std`.
//
// OpenCV's bicubic has no antialiasing, unlike the PIL resize transformers uses; shrinking by
// more than 2x therefore first area-averages to twice the target size, so large photos do not
// alias (results stay close to, not bit-equal with, transformers' on such images).
//
// Thread-safety: immutable after creation; Preprocess may run concurrently.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <opencv2/core.hpp>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace imginterp::clip_service {

struct ClipPreprocessorConfig {
  bool do_resize = true;
  // Resize so the shorter side is `shortest_edge` (when > 0), else to resize_height x
  // resize_width.
  int shortest_edge = 224;
  int resize_height = 0;
  int resize_width = 0;
  bool do_center_crop = true;
  int crop_height = 224;
  int crop_width = 224;
  bool do_rescale = true;
  double rescale_factor = 1.0 / 255.0;
  bool do_normalize = true;
  std::array<double, 3> image_mean = {0.48145466, 0.4578275, 0.40821073};
  std::array<double, 3> image_std = {0.26862954, 0.26130258, 0.27577711};

  // Missing keys keep the defaults above (OpenAI CLIP's). INVALID_ARGUMENT naming the key for
  // wrong types or values (sizes <= 0, std 0, mean/std not 3 numbers, unreadable JSON).
  static absl::StatusOr<ClipPreprocessorConfig> FromJson(std::string_view json_text);
  // NOT_FOUND when the file is missing; errors of FromJson prefixed with the path.
  static absl::StatusOr<ClipPreprocessorConfig> FromFile(const std::string& path);
};

class ClipPreprocessor {
 public:
  explicit ClipPreprocessor(const ClipPreprocessorConfig& config) : config_(config) {}

  // `rgb`: CV_8UC3 in RGB order, any size. Returns float32 [3, H, W] (H, W = the crop size, or
  // the resized size without cropping). INVALID_ARGUMENT for other mat types or empty images.
  absl::StatusOr<at::Tensor> Preprocess(const cv::Mat& rgb) const;

  // The size Preprocess produces for a width x height input.
  cv::Size OutputSize(int width, int height) const;
  const ClipPreprocessorConfig& config() const { return config_; }

 private:
  cv::Size ResizedSize(int width, int height) const;
  ClipPreprocessorConfig config_;
};

}  // namespace imginterp::clip_service
