#include "services/models/nn/clip_encoder_layer.h"

#include <torch/torch.h>

#include <cmath>

namespace imginterp::nn {

ClipAttentionImpl::ClipAttentionImpl(int64_t hidden_size, int64_t num_heads,
                                     const c10::TensorOptions& options)
    : num_heads_(num_heads), head_dim_(num_heads > 0 ? hidden_size / num_heads : 0) {
  TORCH_CHECK(num_heads > 0 && hidden_size % num_heads == 0, "CLIP attention: hidden_size ",
              hidden_size, " is not divisible by num_attention_heads ", num_heads);
  k_proj = register_module("k_proj", Linear(hidden_size, hidden_size, true, options));
  v_proj = register_module("v_proj", Linear(hidden_size, hidden_size, true, options));
  q_proj = register_module("q_proj", Linear(hidden_size, hidden_size, true, options));
  out_proj = register_module("out_proj", Linear(hidden_size, hidden_size, true, options));
}

at::Tensor ClipAttentionImpl::forward(const at::Tensor& x, bool causal,
                                      const std::optional<at::Tensor>& attention_mask) {
  AttentionCoreOptions core = core_;
  core.scale = 1.0 / std::sqrt(static_cast<double>(head_dim_));
  core.causal = causal;
  const at::Tensor q = SplitHeads(q_proj->forward(x), num_heads_);
  const at::Tensor k = SplitHeads(k_proj->forward(x), num_heads_);
  const at::Tensor v = SplitHeads(v_proj->forward(x), num_heads_);
  return out_proj->forward(MergeHeads(ScaledDotProductAttention(q, k, v, attention_mask, core)));
}

ClipMlpImpl::ClipMlpImpl(int64_t hidden_size, int64_t intermediate_size, Activation act,
                         const c10::TensorOptions& options)
    : act_(act) {
  fc1 = register_module("fc1", Linear(hidden_size, intermediate_size, true, options));
  fc2 = register_module("fc2", Linear(intermediate_size, hidden_size, true, options));
}

at::Tensor ClipMlpImpl::forward(const at::Tensor& x) {
  return fc2->forward(Activate(act_, fc1->forward(x)));
}

ClipEncoderLayerImpl::ClipEncoderLayerImpl(const ClipLayerOptions& layer,
                                           const c10::TensorOptions& options) {
  self_attn = register_module("self_attn",
                              ClipAttention(layer.hidden_size, layer.num_attention_heads, options));
  layer_norm1 = register_module("layer_norm1",
                                LayerNorm(layer.hidden_size, layer.layer_norm_eps, true, options));
  mlp = register_module(
      "mlp", ClipMlp(layer.hidden_size, layer.intermediate_size, layer.hidden_act, options));
  layer_norm2 = register_module("layer_norm2",
                                LayerNorm(layer.hidden_size, layer.layer_norm_eps, true, options));
}

at::Tensor ClipEncoderLayerImpl::forward(const at::Tensor& x, bool causal,
                                         const std::optional<at::Tensor>& attention_mask) {
  at::Tensor h = x + self_attn->forward(layer_norm1->forward(x), causal, attention_mask);
  return h + mlp->forward(layer_norm2->forward(h));
}

ClipEncoderImpl::ClipEncoderImpl(const ClipLayerOptions& layer, int64_t num_layers,
                                 const c10::TensorOptions& options) {
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < num_layers; ++i) layers->push_back(ClipEncoderLayer(layer, options));
}

at::Tensor ClipEncoderImpl::forward(const at::Tensor& x, bool causal,
                                    const std::optional<at::Tensor>& attention_mask,
                                    std::vector<at::Tensor>* hidden_states) {
  at::Tensor h = x;
  if (hidden_states != nullptr) {
    hidden_states->clear();
    hidden_states->push_back(h);
  }
  for (const auto& layer : *layers) {
    h = layer->as<ClipEncoderLayerImpl>()->forward(h, causal, attention_mask);
    if (hidden_states != nullptr) hidden_states->push_back(h);
  }
  return h;
}

}  // namespace imginterp::nn
