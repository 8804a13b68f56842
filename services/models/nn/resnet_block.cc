#include "services/models/nn/resnet_block.h"

#include <torch/torch.h>

namespace imginterp::nn {

ResnetBlock2DImpl::ResnetBlock2DImpl(const ResnetBlock2DOptions& block,
                                     const c10::TensorOptions& options)
    : block_(block) {
  const int64_t in = block.in_channels;
  const int64_t out = block.out_channels > 0 ? block.out_channels : in;
  const int64_t out2d = block.conv_2d_out_channels > 0 ? block.conv_2d_out_channels : out;
  const int64_t groups_out = block.groups_out > 0 ? block.groups_out : block.groups;
  norm1 = register_module("norm1", GroupNorm(block.groups, in, block.eps, true, options));
  conv1 = register_module("conv1", Conv2d(Conv2dOptions{in, out, 3, 1, 1, 1, true}, options));
  if (block.temb_channels > 0) {
    const int64_t temb_out =
        block.time_embedding_norm == TimeEmbeddingNorm::kScaleShift ? 2 * out : out;
    time_emb_proj =
        register_module("time_emb_proj", Linear(block.temb_channels, temb_out, true, options));
  }
  norm2 = register_module("norm2", GroupNorm(groups_out, out, block.eps, true, options));
  conv2 = register_module("conv2", Conv2d(Conv2dOptions{out, out2d, 3, 1, 1, 1, true}, options));
  const bool shortcut = block.use_in_shortcut < 0 ? in != out2d : block.use_in_shortcut != 0;
  if (shortcut) {
    const int64_t k = block.use_conv_shortcut ? 3 : 1;
    conv_shortcut = register_module(
        "conv_shortcut",
        Conv2d(Conv2dOptions{in, out2d, k, 1, k / 2, 1, block.conv_shortcut_bias}, options));
  }
}

at::Tensor ResnetBlock2DImpl::forward(const at::Tensor& x, const at::Tensor& temb) {
  at::Tensor h = conv1->forward(Activate(block_.non_linearity, norm1->forward(x)));
  at::Tensor t;
  if (time_emb_proj && temb.defined()) {
    t = time_emb_proj->forward(Activate(block_.non_linearity, temb)).unsqueeze(-1).unsqueeze(-1);
  }
  if (block_.time_embedding_norm == TimeEmbeddingNorm::kScaleShift) {
    TORCH_CHECK(t.defined(), "ResnetBlock2D: scale_shift time embedding needs temb");
    auto parts = t.chunk(2, 1);
    h = norm2->forward(h) * (1 + parts[0]) + parts[1];
  } else {
    if (t.defined()) h = h + t;
    h = norm2->forward(h);
  }
  h = conv2->forward(Activate(block_.non_linearity, h));
  const at::Tensor shortcut = conv_shortcut ? conv_shortcut->forward(x) : x;
  at::Tensor out = shortcut + h;
  if (block_.output_scale_factor != 1.0) out = out / block_.output_scale_factor;
  return out;
}

}  // namespace imginterp::nn
