#include "services/models/diffusion/unet.h"

#include <torch/torch.h>

#include "services/core/common/status_macros.h"
#include "services/models/io/diffusers_folder.h"

namespace imginterp::diffusion {
namespace detail {
namespace {

UNetBlockOptions BlockBase(const UNet2DConditionConfig& c) {
  UNetBlockOptions b;
  b.temb_channels = c.TimeEmbedDim();
  b.resnet_groups = c.norm_num_groups;
  b.resnet_eps = c.norm_eps;
  b.resnet_act_fn = c.act_fn;
  b.resnet_time_scale_shift = c.resnet_time_scale_shift;
  b.cross_attention_dim = c.cross_attention_dim;
  b.use_linear_projection = c.use_linear_projection;
  b.only_cross_attention = c.only_cross_attention;
  return b;
}

}  // namespace

nn::Conv2d MakeConvIn(const UNet2DConditionConfig& c, const c10::TensorOptions& options) {
  const int64_t k = c.conv_in_kernel;
  return nn::Conv2d(
      nn::Conv2dOptions{c.in_channels, c.block_out_channels.at(0), k, 1, (k - 1) / 2, 1, true},
      options);
}

nn::Timesteps MakeTimeProj(const UNet2DConditionConfig& c) {
  nn::TimestepsOptions t;
  t.num_channels = c.block_out_channels.at(0);
  t.flip_sin_to_cos = c.flip_sin_to_cos;
  t.downscale_freq_shift = c.freq_shift;
  return nn::Timesteps(t);
}

nn::TimestepEmbedding MakeTimeEmbedding(const UNet2DConditionConfig& c,
                                        const c10::TensorOptions& options) {
  return nn::TimestepEmbedding(c.block_out_channels.at(0), c.TimeEmbedDim(), c.act_fn, 0, options);
}

torch::nn::ModuleList MakeDownBlocks(const UNet2DConditionConfig& c,
                                     const c10::TensorOptions& options) {
  torch::nn::ModuleList blocks;
  int64_t output_channel = c.block_out_channels.at(0);
  const size_t n = c.down_block_types.size();
  for (size_t i = 0; i < n; ++i) {
    const int64_t input_channel = output_channel;
    output_channel = c.block_out_channels.at(i);
    UNetDownBlockOptions down;
    down.block = BlockBase(c);
    down.block.in_channels = input_channel;
    down.block.out_channels = output_channel;
    down.block.num_layers = c.layers_per_block.at(i);
    down.block.transformer_layers = c.transformer_layers_per_block.at(i);
    down.block.num_attention_heads = c.num_attention_heads.at(i);
    down.block.cross_attention = c.down_block_types[i] == DownBlockType::kCrossAttnDownBlock2D;
    down.add_downsample = i + 1 < n;
    down.downsample_padding = c.downsample_padding;
    blocks->push_back(UNetDownBlock(down, options));
  }
  return blocks;
}

UNetMidBlock MakeMidBlock(const UNet2DConditionConfig& c, const c10::TensorOptions& options) {
  UNetMidBlockOptions mid;
  mid.block = BlockBase(c);
  mid.block.in_channels = c.block_out_channels.back();
  mid.block.out_channels = c.block_out_channels.back();
  mid.block.num_layers = 1;
  mid.block.transformer_layers = c.transformer_layers_per_block.back();
  mid.block.num_attention_heads = c.num_attention_heads.back();
  mid.block.output_scale_factor = c.mid_block_scale_factor;
  mid.block.cross_attention = true;
  return UNetMidBlock(mid, options);
}

at::Tensor EmbedTimestep(nn::TimestepsImpl& time_proj, nn::TimestepEmbeddingImpl& time_embedding,
                         const at::Tensor& timestep, int64_t batch, const at::Tensor& like) {
  at::Tensor t = timestep.to(like.device());
  if (t.dim() == 0) t = t.reshape({1});
  TORCH_CHECK(t.dim() == 1 && (t.size(0) == 1 || t.size(0) == batch),
              "timestep must be a scalar or have 1 or ", batch, " entries, got ", t.sizes());
  t = t.expand({batch});
  at::Tensor t_emb = time_proj.forward(t).to(like.scalar_type());
  return time_embedding.forward(t_emb);
}

std::vector<at::Tensor> RunDownBlocks(torch::nn::ModuleList& down_blocks, at::Tensor* sample,
                                      const at::Tensor& temb,
                                      const at::Tensor& encoder_hidden_states) {
  std::vector<at::Tensor> states = {*sample};
  for (const auto& block : *down_blocks) {
    *sample =
        block->as<UNetDownBlockImpl>()->forward(*sample, temb, encoder_hidden_states, &states);
  }
  return states;
}

}  // namespace detail

UNet2DConditionModelImpl::UNet2DConditionModelImpl(const UNet2DConditionConfig& config,
                                                   const c10::TensorOptions& options)
    : config_(config) {
  const auto& c = config;
  const size_t n = c.block_out_channels.size();
  TORCH_CHECK(n > 0 && c.down_block_types.size() == n && c.up_block_types.size() == n &&
                  c.layers_per_block.size() == n && c.num_attention_heads.size() == n &&
                  c.transformer_layers_per_block.size() == n,
              "UNet config: block lists must all have ", n, " entries");
  conv_in = register_module("conv_in", detail::MakeConvIn(c, options));
  time_proj = register_module("time_proj", detail::MakeTimeProj(c));
  time_embedding = register_module("time_embedding", detail::MakeTimeEmbedding(c, options));
  down_blocks = register_module("down_blocks", detail::MakeDownBlocks(c, options));
  mid_block = register_module("mid_block", detail::MakeMidBlock(c, options));

  up_blocks = register_module("up_blocks", torch::nn::ModuleList());
  int64_t output_channel = c.block_out_channels.back();
  for (size_t i = 0; i < n; ++i) {
    const size_t r = n - 1 - i;  // the matching down block
    const int64_t prev_output_channel = output_channel;
    output_channel = c.block_out_channels[r];
    const int64_t input_channel = c.block_out_channels[r == 0 ? 0 : r - 1];
    UNetUpBlockOptions up;
    up.block.temb_channels = c.TimeEmbedDim();
    up.block.resnet_groups = c.norm_num_groups;
    up.block.resnet_eps = c.norm_eps;
    up.block.resnet_act_fn = c.act_fn;
    up.block.resnet_time_scale_shift = c.resnet_time_scale_shift;
    up.block.cross_attention_dim = c.cross_attention_dim;
    up.block.use_linear_projection = c.use_linear_projection;
    up.block.only_cross_attention = c.only_cross_attention;
    up.block.in_channels = input_channel;
    up.block.out_channels = output_channel;
    up.block.num_layers = c.layers_per_block[r] + 1;
    up.block.transformer_layers = c.transformer_layers_per_block[r];
    up.block.num_attention_heads = c.num_attention_heads[r];
    up.block.cross_attention = c.up_block_types[i] == UpBlockType::kCrossAttnUpBlock2D;
    up.prev_output_channel = prev_output_channel;
    up.skip_connections = true;
    up.add_upsample = i + 1 < n;
    up_blocks->push_back(UNetUpBlock(up, options));
  }
  conv_norm_out = register_module(
      "conv_norm_out",
      nn::GroupNorm(c.norm_num_groups, c.block_out_channels.at(0), c.norm_eps, true, options));
  const int64_t k = c.conv_out_kernel;
  conv_out = register_module(
      "conv_out", nn::Conv2d(nn::Conv2dOptions{c.block_out_channels.at(0), c.out_channels, k, 1,
                                               (k - 1) / 2, 1, true},
                             options));
}

int64_t UNet2DConditionModelImpl::NumDownResiduals() const {
  int64_t count = 1;
  for (const auto& block : *down_blocks) {
    count += block->as<UNetDownBlockImpl>()->num_output_states();
  }
  return count;
}

at::Tensor UNet2DConditionModelImpl::forward(
    const at::Tensor& sample, const at::Tensor& timestep, const at::Tensor& encoder_hidden_states,
    const std::vector<at::Tensor>& down_block_additional_residuals,
    const at::Tensor& mid_block_additional_residual) {
  TORCH_CHECK(sample.dim() == 4 && sample.size(1) == config_.in_channels,
              "UNet: sample must be [B, ", config_.in_channels, ", H, W], got ", sample.sizes());
  TORCH_CHECK(encoder_hidden_states.dim() == 3 && encoder_hidden_states.size(0) == sample.size(0) &&
                  encoder_hidden_states.size(2) == config_.cross_attention_dim,
              "UNet: encoder_hidden_states must be [", sample.size(0), ", L, ",
              config_.cross_attention_dim, "], got ", encoder_hidden_states.sizes());
  const bool is_controlnet =
      !down_block_additional_residuals.empty() && mid_block_additional_residual.defined();
  TORCH_CHECK(is_controlnet || (down_block_additional_residuals.empty() &&
                                !mid_block_additional_residual.defined()),
              "UNet: ControlNet residuals need both the down and the mid residuals");

  // Upsamplers are told the skip connection's size when the latent is not a multiple of the
  // overall downscaling (e.g. 2^3 for SD).
  const int64_t up_factor = int64_t{1} << (up_blocks->size() - 1);
  const bool forward_upsample_size =
      sample.size(2) % up_factor != 0 || sample.size(3) % up_factor != 0;

  const at::Tensor emb =
      detail::EmbedTimestep(*time_proj, *time_embedding, timestep, sample.size(0), sample);
  at::Tensor h = config_.center_input_sample ? 2 * sample - 1.0 : sample;
  h = conv_in->forward(h);
  std::vector<at::Tensor> res = detail::RunDownBlocks(down_blocks, &h, emb, encoder_hidden_states);

  if (is_controlnet) {
    TORCH_CHECK(down_block_additional_residuals.size() == res.size(), "UNet: expected ", res.size(),
                " ControlNet down residuals, got ", down_block_additional_residuals.size());
    for (size_t i = 0; i < res.size(); ++i) res[i] = res[i] + down_block_additional_residuals[i];
  }
  h = mid_block->forward(h, emb, encoder_hidden_states);
  if (is_controlnet) h = h + mid_block_additional_residual;

  for (size_t i = 0; i < up_blocks->size(); ++i) {
    auto* block = up_blocks->ptr(i)->as<UNetUpBlockImpl>();
    const bool is_final = i + 1 == up_blocks->size();
    const size_t take = static_cast<size_t>(block->num_layers());
    TORCH_CHECK(res.size() >= take, "UNet: not enough skip connections for up block ", i);
    std::vector<at::Tensor> block_res(res.end() - take, res.end());
    res.resize(res.size() - take);
    std::optional<std::pair<int64_t, int64_t>> upsample_size;
    if (!is_final && forward_upsample_size) {
      upsample_size = std::make_pair(res.back().size(2), res.back().size(3));
    }
    h = block->forward(h, &block_res, emb, encoder_hidden_states, upsample_size);
  }
  h = nn::Activate(config_.act_fn, conv_norm_out->forward(h));
  return conv_out->forward(h);
}

absl::StatusOr<UNet2DConditionModel> CreateUNet2DConditionModel(const UNet2DConditionConfig& config,
                                                                const c10::TensorOptions& options) {
  return detail::BuildAndLoad<UNet2DConditionModel>(
      "UNet", [&] { return UNet2DConditionModel(config, options); }, nullptr, {});
}

absl::StatusOr<UNet2DConditionModel> LoadUNet2DConditionModel(const UNet2DConditionConfig& config,
                                                              const models::TensorSource& weights,
                                                              const c10::TensorOptions& options,
                                                              const models::LoadOptions& load) {
  return detail::BuildAndLoad<UNet2DConditionModel>(
      "UNet", [&] { return UNet2DConditionModel(config, options); }, &weights, load);
}

absl::StatusOr<UNet2DConditionModel> LoadUNet2DConditionModelFromFolder(
    const std::string& dir, const c10::TensorOptions& options, std::string_view variant) {
  IMGINTERP_ASSIGN_OR_RETURN(UNet2DConditionConfig config,
                             UNet2DConditionConfig::FromFile(dir + "/config.json"));
  IMGINTERP_ASSIGN_OR_RETURN(auto weights, models::OpenModelFolderWeights(dir, variant));
  return LoadUNet2DConditionModel(config, *weights, options);
}

}  // namespace imginterp::diffusion
