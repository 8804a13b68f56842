// diffusers' `Attention` (models/attention_processor.py) with its default processor: self- or
// cross-attention with the checkpoint keys to_q, to_k, to_v, to_out.0 and, in the VAE mid-block
// form, group_norm with a residual connection.
//
// Thread-safety: as torch::nn::Module; forward() is const with respect to the parameters.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/TensorOptions.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <optional>

#include "services/models/nn/attention_core.h"
#include "services/models/nn/layers.h"

namespace imginterp::nn {

struct AttentionOptions {
  int64_t query_dim = 0;
  // Width of encoder_hidden_states; 0 means self-attention (keys and values from query_dim).
  int64_t cross_attention_dim = 0;
  int64_t heads = 8;
  int64_t dim_head = 64;
  // Bias of to_q, to_k, to_v ("attention_bias" of the blocks; true in the VAE).
  bool bias = false;
  // Bias of to_out.0.
  bool out_bias = true;
  // > 0 adds "group_norm" (GroupNorm(norm_num_groups, query_dim, eps)) applied to the input
  // before the projections (VAE mid-block attention).
  int64_t norm_num_groups = 0;
  double eps = 1e-5;
  // Adds the input to the output (VAE mid-block attention), then divides by
  // rescale_output_factor.
  bool residual_connection = false;
  double rescale_output_factor = 1.0;
};

class AttentionImpl : public torch::nn::Module {
 public:
  explicit AttentionImpl(const AttentionOptions& attention, const c10::TensorOptions& options = {});

  // hidden_states [B, L, query_dim] or [B, query_dim, H, W] (attended over H*W, returned in the
  // same layout). encoder_hidden_states [B, Lk, cross_attention_dim] for cross-attention,
  // undefined for self-attention. attention_mask (optional) broadcasts to [B, heads, Lq, Lk]
  // (bool: true = attend, or additive), e.g. [B, 1, 1, Lk].
  at::Tensor forward(const at::Tensor& hidden_states, const at::Tensor& encoder_hidden_states = {},
                     const std::optional<at::Tensor>& attention_mask = std::nullopt);

  // Memory policy of the attention kernel (chunking); scale and causal are fixed by the module.
  void SetCoreOptions(const AttentionCoreOptions& core) { core_ = core; }
  const AttentionOptions& attention_options() const { return attention_; }

  GroupNorm group_norm{nullptr};  // only with norm_num_groups > 0
  Linear to_q{nullptr};
  Linear to_k{nullptr};
  Linear to_v{nullptr};
  torch::nn::ModuleList to_out{nullptr};  // [Linear, Placeholder (dropout)]
  Linear to_out_proj{nullptr};            // to_out[0]

 private:
  AttentionOptions attention_;
  AttentionCoreOptions core_;
};
TORCH_MODULE(Attention);

// Sets the attention kernel policy of every Attention and ClipAttention module of `root`.
void SetAttentionCoreOptions(torch::nn::Module& root, const AttentionCoreOptions& core);

}  // namespace imginterp::nn
