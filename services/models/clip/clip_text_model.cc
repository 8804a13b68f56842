#include "services/models/clip/clip_text_model.h"

#include <torch/torch.h>

namespace imginterp::clip {

at::Tensor EndTokenPositions(const at::Tensor& input_ids, int64_t eos_token_id) {
  if (eos_token_id == 2) return input_ids.to(at::kLong).argmax(-1);
  return input_ids.eq(eos_token_id).to(at::kInt).argmax(-1);
}

ClipTextEmbeddingsImpl::ClipTextEmbeddingsImpl(const ClipTextConfig& config,
                                               const c10::TensorOptions& options) {
  token_embedding = register_module("token_embedding",
                                    nn::Embedding(config.vocab_size, config.hidden_size, options));
  position_embedding =
      register_module("position_embedding",
                      nn::Embedding(config.max_position_embeddings, config.hidden_size, options));
}

at::Tensor ClipTextEmbeddingsImpl::forward(const at::Tensor& input_ids) {
  const int64_t length = input_ids.size(-1);
  TORCH_CHECK(length <= position_embedding->weight.size(0), "CLIP text: ", length,
              " tokens, the model takes at most ", position_embedding->weight.size(0));
  return token_embedding->forward(input_ids) +
         position_embedding->weight.narrow(0, 0, length).unsqueeze(0);
}

ClipTextTransformerImpl::ClipTextTransformerImpl(const ClipTextConfig& config,
                                                 const c10::TensorOptions& options)
    : config_(config) {
  embeddings = register_module("embeddings", ClipTextEmbeddings(config, options));
  nn::ClipLayerOptions layer{config.hidden_size, config.intermediate_size,
                             config.num_attention_heads, config.hidden_act, config.layer_norm_eps};
  encoder = register_module("encoder", nn::ClipEncoder(layer, config.num_hidden_layers, options));
  final_layer_norm = register_module(
      "final_layer_norm", nn::LayerNorm(config.hidden_size, config.layer_norm_eps, true, options));
}

ClipTextOutput ClipTextTransformerImpl::forward(const at::Tensor& input_ids,
                                                const at::Tensor& attention_mask,
                                                bool output_hidden_states) {
  TORCH_CHECK(input_ids.dim() == 2, "CLIP text: input_ids must be [batch, length], got ",
              input_ids.sizes());
  std::optional<at::Tensor> mask;
  if (attention_mask.defined()) {
    TORCH_CHECK(attention_mask.sizes() == input_ids.sizes(), "CLIP text: attention_mask ",
                attention_mask.sizes(), " must match input_ids ", input_ids.sizes());
    mask = attention_mask.ne(0).unsqueeze(1).unsqueeze(1);  // [B, 1, 1, L]
  }
  std::vector<at::Tensor> states;
  ClipTextOutput out;
  const at::Tensor h =
      encoder->forward(embeddings->forward(input_ids), /*causal=*/true, mask, &states);
  out.last_hidden_state = final_layer_norm->forward(h);
  const at::Tensor positions = EndTokenPositions(input_ids, config_.eos_token_id);
  const at::Tensor rows = torch::arange(input_ids.size(0), positions.options().dtype(at::kLong));
  out.pooler_output = out.last_hidden_state.index({rows, positions.to(at::kLong)});
  out.penultimate_hidden_state = states.size() >= 2 ? states[states.size() - 2] : states.back();
  if (output_hidden_states) out.hidden_states = std::move(states);
  return out;
}

ClipTextModelImpl::ClipTextModelImpl(const ClipTextConfig& config, bool with_projection,
                                     const c10::TensorOptions& options) {
  text_model = register_module("text_model", ClipTextTransformer(config, options));
  if (with_projection) {
    text_projection = register_module(
        "text_projection", nn::Linear(config.hidden_size, config.projection_dim, false, options));
  }
}

ClipTextOutput ClipTextModelImpl::forward(const at::Tensor& input_ids,
                                          const at::Tensor& attention_mask,
                                          bool output_hidden_states) {
  ClipTextOutput out = text_model->forward(input_ids, attention_mask, output_hidden_states);
  if (text_projection) out.text_embeds = text_projection->forward(out.pooler_output);
  return out;
}

}  // namespace imginterp::clip
