// Configurations of transformers' CLIP classes, read from a published config.json. Missing fields
// take transformers' defaults (CLIPTextConfig / CLIPVisionConfig / CLIPConfig, which are the
// ViT-B/32 sizes).
//
// Thread-safety: plain values.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "services/models/nn/activations.h"

namespace imginterp::clip {

struct ClipTextConfig {
  int64_t vocab_size = 49408;
  int64_t hidden_size = 512;
  int64_t intermediate_size = 2048;
  int64_t projection_dim = 512;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 8;
  int64_t max_position_embeddings = 77;
  nn::Activation hidden_act = nn::Activation::kQuickGelu;
  double layer_norm_eps = 1e-5;
  int64_t pad_token_id = 1;
  int64_t bos_token_id = 49406;
  // 2 (the legacy value of the openai and SD configs) means "pool at argmax(input_ids)", as
  // transformers does; any other value pools at the first occurrence of this id.
  int64_t eos_token_id = 49407;

  // From the text config object, or from a CLIPConfig's "text_config". INVALID_ARGUMENT naming the
  // field for a wrong type, an unknown activation, or sizes that do not fit (hidden_size not
  // divisible by num_attention_heads, non-positive sizes).
  static absl::StatusOr<ClipTextConfig> FromJson(std::string_view json_text);
  static absl::StatusOr<ClipTextConfig> FromFile(const std::string& path);
};

struct ClipVisionConfig {
  int64_t hidden_size = 768;
  int64_t intermediate_size = 3072;
  int64_t projection_dim = 512;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t num_channels = 3;
  int64_t image_size = 224;
  int64_t patch_size = 32;
  nn::Activation hidden_act = nn::Activation::kQuickGelu;
  double layer_norm_eps = 1e-5;

  // From the vision config object, or from a CLIPConfig's "vision_config". Errors as above, plus
  // image_size not a multiple of patch_size.
  static absl::StatusOr<ClipVisionConfig> FromJson(std::string_view json_text);
  static absl::StatusOr<ClipVisionConfig> FromFile(const std::string& path);
};

struct ClipConfig {
  ClipTextConfig text;
  ClipVisionConfig vision;
  int64_t projection_dim = 512;
  double logit_scale_init_value = 2.6592;

  static absl::StatusOr<ClipConfig> FromJson(std::string_view json_text);
  static absl::StatusOr<ClipConfig> FromFile(const std::string& path);
};

}  // namespace imginterp::clip
