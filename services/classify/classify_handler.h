// The `classify` family: any TorchScript image classifier from the model repository, with the
// preprocessing its config.pbtxt states (resize shorter side, centre crop, mean/std) and
// top-k classes with labels. Requests are batched (config max_batch_size).
#pragma once

#include <opencv2/core.hpp>

#include "absl/status/statusor.h"
#include "imginterp/v1/classify.pb.h"
#include "services/core/codec/image_codec.h"
#include "services/core/service/family_handler.h"

namespace imginterp::classify {

// RGB image -> float tensor [1,3,H,W] (or [1,H,W,3] for layout NHWC) as `preprocessing` says:
// resize so the shorter side is resize_shorter (bilinear), centre crop, scale to 0..1,
// normalise with mean/std. INVALID_ARGUMENT if mean/std do not have 3 entries or std has a 0.
absl::StatusOr<at::Tensor> PreprocessImage(const cv::Mat& rgb, const v1::Preprocessing& config);

// Softmax over one row of logits, then the k best as (class id, label, probability).
std::vector<v1::ClassScore> TopK(const at::Tensor& logits_row, int k,
                                 const std::vector<std::string>& labels);

// Thread-safe.
class ClassifyHandler final : public service::FamilyHandler {
 public:
  explicit ClassifyHandler(codec::ImageLimits limits = {}) : limits_(limits) {}
  std::string family() const override { return "classify"; }
  std::string description() const override;
  const google::protobuf::Message& request_prototype() const override {
    return v1::ClassifyRequest::default_instance();
  }
  const google::protobuf::Message& response_prototype() const override {
    return v1::ClassifyResponse::default_instance();
  }
  bool uses_repository() const override { return true; }
  absl::StatusOr<std::unique_ptr<service::ModelInstance>> CreateInstance(
      const service::ModelLoadInfo& info,
      std::unique_ptr<model::ModelRunner> runner) const override;
  absl::Status ToKServe(const google::protobuf::Message& response,
                        inference::ModelInferResponse* out) const override;
  void DescribeKServeOutputs(inference::ModelMetadataResponse* metadata) const override;

 private:
  codec::ImageLimits limits_;
};

}  // namespace imginterp::classify
