#include "services/models/io/diffusers_folder.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "services/core/common/status_macros.h"
#include "services/models/io/safetensors_file.h"
#include "services/models/io/sharded_safetensors.h"

namespace imginterp::models {
namespace {

namespace fs = std::filesystem;

bool IsFile(const fs::path& path) {
  std::error_code error;
  return fs::is_regular_file(path, error);
}

bool IsDirectory(const fs::path& path) {
  std::error_code error;
  return fs::is_directory(path, error);
}

}  // namespace

absl::StatusOr<nlohmann::json> ReadJsonFile(const std::string& path) {
  if (!IsFile(path)) return absl::NotFoundError(absl::StrCat("JSON file '", path, "' not found"));
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read JSON file '", path, "'"));
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", path, "' is not valid JSON near byte ", e.byte, ": ", e.what()));
  }
}

std::vector<std::string> WeightFileCandidates(std::string_view variant) {
  const std::string infix = variant.empty() ? "" : absl::StrCat(".", std::string(variant));
  std::vector<std::string> names;
  for (const char* stem : {"diffusion_pytorch_model", "model"}) {
    names.push_back(absl::StrCat(stem, infix, ".safetensors"));
    names.push_back(absl::StrCat(stem, ".safetensors.index", infix, ".json"));
    names.push_back(absl::StrCat(stem, infix, ".safetensors.index.json"));
  }
  return names;
}

absl::StatusOr<std::unique_ptr<TensorSource>> OpenModelFolderWeights(const std::string& dir,
                                                                     std::string_view variant) {
  if (!IsDirectory(dir)) {
    return absl::NotFoundError(absl::StrCat("model folder '", dir, "' does not exist"));
  }
  const std::vector<std::string> candidates = WeightFileCandidates(variant);
  for (const std::string& name : candidates) {
    const fs::path path = fs::path(dir) / name;
    if (IsFile(path)) return OpenTensorSource(path.string());
  }
  std::string hint;
  for (const char* pickle : {"diffusion_pytorch_model.bin", "pytorch_model.bin"}) {
    if (IsFile(fs::path(dir) / pickle)) {
      hint =
          absl::StrCat("; found '", pickle,
                       "' (a PyTorch pickle), which is not supported: convert it to safetensors");
    }
  }
  return absl::NotFoundError(absl::StrCat("no weights in '", dir, "': looked for ",
                                          absl::StrJoin(candidates, ", "), hint));
}

absl::StatusOr<std::unique_ptr<DiffusersPipelineFolder>> DiffusersPipelineFolder::Open(
    const std::string& dir) {
  if (!IsDirectory(dir)) {
    return absl::NotFoundError(absl::StrCat("pipeline folder '", dir, "' does not exist"));
  }
  const std::string index_path = (fs::path(dir) / "model_index.json").string();
  if (!IsFile(index_path)) {
    return absl::NotFoundError(absl::StrCat("'", dir,
                                            "' is not a diffusers pipeline folder: it has no "
                                            "model_index.json"));
  }
  IMGINTERP_ASSIGN_OR_RETURN(nlohmann::json index, ReadJsonFile(index_path));
  if (!index.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat("'", index_path, "' is not a JSON object"));
  }
  auto folder = std::unique_ptr<DiffusersPipelineFolder>(new DiffusersPipelineFolder());
  folder->dir_ = dir;
  for (auto it = index.begin(); it != index.end(); ++it) {
    if (it.key() == "_class_name" && it->is_string()) {
      folder->pipeline_class_ = it->get<std::string>();
      continue;
    }
    if (!it.key().empty() && it.key()[0] == '_') continue;  // _diffusers_version etc.
    // Components are [library, class]; [null, null] marks a removed component. Other values
    // (e.g. "requires_safety_checker": true) are pipeline options, not components.
    if (!it->is_array() || it->size() != 2) continue;
    if ((*it)[0].is_string() && (*it)[1].is_string()) {
      folder->components_.emplace(
          it.key(), ComponentSpec{(*it)[0].get<std::string>(), (*it)[1].get<std::string>()});
    }
  }
  folder->model_index_ = std::move(index);
  return folder;
}

std::vector<std::string> DiffusersPipelineFolder::ComponentNames() const {
  std::vector<std::string> names;
  for (const auto& [name, spec] : components_) names.push_back(name);
  return names;
}

bool DiffusersPipelineFolder::HasComponent(std::string_view component) const {
  return components_.find(component) != components_.end();
}

absl::StatusOr<DiffusersPipelineFolder::ComponentSpec> DiffusersPipelineFolder::Component(
    std::string_view component) const {
  auto it = components_.find(component);
  if (it == components_.end()) {
    return absl::NotFoundError(absl::StrCat(
        "pipeline '", dir_, "' has no component '", std::string(component),
        "' in model_index.json (it lists: ", absl::StrJoin(ComponentNames(), ", "), ")"));
  }
  return it->second;
}

absl::StatusOr<std::string> DiffusersPipelineFolder::ComponentDir(
    std::string_view component) const {
  IMGINTERP_RETURN_IF_ERROR(Component(component).status());
  const fs::path path = fs::path(dir_) / std::string(component);
  if (!IsDirectory(path)) {
    return absl::NotFoundError(absl::StrCat("component '", std::string(component),
                                            "' is listed in model_index.json but its folder '",
                                            path.string(), "' does not exist"));
  }
  return path.string();
}

absl::StatusOr<nlohmann::json> DiffusersPipelineFolder::Config(std::string_view component) const {
  IMGINTERP_ASSIGN_OR_RETURN(std::string component_dir, ComponentDir(component));
  const char* const order[2] = {component == "scheduler" ? "scheduler_config.json" : "config.json",
                                component == "scheduler" ? "config.json" : "scheduler_config.json"};
  for (const char* name : order) {
    const fs::path path = fs::path(component_dir) / name;
    if (IsFile(path)) return ReadJsonFile(path.string());
  }
  return absl::NotFoundError(absl::StrCat("component '", std::string(component), "' has no ",
                                          order[0], " in '", component_dir, "'"));
}

absl::StatusOr<nlohmann::json> DiffusersPipelineFolder::SchedulerConfig() const {
  return Config("scheduler");
}

absl::StatusOr<std::unique_ptr<TensorSource>> DiffusersPipelineFolder::Weights(
    std::string_view component, std::string_view variant) const {
  IMGINTERP_ASSIGN_OR_RETURN(std::string component_dir, ComponentDir(component));
  return OpenModelFolderWeights(component_dir, variant);
}

}  // namespace imginterp::models
