#include "services/models/io/tensor_source.h"

#include <c10/util/Exception.h>

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "services/models/io/safetensors_file.h"
#include "services/models/io/sharded_safetensors.h"

namespace imginterp::models {

int64_t TensorInfo::Numel() const {
  int64_t numel = 1;
  for (int64_t dim : shape) numel *= dim;
  return numel;
}

absl::StatusOr<at::Tensor> TensorSource::FloatTensor(std::string_view name) const {
  absl::StatusOr<at::Tensor> tensor = Tensor(name);
  if (!tensor.ok()) return tensor;
  try {
    return ToFloat(*tensor);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("cannot convert '", std::string(name), "' of ",
                                            Describe(),
                                            " to float32: ", e.what_without_backtrace()));
  }
}

at::Tensor ToFloat(const at::Tensor& tensor) {
  if (!tensor.defined() || !at::isFloatingType(tensor.scalar_type()) ||
      tensor.scalar_type() == at::kFloat) {
    return tensor;
  }
  return tensor.to(at::kFloat);
}

std::string_view SafetensorsDTypeName(at::ScalarType type) {
  switch (type) {
    case at::ScalarType::Double:
      return "F64";
    case at::ScalarType::Float:
      return "F32";
    case at::ScalarType::Half:
      return "F16";
    case at::ScalarType::BFloat16:
      return "BF16";
    case at::ScalarType::Long:
      return "I64";
    case at::ScalarType::Int:
      return "I32";
    case at::ScalarType::Short:
      return "I16";
    case at::ScalarType::Char:
      return "I8";
    case at::ScalarType::Byte:
      return "U8";
    case at::ScalarType::Bool:
      return "BOOL";
    default:
      return "";
  }
}

MapTensorSource::MapTensorSource(std::map<std::string, at::Tensor> tensors, std::string description)
    : tensors_(std::make_move_iterator(tensors.begin()), std::make_move_iterator(tensors.end())),
      description_(std::move(description)) {}

std::vector<std::string> MapTensorSource::Names() const {
  std::vector<std::string> names;
  names.reserve(tensors_.size());
  for (const auto& [name, tensor] : tensors_) names.push_back(name);
  return names;
}

bool MapTensorSource::Contains(std::string_view name) const {
  return tensors_.find(name) != tensors_.end();
}

absl::StatusOr<TensorInfo> MapTensorSource::Info(std::string_view name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) {
    return absl::NotFoundError(
        absl::StrCat("no tensor '", std::string(name), "' in ", description_));
  }
  TensorInfo info;
  info.name = it->first;
  info.scalar_type = it->second.scalar_type();
  info.dtype = std::string(SafetensorsDTypeName(info.scalar_type));
  info.shape = it->second.sizes().vec();
  return info;
}

absl::StatusOr<at::Tensor> MapTensorSource::Tensor(std::string_view name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) {
    return absl::NotFoundError(
        absl::StrCat("no tensor '", std::string(name), "' in ", description_));
  }
  return it->second;
}

std::string MapTensorSource::Describe() const { return description_; }

absl::StatusOr<std::unique_ptr<TensorSource>> OpenTensorSource(const std::string& path) {
  if (absl::EndsWith(path, ".json")) {
    absl::StatusOr<std::unique_ptr<ShardedSafetensors>> sharded = ShardedSafetensors::Open(path);
    if (!sharded.ok()) return sharded.status();
    return std::unique_ptr<TensorSource>(std::move(*sharded));
  }
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(path);
  if (!file.ok()) return file.status();
  return std::unique_ptr<TensorSource>(std::move(*file));
}

}  // namespace imginterp::models
