#include "services/models/diffusion/vae.h"

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "services/core/common/status_macros.h"
#include "services/models/diffusion/unet.h"
#include "services/models/diffusion/unet_config.h"
#include "services/models/diffusion/unet_config_json.h"
#include "services/models/io/diffusers_folder.h"

namespace imginterp::diffusion {
namespace {

constexpr double kVaeEps = 1e-6;

UNetBlockOptions VaeBlock(const AutoencoderKLConfig& c, int64_t in, int64_t out) {
  UNetBlockOptions b;
  b.in_channels = in;
  b.out_channels = out;
  b.temb_channels = 0;
  b.resnet_groups = c.norm_num_groups;
  b.resnet_eps = kVaeEps;
  b.resnet_act_fn = c.act_fn;
  b.cross_attention = false;
  return b;
}

UNetMidBlock MakeVaeMidBlock(const AutoencoderKLConfig& c, const c10::TensorOptions& options) {
  UNetMidBlockOptions mid;
  const int64_t ch = c.block_out_channels.back();
  mid.block = VaeBlock(c, ch, ch);
  mid.block.num_layers = 1;
  mid.attention_head_dim = ch;
  return UNetMidBlock(mid, options);
}

nn::Conv2d Conv3x3(int64_t in, int64_t out, const c10::TensorOptions& options) {
  return nn::Conv2d(nn::Conv2dOptions{in, out, 3, 1, 1, 1, true}, options);
}

absl::Status CheckBlockTypes(const detail::ConfigReader& r, const char* key, const char* supported,
                             size_t n) {
  if (!r.Has(key)) return absl::OkStatus();
  std::vector<std::string> names;
  IMGINTERP_RETURN_IF_ERROR(r.StringList(key, &names));
  if (names.size() != n) {
    return absl::InvalidArgumentError(absl::StrCat(
        "VAE config field \"", key, "\" has ", names.size(), " entries, block_out_channels ", n));
  }
  for (const auto& name : names) {
    if (name != supported) {
      return absl::InvalidArgumentError(absl::StrCat("VAE config field \"", key, "\": \"", name,
                                                     "\" is not supported; use ", supported));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<AutoencoderKLConfig> AutoencoderKLConfig::FromJson(std::string_view json_text) {
  IMGINTERP_ASSIGN_OR_RETURN(detail::ConfigReader r,
                             detail::ConfigReader::Parse(json_text, "VAE config"));
  AutoencoderKLConfig c;
  IMGINTERP_RETURN_IF_ERROR(r.Int("in_channels", &c.in_channels));
  IMGINTERP_RETURN_IF_ERROR(r.Int("out_channels", &c.out_channels));
  IMGINTERP_RETURN_IF_ERROR(r.Int("latent_channels", &c.latent_channels));
  IMGINTERP_RETURN_IF_ERROR(r.IntList("block_out_channels", &c.block_out_channels));
  IMGINTERP_RETURN_IF_ERROR(r.Int("layers_per_block", &c.layers_per_block));
  IMGINTERP_RETURN_IF_ERROR(r.Int("norm_num_groups", &c.norm_num_groups));
  std::string act = "silu";
  IMGINTERP_RETURN_IF_ERROR(r.String("act_fn", &act));
  IMGINTERP_ASSIGN_OR_RETURN(c.act_fn, nn::ParseActivation(act));
  IMGINTERP_RETURN_IF_ERROR(r.Int("sample_size", &c.sample_size));
  IMGINTERP_RETURN_IF_ERROR(r.Double("scaling_factor", &c.scaling_factor));
  IMGINTERP_RETURN_IF_ERROR(r.Double("shift_factor", &c.shift_factor));
  IMGINTERP_RETURN_IF_ERROR(r.Bool("use_quant_conv", &c.use_quant_conv));
  IMGINTERP_RETURN_IF_ERROR(r.Bool("use_post_quant_conv", &c.use_post_quant_conv));
  IMGINTERP_RETURN_IF_ERROR(r.Bool("mid_block_add_attention", &c.mid_block_add_attention));
  if (!c.mid_block_add_attention) {
    return absl::InvalidArgumentError(
        "VAE config field \"mid_block_add_attention\" = false is not supported");
  }
  const size_t n = c.block_out_channels.size();
  if (n == 0) return absl::InvalidArgumentError("VAE config: block_out_channels is empty");
  IMGINTERP_RETURN_IF_ERROR(CheckBlockTypes(r, "down_block_types", "DownEncoderBlock2D", n));
  IMGINTERP_RETURN_IF_ERROR(CheckBlockTypes(r, "up_block_types", "UpDecoderBlock2D", n));
  for (size_t i = 0; i < n; ++i) {
    if (c.block_out_channels[i] <= 0 || c.norm_num_groups <= 0 ||
        c.block_out_channels[i] % c.norm_num_groups != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("VAE config: block_out_channels[", i, "] = ", c.block_out_channels[i],
                       " must be a positive multiple of norm_num_groups = ", c.norm_num_groups));
    }
  }
  if (c.layers_per_block < 1 || c.latent_channels < 1 || c.in_channels < 1 || c.out_channels < 1) {
    return absl::InvalidArgumentError(
        "VAE config: layers_per_block, latent_channels, in_channels and out_channels must be "
        "positive");
  }
  return c;
}

absl::StatusOr<AutoencoderKLConfig> AutoencoderKLConfig::FromFile(const std::string& path) {
  IMGINTERP_ASSIGN_OR_RETURN(std::string text, ReadModelConfigFile(path));
  auto config = FromJson(text);
  if (!config.ok()) {
    return absl::Status(config.status().code(),
                        absl::StrCat(path, ": ", config.status().message()));
  }
  return config;
}

VaeEncoderImpl::VaeEncoderImpl(const AutoencoderKLConfig& c, const c10::TensorOptions& options)
    : act_(c.act_fn) {
  const auto& boc = c.block_out_channels;
  conv_in = register_module("conv_in", Conv3x3(c.in_channels, boc.at(0), options));
  down_blocks = register_module("down_blocks", torch::nn::ModuleList());
  int64_t output_channel = boc[0];
  for (size_t i = 0; i < boc.size(); ++i) {
    const int64_t input_channel = output_channel;
    output_channel = boc[i];
    UNetDownBlockOptions down;
    down.block = VaeBlock(c, input_channel, output_channel);
    down.block.num_layers = c.layers_per_block;
    down.add_downsample = i + 1 < boc.size();
    down.downsample_padding = 0;
    down_blocks->push_back(UNetDownBlock(down, options));
  }
  mid_block = register_module("mid_block", MakeVaeMidBlock(c, options));
  conv_norm_out = register_module(
      "conv_norm_out", nn::GroupNorm(c.norm_num_groups, boc.back(), kVaeEps, true, options));
  conv_out = register_module("conv_out", Conv3x3(boc.back(), 2 * c.latent_channels, options));
}

at::Tensor VaeEncoderImpl::forward(const at::Tensor& x) {
  at::Tensor h = conv_in->forward(x);
  for (const auto& block : *down_blocks) h = block->as<UNetDownBlockImpl>()->forward(h);
  h = mid_block->forward(h);
  return conv_out->forward(nn::Activate(act_, conv_norm_out->forward(h)));
}

VaeDecoderImpl::VaeDecoderImpl(const AutoencoderKLConfig& c, const c10::TensorOptions& options)
    : act_(c.act_fn) {
  const auto& boc = c.block_out_channels;
  conv_in = register_module("conv_in", Conv3x3(c.latent_channels, boc.back(), options));
  mid_block = register_module("mid_block", MakeVaeMidBlock(c, options));
  up_blocks = register_module("up_blocks", torch::nn::ModuleList());
  int64_t output_channel = boc.back();
  for (size_t i = 0; i < boc.size(); ++i) {
    const int64_t prev_output_channel = output_channel;
    output_channel = boc[boc.size() - 1 - i];
    UNetUpBlockOptions up;
    up.block = VaeBlock(c, prev_output_channel, output_channel);
    up.block.num_layers = c.layers_per_block + 1;
    up.skip_connections = false;
    up.add_upsample = i + 1 < boc.size();
    up_blocks->push_back(UNetUpBlock(up, options));
  }
  conv_norm_out = register_module(
      "conv_norm_out", nn::GroupNorm(c.norm_num_groups, boc.front(), kVaeEps, true, options));
  conv_out = register_module("conv_out", Conv3x3(boc.front(), c.out_channels, options));
}

at::Tensor VaeDecoderImpl::forward(const at::Tensor& z) {
  at::Tensor h = conv_in->forward(z);
  h = mid_block->forward(h);
  for (const auto& block : *up_blocks) h = block->as<UNetUpBlockImpl>()->forward(h);
  return conv_out->forward(nn::Activate(act_, conv_norm_out->forward(h)));
}

at::Tensor LatentDistribution::Sample(const at::Tensor& noise) const {
  return mean + torch::exp(0.5 * logvar) * noise;
}

AutoencoderKLImpl::AutoencoderKLImpl(const AutoencoderKLConfig& config,
                                     const c10::TensorOptions& options)
    : config_(config) {
  TORCH_CHECK(!config.block_out_channels.empty(), "VAE config: block_out_channels is empty");
  encoder = register_module("encoder", VaeEncoder(config, options));
  decoder = register_module("decoder", VaeDecoder(config, options));
  const int64_t moments = 2 * config.latent_channels;
  if (config.use_quant_conv) {
    quant_conv = register_module(
        "quant_conv", nn::Conv2d(nn::Conv2dOptions{moments, moments, 1, 1, 0, 1, true}, options));
  }
  if (config.use_post_quant_conv) {
    post_quant_conv = register_module(
        "post_quant_conv", nn::Conv2d(nn::Conv2dOptions{config.latent_channels,
                                                        config.latent_channels, 1, 1, 0, 1, true},
                                      options));
  }
}

LatentDistribution AutoencoderKLImpl::Encode(const at::Tensor& image) {
  const int64_t f = config_.DownscaleFactor();
  TORCH_CHECK(image.dim() == 4 && image.size(1) == config_.in_channels && image.size(2) % f == 0 &&
                  image.size(3) % f == 0,
              "VAE encode: image must be [B, ", config_.in_channels,
              ", H, W] with H and W multiples of ", f, ", got ", image.sizes());
  at::Tensor moments = encoder->forward(image);
  if (quant_conv) moments = quant_conv->forward(moments);
  auto parts = moments.chunk(2, 1);
  return LatentDistribution{parts[0], torch::clamp(parts[1], -30.0, 20.0)};
}

at::Tensor AutoencoderKLImpl::Decode(const at::Tensor& z) {
  TORCH_CHECK(z.dim() == 4 && z.size(1) == config_.latent_channels, "VAE decode: z must be [B, ",
              config_.latent_channels, ", h, w], got ", z.sizes());
  at::Tensor h = post_quant_conv ? post_quant_conv->forward(z) : z;
  return decoder->forward(h);
}

models::LoadOptions DefaultVaeLoadOptions() {
  models::LoadOptions load;
  load.rename = [](std::string_view key) { return models::LegacyVaeAttentionRename(key); };
  return load;
}

absl::StatusOr<AutoencoderKL> CreateAutoencoderKL(const AutoencoderKLConfig& config,
                                                  const c10::TensorOptions& options) {
  return detail::BuildAndLoad<AutoencoderKL>("VAE", [&] { return AutoencoderKL(config, options); },
                                             nullptr, {});
}

absl::StatusOr<AutoencoderKL> LoadAutoencoderKL(const AutoencoderKLConfig& config,
                                                const models::TensorSource& weights,
                                                const c10::TensorOptions& options,
                                                const models::LoadOptions& load) {
  return detail::BuildAndLoad<AutoencoderKL>(
      "VAE", [&] { return AutoencoderKL(config, options); }, &weights, load);
}

absl::StatusOr<AutoencoderKL> LoadAutoencoderKLFromFolder(const std::string& dir,
                                                          const c10::TensorOptions& options,
                                                          std::string_view variant) {
  IMGINTERP_ASSIGN_OR_RETURN(AutoencoderKLConfig config,
                             AutoencoderKLConfig::FromFile(dir + "/config.json"));
  IMGINTERP_ASSIGN_OR_RETURN(auto weights, models::OpenModelFolderWeights(dir, variant));
  return LoadAutoencoderKL(config, *weights, options);
}

}  // namespace imginterp::diffusion
