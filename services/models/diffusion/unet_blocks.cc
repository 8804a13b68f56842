#include "services/models/diffusion/unet_blocks.h"

#include <torch/torch.h>

#include "services/models/nn/attention.h"
#include "services/models/nn/sampling.h"
#include "services/models/nn/transformer_2d.h"

namespace imginterp::diffusion {
namespace {

nn::ResnetBlock2D MakeResnet(const UNetBlockOptions& b, int64_t in, int64_t out,
                             const c10::TensorOptions& options) {
  nn::ResnetBlock2DOptions r;
  r.in_channels = in;
  r.out_channels = out;
  r.temb_channels = b.temb_channels;
  r.groups = b.resnet_groups;
  r.eps = b.resnet_eps;
  r.output_scale_factor = b.output_scale_factor;
  r.non_linearity = b.resnet_act_fn;
  r.time_embedding_norm = b.resnet_time_scale_shift;
  return nn::ResnetBlock2D(r, options);
}

nn::Transformer2DModel MakeTransformer(const UNetBlockOptions& b, int64_t channels,
                                       const c10::TensorOptions& options) {
  TORCH_CHECK(b.num_attention_heads > 0 && channels % b.num_attention_heads == 0,
              "UNet block: ", channels, " channels are not divisible by ", b.num_attention_heads,
              " attention heads");
  nn::Transformer2DOptions t;
  t.num_attention_heads = b.num_attention_heads;
  t.attention_head_dim = channels / b.num_attention_heads;
  t.in_channels = channels;
  t.num_layers = b.transformer_layers;
  t.cross_attention_dim = b.cross_attention_dim;
  t.norm_num_groups = b.resnet_groups;
  t.use_linear_projection = b.use_linear_projection;
  t.only_cross_attention = b.only_cross_attention;
  return nn::Transformer2DModel(t, options);
}

at::Tensor RunResnet(const std::shared_ptr<torch::nn::Module>& m, const at::Tensor& x,
                     const at::Tensor& temb) {
  return m->as<nn::ResnetBlock2DImpl>()->forward(x, temb);
}

at::Tensor RunTransformer(const std::shared_ptr<torch::nn::Module>& m, const at::Tensor& x,
                          const at::Tensor& encoder_hidden_states) {
  return m->as<nn::Transformer2DModelImpl>()->forward(x, encoder_hidden_states);
}

}  // namespace

UNetDownBlockImpl::UNetDownBlockImpl(const UNetDownBlockOptions& down,
                                     const c10::TensorOptions& options)
    : down_(down) {
  const UNetBlockOptions& b = down.block;
  resnets = register_module("resnets", torch::nn::ModuleList());
  if (b.cross_attention) attentions = register_module("attentions", torch::nn::ModuleList());
  for (int64_t i = 0; i < b.num_layers; ++i) {
    resnets->push_back(
        MakeResnet(b, i == 0 ? b.in_channels : b.out_channels, b.out_channels, options));
    if (b.cross_attention) attentions->push_back(MakeTransformer(b, b.out_channels, options));
  }
  if (down.add_downsample) {
    nn::Downsample2DOptions d;
    d.channels = b.out_channels;
    d.out_channels = b.out_channels;
    d.padding = down.downsample_padding;
    downsamplers =
        register_module("downsamplers", torch::nn::ModuleList(nn::Downsample2D(d, options)));
  }
}

int64_t UNetDownBlockImpl::num_output_states() const {
  return down_.block.num_layers + (downsamplers ? 1 : 0);
}

at::Tensor UNetDownBlockImpl::forward(const at::Tensor& x, const at::Tensor& temb,
                                      const at::Tensor& encoder_hidden_states,
                                      std::vector<at::Tensor>* output_states) {
  at::Tensor h = x;
  for (size_t i = 0; i < resnets->size(); ++i) {
    h = RunResnet(resnets->ptr(i), h, temb);
    if (attentions) h = RunTransformer(attentions->ptr(i), h, encoder_hidden_states);
    if (output_states != nullptr) output_states->push_back(h);
  }
  if (downsamplers) {
    h = downsamplers->ptr(0)->as<nn::Downsample2DImpl>()->forward(h);
    if (output_states != nullptr) output_states->push_back(h);
  }
  return h;
}

UNetUpBlockImpl::UNetUpBlockImpl(const UNetUpBlockOptions& up, const c10::TensorOptions& options)
    : up_(up) {
  const UNetBlockOptions& b = up.block;
  resnets = register_module("resnets", torch::nn::ModuleList());
  if (b.cross_attention) attentions = register_module("attentions", torch::nn::ModuleList());
  for (int64_t i = 0; i < b.num_layers; ++i) {
    int64_t in = 0;
    if (up.skip_connections) {
      const int64_t skip = i == b.num_layers - 1 ? b.in_channels : b.out_channels;
      in = (i == 0 ? up.prev_output_channel : b.out_channels) + skip;
    } else {
      in = i == 0 ? b.in_channels : b.out_channels;
    }
    resnets->push_back(MakeResnet(b, in, b.out_channels, options));
    if (b.cross_attention) attentions->push_back(MakeTransformer(b, b.out_channels, options));
  }
  if (up.add_upsample) {
    nn::Upsample2DOptions u;
    u.channels = b.out_channels;
    u.out_channels = b.out_channels;
    upsamplers = register_module("upsamplers", torch::nn::ModuleList(nn::Upsample2D(u, options)));
  }
}

at::Tensor UNetUpBlockImpl::forward(
    const at::Tensor& x, std::vector<at::Tensor>* res_samples, const at::Tensor& temb,
    const at::Tensor& encoder_hidden_states,
    const std::optional<std::pair<int64_t, int64_t>>& upsample_size) {
  at::Tensor h = x;
  for (size_t i = 0; i < resnets->size(); ++i) {
    if (up_.skip_connections) {
      TORCH_CHECK(res_samples != nullptr && !res_samples->empty(),
                  "UNet up block: ran out of skip connections");
      h = torch::cat({h, res_samples->back()}, 1);
      res_samples->pop_back();
    }
    h = RunResnet(resnets->ptr(i), h, temb);
    if (attentions) h = RunTransformer(attentions->ptr(i), h, encoder_hidden_states);
  }
  if (upsamplers) h = upsamplers->ptr(0)->as<nn::Upsample2DImpl>()->forward(h, upsample_size);
  return h;
}

UNetMidBlockImpl::UNetMidBlockImpl(const UNetMidBlockOptions& mid,
                                   const c10::TensorOptions& options)
    : mid_(mid) {
  const UNetBlockOptions& b = mid.block;
  const int64_t c = b.in_channels;
  resnets = register_module("resnets", torch::nn::ModuleList());
  attentions = register_module("attentions", torch::nn::ModuleList());
  resnets->push_back(MakeResnet(b, c, c, options));
  for (int64_t i = 0; i < b.num_layers; ++i) {
    if (b.cross_attention) {
      attentions->push_back(MakeTransformer(b, c, options));
    } else {
      const int64_t head_dim = mid.attention_head_dim > 0 ? mid.attention_head_dim : c;
      TORCH_CHECK(c % head_dim == 0, "UNet mid block: ", c,
                  " channels are not divisible by attention_head_dim ", head_dim);
      nn::AttentionOptions a;
      a.query_dim = c;
      a.heads = c / head_dim;
      a.dim_head = head_dim;
      a.bias = true;
      a.norm_num_groups = b.resnet_groups;
      a.eps = b.resnet_eps;
      a.residual_connection = true;
      a.rescale_output_factor = b.output_scale_factor;
      attentions->push_back(nn::Attention(a, options));
    }
    resnets->push_back(MakeResnet(b, c, c, options));
  }
}

at::Tensor UNetMidBlockImpl::forward(const at::Tensor& x, const at::Tensor& temb,
                                     const at::Tensor& encoder_hidden_states) {
  at::Tensor h = RunResnet(resnets->ptr(0), x, temb);
  for (size_t i = 0; i < attentions->size(); ++i) {
    if (mid_.block.cross_attention) {
      h = RunTransformer(attentions->ptr(i), h, encoder_hidden_states);
    } else {
      h = attentions->ptr(i)->as<nn::AttentionImpl>()->forward(h);
    }
    h = RunResnet(resnets->ptr(i + 1), h, temb);
  }
  return h;
}

}  // namespace imginterp::diffusion
