#include "services/models/clip/clip_config.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "services/core/common/status_macros.h"

namespace imginterp::clip {
namespace {

using nlohmann::json;

absl::StatusOr<json> Parse(std::string_view text) {
  try {
    json j = json::parse(text);
    if (!j.is_object()) return absl::InvalidArgumentError("CLIP config must be a JSON object");
    return j;
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("CLIP config is not valid JSON: ", e.what()));
  }
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open CLIP config ", path));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

template <typename T>
absl::StatusOr<T> WithPath(absl::StatusOr<T> result, const std::string& path) {
  if (result.ok()) return result;
  return absl::Status(result.status().code(), absl::StrCat(path, ": ", result.status().message()));
}

absl::Status ReadInt(const json& j, const char* key, int64_t* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number_integer()) {
    return absl::InvalidArgumentError(
        absl::StrCat("CLIP config field \"", key, "\" must be an integer, got ", it->dump()));
  }
  *out = it->get<int64_t>();
  return absl::OkStatus();
}

absl::Status ReadDouble(const json& j, const char* key, double* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number()) {
    return absl::InvalidArgumentError(
        absl::StrCat("CLIP config field \"", key, "\" must be a number, got ", it->dump()));
  }
  *out = it->get<double>();
  return absl::OkStatus();
}

absl::Status ReadActivation(const json& j, nn::Activation* out) {
  auto it = j.find("hidden_act");
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_string()) {
    return absl::InvalidArgumentError("CLIP config field \"hidden_act\" must be a string");
  }
  IMGINTERP_ASSIGN_OR_RETURN(*out, nn::ParseActivation(it->get<std::string>()));
  return absl::OkStatus();
}

absl::Status CheckTower(const char* tower, int64_t hidden, int64_t heads, int64_t layers,
                        int64_t intermediate) {
  if (hidden <= 0 || heads <= 0 || layers < 0 || intermediate <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("CLIP ", tower, " config: hidden_size (", hidden, "), num_attention_heads (",
                     heads, "), intermediate_size (", intermediate,
                     ") must be positive and num_hidden_layers (", layers, ") not negative"));
  }
  if (hidden % heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("CLIP ", tower, " config: hidden_size ", hidden,
                                                   " is not divisible by num_attention_heads ",
                                                   heads));
  }
  return absl::OkStatus();
}

absl::StatusOr<ClipTextConfig> TextFromObject(const json& root) {
  const json& j =
      root.contains("text_config") && root["text_config"].is_object() ? root["text_config"] : root;
  ClipTextConfig c;
  IMGINTERP_RETURN_IF_ERROR(ReadInt(j, "vocab_size", &c.vocab_size));
  IMGINTERP_RETURN_IF_ERROR(ReadInt(j, "hidden_size", &c.hidden_size));
  IMGINTERP_RETURN_IF_ERROR(ReadInt(j, "intermediate_size", &c.intermediate_size));
  IMGINTERP_RETURN_IF_ERROR(ReadInt(j, "projection_dim", &c.projection_dim));
  IMGINTERP_RETURN_IF_ERROR(ReadInt(j, "num_hidden_layers", &c.num_hidden_layers));
  IMGINTERP_RETURN_IF_ERROR(ReadInt(j, "num_attention_heads", &c.num_attention_heads));
  IMGINTERP_RETURN_IF_ERROR(ReadInt(j, "max_position_embeddings", &c.max_position_embeddings));
  IMGINTERP_RETURN_IF_ERROR(ReadActivation(j, &c.hidden_act));
  IMGINTERP_RETURN_IF_ERROR(ReadDouble(j, "layer_norm_eps", &c.layer_norm_eps));
  IMGINTERP_RETURN_IF_ERROR(ReadInt(j, "pad_token_id", &c.pad_token_id));
  IMGINTERP_RETURN_IF_ERROR(ReadInt(j, "bos_token_id", &c.bos_token_id));
  IMGINTERP_RETURN_IF_ERROR(ReadInt(j, "eos_token_id", &c.eos_token_id));
  IMGINTERP_RETURN_IF_ERROR(CheckTower("text", c.hidden_size, c.num_attention_heads,
                                       c.num_hidden_layers, c.intermediate_size));
  if (c.vocab_size <= 0 || c.max_position_embeddings <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "CLIP text config: vocab_size (", c.vocab_size, ") and max_position_embeddings (",
        c.max_position_embeddings, ") must be positive"));
  }
  return c;
}

