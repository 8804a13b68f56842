// diffusers' ResnetBlock2D (models/resnet.py): norm1, act, conv1, (+ time_emb_proj(act(temb))),
// norm2, act, conv2, plus the input (through conv_shortcut when the channel count changes),
// divided by output_scale_factor. The UNet, ControlNet and VAE blocks are built from it.
//
// Thread-safety: as torch::nn::Module; forward() only reads the parameters.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/TensorOptions.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>

#include "services/models/nn/activations.h"
#include "services/models/nn/layers.h"

namespace imginterp::nn {

enum class TimeEmbeddingNorm {
  kDefault,     // h = h + time_emb_proj(act(temb)) before norm2
  kScaleShift,  // time_emb_proj gives 2 x out; h = norm2(h) * (1 + scale) + shift
};

struct ResnetBlock2DOptions {
  int64_t in_channels = 0;
  int64_t out_channels = 0;     // 0: in_channels
  int64_t temb_channels = 512;  // 0: no time embedding (VAE)
  int64_t groups = 32;
  int64_t groups_out = 0;  // 0: groups
  double eps = 1e-6;
  double output_scale_factor = 1.0;
  Activation non_linearity = Activation::kSilu;
  TimeEmbeddingNorm time_embedding_norm = TimeEmbeddingNorm::kDefault;
  // The shortcut is a 3x3 conv instead of 1x1 (diffusers' conv_shortcut=True).
  bool use_conv_shortcut = false;
  bool conv_shortcut_bias = true;
  int64_t conv_2d_out_channels = 0;  // 0: out_channels
  // -1: shortcut conv exactly when in_channels != conv_2d_out_channels; 0/1 force it.
  int use_in_shortcut = -1;
};

class ResnetBlock2DImpl : public torch::nn::Module {
 public:
  explicit ResnetBlock2DImpl(const ResnetBlock2DOptions& block,
                             const c10::TensorOptions& options = {});

  // x [B, in, H, W], temb [B, temb_channels] (undefined when built without time embedding)
  // -> [B, conv_2d_out_channels, H, W].
  at::Tensor forward(const at::Tensor& x, const at::Tensor& temb = {});

  GroupNorm norm1{nullptr};
  Conv2d conv1{nullptr};
  Linear time_emb_proj{nullptr};  // with temb_channels > 0
  GroupNorm norm2{nullptr};
  Conv2d conv2{nullptr};
  Conv2d conv_shortcut{nullptr};  // when the shortcut needs a conv

 private:
  ResnetBlock2DOptions block_;
};
TORCH_MODULE(ResnetBlock2D);

}  // namespace imginterp::nn
