// The `segment` family: segmentation maps as ControlNet conditioning images. Today's models are
// MediaPipe person segmentation imported from TF.js ("selfie": [1,256,256,3] -> one sigmoid
// channel; "meet": [1,144,256,3] -> two logits, background and person); the response carries
// the person probability as a grey mask and a ControlNet-seg colour map (ADE20K palette).
//
// Semantic models (N classes) fit the same path later: they produce a class map (one class
// index per pixel) and ColourMap/DescribeClasses turn it into the map and the class list.
//
// config.pbtxt `parameters` read by this family:
//   kind         "selfie" or "meet" (required)
//   input_range  "0..1" (default) or "0..255": the scale of the float RGB input
//   fit          "stretch" (default, as MediaPipe does) or "letterbox"
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "imginterp/v1/segment.pb.h"
#include "services/core/codec/image_codec.h"
#include "services/core/codec/image_fit.h"
#include "services/core/service/family_handler.h"

namespace imginterp::segment {

// One entry of the colour palette of the map. class_id and colour follow ADE20K (the palette
// ControlNet's seg model was trained on), so semantic ADE20K models can reuse the ids.
struct PaletteEntry {
  int class_id = 0;
  std::string name;
  uint8_t red = 0;
  uint8_t green = 0;
  uint8_t blue = 0;
};

// ADE20K "person" (class 12): RGB 150, 5, 61.
const PaletteEntry& PersonEntry();

// Fitting to the model's input size is shared serving code (services/core/codec/image_fit.h).
using codec::ComputeFit;
using codec::Fit;
using codec::FitImage;
using codec::FitMode;

// A model-resolution map (CV_32FC1, model_height x model_width) sampled back at every image pixel
// (bilinear, pixel centres, edges replicated; the letterbox padding is cut away): CV_32FC1 of
// image_height x image_width.
cv::Mat MapToImage(const cv::Mat& model_map, const Fit& fit);

// The person probability at model resolution (CV_32FC1 H x W) from the model's output:
// [1,H,W,1] is already a probability (selfie ends in a sigmoid); [1,H,W,2] are (background,
// person) logits (meet), turned into softmax(person). INVALID_ARGUMENT for other shapes.
absl::StatusOr<cv::Mat> PersonProbability(const at::Tensor& output);

// Probability (CV_32FC1, 0..1) -> grey CV_8UC1, rounded p * 255.
cv::Mat ProbabilityToMask(const cv::Mat& probability);

// class map value for pixels of no class (drawn black).
inline constexpr int32_t kBackground = -1;

// A class map (CV_32SC1; each pixel an index into `palette`, or kBackground) as an RGB colour map
// (CV_8UC3, palette colours, background black). Indices out of range are drawn black.
cv::Mat ColourMap(const cv::Mat& class_map, const std::vector<PaletteEntry>& palette);

// One SegmentClass per palette index present in `class_map`, in index order, with its
// share of the pixels and the box around its pixels (pixel edges: x2 = last column + 1).
std::vector<v1::SegmentClass> DescribeClasses(const cv::Mat& class_map,
                                              const std::vector<PaletteEntry>& palette);

// Thread-safe.
class SegmentHandler final : public service::FamilyHandler {
 public:
  explicit SegmentHandler(codec::ImageLimits limits = {}) : limits_(limits) {}
  std::string family() const override { return "segment"; }
  std::string description() const override;
  const google::protobuf::Message& request_prototype() const override {
    return v1::SegmentRequest::default_instance();
  }
  const google::protobuf::Message& response_prototype() const override {
    return v1::SegmentResponse::default_instance();
  }
  bool uses_repository() const override { return true; }
  std::string default_model() const override { return "selfie"; }
  absl::StatusOr<std::unique_ptr<service::ModelInstance>> CreateInstance(
      const service::ModelLoadInfo& info,
      std::unique_ptr<model::ModelRunner> runner) const override;
  absl::Status ToKServe(const google::protobuf::Message& response,
                        inference::ModelInferResponse* out) const override;
  void DescribeKServeOutputs(inference::ModelMetadataResponse* metadata) const override;

 private:
  codec::ImageLimits limits_;
};

}  // namespace imginterp::segment
