// The `pose` family: human body keypoints per person and the ControlNet OpenPose conditioning
// image. Models (TF.js imports, TorchScript in the model repository, chosen by
// config.parameters["kind"]):
//   movenet-singlepose  MoveNet lightning (192x192) / thunder (256x256): int32 RGB 0..255 NHWC
//                       -> [1,1,17,3] (y, x, score); one person, COCO-17.
//   movenet-multipose   MoveNet multipose (256x256, int32) -> [1,6,56]; up to 6 people, COCO-17.
//   blazepose           BlazePose lite/full/heavy landmarks (256x256 float 0..1) -> 39 x 5
//                       landmarks + pose flag (+ heatmap, segmentation, world points, unused);
//                       one person, BlazePose-33.
// Every model first sees the whole image letterboxed to a square (aspect kept, black bars).
// MoveNet single-pose (by default thunder only) and BlazePose then run a second pass on the
// square crop around the person that the first pass found (see CropRegion in pose_decode.h)
// and keep it unless it scores lower.
//
// config.parameters keys read: "kind" (required), "input_size" (overrides the input shape;
// needed only when the shape is dynamic), "input_range" ("0..255" or "0..1"; default from the
// input dtype: int32 -> 0..255, float -> 0..1 for blazepose), "crop_pass" ("true"/"false";
// default: true for blazepose and for single-pose models whose name contains "thunder").
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "imginterp/v1/pose.pb.h"
#include "services/core/codec/image_codec.h"
#include "services/core/service/family_handler.h"

namespace imginterp::pose {

// Keypoint and person threshold used when a request's min_score is 0.
inline constexpr float kDefaultMinScore = 0.3f;

// How one pose model is run, from its config.pbtxt. A plain value type.
struct PoseModelSettings {
  // "movenet-singlepose", "movenet-multipose" or "blazepose".
  std::string kind;
  // Side of the square model input, in pixels.
  int input_size = 0;
  // True: the input is int32; false: float32.
  bool int_input = true;
  // Input value for a full-intensity channel: 255 (0..255) or 1 (0..1).
  float input_max = 255;
  // Whether a second pass runs on the crop around the person the first pass found.
  bool crop_pass = false;
};

// Reads the settings; INVALID_ARGUMENT naming the model and the key for an unknown kind, a
// missing/invalid input size, or a bad input_range/crop_pass value.
absl::StatusOr<PoseModelSettings> SettingsFromConfig(const std::string& model_name,
                                                     const v1::ModelConfig& config);

// The RenderPose RPC: edited keypoints -> the OpenPose map, no model involved. INVALID_ARGUMENT
// for a bad size, skeleton, min_score or keypoint (see RenderOpenPose); RESOURCE_EXHAUSTED for
// an oversized map.
absl::StatusOr<v1::RenderPoseResponse> RenderPose(const v1::RenderPoseRequest& request);

// Thread-safe.
class PoseHandler final : public service::FamilyHandler {
 public:
  explicit PoseHandler(codec::ImageLimits limits = {}) : limits_(limits) {}
  std::string family() const override { return "pose"; }
  std::string description() const override;
  const google::protobuf::Message& request_prototype() const override {
    return v1::PoseRequest::default_instance();
  }
  const google::protobuf::Message& response_prototype() const override {
    return v1::PoseResponse::default_instance();
  }
  bool uses_repository() const override { return true; }
  std::string default_model() const override { return "movenet-lightning"; }
  absl::StatusOr<std::unique_ptr<service::ModelInstance>> CreateInstance(
      const service::ModelLoadInfo& info,
      std::unique_ptr<model::ModelRunner> runner) const override;
  // Outputs: "keypoints" FP32 [people, K, 3] (x, y, score in original pixels), "boxes" FP32
  // [people, 4] (x1, y1, x2, y2), "scores" FP32 [people], "openpose_map" BYTES [1] (PNG);
  // parameter "skeleton".
  absl::Status ToKServe(const google::protobuf::Message& response,
                        inference::ModelInferResponse* out) const override;
  void DescribeKServeOutputs(inference::ModelMetadataResponse* metadata) const override;

 private:
  codec::ImageLimits limits_;
};

}  // namespace imginterp::pose
