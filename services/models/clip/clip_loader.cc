#include "services/models/clip/clip_loader.h"

#include <torch/torch.h>

#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "services/core/common/status_macros.h"
#include "services/models/io/diffusers_folder.h"

namespace imginterp::clip {
namespace {

template <typename Holder, typename Build>
absl::StatusOr<Holder> BuildAndLoad(const char* what, Build build,
                                    const models::TensorSource& weights,
                                    const models::LoadOptions& load) {
  Holder module{nullptr};
  try {
    module = build();
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot build ", what, ": ", e.what_without_backtrace()));
  }
  absl::Status loaded = models::LoadStateDict(*module, weights, load);
  if (!loaded.ok()) {
    return absl::Status(loaded.code(), absl::StrCat("loading ", what, " from ", weights.Describe(),
                                                    ": ", loaded.message()));
  }
  module->eval();
  return module;
}

// True when config.json's "architectures" names a class ending in "WithProjection".
absl::StatusOr<bool> HasProjection(const std::string& dir) {
  IMGINTERP_ASSIGN_OR_RETURN(nlohmann::json config, models::ReadJsonFile(dir + "/config.json"));
  auto it = config.find("architectures");
  if (it == config.end() || !it->is_array()) return false;
  for (const auto& name : *it) {
    if (name.is_string()) {
      const std::string s = name.get<std::string>();
      if (s.size() >= 14 && s.compare(s.size() - 14, 14, "WithProjection") == 0) return true;
    }
  }
  return false;
}

}  // namespace

models::LoadOptions DefaultClipLoadOptions() {
  models::LoadOptions load;
  load.ignore = {"*.position_ids", "position_ids"};
  return load;
}

absl::StatusOr<ClipTextModel> LoadClipTextModel(const ClipTextConfig& config,
                                                const models::TensorSource& weights,
                                                bool with_projection,
                                                const c10::TensorOptions& options,
                                                const models::LoadOptions& load) {
  return BuildAndLoad<ClipTextModel>(
      "CLIP text model", [&] { return ClipTextModel(config, with_projection, options); }, weights,
      load);
}

absl::StatusOr<ClipVisionModel> LoadClipVisionModel(const ClipVisionConfig& config,
                                                    const models::TensorSource& weights,
                                                    bool with_projection,
                                                    const c10::TensorOptions& options,
                                                    const models::LoadOptions& load) {
  return BuildAndLoad<ClipVisionModel>(
      "CLIP vision model", [&] { return ClipVisionModel(config, with_projection, options); },
      weights, load);
}

absl::StatusOr<ClipModel> LoadClipModel(const ClipConfig& config,
                                        const models::TensorSource& weights,
                                        const c10::TensorOptions& options,
                                        const models::LoadOptions& load) {
  return BuildAndLoad<ClipModel>(
      "CLIP model", [&] { return ClipModel(config, options); }, weights, load);
}

absl::StatusOr<ClipTextModel> LoadClipTextModelFromFolder(const std::string& dir,
                                                          const c10::TensorOptions& options) {
  IMGINTERP_ASSIGN_OR_RETURN(ClipTextConfig config, ClipTextConfig::FromFile(dir + "/config.json"));
  IMGINTERP_ASSIGN_OR_RETURN(bool projection, HasProjection(dir));
  IMGINTERP_ASSIGN_OR_RETURN(auto weights, models::OpenModelFolderWeights(dir));
  return LoadClipTextModel(config, *weights, projection, options);
}

absl::StatusOr<ClipVisionModel> LoadClipVisionModelFromFolder(const std::string& dir,
                                                              const c10::TensorOptions& options) {
  IMGINTERP_ASSIGN_OR_RETURN(ClipVisionConfig config,
                             ClipVisionConfig::FromFile(dir + "/config.json"));
  IMGINTERP_ASSIGN_OR_RETURN(bool projection, HasProjection(dir));
  IMGINTERP_ASSIGN_OR_RETURN(auto weights, models::OpenModelFolderWeights(dir));
  return LoadClipVisionModel(config, *weights, projection, options);
}

absl::StatusOr<ClipModel> LoadClipModelFromFolder(const std::string& dir,
                                                  const c10::TensorOptions& options) {
  IMGINTERP_ASSIGN_OR_RETURN(ClipConfig config, ClipConfig::FromFile(dir + "/config.json"));
  IMGINTERP_ASSIGN_OR_RETURN(auto weights, models::OpenModelFolderWeights(dir));
  return LoadClipModel(config, *weights, options);
}

}  // namespace imginterp::clip
