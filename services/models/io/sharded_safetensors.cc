#include "services/models/io/sharded_safetensors.h"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/core/common/status_macros.h"
#include "services/models/io/diffusers_folder.h"

namespace imginterp::models {

absl::StatusOr<std::unique_ptr<ShardedSafetensors>> ShardedSafetensors::Open(
    const std::string& index_path) {
  IMGINTERP_ASSIGN_OR_RETURN(nlohmann::json index, ReadJsonFile(index_path));
  auto weight_map = index.is_object() ? index.find("weight_map") : index.end();
  if (!index.is_object() || weight_map == index.end() || !weight_map->is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("sharded index '", index_path, "' has no \"weight_map\" object"));
  }
  const std::filesystem::path dir = std::filesystem::path(index_path).parent_path();
  auto sharded = std::unique_ptr<ShardedSafetensors>(new ShardedSafetensors());
  sharded->index_path_ = index_path;
  for (auto it = weight_map->begin(); it != weight_map->end(); ++it) {
    if (!it->is_string()) {
      return absl::InvalidArgumentError(absl::StrCat("sharded index '", index_path, "': key '",
                                                     it.key(), "' maps to ", it->dump(),
                                                     ", not a shard file name"));
    }
    const std::string shard = it->get<std::string>();
    auto shard_it = sharded->shards_.find(shard);
    if (shard_it == sharded->shards_.end()) {
      const std::string shard_path = (dir / shard).string();
      absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(shard_path);
      if (!file.ok()) {
        return absl::Status(
            file.status().code(),
            absl::StrCat("sharded index '", index_path, "': key '", it.key(), "' is in shard '",
                         shard, "', which cannot be opened: ", file.status().message()));
      }
      shard_it = sharded->shards_.emplace(shard, std::move(*file)).first;
      sharded->shard_order_.push_back(shard);
    }
    if (!shard_it->second->Contains(it.key())) {
      return absl::InvalidArgumentError(absl::StrCat("sharded index '", index_path, "': key '",
                                                     it.key(), "' is assigned to shard '", shard,
                                                     "', which does not contain it"));
    }
    sharded->key_to_shard_.emplace(it.key(), shard_it->second.get());
  }
  return sharded;
}

std::vector<std::string> ShardedSafetensors::ShardFiles() const { return shard_order_; }

std::vector<std::string> ShardedSafetensors::Names() const {
  std::vector<std::string> names;
  names.reserve(key_to_shard_.size());
  for (const auto& [name, shard] : key_to_shard_) names.push_back(name);
  return names;
}

bool ShardedSafetensors::Contains(std::string_view name) const {
  return key_to_shard_.find(name) != key_to_shard_.end();
}

absl::StatusOr<TensorInfo> ShardedSafetensors::Info(std::string_view name) const {
  auto it = key_to_shard_.find(name);
  if (it == key_to_shard_.end()) {
    return absl::NotFoundError(absl::StrCat("no tensor '", std::string(name),
                                            "' in sharded checkpoint '", index_path_, "'"));
  }
  return it->second->Info(name);
}

absl::StatusOr<at::Tensor> ShardedSafetensors::Tensor(std::string_view name) const {
  auto it = key_to_shard_.find(name);
  if (it == key_to_shard_.end()) {
    return absl::NotFoundError(absl::StrCat("no tensor '", std::string(name),
                                            "' in sharded checkpoint '", index_path_, "'"));
  }
  return it->second->Tensor(name);
}

}  // namespace imginterp::models
