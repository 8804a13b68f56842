#include "services/models/diffusion/unet_config.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "services/core/common/status_macros.h"
#include "services/models/diffusion/unet_config_json.h"

namespace imginterp::diffusion {
namespace {

using detail::ConfigReader;
using nlohmann::json;

absl::StatusOr<DownBlockType> ParseDownBlock(const std::string& name) {
  if (name == "CrossAttnDownBlock2D") return DownBlockType::kCrossAttnDownBlock2D;
  if (name == "DownBlock2D") return DownBlockType::kDownBlock2D;
  return absl::InvalidArgumentError(
      absl::StrCat("down_block_types: \"", name,
                   "\" is not supported; use CrossAttnDownBlock2D or DownBlock2D"));
}

absl::StatusOr<UpBlockType> ParseUpBlock(const std::string& name) {
  if (name == "CrossAttnUpBlock2D") return UpBlockType::kCrossAttnUpBlock2D;
  if (name == "UpBlock2D") return UpBlockType::kUpBlock2D;
  return absl::InvalidArgumentError(absl::StrCat(
      "up_block_types: \"", name, "\" is not supported; use CrossAttnUpBlock2D or UpBlock2D"));
}

// Fields of the shared (UNet and ControlNet) part.
absl::Status ReadBackbone(const ConfigReader& r, bool with_up_blocks, UNet2DConditionConfig* c) {
  // Features of other architectures (SDXL, class-conditioned, LCM...) that this port lacks.
  for (const char* field :
       {"class_embed_type", "num_class_embeds", "addition_embed_type", "encoder_hid_dim",
        "encoder_hid_dim_type", "time_cond_proj_dim", "timestep_post_act", "time_embedding_act_fn",
        "cross_attention_norm", "projection_class_embeddings_input_dim", "attention_type",
        "reverse_transformer_layers_per_block", "addition_time_embed_dim"}) {
    IMGINTERP_RETURN_IF_ERROR(
        r.RequireNullOr(field, field == std::string("attention_type") ? json("default") : json()));
  }
  IMGINTERP_RETURN_IF_ERROR(r.RequireNullOr("dual_cross_attention", json(false)));
  IMGINTERP_RETURN_IF_ERROR(r.RequireNullOr("resnet_skip_time_act", json(false)));
  IMGINTERP_RETURN_IF_ERROR(r.RequireNullOr("class_embeddings_concat", json(false)));
  IMGINTERP_RETURN_IF_ERROR(r.RequireNullOr("time_embedding_type", json("positional")));
  IMGINTERP_RETURN_IF_ERROR(r.RequireNullOr("mid_block_type", json("UNetMidBlock2DCrossAttn")));
  IMGINTERP_RETURN_IF_ERROR(r.RequireNullOr("mid_block_only_cross_attention", json(false)));
  IMGINTERP_RETURN_IF_ERROR(r.RequireNullOr("addition_embed_type_num_heads", json(64)));

  IMGINTERP_RETURN_IF_ERROR(r.Int("in_channels", &c->in_channels));
  IMGINTERP_RETURN_IF_ERROR(r.Int("out_channels", &c->out_channels));
  IMGINTERP_RETURN_IF_ERROR(r.Int("sample_size", &c->sample_size));
  IMGINTERP_RETURN_IF_ERROR(r.Bool("center_input_sample", &c->center_input_sample));
  IMGINTERP_RETURN_IF_ERROR(r.Bool("flip_sin_to_cos", &c->flip_sin_to_cos));
  IMGINTERP_RETURN_IF_ERROR(r.Double("freq_shift", &c->freq_shift));
  IMGINTERP_RETURN_IF_ERROR(r.IntList("block_out_channels", &c->block_out_channels));
  std::vector<std::string> names;
  if (r.Has("down_block_types")) {
    IMGINTERP_RETURN_IF_ERROR(r.StringList("down_block_types", &names));
    c->down_block_types.clear();
    for (const auto& name : names) {
      IMGINTERP_ASSIGN_OR_RETURN(DownBlockType type, ParseDownBlock(name));
      c->down_block_types.push_back(type);
    }
  }
  if (!with_up_blocks) {
    c->up_block_types.clear();
  } else if (r.Has("up_block_types")) {
    IMGINTERP_RETURN_IF_ERROR(r.StringList("up_block_types", &names));
    c->up_block_types.clear();
    for (const auto& name : names) {
      IMGINTERP_ASSIGN_OR_RETURN(UpBlockType type, ParseUpBlock(name));
      c->up_block_types.push_back(type);
    }
  }
  const size_t n = c->down_block_types.size();
  if (n == 0 || c->block_out_channels.size() != n) {
    return absl::InvalidArgumentError(
        absl::StrCat("block_out_channels has ", c->block_out_channels.size(),
                     " entries and down_block_types ", n, "; they must be equal and non-empty"));
  }
  if (with_up_blocks && c->up_block_types.size() != n) {
    return absl::InvalidArgumentError(absl::StrCat("up_block_types has ", c->up_block_types.size(),
                                                   " entries, down_block_types ", n));
  }
  c->layers_per_block.assign(n, 2);
  IMGINTERP_RETURN_IF_ERROR(r.IntOrList("layers_per_block", n, &c->layers_per_block));
  c->transformer_layers_per_block.assign(n, 1);
  IMGINTERP_RETURN_IF_ERROR(
      r.IntOrList("transformer_layers_per_block", n, &c->transformer_layers_per_block));
  // diffusers: num_attention_heads = num_attention_heads or attention_head_dim.
  c->num_attention_heads.assign(n, 8);
  if (r.Has("num_attention_heads")) {
    IMGINTERP_RETURN_IF_ERROR(r.IntOrList("num_attention_heads", n, &c->num_attention_heads));
  } else {
    IMGINTERP_RETURN_IF_ERROR(r.IntOrList("attention_head_dim", n, &c->num_attention_heads));
  }
  IMGINTERP_RETURN_IF_ERROR(r.Int("cross_attention_dim", &c->cross_attention_dim));
  IMGINTERP_RETURN_IF_ERROR(r.Int("downsample_padding", &c->downsample_padding));
  IMGINTERP_RETURN_IF_ERROR(r.Double("mid_block_scale_factor", &c->mid_block_scale_factor));
  std::string act = "silu";
  IMGINTERP_RETURN_IF_ERROR(r.String("act_fn", &act));
  IMGINTERP_ASSIGN_OR_RETURN(c->act_fn, nn::ParseActivation(act));
  IMGINTERP_RETURN_IF_ERROR(r.Int("norm_num_groups", &c->norm_num_groups));
  IMGINTERP_RETURN_IF_ERROR(r.Double("norm_eps", &c->norm_eps));
  IMGINTERP_RETURN_IF_ERROR(r.Bool("use_linear_projection", &c->use_linear_projection));
  IMGINTERP_RETURN_IF_ERROR(r.Bool("upcast_attention", &c->upcast_attention));
  if (r.Has("only_cross_attention") && !r.Get("only_cross_attention").is_boolean()) {
    return absl::InvalidArgumentError(
        "only_cross_attention: per-block lists are not supported; use true or false");
  }
  IMGINTERP_RETURN_IF_ERROR(r.Bool("only_cross_attention", &c->only_cross_attention));
  std::string shift = "default";
  IMGINTERP_RETURN_IF_ERROR(r.String("resnet_time_scale_shift", &shift));
  if (shift == "default") {
    c->resnet_time_scale_shift = nn::TimeEmbeddingNorm::kDefault;
  } else if (shift == "scale_shift") {
    c->resnet_time_scale_shift = nn::TimeEmbeddingNorm::kScaleShift;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "resnet_time_scale_shift: \"", shift, "\" is not supported; use default or scale_shift"));
  }
  double resnet_out_scale = 1.0;
  IMGINTERP_RETURN_IF_ERROR(r.Double("resnet_out_scale_factor", &resnet_out_scale));
  if (resnet_out_scale != 1.0) {
    return absl::InvalidArgumentError("resnet_out_scale_factor other than 1.0 is not supported");
  }
  IMGINTERP_RETURN_IF_ERROR(r.Int("conv_in_kernel", &c->conv_in_kernel));
  IMGINTERP_RETURN_IF_ERROR(r.Int("conv_out_kernel", &c->conv_out_kernel));
  IMGINTERP_RETURN_IF_ERROR(r.Int("time_embedding_dim", &c->time_embedding_dim));

