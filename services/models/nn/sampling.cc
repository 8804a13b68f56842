#include "services/models/nn/sampling.h"

#include <torch/torch.h>

namespace imginterp::nn {

Downsample2DImpl::Downsample2DImpl(const Downsample2DOptions& down,
                                   const c10::TensorOptions& options)
    : down_(down) {
  const int64_t out = down.out_channels > 0 ? down.out_channels : down.channels;
  if (down.use_conv) {
    conv = register_module("conv", Conv2d(Conv2dOptions{down.channels, out, down.kernel_size, 2,
                                                        down.padding, 1, down.bias},
                                          options));
  } else {
    TORCH_CHECK(out == down.channels, "Downsample2D: average pooling cannot change channels ",
                down.channels, " to ", out);
  }
}

at::Tensor Downsample2DImpl::forward(const at::Tensor& x) {
  TORCH_CHECK(x.size(1) == down_.channels, "Downsample2D: input has ", x.size(1),
              " channels, expected ", down_.channels);
  if (!conv) return torch::avg_pool2d(x, {2, 2}, {2, 2});
  if (down_.padding == 0) {
    return conv->forward(torch::constant_pad_nd(x, {0, 1, 0, 1}, 0));
  }
  return conv->forward(x);
}

Upsample2DImpl::Upsample2DImpl(const Upsample2DOptions& up, const c10::TensorOptions& options)
    : up_(up) {
  const int64_t out = up.out_channels > 0 ? up.out_channels : up.channels;
  if (up.use_conv) {
    conv = register_module(
        "conv", Conv2d(Conv2dOptions{up.channels, out, up.kernel_size, 1, up.padding, 1, up.bias},
                       options));
  }
}

at::Tensor Upsample2DImpl::forward(const at::Tensor& x,
                                   const std::optional<std::pair<int64_t, int64_t>>& output_size) {
  TORCH_CHECK(x.size(1) == up_.channels, "Upsample2D: input has ", x.size(1),
              " channels, expected ", up_.channels);
  at::Tensor h = x;
  const bool reduced = h.scalar_type() == at::kBFloat16;
  if (reduced) h = h.to(at::kFloat);
  if (output_size.has_value()) {
    h = torch::upsample_nearest2d(h, {output_size->first, output_size->second});
  } else {
    h = torch::upsample_nearest2d(h, {2 * h.size(2), 2 * h.size(3)});
  }
  if (reduced) h = h.to(at::kBFloat16);
  return conv ? conv->forward(h) : h;
}

}  // namespace imginterp::nn
