#include "services/models/clip/clip_vision_model.h"

#include <torch/torch.h>

namespace imginterp::clip {

ClipVisionTransformerImpl::ClipVisionTransformerImpl(const ClipVisionConfig& config,
                                                     const c10::TensorOptions& options)
    : config_(config) {
  embeddings = register_module(
      "embeddings",
      nn::VitEmbeddings(nn::VitEmbeddingsOptions{config.hidden_size, config.image_size,
                                                 config.patch_size, config.num_channels},
                        options));
  pre_layrnorm = register_module(
      "pre_layrnorm", nn::LayerNorm(config.hidden_size, config.layer_norm_eps, true, options));
  nn::ClipLayerOptions layer{config.hidden_size, config.intermediate_size,
                             config.num_attention_heads, config.hidden_act, config.layer_norm_eps};
  encoder = register_module("encoder", nn::ClipEncoder(layer, config.num_hidden_layers, options));
  post_layernorm = register_module(
      "post_layernorm", nn::LayerNorm(config.hidden_size, config.layer_norm_eps, true, options));
}

ClipVisionOutput ClipVisionTransformerImpl::forward(const at::Tensor& pixel_values,
                                                    bool output_hidden_states) {
  std::vector<at::Tensor> states;
  ClipVisionOutput out;
  const at::Tensor h = pre_layrnorm->forward(embeddings->forward(pixel_values));
  out.last_hidden_state = encoder->forward(h, /*causal=*/false, std::nullopt, &states);
  out.pooler_output = post_layernorm->forward(out.last_hidden_state.select(1, 0));
  out.penultimate_hidden_state = states.size() >= 2 ? states[states.size() - 2] : states.back();
  if (output_hidden_states) out.hidden_states = std::move(states);
  return out;
}

ClipVisionModelImpl::ClipVisionModelImpl(const ClipVisionConfig& config, bool with_projection,
                                         const c10::TensorOptions& options) {
  vision_model = register_module("vision_model", ClipVisionTransformer(config, options));
  if (with_projection) {
    visual_projection = register_module(
        "visual_projection", nn::Linear(config.hidden_size, config.projection_dim, false, options));
  }
}

ClipVisionOutput ClipVisionModelImpl::forward(const at::Tensor& pixel_values,
                                              bool output_hidden_states) {
  ClipVisionOutput out = vision_model->forward(pixel_values, output_hidden_states);
  if (visual_projection) out.image_embeds = visual_projection->forward(out.pooler_output);
  return out;
}

}  // namespace imginterp::clip
