// The blocks of diffusers' UNet2DConditionModel, ControlNetModel and AutoencoderKL
// (models/unets/unet_2d_blocks.py), with the published checkpoint keys:
//   UNetDownBlock: CrossAttnDownBlock2D / DownBlock2D / DownEncoderBlock2D
//                  ("resnets.N", "attentions.N", "downsamplers.0")
//   UNetUpBlock:   CrossAttnUpBlock2D / UpBlock2D (with skip connections) / UpDecoderBlock2D
//                  ("resnets.N", "attentions.N", "upsamplers.0")
//   UNetMidBlock:  UNetMidBlock2DCrossAttn (Transformer2DModel attentions) / UNetMidBlock2D (the
//                  VAE's, with a group-normed single-head Attention)
//                  ("resnets.0", "attentions.0", "resnets.1", ...)
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
#include <utility>
#include <vector>

#include "services/models/nn/activations.h"
#include "services/models/nn/resnet_block.h"

namespace imginterp::diffusion {

// What the blocks of one model share.
struct UNetBlockOptions {
  int64_t in_channels = 0;
  int64_t out_channels = 0;
  int64_t temb_channels = 0;  // 0: no time embedding (VAE)
  int64_t num_layers = 1;
  int64_t resnet_groups = 32;
  double resnet_eps = 1e-5;
  nn::Activation resnet_act_fn = nn::Activation::kSilu;
  nn::TimeEmbeddingNorm resnet_time_scale_shift = nn::TimeEmbeddingNorm::kDefault;
  double output_scale_factor = 1.0;
  // Cross-attention (Transformer2DModel after each resnet); false for DownBlock2D, UpBlock2D and
  // the VAE's blocks.
  bool cross_attention = false;
  int64_t num_attention_heads = 8;
  int64_t transformer_layers = 1;
  int64_t cross_attention_dim = 768;
  bool use_linear_projection = false;
  bool only_cross_attention = false;
};

struct UNetDownBlockOptions {
  UNetBlockOptions block;
  bool add_downsample = true;
  int64_t downsample_padding = 1;  // 0 in the VAE encoder (pads right/bottom first)
};

class UNetDownBlockImpl : public torch::nn::Module {
 public:
  explicit UNetDownBlockImpl(const UNetDownBlockOptions& down,
                             const c10::TensorOptions& options = {});

  // x [B, in, H, W] -> [B, out, H', W']. Every intermediate state that the UNet keeps as a skip
  // connection (after each resnet/attention pair and after the downsampler) is appended to
  // `output_states` when it is not null.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& temb = {},
                     const at::Tensor& encoder_hidden_states = {},
                     std::vector<at::Tensor>* output_states = nullptr);

  int64_t num_output_states() const;

  torch::nn::ModuleList resnets{nullptr};
  torch::nn::ModuleList attentions{nullptr};    // with cross_attention
  torch::nn::ModuleList downsamplers{nullptr};  // with add_downsample

 private:
  UNetDownBlockOptions down_;
};
TORCH_MODULE(UNetDownBlock);

struct UNetUpBlockOptions {
  // block.in_channels is the channel count of the matching down block's input (the last skip).
  UNetBlockOptions block;
  // Channels coming from the block below. 0 for UpDecoderBlock2D (no skip connections: resnet 0
  // takes block.in_channels).
  int64_t prev_output_channel = 0;
  bool skip_connections = true;
  bool add_upsample = true;
};

class UNetUpBlockImpl : public torch::nn::Module {
 public:
  explicit UNetUpBlockImpl(const UNetUpBlockOptions& up, const c10::TensorOptions& options = {});

  // With skip connections each resnet first concatenates (on channels) the last tensor of
  // `res_samples`, which is popped. `upsample_size` {H, W} is given when the latent size is not a
  // multiple of the UNet's overall downscaling.
  at::Tensor forward(
      const at::Tensor& x, std::vector<at::Tensor>* res_samples = nullptr,
      const at::Tensor& temb = {}, const at::Tensor& encoder_hidden_states = {},
      const std::optional<std::pair<int64_t, int64_t>>& upsample_size = std::nullopt);

  int64_t num_layers() const { return up_.block.num_layers; }

  torch::nn::ModuleList resnets{nullptr};
  torch::nn::ModuleList attentions{nullptr};  // with cross_attention
  torch::nn::ModuleList upsamplers{nullptr};  // with add_upsample

 private:
  UNetUpBlockOptions up_;
};
TORCH_MODULE(UNetUpBlock);

// block.in_channels == out_channels. With block.cross_attention the attentions are
// Transformer2DModel (UNetMidBlock2DCrossAttn); without, the VAE's Attention with group_norm,
// heads = channels / attention_head_dim, bias and a residual connection (UNetMidBlock2D).
struct UNetMidBlockOptions {
  UNetBlockOptions block;
  int64_t attention_head_dim = 0;  // VAE form only; 0: channels (one head)
};

class UNetMidBlockImpl : public torch::nn::Module {
 public:
  explicit UNetMidBlockImpl(const UNetMidBlockOptions& mid, const c10::TensorOptions& options = {});

  at::Tensor forward(const at::Tensor& x, const at::Tensor& temb = {},
                     const at::Tensor& encoder_hidden_states = {});

  torch::nn::ModuleList resnets{nullptr};
  torch::nn::ModuleList attentions{nullptr};

 private:
  UNetMidBlockOptions mid_;
};
TORCH_MODULE(UNetMidBlock);

}  // namespace imginterp::diffusion
