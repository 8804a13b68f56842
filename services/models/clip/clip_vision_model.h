// transformers' CLIP vision tower: CLIPVisionTransformer ("embeddings.*", "pre_layrnorm" — sic,
// transformers' spelling —, "encoder.layers.N", "post_layernorm"), CLIPVisionModel (the tower
// under "vision_model") and CLIPVisionModelWithProjection (plus "visual_projection"; IP-Adapter's
// image encoder).
//
// Thread-safety: as torch::nn::Module; forward() only reads the parameters.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/TensorOptions.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <vector>

#include "services/models/clip/clip_config.h"
#include "services/models/nn/clip_encoder_layer.h"
#include "services/models/nn/embeddings.h"
#include "services/models/nn/layers.h"

namespace imginterp::clip {

struct ClipVisionOutput {
  at::Tensor last_hidden_state;  // [B, 1 + patches, hidden] (no post_layernorm)
  at::Tensor pooler_output;      // [B, hidden], post_layernorm of the class token
  // transformers' hidden_states[-2] (IP-Adapter Plus uses it).
  at::Tensor penultimate_hidden_state;
  std::vector<at::Tensor> hidden_states;  // with output_hidden_states: layers + 1 tensors
  at::Tensor image_embeds;  // [B, projection_dim], with projection only (not normalised)
};

class ClipVisionTransformerImpl : public torch::nn::Module {
 public:
  ClipVisionTransformerImpl(const ClipVisionConfig& config, const c10::TensorOptions& options = {});
  // pixel_values [B, C, image_size, image_size], already normalised (CLIP mean/std).
  ClipVisionOutput forward(const at::Tensor& pixel_values, bool output_hidden_states = false);
  const ClipVisionConfig& config() const { return config_; }

  nn::VitEmbeddings embeddings{nullptr};
  nn::LayerNorm pre_layrnorm{nullptr};
  nn::ClipEncoder encoder{nullptr};
  nn::LayerNorm post_layernorm{nullptr};

 private:
  ClipVisionConfig config_;
};
TORCH_MODULE(ClipVisionTransformer);

// CLIPVisionModel, and CLIPVisionModelWithProjection when with_projection.
class ClipVisionModelImpl : public torch::nn::Module {
 public:
  ClipVisionModelImpl(const ClipVisionConfig& config, bool with_projection = false,
                      const c10::TensorOptions& options = {});
  ClipVisionOutput forward(const at::Tensor& pixel_values, bool output_hidden_states = false);
  const ClipVisionConfig& config() const { return vision_model->config(); }

  ClipVisionTransformer vision_model{nullptr};
  nn::Linear visual_projection{nullptr};  // with_projection only
};
TORCH_MODULE(ClipVisionModel);

}  // namespace imginterp::clip
