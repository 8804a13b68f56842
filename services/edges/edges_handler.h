// The `edges` family: classical edge maps as ControlNet conditioning images. Built-in models
// "canny" (ControlNet canny's input: white edges on black) and "sobel" (gradient magnitude);
// no weights.
#pragma once

#include <opencv2/core.hpp>

#include "absl/status/statusor.h"
#include "imginterp/v1/edges.pb.h"
#include "services/core/codec/image_codec.h"
#include "services/core/service/family_handler.h"

namespace imginterp::edges {

struct CannyResult {
  cv::Mat edges;  // CV_8UC1, 0 or 255
  float low_threshold = 0;
  float high_threshold = 0;
};

// Canny on an RGB image. Thresholds both 0: chosen around the median intensity (+-33%).
// INVALID_ARGUMENT for negative thresholds, low > high, or an even/oversized blur kernel.
absl::StatusOr<CannyResult> DetectCanny(const cv::Mat& rgb, const v1::CannyParams& params);
// Sobel gradient magnitude scaled to 0..255 (CV_8UC1).
absl::StatusOr<cv::Mat> SobelMagnitude(const cv::Mat& rgb, const v1::SobelParams& params);

// Thread-safe.
class EdgesHandler final : public service::FamilyHandler {
 public:
  explicit EdgesHandler(codec::ImageLimits limits = {}) : limits_(limits) {}
  std::string family() const override { return "edges"; }
  std::string description() const override;
  const google::protobuf::Message& request_prototype() const override {
    return v1::EdgesRequest::default_instance();
  }
  const google::protobuf::Message& response_prototype() const override {
    return v1::EdgesResponse::default_instance();
  }
  std::vector<v1::ModelConfig> BuiltinModels() const override;
  std::string default_model() const override { return "canny"; }
  absl::StatusOr<std::unique_ptr<service::ModelInstance>> CreateInstance(
      const service::ModelLoadInfo& info,
      std::unique_ptr<model::ModelRunner> runner) const override;
  absl::Status ToKServe(const google::protobuf::Message& response,
                        inference::ModelInferResponse* out) const override;
  void DescribeKServeOutputs(inference::ModelMetadataResponse* metadata) const override;

 private:
  codec::ImageLimits limits_;
};

}  // namespace imginterp::edges
