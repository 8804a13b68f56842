// The folder layouts of published diffusers pipelines and transformers models:
//   <pipeline>/model_index.json             {"_class_name": ..., "<component>": [library, class]}
//   <pipeline>/<component>/config.json      (scheduler: scheduler_config.json)
//   <pipeline>/<component>/diffusion_pytorch_model.safetensors   (diffusers models)
//   <pipeline>/<component>/model.safetensors                     (transformers models)
//   or a sharded "<name>.safetensors.index.json" with its shard files.
// A transformers model folder (config.json + model.safetensors) is a component folder on its own.
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "services/models/io/tensor_source.h"

namespace imginterp::models {

// Reads and parses a JSON file. NOT_FOUND when missing, INVALID_ARGUMENT (with the parser's byte
// position) when not valid JSON.
absl::StatusOr<nlohmann::json> ReadJsonFile(const std::string& path);

// The weight files looked for in a model folder, in order, for `variant` ("" or e.g. "fp16":
// "diffusion_pytorch_model.fp16.safetensors").
std::vector<std::string> WeightFileCandidates(std::string_view variant = "");

// Opens the weights of one model folder: the first of WeightFileCandidates(variant) that exists.
// NOT_FOUND naming the folder and every file name looked for (and mentioning a pickle ".bin" file
// if that is all there is, which is not supported).
absl::StatusOr<std::unique_ptr<TensorSource>> OpenModelFolderWeights(const std::string& dir,
                                                                     std::string_view variant = "");

// A pipeline folder. Open() reads model_index.json; components are looked at lazily, so a folder
// that lacks an unused component (say safety_checker) still opens. Thread-safe (immutable).
class DiffusersPipelineFolder {
 public:
  struct ComponentSpec {
    std::string library;     // "diffusers", "transformers"
    std::string class_name;  // "UNet2DConditionModel", "CLIPTextModel", "PNDMScheduler", ...
  };

  // NOT_FOUND when `dir` or its model_index.json is missing; INVALID_ARGUMENT when the index is
  // not a JSON object.
  static absl::StatusOr<std::unique_ptr<DiffusersPipelineFolder>> Open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  // "_class_name" of model_index.json, e.g. "StableDiffusionPipeline" (empty if absent).
  const std::string& PipelineClass() const { return pipeline_class_; }
  const nlohmann::json& ModelIndex() const { return model_index_; }

  // Components with a [library, class] entry (null entries such as a removed safety_checker are
  // left out), sorted.
  std::vector<std::string> ComponentNames() const;
  bool HasComponent(std::string_view component) const;
  // NOT_FOUND naming the component and the components the index lists.
  absl::StatusOr<ComponentSpec> Component(std::string_view component) const;
  // "<dir>/<component>"; NOT_FOUND when the component is not in the index or its folder is
  // missing.
  absl::StatusOr<std::string> ComponentDir(std::string_view component) const;

  // The component's config.json (scheduler_config.json for the "scheduler" component, or
  // whichever of the two exists).
  absl::StatusOr<nlohmann::json> Config(std::string_view component) const;
  // Config("scheduler").
  absl::StatusOr<nlohmann::json> SchedulerConfig() const;
  // OpenModelFolderWeights(ComponentDir(component), variant).
  absl::StatusOr<std::unique_ptr<TensorSource>> Weights(std::string_view component,
                                                        std::string_view variant = "") const;

 private:
  DiffusersPipelineFolder() = default;

  std::string dir_;
  std::string pipeline_class_;
  nlohmann::json model_index_;
  std::map<std::string, ComponentSpec, std::less<>> components_;
};

}  // namespace imginterp::models