absl::StatusOr<ClipVisionConfig> VisionFromObject(const json& root) {
  const json& j = root.contains("vision_config") && root["vision_config"].is_object()
                      ? root["vision_config"]
                      : root;
  ClipVisionConfig c;
  IMGINTERP_RETURN_IF_ERROR(ReadInt(j, "hidden_size", &c.hidden_size));
  IMGINTERP_RETURN_IF_ERROR(ReadInt(j, "intermediate_size", &c.intermediate_size));
  IMGINTERP_RETURN_IF_ERROR(ReadInt(j, "projection_dim", &c.projection_dim));
  IMGINTERP_RETURN_IF_ERROR(ReadInt(j, "num_hidden_layers", &c.num_hidden_layers));
  IMGINTERP_RETURN_IF_ERROR(ReadInt(j, "num_attention_heads", &c.num_attention_heads));
  IMGINTERP_RETURN_IF_ERROR(ReadInt(j, "num_channels", &c.num_channels));
  IMGINTERP_RETURN_IF_ERROR(ReadInt(j, "image_size", &c.image_size));
  IMGINTERP_RETURN_IF_ERROR(ReadInt(j, "patch_size", &c.patch_size));
  IMGINTERP_RETURN_IF_ERROR(ReadActivation(j, &c.hidden_act));
  IMGINTERP_RETURN_IF_ERROR(ReadDouble(j, "layer_norm_eps", &c.layer_norm_eps));
  IMGINTERP_RETURN_IF_ERROR(CheckTower("vision", c.hidden_size, c.num_attention_heads,
                                       c.num_hidden_layers, c.intermediate_size));
  if (c.patch_size <= 0 || c.image_size <= 0 || c.image_size % c.patch_size != 0 ||
      c.num_channels <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "CLIP vision config: image_size ", c.image_size, " must be a positive multiple of ",
        "patch_size ", c.patch_size, " and num_channels (", c.num_channels, ") positive"));
  }
  return c;
}

}  // namespace

absl::StatusOr<ClipTextConfig> ClipTextConfig::FromJson(std::string_view json_text) {
  IMGINTERP_ASSIGN_OR_RETURN(json j, Parse(json_text));
  return TextFromObject(j);
}

absl::StatusOr<ClipTextConfig> ClipTextConfig::FromFile(const std::string& path) {
  IMGINTERP_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  return WithPath(FromJson(text), path);
}

absl::StatusOr<ClipVisionConfig> ClipVisionConfig::FromJson(std::string_view json_text) {
  IMGINTERP_ASSIGN_OR_RETURN(json j, Parse(json_text));
  return VisionFromObject(j);
}

absl::StatusOr<ClipVisionConfig> ClipVisionConfig::FromFile(const std::string& path) {
  IMGINTERP_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  return WithPath(FromJson(text), path);
}

absl::StatusOr<ClipConfig> ClipConfig::FromJson(std::string_view json_text) {
  IMGINTERP_ASSIGN_OR_RETURN(json j, Parse(json_text));
  ClipConfig c;
  // transformers builds the towers from default sub-configs when they are absent.
  IMGINTERP_ASSIGN_OR_RETURN(c.text, TextFromObject(j.value("text_config", json::object())));
  IMGINTERP_ASSIGN_OR_RETURN(c.vision, VisionFromObject(j.value("vision_config", json::object())));
  IMGINTERP_RETURN_IF_ERROR(ReadInt(j, "projection_dim", &c.projection_dim));
  IMGINTERP_RETURN_IF_ERROR(ReadDouble(j, "logit_scale_init_value", &c.logit_scale_init_value));
  if (c.projection_dim <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("CLIP config: projection_dim ", c.projection_dim, " must be positive"));
  }
  return c;
}

absl::StatusOr<ClipConfig> ClipConfig::FromFile(const std::string& path) {
  IMGINTERP_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  return WithPath(FromJson(text), path);
}

}  // namespace imginterp::clip
