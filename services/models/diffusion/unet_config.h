// Configurations of diffusers' UNet2DConditionModel and ControlNetModel, read from a published
// config.json. Missing fields take diffusers' (0.27) constructor defaults. Only the SD1.x/SD2.x
// architecture is supported: positional time embedding, CrossAttnDownBlock2D/DownBlock2D,
// UNetMidBlock2DCrossAttn, CrossAttnUpBlock2D/UpBlock2D, no class/addition embeddings; a config
// asking for anything else is rejected naming the field.
//
// Thread-safety: plain values.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "services/models/nn/activations.h"
#include "services/models/nn/resnet_block.h"

namespace imginterp::diffusion {

enum class DownBlockType { kCrossAttnDownBlock2D, kDownBlock2D };
enum class UpBlockType { kCrossAttnUpBlock2D, kUpBlock2D };

// The fields UNet2DConditionModel and ControlNetModel share (the down half and the mid block).
struct UNet2DConditionConfig {
  int64_t in_channels = 4;
  int64_t out_channels = 4;
  int64_t sample_size = 64;
  bool center_input_sample = false;
  bool flip_sin_to_cos = true;
  double freq_shift = 0.0;
  std::vector<DownBlockType> down_block_types = {
      DownBlockType::kCrossAttnDownBlock2D, DownBlockType::kCrossAttnDownBlock2D,
      DownBlockType::kCrossAttnDownBlock2D, DownBlockType::kDownBlock2D};
  // Empty for a ControlNet.
  std::vector<UpBlockType> up_block_types = {
      UpBlockType::kUpBlock2D, UpBlockType::kCrossAttnUpBlock2D, UpBlockType::kCrossAttnUpBlock2D,
      UpBlockType::kCrossAttnUpBlock2D};
  std::vector<int64_t> block_out_channels = {320, 640, 1280, 1280};
  // One entry per down block (an integer in the file applies to every block).
  std::vector<int64_t> layers_per_block = {2, 2, 2, 2};
  // Heads per down block: "num_attention_heads" when set, else "attention_head_dim" (which, for
  // the SD1.x/SD2.x configs, means heads: SD1.5's 8 is 8 heads of channels / 8).
  std::vector<int64_t> num_attention_heads = {8, 8, 8, 8};
  std::vector<int64_t> transformer_layers_per_block = {1, 1, 1, 1};
  int64_t cross_attention_dim = 1280;
  int64_t downsample_padding = 1;
  double mid_block_scale_factor = 1.0;
  nn::Activation act_fn = nn::Activation::kSilu;
  int64_t norm_num_groups = 32;
  double norm_eps = 1e-5;
  bool use_linear_projection = false;
  bool only_cross_attention = false;
  bool upcast_attention = false;  // no effect in fp32/fp64
  nn::TimeEmbeddingNorm resnet_time_scale_shift = nn::TimeEmbeddingNorm::kDefault;
  int64_t conv_in_kernel = 3;
  int64_t conv_out_kernel = 3;
  // "time_embedding_dim"; 0 means 4 * block_out_channels[0].
  int64_t time_embedding_dim = 0;

  int64_t TimeEmbedDim() const {
    return time_embedding_dim > 0 ? time_embedding_dim : 4 * block_out_channels.at(0);
  }

  // INVALID_ARGUMENT naming the field for wrong types, unsupported block types or features, and
  // inconsistent sizes (list lengths, channels not divisible by heads or norm groups).
  static absl::StatusOr<UNet2DConditionConfig> FromJson(std::string_view json_text);
  static absl::StatusOr<UNet2DConditionConfig> FromFile(const std::string& path);
};

struct ControlNetConfig {
  // The down half and mid block; up_block_types is empty and out_channels unused.
  UNet2DConditionConfig unet;
  std::vector<int64_t> conditioning_embedding_out_channels = {16, 32, 96, 256};
  int64_t conditioning_channels = 3;
  // "controlnet_conditioning_channel_order": "bgr" flips the condition's channels first.
  bool conditioning_bgr = false;
  // Residuals averaged over H and W (shuffle ControlNets).
  bool global_pool_conditions = false;

  static absl::StatusOr<ControlNetConfig> FromJson(std::string_view json_text);
  static absl::StatusOr<ControlNetConfig> FromFile(const std::string& path);
};

// Reads a whole file; NOT_FOUND naming it when it cannot be opened.
absl::StatusOr<std::string> ReadModelConfigFile(const std::string& path);

}  // namespace imginterp::diffusion
