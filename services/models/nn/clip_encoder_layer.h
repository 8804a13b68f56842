// The transformer encoder of CLIP as transformers writes it (models/clip/modeling_clip.py):
// ClipAttention (q_proj, k_proj, v_proj, out_proj), ClipMlp (fc1, act, fc2), ClipEncoderLayer
// (layer_norm1, self_attn, layer_norm2, mlp; pre-norm residual) and ClipEncoder ("layers.N").
// The same layer shape serves the text tower (causal) and the vision tower (bidirectional).
//
// Thread-safety: as torch::nn::Module; forward() only reads the parameters.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/TensorOptions.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "services/models/nn/activations.h"
#include "services/models/nn/attention_core.h"
#include "services/models/nn/layers.h"

namespace imginterp::nn {

struct ClipLayerOptions {
  int64_t hidden_size = 768;
  int64_t intermediate_size = 3072;
  int64_t num_attention_heads = 12;
  Activation hidden_act = Activation::kQuickGelu;
  double layer_norm_eps = 1e-5;
};

class ClipAttentionImpl : public torch::nn::Module {
 public:
  ClipAttentionImpl(int64_t hidden_size, int64_t num_heads, const c10::TensorOptions& options = {});

  // x [B, L, hidden]. `causal` masks later positions; attention_mask (optional) is additive or
  // bool, broadcast to [B, heads, L, L] (e.g. [B, 1, 1, L] for padding).
  at::Tensor forward(const at::Tensor& x, bool causal = false,
                     const std::optional<at::Tensor>& attention_mask = std::nullopt);
  void SetCoreOptions(const AttentionCoreOptions& core) { core_ = core; }

  // Registered in transformers' order: k, v, q, out.
  Linear k_proj{nullptr};
  Linear v_proj{nullptr};
  Linear q_proj{nullptr};
  Linear out_proj{nullptr};

 private:
  int64_t num_heads_;
  int64_t head_dim_;
  AttentionCoreOptions core_;
};
TORCH_MODULE(ClipAttention);

class ClipMlpImpl : public torch::nn::Module {
 public:
  ClipMlpImpl(int64_t hidden_size, int64_t intermediate_size, Activation act,
              const c10::TensorOptions& options = {});
  at::Tensor forward(const at::Tensor& x);

  Linear fc1{nullptr};
  Linear fc2{nullptr};

 private:
  Activation act_;
};
TORCH_MODULE(ClipMlp);

class ClipEncoderLayerImpl : public torch::nn::Module {
 public:
  explicit ClipEncoderLayerImpl(const ClipLayerOptions& layer,
                                const c10::TensorOptions& options = {});
  at::Tensor forward(const at::Tensor& x, bool causal = false,
                     const std::optional<at::Tensor>& attention_mask = std::nullopt);

  ClipAttention self_attn{nullptr};
  LayerNorm layer_norm1{nullptr};
  ClipMlp mlp{nullptr};
  LayerNorm layer_norm2{nullptr};
};
TORCH_MODULE(ClipEncoderLayer);

// "layers.0" ... "layers.{n-1}".
class ClipEncoderImpl : public torch::nn::Module {
 public:
  ClipEncoderImpl(const ClipLayerOptions& layer, int64_t num_layers,
                  const c10::TensorOptions& options = {});

  // Runs every layer. When `hidden_states` is given it receives num_layers + 1 tensors: the
  // input and each layer's output (transformers' output_hidden_states), so
  // (*hidden_states)[num_layers - 1] is the penultimate state. Returns the last layer's output.
  at::Tensor forward(const at::Tensor& x, bool causal = false,
                     const std::optional<at::Tensor>& attention_mask = std::nullopt,
                     std::vector<at::Tensor>* hidden_states = nullptr);
  int64_t num_layers() const { return static_cast<int64_t>(layers->size()); }

  torch::nn::ModuleList layers{nullptr};
};
TORCH_MODULE(ClipEncoder);

}  // namespace imginterp::nn