  for (size_t i = 0; i < n; ++i) {
    const int64_t ch = c->block_out_channels[i];
    if (ch <= 0 || ch % c->norm_num_groups != 0) {
      return absl::InvalidArgumentError(absl::StrCat("block_out_channels[", i, "] = ", ch,
                                                     " must be a positive multiple of "
                                                     "norm_num_groups = ",
                                                     c->norm_num_groups));
    }
    if (c->num_attention_heads[i] <= 0 || ch % c->num_attention_heads[i] != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "block_out_channels[", i, "] = ", ch, " is not divisible by its attention head count ",
          c->num_attention_heads[i]));
    }
    if (c->layers_per_block[i] < 1 || c->transformer_layers_per_block[i] < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "layers_per_block and transformer_layers_per_block must be >= 1 (block ", i, ")"));
    }
  }
  if (c->in_channels <= 0 || c->out_channels <= 0 || c->cross_attention_dim <= 0) {
    return absl::InvalidArgumentError(
        "in_channels, out_channels and cross_attention_dim must be positive");
  }
  if (c->conv_in_kernel % 2 == 0 || c->conv_out_kernel % 2 == 0) {
    return absl::InvalidArgumentError("conv_in_kernel and conv_out_kernel must be odd");
  }
  return absl::OkStatus();
}

