// transformers' CLIP text tower: CLIPTextTransformer ("embeddings.token_embedding",
// "embeddings.position_embedding", "encoder.layers.N", "final_layer_norm"), CLIPTextModel (the
// tower under "text_model", SD1.x's text_encoder) and CLIPTextModelWithProjection (plus
// "text_projection"). The tower always applies the causal mask, as CLIP does.
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
#include "services/models/nn/layers.h"

namespace imginterp::clip {

struct ClipTextOutput {
  at::Tensor last_hidden_state;  // [B, L, hidden], after final_layer_norm
  at::Tensor pooler_output;      // [B, hidden], last_hidden_state at the end token
  // transformers' hidden_states[-2]: the input of the last layer, without final_layer_norm
  // (diffusers' clip_skip = 1 applies final_layer_norm to it).
  at::Tensor penultimate_hidden_state;
  // With output_hidden_states: embeddings output, then every layer's output (layers + 1).
  std::vector<at::Tensor> hidden_states;
  at::Tensor text_embeds;  // [B, projection_dim], CLIPTextModelWithProjection only
};

class ClipTextEmbeddingsImpl : public torch::nn::Module {
 public:
  ClipTextEmbeddingsImpl(const ClipTextConfig& config, const c10::TensorOptions& options = {});
  // input_ids [B, L] (L <= max_position_embeddings) -> [B, L, hidden].
  at::Tensor forward(const at::Tensor& input_ids);

  nn::Embedding token_embedding{nullptr};
  nn::Embedding position_embedding{nullptr};
};
TORCH_MODULE(ClipTextEmbeddings);

class ClipTextTransformerImpl : public torch::nn::Module {
 public:
  ClipTextTransformerImpl(const ClipTextConfig& config, const c10::TensorOptions& options = {});

  // input_ids [B, L] int64. attention_mask (optional, [B, L], 1 = token, 0 = padding) also hides
  // padding; SD pipelines pass none (causal mask only).
  ClipTextOutput forward(const at::Tensor& input_ids, const at::Tensor& attention_mask = {},
                         bool output_hidden_states = false);
  const ClipTextConfig& config() const { return config_; }

  ClipTextEmbeddings embeddings{nullptr};
  nn::ClipEncoder encoder{nullptr};
  nn::LayerNorm final_layer_norm{nullptr};

 private:
  ClipTextConfig config_;
};
TORCH_MODULE(ClipTextTransformer);

// CLIPTextModel, and CLIPTextModelWithProjection when with_projection.
class ClipTextModelImpl : public torch::nn::Module {
 public:
  ClipTextModelImpl(const ClipTextConfig& config, bool with_projection = false,
                    const c10::TensorOptions& options = {});
  ClipTextOutput forward(const at::Tensor& input_ids, const at::Tensor& attention_mask = {},
                         bool output_hidden_states = false);
  const ClipTextConfig& config() const { return text_model->config(); }

  ClipTextTransformer text_model{nullptr};
  nn::Linear text_projection{nullptr};  // with_projection only
};
TORCH_MODULE(ClipTextModel);

// The end-token positions transformers pools at: argmax(input_ids) when eos_token_id == 2 (the
// legacy configs), else the first position holding eos_token_id. [B] int64.
at::Tensor EndTokenPositions(const at::Tensor& input_ids, int64_t eos_token_id);

}  // namespace imginterp::clip
