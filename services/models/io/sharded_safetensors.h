// A checkpoint split over several safetensors files, described by an index JSON
// ("model.safetensors.index.json", "diffusion_pytorch_model.safetensors.index.json"):
//   {"metadata": {...}, "weight_map": {"<tensor name>": "<shard file name>", ...}}
// Shard file names are relative to the index's folder.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "services/models/io/safetensors_file.h"
#include "services/models/io/tensor_source.h"

namespace imginterp::models {

// Opens every shard named in the index once. Open() fails (naming the key and the shard) when the
// index is not valid JSON, has no "weight_map", a key points to a shard that does not exist or
// cannot be opened, or a shard lacks a key the index assigns to it. Only keys listed in the
// weight map are visible. Thread-safe (immutable after Open).
class ShardedSafetensors : public TensorSource {
 public:
  static absl::StatusOr<std::unique_ptr<ShardedSafetensors>> Open(const std::string& index_path);

  const std::string& index_path() const { return index_path_; }
  // Shard file names in the order of first appearance, e.g. "model-00001-of-00002.safetensors".
  std::vector<std::string> ShardFiles() const;

  std::vector<std::string> Names() const override;
  bool Contains(std::string_view name) const override;
  absl::StatusOr<TensorInfo> Info(std::string_view name) const override;
  absl::StatusOr<at::Tensor> Tensor(std::string_view name) const override;
  std::string Describe() const override { return index_path_; }

 private:
  ShardedSafetensors() = default;

  std::string index_path_;
  std::vector<std::string> shard_order_;
  std::map<std::string, std::unique_ptr<SafetensorsFile>> shards_;  // by shard file name
  std::map<std::string, const SafetensorsFile*, std::less<>> key_to_shard_;
};

}  // namespace imginterp::models
