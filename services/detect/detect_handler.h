// The `detect` family: object detection with COCO-80 class names, after per-class non-maximum
// suppression, plus a layout prior (boxes filled in per-class colours). Models are imported from
// TF.js (human-models 3.0.4):
//   centernet  MobileNetV3 CenterNet, NHWC float [1,512,512,3] RGB 0..255; output `detections`
//              [1,100,6] = (x1, y1, x2, y2, score, class) in input pixels, class 0-based COCO-80
//              (plus the `wh` and `keypoints` heads, unused here).
//   nanodet    NanoDet (GFL head), NCHW float [1,3,416,416]; per stride 8/16/32 a sigmoid score
//              tensor [1,N,80] and a box distribution [1,N,4*(reg_max+1)] over the distances
//              (left, top, right, bottom) in units of the stride, N = (416/stride)^2 row-major.
//
// config.pbtxt `parameters` read by this family:
//   kind         "centernet" or "nanodet" (required)
//   input_range  "0..255" or "0..1" (default: 0..255 for centernet, 0..1 for nanodet)
//   fit          "stretch" or "letterbox" (default: letterbox for centernet, stretch for
//                nanodet: what scored best on the sample photos)
#pragma once

#include <ATen/core/Tensor.h>

#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "imginterp/v1/detect.pb.h"
#include "services/core/codec/image_codec.h"
#include "services/core/codec/image_fit.h"
#include "services/core/service/family_handler.h"

namespace imginterp::detect {

// The 80 COCO class names in the contiguous order both models use (0 = person).
const std::vector<std::string>& CocoNames();

// One box before or after NMS, in whatever pixel space the caller is in.
struct RawDetection {
  float x1 = 0;
  float y1 = 0;
  float x2 = 0;
  float y2 = 0;
  float score = 0;
  int class_id = 0;
};

// Intersection over union of two boxes (0 when either has no area).
float IntersectionOverUnion(const RawDetection& a, const RawDetection& b);

// Per-class greedy NMS: best score first, a box is dropped when its IoU with a kept box of the
// same class is above iou_threshold (equal is kept). Returns at most max_detections boxes, best
// first (ties keep their input order).
std::vector<RawDetection> NonMaxSuppression(std::vector<RawDetection> detections,
                                            float iou_threshold, int max_detections);

// CenterNet's `detections` [1,K,6] (or [K,6]) rows with score >= min_score, in input pixels.
// Rows whose class is not a finite index in 0..num_classes-1 are skipped. INVALID_ARGUMENT for
// another shape.
absl::StatusOr<std::vector<RawDetection>> DecodeCenterNet(const at::Tensor& detections,
                                                          float min_score, int num_classes = 80);

// NanoDet GFL outputs (any order): score tensors [1,N,num_classes] and box distributions
// [1,N,4*(R+1)], paired by N; the stride of a pair is the one whose grid
// ceil(W/stride) x ceil(H/stride) has N cells. Each cell with centre ((x + 0.5) * stride,
// (y + 0.5) * stride) gives, per class with score >= min_score, the box centre -/+ the expected
// distances (softmax over R+1 bins, times stride), clipped to the input. At most `max_candidates`
// best candidates are returned. INVALID_ARGUMENT when the tensors cannot be paired.
absl::StatusOr<std::vector<RawDetection>> DecodeNanoDet(const std::vector<at::Tensor>& outputs,
                                                        int input_width, int input_height,
                                                        float min_score, int num_classes = 80,
                                                        int max_candidates = 1000);

// Fitting to the model's input size is shared serving code (services/core/codec/image_fit.h).
using codec::ComputeFit;
using codec::Fit;
using codec::FitImage;
using codec::FitMode;

// A box in model-input pixels -> image pixels, clipped to the image.
RawDetection MapToImage(const RawDetection& box, const Fit& fit);

// The RGB colour a class is drawn in (a fixed, well-spread hue per class id).
cv::Vec3b ClassColour(int class_id);

// Boxes filled in their class colours on black (CV_8UC3 width x height). Larger boxes are drawn
// first so smaller ones stay visible.
cv::Mat DetectionMap(const std::vector<RawDetection>& detections, int width, int height);

// Thread-safe.
class DetectHandler final : public service::FamilyHandler {
 public:
  explicit DetectHandler(codec::ImageLimits limits = {}) : limits_(limits) {}
  std::string family() const override { return "detect"; }
  std::string description() const override;
  const google::protobuf::Message& request_prototype() const override {
    return v1::DetectRequest::default_instance();
  }
  const google::protobuf::Message& response_prototype() const override {
    return v1::DetectResponse::default_instance();
  }
  bool uses_repository() const override { return true; }
  std::string default_model() const override { return "centernet"; }
  absl::StatusOr<std::unique_ptr<service::ModelInstance>> CreateInstance(
      const service::ModelLoadInfo& info,
      std::unique_ptr<model::ModelRunner> runner) const override;
  absl::Status ToKServe(const google::protobuf::Message& response,
                        inference::ModelInferResponse* out) const override;
  void DescribeKServeOutputs(inference::ModelMetadataResponse* metadata) const override;

 private:
  codec::ImageLimits limits_;
};

}  // namespace imginterp::detect
