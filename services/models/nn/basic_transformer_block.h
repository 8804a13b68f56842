// diffusers' BasicTransformerBlock (models/attention.py) in its Stable Diffusion form
// (norm_type "layer_norm"): norm1 + attn1 (self), norm2 + attn2 (cross), norm3 + ff, each with a
// residual; and the FeedForward it uses ("ff.net.0.proj", "ff.net.2").
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

#include "services/models/nn/attention.h"
#include "services/models/nn/layers.h"

namespace imginterp::nn {

// FeedForward activation_fn: "geglu" (proj to 2x inner, value * gelu(gate)), "gelu",
// "gelu-approximate" (proj to inner, then the activation).
enum class FeedForwardActivation { kGeglu, kGelu, kGeluApproximate };

// net.0 = projection + activation (key "net.0.proj"), net.1 = dropout, net.2 = Linear(inner, out).
class FeedForwardImpl : public torch::nn::Module {
 public:
  // inner_dim 0 means 4 * dim; dim_out 0 means dim.
  FeedForwardImpl(int64_t dim, int64_t inner_dim = 0, int64_t dim_out = 0,
                  FeedForwardActivation activation = FeedForwardActivation::kGeglu,
                  bool bias = true, const c10::TensorOptions& options = {});
  at::Tensor forward(const at::Tensor& x);

  torch::nn::ModuleList net{nullptr};
  Linear proj{nullptr};      // net[0].proj
  Linear out_proj{nullptr};  // net[2]

 private:
  FeedForwardActivation activation_;
};
TORCH_MODULE(FeedForward);

struct BasicTransformerBlockOptions {
  int64_t dim = 0;
  int64_t num_attention_heads = 8;
  int64_t attention_head_dim = 64;
  // 0: no cross-attention (no norm2/attn2).
  int64_t cross_attention_dim = 0;
  FeedForwardActivation activation_fn = FeedForwardActivation::kGeglu;
  bool attention_bias = false;
  // attn1 attends to encoder_hidden_states instead of itself.
  bool only_cross_attention = false;
  bool norm_elementwise_affine = true;
  double norm_eps = 1e-5;
  int64_t ff_inner_dim = 0;  // 0: 4 * dim
  bool ff_bias = true;
};

class BasicTransformerBlockImpl : public torch::nn::Module {
 public:
  explicit BasicTransformerBlockImpl(const BasicTransformerBlockOptions& block,
                                     const c10::TensorOptions& options = {});

  // x [B, L, dim], encoder_hidden_states [B, Lk, cross_attention_dim] (needed with
  // cross-attention). encoder_attention_mask (optional) is passed to attn2 as in Attention.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& encoder_hidden_states = {},
                     const std::optional<at::Tensor>& encoder_attention_mask = std::nullopt);

  LayerNorm norm1{nullptr};
  Attention attn1{nullptr};
  LayerNorm norm2{nullptr};  // with cross-attention only
  Attention attn2{nullptr};  // with cross-attention only
  LayerNorm norm3{nullptr};
  FeedForward ff{nullptr};

 private:
  BasicTransformerBlockOptions block_;
};
TORCH_MODULE(BasicTransformerBlock);

}  // namespace imginterp::nn
