// diffusers' Downsample2D and Upsample2D (models/downsampling.py, models/upsampling.py) in the
// forms SD uses: a stride-2 3x3 conv "conv" (or 2x2 average pooling), and nearest-neighbour x2
// upsampling followed by a 3x3 conv "conv".
//
// Thread-safety: as torch::nn::Module; forward() only reads the parameters.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/TensorOptions.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <optional>
#include <utility>

#include "services/models/nn/layers.h"

namespace imginterp::nn {

struct Downsample2DOptions {
  int64_t channels = 0;
  bool use_conv = true;      // false: AvgPool2d(2, 2), which needs out_channels == channels
  int64_t out_channels = 0;  // 0: channels
  // Padding of the conv. 0 (the VAE encoder) pads the input by one on the right and bottom first,
  // as diffusers does.
  int64_t padding = 1;
  int64_t kernel_size = 3;
  bool bias = true;
};

class Downsample2DImpl : public torch::nn::Module {
 public:
  explicit Downsample2DImpl(const Downsample2DOptions& down,
                            const c10::TensorOptions& options = {});
  at::Tensor forward(const at::Tensor& x);

  Conv2d conv{nullptr};  // with use_conv

 private:
  Downsample2DOptions down_;
};
TORCH_MODULE(Downsample2D);

struct Upsample2DOptions {
  int64_t channels = 0;
  bool use_conv = true;
  int64_t out_channels = 0;  // 0: channels
  int64_t kernel_size = 3;
  int64_t padding = 1;
  bool bias = true;
};

class Upsample2DImpl : public torch::nn::Module {
 public:
  explicit Upsample2DImpl(const Upsample2DOptions& up, const c10::TensorOptions& options = {});

  // Nearest-neighbour to twice the size, or to `output_size` {height, width} when given (the
  // UNet passes the skip connection's size when the latent size is not a multiple of 8); then the
  // conv.
  at::Tensor forward(const at::Tensor& x,
                     const std::optional<std::pair<int64_t, int64_t>>& output_size = std::nullopt);

  Conv2d conv{nullptr};  // with use_conv

 private:
  Upsample2DOptions up_;
};
TORCH_MODULE(Upsample2D);

}  // namespace imginterp::nn
