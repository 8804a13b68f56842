#include "services/clip/clip_preprocessor.h"

#include <torch/types.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "services/core/common/status_macros.h"

namespace imginterp::clip_service {
namespace {

using nlohmann::json;

absl::Status Bad(const std::string& key, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("preprocessor config: \"", key, "\" ", what));
}

absl::Status ReadBool(const json& j, const char* key, bool* out) {
  if (!j.contains(key) || j[key].is_null()) return absl::OkStatus();
  if (!j[key].is_boolean()) return Bad(key, "must be true or false");
  *out = j[key].get<bool>();
  return absl::OkStatus();
}

absl::Status ReadPositiveInt(const json& j, const char* key, int* out) {
  if (!j.contains(key) || j[key].is_null()) return absl::OkStatus();
  if (!j[key].is_number_integer() || j[key].get<int64_t>() <= 0 || j[key].get<int64_t>() > 16384) {
    return Bad(key, "must be an integer in 1..16384");
  }
  *out = j[key].get<int>();
  return absl::OkStatus();
}

absl::Status ReadTriple(const json& j, const char* key, bool positive, std::array<double, 3>* out) {
  if (!j.contains(key) || j[key].is_null()) return absl::OkStatus();
  const json& v = j[key];
  if (v.is_number()) {  // transformers accepts one value for every channel
    out->fill(v.get<double>());
  } else if (v.is_array() && v.size() == 3 && v[0].is_number() && v[1].is_number() &&
             v[2].is_number()) {
    for (int c = 0; c < 3; ++c) (*out)[c] = v[c].get<double>();
  } else {
    return Bad(key, "must be a number or a list of 3 numbers (one per RGB channel)");
  }
  if (positive && std::any_of(out->begin(), out->end(), [](double x) { return !(x > 0); })) {
    return Bad(key, "must be positive");
  }
  return absl::OkStatus();
}

// "size" / "crop_size": an integer, {"shortest_edge": n} or {"height": h, "width": w}.
absl::Status ReadSize(const json& j, const char* key, int* shortest_edge, int* height, int* width) {
  if (!j.contains(key) || j[key].is_null()) return absl::OkStatus();
  const json& v = j[key];
  if (v.is_number_integer()) {
    json square = {{"height", v}, {"width", v}};
    if (shortest_edge != nullptr) {
      *shortest_edge = 0;
      // transformers reads a bare integer `size` of CLIP as the shortest edge.
      json edge = {{"shortest_edge", v}};
      return ReadPositiveInt(edge, "shortest_edge", shortest_edge);
    }
    IMGINTERP_RETURN_IF_ERROR(ReadPositiveInt(square, "height", height));
    return ReadPositiveInt(square, "width", width);
  }
  if (!v.is_object()) return Bad(key, "must be an integer or an object");
  if (shortest_edge != nullptr && v.contains("shortest_edge")) {
    return ReadPositiveInt(v, "shortest_edge", shortest_edge);
  }
  if (!v.contains("height") || !v.contains("width")) {
    return Bad(key, shortest_edge != nullptr ? "needs \"shortest_edge\" or \"height\" and \"width\""
                                             : "needs \"height\" and \"width\"");
  }
  if (shortest_edge != nullptr) *shortest_edge = 0;
  IMGINTERP_RETURN_IF_ERROR(ReadPositiveInt(v, "height", height));
  return ReadPositiveInt(v, "width", width);
}

}  // namespace

absl::StatusOr<ClipPreprocessorConfig> ClipPreprocessorConfig::FromJson(
    std::string_view json_text) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("preprocessor config is not valid JSON: ", e.what()));
  }
  if (!j.is_object()) return absl::InvalidArgumentError("preprocessor config must be an object");
  ClipPreprocessorConfig c;
  IMGINTERP_RETURN_IF_ERROR(ReadBool(j, "do_resize", &c.do_resize));
  IMGINTERP_RETURN_IF_ERROR(
      ReadSize(j, "size", &c.shortest_edge, &c.resize_height, &c.resize_width));
  IMGINTERP_RETURN_IF_ERROR(ReadBool(j, "do_center_crop", &c.do_center_crop));
  IMGINTERP_RETURN_IF_ERROR(ReadSize(j, "crop_size", nullptr, &c.crop_height, &c.crop_width));
  IMGINTERP_RETURN_IF_ERROR(ReadBool(j, "do_rescale", &c.do_rescale));
  if (j.contains("rescale_factor") && !j["rescale_factor"].is_null()) {
    if (!j["rescale_factor"].is_number()) return Bad("rescale_factor", "must be a number");
    c.rescale_factor = j["rescale_factor"].get<double>();
  }
  IMGINTERP_RETURN_IF_ERROR(ReadBool(j, "do_normalize", &c.do_normalize));
  IMGINTERP_RETURN_IF_ERROR(ReadTriple(j, "image_mean", false, &c.image_mean));
  IMGINTERP_RETURN_IF_ERROR(ReadTriple(j, "image_std", true, &c.image_std));
  return c;
}

