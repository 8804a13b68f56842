#include "services/edges/edges_handler.h"

#include <algorithm>
#include <opencv2/imgproc.hpp>

#include "absl/strings/str_cat.h"
#include "inference/grpc_service.pb.h"
#include "services/core/common/status_macros.h"

namespace imginterp::edges {
namespace {

double MedianIntensity(const cv::Mat& gray) {
  int histogram[256] = {0};
  for (int y = 0; y < gray.rows; ++y) {
    const uint8_t* row = gray.ptr<uint8_t>(y);
    for (int x = 0; x < gray.cols; ++x) ++histogram[row[x]];
  }
  const int64_t half = (static_cast<int64_t>(gray.total()) + 1) / 2;
  int64_t seen = 0;
  for (int v = 0; v < 256; ++v) {
    seen += histogram[v];
    if (seen >= half) return v;
  }
  return 255;
}

cv::Mat ToGray(const cv::Mat& rgb) {
  cv::Mat gray;
  cv::cvtColor(rgb, gray, cv::COLOR_RGB2GRAY);
  return gray;
}

// A single-channel map as the RGB PNG ControlNet expects.
absl::StatusOr<v1::PriorMap> ToPriorMap(const cv::Mat& gray, const std::string& method) {
  cv::Mat rgb;
  cv::cvtColor(gray, rgb, cv::COLOR_GRAY2RGB);
  IMGINTERP_ASSIGN_OR_RETURN(std::string png, codec::EncodePng(rgb));
  v1::PriorMap map;
  map.set_kind(v1::PRIOR_KIND_EDGES);
  map.set_method(method);
  map.mutable_image()->set_data(std::move(png));
  map.mutable_image()->set_media_type("image/png");
  map.mutable_image()->set_width(rgb.cols);
  map.mutable_image()->set_height(rgb.rows);
  return map;
}

class EdgesModel final : public service::ExecuteModel {
 public:
  EdgesModel(std::string method, codec::ImageLimits limits)
      : method_(std::move(method)), limits_(limits) {}

 protected:
  absl::Status Execute(service::WorkItem& item) override {
    const auto& request = static_cast<const v1::EdgesRequest&>(*item.request);
    auto& response = static_cast<v1::EdgesResponse&>(*item.response);
    IMGINTERP_ASSIGN_OR_RETURN(codec::DecodedImage image,
                               codec::Decode(request.image().data(), limits_));
    try {
      if (method_ == "sobel") {
        IMGINTERP_ASSIGN_OR_RETURN(cv::Mat magnitude, SobelMagnitude(image.rgb, request.sobel()));
        IMGINTERP_ASSIGN_OR_RETURN(*response.mutable_map(), ToPriorMap(magnitude, method_));
        return absl::OkStatus();
      }
      IMGINTERP_ASSIGN_OR_RETURN(CannyResult canny, DetectCanny(image.rgb, request.canny()));
      IMGINTERP_ASSIGN_OR_RETURN(*response.mutable_map(), ToPriorMap(canny.edges, method_));
      response.set_low_threshold(canny.low_threshold);
      response.set_high_threshold(canny.high_threshold);
    } catch (const cv::Exception& e) {
      return absl::InternalError(absl::StrCat(method_, " failed: ", e.what()));
    }
    return absl::OkStatus();
  }

