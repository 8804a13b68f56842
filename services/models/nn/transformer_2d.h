// diffusers' Transformer2DModel for continuous (latent image) input, as used by the SD UNet and
// ControlNet: GroupNorm "norm", "proj_in" (1x1 conv, or linear with use_linear_projection),
// "transformer_blocks.N" (BasicTransformerBlock), "proj_out", plus the input as residual.
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

#include "services/models/nn/basic_transformer_block.h"
#include "services/models/nn/layers.h"

namespace imginterp::nn {

struct Transformer2DOptions {
  int64_t num_attention_heads = 16;
  int64_t attention_head_dim = 88;
  int64_t in_channels = 0;
  int64_t num_layers = 1;
  int64_t cross_attention_dim = 0;  // 0: self-attention only
  int64_t norm_num_groups = 32;
  bool use_linear_projection = false;
  bool attention_bias = false;
  bool only_cross_attention = false;
  FeedForwardActivation activation_fn = FeedForwardActivation::kGeglu;
  double norm_eps = 1e-5;  // of the blocks' LayerNorms (the GroupNorm uses 1e-6, as diffusers)
};

class Transformer2DModelImpl : public torch::nn::Module {
 public:
  explicit Transformer2DModelImpl(const Transformer2DOptions& transformer,
                                  const c10::TensorOptions& options = {});

  // x [B, in_channels, H, W] -> same shape.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& encoder_hidden_states = {},
                     const std::optional<at::Tensor>& encoder_attention_mask = std::nullopt);

  GroupNorm norm{nullptr};
  Conv2d proj_in_conv{nullptr};    // "proj_in" without use_linear_projection
  Linear proj_in_linear{nullptr};  // "proj_in" with use_linear_projection
  torch::nn::ModuleList transformer_blocks{nullptr};
  Conv2d proj_out_conv{nullptr};
  Linear proj_out_linear{nullptr};

 private:
  Transformer2DOptions transformer_;
};
TORCH_MODULE(Transformer2DModel);

}  // namespace imginterp::nn