absl::StatusOr<ClipPreprocessorConfig> ClipPreprocessorConfig::FromFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  auto config = FromJson(buffer.str());
  if (!config.ok()) {
    return absl::Status(config.status().code(),
                        absl::StrCat(path, ": ", config.status().message()));
  }
  return config;
}

cv::Size ClipPreprocessor::ResizedSize(int width, int height) const {
  if (!config_.do_resize) return {width, height};
  if (config_.shortest_edge <= 0) return {config_.resize_width, config_.resize_height};
  // The shorter side becomes shortest_edge, the longer one keeps the aspect ratio (truncated,
  // as transformers' get_resize_output_image_size does).
  const int edge = config_.shortest_edge;
  if (width <= height) {
    return {edge, static_cast<int>(static_cast<int64_t>(edge) * height / width)};
  }
  return {static_cast<int>(static_cast<int64_t>(edge) * width / height), edge};
}

cv::Size ClipPreprocessor::OutputSize(int width, int height) const {
  if (config_.do_center_crop) return {config_.crop_width, config_.crop_height};
  return ResizedSize(width, height);
}

absl::StatusOr<at::Tensor> ClipPreprocessor::Preprocess(const cv::Mat& rgb) const {
  if (rgb.empty() || rgb.type() != CV_8UC3) {
    return absl::InvalidArgumentError("CLIP preprocessing needs a non-empty 8-bit RGB image");
  }
  try {
    cv::Mat image = rgb;
    const cv::Size resized = ResizedSize(rgb.cols, rgb.rows);
    if (resized != rgb.size()) {
      cv::Mat source = rgb;
      if (source.cols > 2 * resized.width && source.rows > 2 * resized.height) {
        cv::resize(rgb, source, cv::Size(2 * resized.width, 2 * resized.height), 0, 0,
                   cv::INTER_AREA);
      }
      cv::resize(source, image, resized, 0, 0, cv::INTER_CUBIC);
    }
    if (config_.do_center_crop) {
      const int crop_w = config_.crop_width;
      const int crop_h = config_.crop_height;
      // Smaller images are padded with zeros, centred, as transformers' center_crop does.
      if (image.cols < crop_w || image.rows < crop_h) {
        const int pad_w = std::max(0, crop_w - image.cols);
        const int pad_h = std::max(0, crop_h - image.rows);
        cv::Mat padded;
        cv::copyMakeBorder(image, padded, pad_h / 2, pad_h - pad_h / 2, pad_w / 2,
                           pad_w - pad_w / 2, cv::BORDER_CONSTANT, cv::Scalar(0, 0, 0));
        image = padded;
      }
      const int top = (image.rows - crop_h) / 2;
      const int left = (image.cols - crop_w) / 2;
      image = image(cv::Rect(left, top, crop_w, crop_h));
    }
    cv::Mat pixels;
    image.convertTo(pixels, CV_32FC3, config_.do_rescale ? config_.rescale_factor : 1.0);
    if (config_.do_normalize) {
      pixels -= cv::Scalar(config_.image_mean[0], config_.image_mean[1], config_.image_mean[2]);
      cv::divide(pixels,
                 cv::Scalar(config_.image_std[0], config_.image_std[1], config_.image_std[2]),
                 pixels);
    }
    if (!pixels.isContinuous()) pixels = pixels.clone();
    return torch::from_blob(pixels.data, {pixels.rows, pixels.cols, 3}, torch::kFloat32)
        .permute({2, 0, 1})
        .contiguous();
  } catch (const cv::Exception& e) {
    return absl::InternalError(absl::StrCat("CLIP preprocessing failed: ", e.what()));
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("CLIP preprocessing failed: ", e.what_without_backtrace()));
  }
}

}  // namespace imginterp::clip_service