template <typename T>
absl::StatusOr<T> WithPath(absl::StatusOr<T> result, const std::string& path) {
  if (result.ok()) return result;
  return absl::Status(result.status().code(), absl::StrCat(path, ": ", result.status().message()));
}

}  // namespace

absl::StatusOr<std::string> ReadModelConfigFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open model config ", path));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

absl::StatusOr<UNet2DConditionConfig> UNet2DConditionConfig::FromJson(std::string_view json_text) {
  IMGINTERP_ASSIGN_OR_RETURN(ConfigReader reader, ConfigReader::Parse(json_text, "UNet config"));
  UNet2DConditionConfig config;
  IMGINTERP_RETURN_IF_ERROR(ReadBackbone(reader, /*with_up_blocks=*/true, &config));
  return config;
}

absl::StatusOr<UNet2DConditionConfig> UNet2DConditionConfig::FromFile(const std::string& path) {
  IMGINTERP_ASSIGN_OR_RETURN(std::string text, ReadModelConfigFile(path));
  return WithPath(FromJson(text), path);
}

absl::StatusOr<ControlNetConfig> ControlNetConfig::FromJson(std::string_view json_text) {
  IMGINTERP_ASSIGN_OR_RETURN(ConfigReader reader,
                             ConfigReader::Parse(json_text, "ControlNet config"));
  ControlNetConfig config;
  IMGINTERP_RETURN_IF_ERROR(ReadBackbone(reader, /*with_up_blocks=*/false, &config.unet));
  IMGINTERP_RETURN_IF_ERROR(reader.IntList("conditioning_embedding_out_channels",
                                           &config.conditioning_embedding_out_channels));
  if (config.conditioning_embedding_out_channels.empty()) {
    return absl::InvalidArgumentError("conditioning_embedding_out_channels must not be empty");
  }
  IMGINTERP_RETURN_IF_ERROR(reader.Int("conditioning_channels", &config.conditioning_channels));
  std::string order = "rgb";
  IMGINTERP_RETURN_IF_ERROR(reader.String("controlnet_conditioning_channel_order", &order));
  if (order != "rgb" && order != "bgr") {
    return absl::InvalidArgumentError(
        absl::StrCat("controlnet_conditioning_channel_order: \"", order, "\" must be rgb or bgr"));
  }
  config.conditioning_bgr = order == "bgr";
  IMGINTERP_RETURN_IF_ERROR(reader.Bool("global_pool_conditions", &config.global_pool_conditions));
  return config;
}

absl::StatusOr<ControlNetConfig> ControlNetConfig::FromFile(const std::string& path) {
  IMGINTERP_ASSIGN_OR_RETURN(std::string text, ReadModelConfigFile(path));
  return WithPath(FromJson(text), path);
}

}  // namespace imginterp::diffusion
