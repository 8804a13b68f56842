// The `generate` family: Stable Diffusion 1.5 with ControlNets (services/models/generation) as a
// model service. Text-to-image, image-to-image, conditioning images or edited pose keypoints per
// prior kind, N images per request (image i = seed + i), streamed progress and cancellation
// within one step, and seed/prompt interpolation as frames plus an MP4.
//
// Models: generate/<name>/config.pbtxt with backend "native" and a diffusers pipeline folder as
// the version folder. Config parameters:
//   controlnet.<kind>  ControlNet folder for prior kind <kind>, relative to the version folder
//   max_steps          largest `steps` a request may ask for (default 150)
//   max_images         largest `num_images` (default 8)
//   max_pixels         largest width*height (default 1024*1024)
//   max_frames         largest interpolation `frames` (default 64)
// config.intra_op_threads sets LibTorch's intra-op threads while the model runs.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "imginterp/v1/generate.pb.h"
#include "services/core/codec/image_codec.h"
#include "services/core/service/family_handler.h"

namespace imginterp::generate {

// A model's settings from its config.pbtxt.
struct GenerateModelConfig {
  // Prior kind -> ControlNet folder (relative to the version folder).
  std::map<std::string, std::string> controlnets;
  int max_steps = 150;
  int max_images = 8;
  int64_t max_pixels = 1024 * 1024;
  int max_frames = 64;
  // LibTorch intra-op threads while this model runs (0: leave as is).
  int intra_op_threads = 0;
};

// INVALID_ARGUMENT naming the key for limits that are not positive integers.
absl::StatusOr<GenerateModelConfig> ParseGenerateModelConfig(const v1::ModelConfig& config);

struct GenerateOptions {
  // Limits on every decoded request image (control and init images).
  codec::ImageLimits limits;
};

// Thread-safe.
class GenerationHandler final : public service::FamilyHandler {
 public:
  explicit GenerationHandler(GenerateOptions options = {}) : options_(options) {}
  std::string family() const override { return "generate"; }
  std::string description() const override;
  // GenerateRequest / GenerateResponse; the instance also runs InterpolateRequest into
  // InterpolateResponse (typed API only).
  const google::protobuf::Message& request_prototype() const override {
    return v1::GenerateRequest::default_instance();
  }
  const google::protobuf::Message& response_prototype() const override {
    return v1::GenerateResponse::default_instance();
  }
  bool uses_repository() const override { return true; }
  // Loads the pipeline folder; INVALID_ARGUMENT unless the backend is "native".
  absl::StatusOr<std::unique_ptr<service::ModelInstance>> CreateInstance(
      const service::ModelLoadInfo& info,
      std::unique_ptr<model::ModelRunner> runner) const override;
  // Output "images": BYTES [num_images], one PNG each; parameter "seeds" ("1,2,3").
  absl::Status ToKServe(const google::protobuf::Message& response,
                        inference::ModelInferResponse* out) const override;
  void DescribeKServeOutputs(inference::ModelMetadataResponse* metadata) const override;
  // BYTES "prompt" (UTF-8 text), optional BYTES "negative_prompt" and "init_image"; every other
  // GenerateRequest scalar as a parameter ("steps", "seed", "width", ...).
  void DescribeKServeInputs(inference::ModelMetadataResponse* metadata) const override;

 private:
  GenerateOptions options_;
};

}  // namespace imginterp::generate
