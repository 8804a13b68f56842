#include "services/models/diffusion/controlnet.h"

#include <torch/torch.h>

#include "services/core/common/status_macros.h"
#include "services/models/io/diffusers_folder.h"

namespace imginterp::diffusion {
namespace {

nn::Conv2d ZeroConv(int64_t channels, const c10::TensorOptions& options) {
  return nn::Conv2d(nn::Conv2dOptions{channels, channels, 1, 1, 0, 1, true}, options);
}

}  // namespace

void AccumulateControlNetOutput(const ControlNetOutput& other, ControlNetOutput* sum) {
  if (sum->down_block_res_samples.empty() && !sum->mid_block_res_sample.defined()) {
    *sum = other;
    return;
  }
  TORCH_CHECK(sum->down_block_res_samples.size() == other.down_block_res_samples.size(),
              "ControlNet outputs to add have ", sum->down_block_res_samples.size(), " and ",
              other.down_block_res_samples.size(), " down residuals");
  for (size_t i = 0; i < other.down_block_res_samples.size(); ++i) {
    sum->down_block_res_samples[i] =
        sum->down_block_res_samples[i] + other.down_block_res_samples[i];
  }
  sum->mid_block_res_sample = sum->mid_block_res_sample + other.mid_block_res_sample;
}

ControlNetConditioningEmbeddingImpl::ControlNetConditioningEmbeddingImpl(
    int64_t conditioning_embedding_channels, const std::vector<int64_t>& block_out_channels,
    int64_t conditioning_channels, const c10::TensorOptions& options) {
  TORCH_CHECK(!block_out_channels.empty(),
              "ControlNet: conditioning_embedding_out_channels is empty");
  conv_in = register_module(
      "conv_in",
      nn::Conv2d(nn::Conv2dOptions{conditioning_channels, block_out_channels[0], 3, 1, 1, 1, true},
                 options));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (size_t i = 0; i + 1 < block_out_channels.size(); ++i) {
    const int64_t in = block_out_channels[i];
    const int64_t out = block_out_channels[i + 1];
    blocks->push_back(nn::Conv2d(nn::Conv2dOptions{in, in, 3, 1, 1, 1, true}, options));
    blocks->push_back(nn::Conv2d(nn::Conv2dOptions{in, out, 3, 2, 1, 1, true}, options));
  }
  conv_out = register_module(
      "conv_out", nn::Conv2d(nn::Conv2dOptions{block_out_channels.back(),
                                               conditioning_embedding_channels, 3, 1, 1, 1, true},
                             options));
}

at::Tensor ControlNetConditioningEmbeddingImpl::forward(const at::Tensor& conditioning) {
  at::Tensor h = torch::silu(conv_in->forward(conditioning));
  for (const auto& block : *blocks) h = torch::silu(block->as<nn::Conv2dImpl>()->forward(h));
  return conv_out->forward(h);
}

ControlNetModelImpl::ControlNetModelImpl(const ControlNetConfig& config,
                                         const c10::TensorOptions& options)
    : config_(config) {
  const auto& c = config.unet;
  const size_t n = c.block_out_channels.size();
  TORCH_CHECK(n > 0 && c.down_block_types.size() == n && c.layers_per_block.size() == n &&
                  c.num_attention_heads.size() == n && c.transformer_layers_per_block.size() == n,
              "ControlNet config: block lists must all have ", n, " entries");
  conv_in = register_module("conv_in", detail::MakeConvIn(c, options));
  time_proj = register_module("time_proj", detail::MakeTimeProj(c));
  time_embedding = register_module("time_embedding", detail::MakeTimeEmbedding(c, options));
  controlnet_cond_embedding =
      register_module("controlnet_cond_embedding",
                      ControlNetConditioningEmbedding(c.block_out_channels[0],
                                                      config.conditioning_embedding_out_channels,
                                                      config.conditioning_channels, options));
  down_blocks = register_module("down_blocks", detail::MakeDownBlocks(c, options));
  controlnet_down_blocks = register_module("controlnet_down_blocks", torch::nn::ModuleList());
  controlnet_down_blocks->push_back(ZeroConv(c.block_out_channels[0], options));
  for (size_t i = 0; i < n; ++i) {
    const int64_t ch = c.block_out_channels[i];
    for (int64_t j = 0; j < c.layers_per_block[i]; ++j) {
      controlnet_down_blocks->push_back(ZeroConv(ch, options));
    }
    if (i + 1 < n) controlnet_down_blocks->push_back(ZeroConv(ch, options));
  }
  mid_block = register_module("mid_block", detail::MakeMidBlock(c, options));
  controlnet_mid_block =
      register_module("controlnet_mid_block", ZeroConv(c.block_out_channels.back(), options));
}

ControlNetOutput ControlNetModelImpl::forward(const at::Tensor& sample, const at::Tensor& timestep,
                                              const at::Tensor& encoder_hidden_states,
                                              const at::Tensor& controlnet_cond,
                                              double conditioning_scale, bool guess_mode) {
  const auto& c = config_.unet;
  TORCH_CHECK(sample.dim() == 4 && sample.size(1) == c.in_channels,
              "ControlNet: sample must be [B, ", c.in_channels, ", h, w], got ", sample.sizes());
  TORCH_CHECK(controlnet_cond.dim() == 4 && controlnet_cond.size(0) == sample.size(0) &&
                  controlnet_cond.size(1) == config_.conditioning_channels,
              "ControlNet: controlnet_cond must be [", sample.size(0), ", ",
              config_.conditioning_channels, ", H, W], got ", controlnet_cond.sizes());
  TORCH_CHECK(encoder_hidden_states.dim() == 3 && encoder_hidden_states.size(0) == sample.size(0) &&
                  encoder_hidden_states.size(2) == c.cross_attention_dim,
              "ControlNet: encoder_hidden_states must be [", sample.size(0), ", L, ",
              c.cross_attention_dim, "], got ", encoder_hidden_states.sizes());
  const at::Tensor cond = config_.conditioning_bgr ? controlnet_cond.flip({1}) : controlnet_cond;

  const at::Tensor emb =
      detail::EmbedTimestep(*time_proj, *time_embedding, timestep, sample.size(0), sample);
  at::Tensor h = conv_in->forward(sample);
  const at::Tensor cond_embedding = controlnet_cond_embedding->forward(cond);
  TORCH_CHECK(cond_embedding.sizes() == h.sizes(), "ControlNet: the condition image embeds to ",
              cond_embedding.sizes(), " but the latent is ", h.sizes(),
              "; the image must be 8x the latent size");
  h = h + cond_embedding;
  std::vector<at::Tensor> res = detail::RunDownBlocks(down_blocks, &h, emb, encoder_hidden_states);
  h = mid_block->forward(h, emb, encoder_hidden_states);

  TORCH_CHECK(res.size() == controlnet_down_blocks->size(), "ControlNet: ", res.size(),
              " skip connections for ", controlnet_down_blocks->size(), " zero convs");
  ControlNetOutput out;
  for (size_t i = 0; i < res.size(); ++i) {
    out.down_block_res_samples.push_back(
        controlnet_down_blocks->ptr(i)->as<nn::Conv2dImpl>()->forward(res[i]));
  }
  out.mid_block_res_sample = controlnet_mid_block->forward(h);

  if (guess_mode && !config_.global_pool_conditions) {
    const int64_t n = static_cast<int64_t>(out.down_block_res_samples.size());
    const at::Tensor scales =
        torch::logspace(-1, 0, n + 1, 10.0,
                        torch::TensorOptions().dtype(at::kFloat).device(sample.device())) *
        conditioning_scale;
    for (int64_t i = 0; i < n; ++i) {
      out.down_block_res_samples[i] = out.down_block_res_samples[i] * scales[i];
    }
    out.mid_block_res_sample = out.mid_block_res_sample * scales[n];
  } else {
    for (auto& r : out.down_block_res_samples) r = r * conditioning_scale;
    out.mid_block_res_sample = out.mid_block_res_sample * conditioning_scale;
  }
  if (config_.global_pool_conditions) {
    for (auto& r : out.down_block_res_samples) r = r.mean({2, 3}, /*keepdim=*/true);
    out.mid_block_res_sample = out.mid_block_res_sample.mean({2, 3}, /*keepdim=*/true);
  }
  return out;
}

absl::StatusOr<ControlNetModel> CreateControlNetModel(const ControlNetConfig& config,
                                                      const c10::TensorOptions& options) {
  return detail::BuildAndLoad<ControlNetModel>(
      "ControlNet", [&] { return ControlNetModel(config, options); }, nullptr, {});
}

absl::StatusOr<ControlNetModel> LoadControlNetModel(const ControlNetConfig& config,
                                                    const models::TensorSource& weights,
                                                    const c10::TensorOptions& options,
                                                    const models::LoadOptions& load) {
  return detail::BuildAndLoad<ControlNetModel>(
      "ControlNet", [&] { return ControlNetModel(config, options); }, &weights, load);
}

absl::StatusOr<ControlNetModel> LoadControlNetModelFromFolder(const std::string& dir,
                                                              const c10::TensorOptions& options,
                                                              std::string_view variant) {
  IMGINTERP_ASSIGN_OR_RETURN(ControlNetConfig config,
                             ControlNetConfig::FromFile(dir + "/config.json"));
  IMGINTERP_ASSIGN_OR_RETURN(auto weights, models::OpenModelFolderWeights(dir, variant));
  return LoadControlNetModel(config, *weights, options);
}

}  // namespace imginterp::diffusion