 private:
  const std::string method_;
  const codec::ImageLimits limits_;
};

}  // namespace

absl::StatusOr<CannyResult> DetectCanny(const cv::Mat& rgb, const v1::CannyParams& params) {
  float low = params.low_threshold();
  float high = params.high_threshold();
  if (low < 0 || high < 0 || low > high) {
    return absl::InvalidArgumentError(absl::StrCat(
        "canny thresholds must satisfy 0 <= low <= high; got low ", low, ", high ", high));
  }
  const int kernel = params.blur_kernel() == 0 ? 3 : params.blur_kernel();
  if (kernel < 1 || kernel % 2 == 0 || kernel > 31) {
    return absl::InvalidArgumentError(
        absl::StrCat("canny.blur_kernel must be odd and in 1..31; got ", kernel));
  }
  cv::Mat gray = ToGray(rgb);
  if (kernel > 1) cv::GaussianBlur(gray, gray, cv::Size(kernel, kernel), 0);
  if (low == 0 && high == 0) {
    const double median = MedianIntensity(gray);
    low = static_cast<float>(std::max(0.0, 0.67 * median));
    high = static_cast<float>(std::min(255.0, 1.33 * median));
    if (high <= low) high = low + 1;
  }
  CannyResult result;
  cv::Canny(gray, result.edges, low, high);
  result.low_threshold = low;
  result.high_threshold = high;
  return result;
}

absl::StatusOr<cv::Mat> SobelMagnitude(const cv::Mat& rgb, const v1::SobelParams& params) {
  const int ksize = params.kernel_size() == 0 ? 3 : params.kernel_size();
  if (ksize != 1 && ksize != 3 && ksize != 5 && ksize != 7) {
    return absl::InvalidArgumentError(
        absl::StrCat("sobel.kernel_size must be 1, 3, 5 or 7; got ", ksize));
  }
  cv::Mat gray = ToGray(rgb);
  cv::Mat gx, gy, magnitude;
  cv::Sobel(gray, gx, CV_32F, 1, 0, ksize);
  cv::Sobel(gray, gy, CV_32F, 0, 1, ksize);
  cv::magnitude(gx, gy, magnitude);
  double max_value = 0;
  cv::minMaxLoc(magnitude, nullptr, &max_value);
  cv::Mat out;
  magnitude.convertTo(out, CV_8U, max_value > 0 ? 255.0 / max_value : 0.0);
  return out;
}

std::string EdgesHandler::description() const {
  return "Edge maps as ControlNet conditioning images: model \"canny\" (automatic thresholds "
         "from the median intensity unless given) and \"sobel\" (gradient magnitude). No "
         "weights needed.";
}

std::vector<v1::ModelConfig> EdgesHandler::BuiltinModels() const {
  std::vector<v1::ModelConfig> models;
  for (const char* name : {"canny", "sobel"}) {
    v1::ModelConfig config;
    config.set_name(name);
    config.set_backend("builtin");
    config.set_licence("Apache-2.0 (OpenCV)");
    config.set_source("OpenCV " CV_VERSION);
    config.set_description(std::string(name) == "canny"
                               ? "Canny edges, white on black (ControlNet canny input)"
                               : "Sobel gradient magnitude, 0..255");
    config.set_max_queue_size(64);
    models.push_back(std::move(config));
  }
  return models;
}

absl::StatusOr<std::unique_ptr<service::ModelInstance>> EdgesHandler::CreateInstance(
    const service::ModelLoadInfo& info, std::unique_ptr<model::ModelRunner>) const {
  return std::make_unique<EdgesModel>(info.name, limits_);
}

absl::Status EdgesHandler::ToKServe(const google::protobuf::Message& message,
                                    inference::ModelInferResponse* out) const {
  const auto& response = static_cast<const v1::EdgesResponse&>(message);
  auto* map = out->add_outputs();
  map->set_name("map");
  map->set_datatype("BYTES");
  map->add_shape(1);
  map->mutable_contents()->add_bytes_contents(response.map().image().data());
  (*out->mutable_parameters())["low_threshold"].set_double_param(response.low_threshold());
  (*out->mutable_parameters())["high_threshold"].set_double_param(response.high_threshold());
  return absl::OkStatus();
}

void EdgesHandler::DescribeKServeOutputs(inference::ModelMetadataResponse* metadata) const {
  auto* map = metadata->add_outputs();
  map->set_name("map");
  map->set_datatype("BYTES");
  map->add_shape(1);
}

}  // namespace imginterp::edges
