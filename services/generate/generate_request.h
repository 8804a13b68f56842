// Turning a wire GenerateRequest into the pipeline's GenerationRequest: defaults, limits,
// image decoding and resizing, pose keypoints rendered into the OpenPose map, and the advanced
// tensors with their shapes checked. Every refusal is INVALID_ARGUMENT (bad input, naming the
// field) or OUT_OF_RANGE (over a configured limit, naming the limit) before any model runs.
//
// Stateless and thread-safe.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "imginterp/v1/generate.pb.h"
#include "services/core/codec/image_codec.h"
#include "services/generate/generation_handler.h"
#include "services/models/generation/stable_diffusion.h"

namespace imginterp::generate {

// What the loaded pipeline can do, for validation.
struct PipelineFacts {
  std::vector<std::string> control_kinds;  // sorted
  int default_size = 512;
  int vae_scale_factor = 8;
  int latent_channels = 4;
};

inline constexpr int kDefaultSteps = 20;
inline constexpr double kDefaultGuidanceScale = 7.5;
inline constexpr double kDefaultStrength = 0.8;
// Smallest accepted request image side (one latent pixel).
inline constexpr int kMinImageSide = 8;

// The whole request (num_images, seed and initial_latents as given: the caller runs the images
// one at a time). `field` prefixes error messages ("" or "base.").
absl::StatusOr<generation::GenerationRequest> ToGenerationRequest(
    const v1::GenerateRequest& request, const PipelineFacts& facts,
    const GenerateModelConfig& config, const codec::ImageLimits& limits,
    const std::string& field = "");

}  // namespace imginterp::generate
