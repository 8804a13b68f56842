#include "services/models/nn/transformer_2d.h"

#include <torch/torch.h>

namespace imginterp::nn {

Transformer2DModelImpl::Transformer2DModelImpl(const Transformer2DOptions& transformer,
                                               const c10::TensorOptions& options)
    : transformer_(transformer) {
  const int64_t inner = transformer.num_attention_heads * transformer.attention_head_dim;
  const int64_t c = transformer.in_channels;
  norm = register_module("norm", GroupNorm(transformer.norm_num_groups, c, 1e-6, true, options));
  if (transformer.use_linear_projection) {
    proj_in_linear = register_module("proj_in", Linear(c, inner, true, options));
  } else {
    proj_in_conv =
        register_module("proj_in", Conv2d(Conv2dOptions{c, inner, 1, 1, 0, 1, true}, options));
  }
  transformer_blocks = register_module("transformer_blocks", torch::nn::ModuleList());
  BasicTransformerBlockOptions block;
  block.dim = inner;
  block.num_attention_heads = transformer.num_attention_heads;
  block.attention_head_dim = transformer.attention_head_dim;
  block.cross_attention_dim = transformer.cross_attention_dim;
  block.activation_fn = transformer.activation_fn;
  block.attention_bias = transformer.attention_bias;
  block.only_cross_attention = transformer.only_cross_attention;
  block.norm_eps = transformer.norm_eps;
  for (int64_t i = 0; i < transformer.num_layers; ++i) {
    transformer_blocks->push_back(BasicTransformerBlock(block, options));
  }
  if (transformer.use_linear_projection) {
    proj_out_linear = register_module("proj_out", Linear(inner, c, true, options));
  } else {
    proj_out_conv =
        register_module("proj_out", Conv2d(Conv2dOptions{inner, c, 1, 1, 0, 1, true}, options));
  }
}

at::Tensor Transformer2DModelImpl::forward(
    const at::Tensor& x, const at::Tensor& encoder_hidden_states,
    const std::optional<at::Tensor>& encoder_attention_mask) {
  const int64_t b = x.size(0), h = x.size(2), w = x.size(3);
  at::Tensor hs = norm->forward(x);
  int64_t inner = 0;
  if (proj_in_conv) {
    hs = proj_in_conv->forward(hs);
    inner = hs.size(1);
    hs = hs.permute({0, 2, 3, 1}).reshape({b, h * w, inner});
  } else {
    inner = hs.size(1);
    hs = hs.permute({0, 2, 3, 1}).reshape({b, h * w, inner});
    hs = proj_in_linear->forward(hs);
    inner = hs.size(2);
  }
  for (const auto& block : *transformer_blocks) {
    hs = block->as<BasicTransformerBlockImpl>()->forward(hs, encoder_hidden_states,
                                                         encoder_attention_mask);
  }
  if (proj_out_conv) {
    hs = hs.reshape({b, h, w, inner}).permute({0, 3, 1, 2}).contiguous();
    hs = proj_out_conv->forward(hs);
  } else {
    hs = proj_out_linear->forward(hs);
    hs = hs.reshape({b, h, w, hs.size(2)}).permute({0, 3, 1, 2}).contiguous();
  }
  return hs + x;
}

}  // namespace imginterp::nn
