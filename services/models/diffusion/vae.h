// diffusers' AutoencoderKL (models/autoencoders/autoencoder_kl.py, vae.py): Encoder (conv_in,
// DownEncoderBlock2D blocks, UNetMidBlock2D with one attention, conv_norm_out, conv_out to
// 2 x latent_channels) + quant_conv, and post_quant_conv + Decoder (conv_in, mid block,
// UpDecoderBlock2D blocks, conv_norm_out, conv_out). Parameter names equal the published keys;
// the mid-block attention of checkpoints written before diffusers 0.14
// ("query/key/value/proj_attn") loads through models::LegacyVaeAttentionRename.
//
// Thread-safety: as torch::nn::Module; Encode()/Decode() only read the parameters.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/TensorOptions.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "services/models/diffusion/unet_blocks.h"
#include "services/models/io/state_dict.h"
#include "services/models/io/tensor_source.h"
#include "services/models/nn/activations.h"
#include "services/models/nn/layers.h"

namespace imginterp::diffusion {

// AutoencoderKL's config.json; missing fields take diffusers' defaults. Only
// DownEncoderBlock2D / UpDecoderBlock2D blocks are supported.
struct AutoencoderKLConfig {
  int64_t in_channels = 3;
  int64_t out_channels = 3;
  int64_t latent_channels = 4;
  std::vector<int64_t> block_out_channels = {64};
  int64_t layers_per_block = 1;
  int64_t norm_num_groups = 32;
  nn::Activation act_fn = nn::Activation::kSilu;
  int64_t sample_size = 32;
  // Latents for the UNet are (encode(x).mean - shift_factor) * scaling_factor; decode takes
  // z / scaling_factor + shift_factor. Neither is applied by the module itself.
  double scaling_factor = 0.18215;
  double shift_factor = 0.0;
  bool use_quant_conv = true;
  bool use_post_quant_conv = true;
  bool mid_block_add_attention = true;

  // Pixels per latent cell (2^(number of blocks - 1); 8 for SD).
  int64_t DownscaleFactor() const { return int64_t{1} << (block_out_channels.size() - 1); }

  // INVALID_ARGUMENT naming the field for wrong types, unsupported block types and sizes that do
  // not fit (channels not multiples of norm_num_groups, list lengths).
  static absl::StatusOr<AutoencoderKLConfig> FromJson(std::string_view json_text);
  static absl::StatusOr<AutoencoderKLConfig> FromFile(const std::string& path);
};

class VaeEncoderImpl : public torch::nn::Module {
 public:
  explicit VaeEncoderImpl(const AutoencoderKLConfig& config,
                          const c10::TensorOptions& options = {});
  // [B, in_channels, H, W] -> [B, 2 * latent_channels, H / f, W / f].
  at::Tensor forward(const at::Tensor& x);

  nn::Conv2d conv_in{nullptr};
  torch::nn::ModuleList down_blocks{nullptr};
  UNetMidBlock mid_block{nullptr};
  nn::GroupNorm conv_norm_out{nullptr};
  nn::Conv2d conv_out{nullptr};

 private:
  nn::Activation act_;
};
TORCH_MODULE(VaeEncoder);

class VaeDecoderImpl : public torch::nn::Module {
 public:
  explicit VaeDecoderImpl(const AutoencoderKLConfig& config,
                          const c10::TensorOptions& options = {});
  // [B, latent_channels, h, w] -> [B, out_channels, h * f, w * f].
  at::Tensor forward(const at::Tensor& z);

  nn::Conv2d conv_in{nullptr};
  UNetMidBlock mid_block{nullptr};
  torch::nn::ModuleList up_blocks{nullptr};
  nn::GroupNorm conv_norm_out{nullptr};
  nn::Conv2d conv_out{nullptr};

 private:
  nn::Activation act_;
};
TORCH_MODULE(VaeDecoder);

// The latent distribution of an image: a diagonal Gaussian.
struct LatentDistribution {
  at::Tensor mean;    // [B, latent_channels, h, w]
  at::Tensor logvar;  // same shape, clamped to [-30, 20] as diffusers does
  // mean + exp(logvar / 2) * noise (noise shaped like mean).
  at::Tensor Sample(const at::Tensor& noise) const;
};

class AutoencoderKLImpl : public torch::nn::Module {
 public:
  // Uninitialised parameters on `options`; nothing is allocated on the meta device. Throws
  // c10::Error for a config that cannot be built (CreateAutoencoderKL gives a Status).
  explicit AutoencoderKLImpl(const AutoencoderKLConfig& config,
                             const c10::TensorOptions& options = {});

  // image [B, in_channels, H, W] in [-1, 1], H and W multiples of DownscaleFactor().
  LatentDistribution Encode(const at::Tensor& image);
  // z [B, latent_channels, h, w] (already divided by scaling_factor) -> image, nominally in
  // [-1, 1] (not clamped).
  at::Tensor Decode(const at::Tensor& z);

  const AutoencoderKLConfig& config() const { return config_; }
  double scaling_factor() const { return config_.scaling_factor; }

  VaeEncoder encoder{nullptr};
  VaeDecoder decoder{nullptr};
  nn::Conv2d quant_conv{nullptr};       // with use_quant_conv
  nn::Conv2d post_quant_conv{nullptr};  // with use_post_quant_conv

 private:
  AutoencoderKLConfig config_;
};
TORCH_MODULE(AutoencoderKL);

// Strict loading that also accepts the legacy mid-block attention names.
models::LoadOptions DefaultVaeLoadOptions();

// INVALID_ARGUMENT when the config cannot be built.
absl::StatusOr<AutoencoderKL> CreateAutoencoderKL(const AutoencoderKLConfig& config,
                                                  const c10::TensorOptions& options = {});
absl::StatusOr<AutoencoderKL> LoadAutoencoderKL(
    const AutoencoderKLConfig& config, const models::TensorSource& weights,
    const c10::TensorOptions& options = {},
    const models::LoadOptions& load = DefaultVaeLoadOptions());
// A diffusers "vae/" folder: config.json and diffusion_pytorch_model[.variant].safetensors.
absl::StatusOr<AutoencoderKL> LoadAutoencoderKLFromFolder(const std::string& dir,
                                                          const c10::TensorOptions& options = {},
                                                          std::string_view variant = "");

}  // namespace imginterp::diffusion
