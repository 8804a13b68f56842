// Building the CLIP modules from their configs and loading published weights (transformers'
// safetensors layouts) through imginterp::models_io. Keys must match exactly (strict), except
// "*.position_ids", which older checkpoints carry and the modules do not have.
//
// Thread-safety: free functions; the returned modules are owned by the caller.
#pragma once

#include <c10/core/TensorOptions.h>

#include <string>

#include "absl/status/statusor.h"
#include "services/models/clip/clip_config.h"
#include "services/models/clip/clip_model.h"
#include "services/models/clip/clip_text_model.h"
#include "services/models/clip/clip_vision_model.h"
#include "services/models/io/state_dict.h"
#include "services/models/io/tensor_source.h"

namespace imginterp::clip {

// LoadOptions with ignore = {"*.position_ids"}, strict.
models::LoadOptions DefaultClipLoadOptions();

// Builds the module on `options` (device and dtype; the weights are converted) and loads it from
// `weights`. INVALID_ARGUMENT when the config cannot build a module or the keys or shapes differ
// (the message lists them); errors of the source are passed on.
absl::StatusOr<ClipTextModel> LoadClipTextModel(
    const ClipTextConfig& config, const models::TensorSource& weights, bool with_projection,
    const c10::TensorOptions& options = {},
    const models::LoadOptions& load = DefaultClipLoadOptions());
absl::StatusOr<ClipVisionModel> LoadClipVisionModel(
    const ClipVisionConfig& config, const models::TensorSource& weights, bool with_projection,
    const c10::TensorOptions& options = {},
    const models::LoadOptions& load = DefaultClipLoadOptions());
absl::StatusOr<ClipModel> LoadClipModel(const ClipConfig& config,
                                        const models::TensorSource& weights,
                                        const c10::TensorOptions& options = {},
                                        const models::LoadOptions& load = DefaultClipLoadOptions());

// A transformers model folder (SD's "text_encoder/", "image_encoder/", or a CLIP folder):
// config.json and model.safetensors (or a sharded index). The projection is included when the
// config's "architectures" names a "...WithProjection" class.
absl::StatusOr<ClipTextModel> LoadClipTextModelFromFolder(const std::string& dir,
                                                          const c10::TensorOptions& options = {});
absl::StatusOr<ClipVisionModel> LoadClipVisionModelFromFolder(
    const std::string& dir, const c10::TensorOptions& options = {});
absl::StatusOr<ClipModel> LoadClipModelFromFolder(const std::string& dir,
                                                  const c10::TensorOptions& options = {});

}  // namespace imginterp::clip
