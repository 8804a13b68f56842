// A Triton-like model repository on the local filesystem:
//
//   <root>/<model>/config.pbtxt        ModelConfig in protobuf text format
//   <root>/<model>/<labels_file>       optional, one label per line
//   <root>/<model>/<version>/model.pt  one folder per integer version
//
// Model names come from requests, so every name and path is checked to stay inside the root
// (after resolving symlinks) before anything is read.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "imginterp/v1/model_config.pb.h"

namespace imginterp::model {

// One resolved version of a model, with its configuration.
struct ModelVersion {
  std::string name;
  int64_t version = 0;
  std::string model_dir;    // <root>/<name>
  std::string version_dir;  // <root>/<name>/<version>
  v1::ModelConfig config;
  std::vector<int64_t> available_versions;  // ascending
};

// Thread-safe: reads the filesystem on every call and holds no mutable state.
class ModelRepository {
 public:
  struct Options {
    // Repository folder; made absolute and canonical by Create.
    std::string root;
  };

  // NOT_FOUND "model repository <root> does not exist" (also when root is not a folder).
  static absl::StatusOr<std::unique_ptr<ModelRepository>> Create(const Options& options);

  // Folders under the root that hold a config.pbtxt, sorted by name. Hidden folders are skipped.
  absl::StatusOr<std::vector<std::string>> ListModels() const;

  // Reads and validates <root>/<name>/config.pbtxt.
  // INVALID_ARGUMENT for a name that is empty, contains '/', '\\' or "..", starts with '.', or
  // whose folder (after resolving symlinks) lies outside the root; NOT_FOUND for a model that is
  // not in the repository (naming the available ones); INVALID_ARGUMENT for a config that does
  // not parse (naming file, line and column), whose `name` differs from the folder, or whose
  // backend is not "torchscript", "native" or "builtin".
  absl::StatusOr<v1::ModelConfig> ReadConfig(const std::string& name) const;

  // Integer-named subfolders of the model folder, ascending; other folders are ignored. A
  // version folder that is a symlink leading outside the root is INVALID_ARGUMENT.
  absl::StatusOr<std::vector<int64_t>> ListVersions(const std::string& name) const;

  // version 0 means config.pinned_version if set, else the newest.
  // NOT_FOUND "model 'x' has no version 7 (available: 1, 2)"; FAILED_PRECONDITION when the model
  // has no version folder at all.
  absl::StatusOr<ModelVersion> Resolve(const std::string& name, int64_t version) const;

  // Lines of config.labels_file (relative to model_dir, must stay inside it), without trailing
  // "\r"; an empty vector when the config names no labels file.
  absl::StatusOr<std::vector<std::string>> ReadLabels(const ModelVersion& model) const;

  // The canonical absolute root.
  const std::string& root() const { return root_; }

 private:
  explicit ModelRepository(std::string root) : root_(std::move(root)) {}

  // The canonical folder of a valid, existing model name.
  absl::StatusOr<std::string> ModelDir(const std::string& name) const;

  std::string root_;
};

}  // namespace imginterp::model
