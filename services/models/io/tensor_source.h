// A read-only, named collection of tensors: one safetensors file, a sharded checkpoint, or an
// in-memory map. Model loaders take a TensorSource so they do not care how weights are stored.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace imginterp::models {

// What a source knows about one tensor without reading its data.
struct TensorInfo {
  std::string name;
  std::string dtype;  // safetensors spelling: "F32", "F16", "BF16", "I64", "BOOL", ...
  at::ScalarType scalar_type = at::ScalarType::Float;
  std::vector<int64_t> shape;  // empty for a scalar
  // Byte range [begin, end) inside the file's data section (after the header); 0 for sources
  // that are not files.
  uint64_t data_begin = 0;
  uint64_t data_end = 0;

  int64_t Numel() const;
};

// Read-only tensor collection. Implementations are immutable after creation and thread-safe.
// Tensors returned by Tensor() stay valid after the source is destroyed (they share ownership of
// the storage, e.g. the file mapping).
class TensorSource {
 public:
  virtual ~TensorSource() = default;

  // All tensor names, sorted.
  virtual std::vector<std::string> Names() const = 0;
  virtual bool Contains(std::string_view name) const = 0;
  // NOT_FOUND naming the tensor and Describe() when absent.
  virtual absl::StatusOr<TensorInfo> Info(std::string_view name) const = 0;
  // The tensor in its stored dtype, on the CPU. For files it is zero-copy over the mapping when
  // the data is aligned for its dtype; writing to it in place changes only this process's copy.
  // NOT_FOUND naming the tensor and Describe() when absent.
  virtual absl::StatusOr<at::Tensor> Tensor(std::string_view name) const = 0;
  // For error messages: the file path(s) or "in-memory tensors".
  virtual std::string Describe() const = 0;

  // Tensor(name) converted with ToFloat().
  absl::StatusOr<at::Tensor> FloatTensor(std::string_view name) const;
};

// Floating-point tensors (F16, BF16, F64) become new fp32 tensors; fp32 tensors are returned as
// they are (no copy); integer and bool tensors are returned unchanged.
at::Tensor ToFloat(const at::Tensor& tensor);

// A TensorSource over tensors already in memory (tests, converted checkpoints). The tensors are
// shared, not copied. Thread-safe (immutable).
class MapTensorSource : public TensorSource {
 public:
  explicit MapTensorSource(std::map<std::string, at::Tensor> tensors,
                           std::string description = "in-memory tensors");

  std::vector<std::string> Names() const override;
  bool Contains(std::string_view name) const override;
  absl::StatusOr<TensorInfo> Info(std::string_view name) const override;
  absl::StatusOr<at::Tensor> Tensor(std::string_view name) const override;
  std::string Describe() const override;

 private:
  std::map<std::string, at::Tensor, std::less<>> tensors_;
  std::string description_;
};

// The safetensors name of a LibTorch dtype ("F32" for kFloat); empty when the format has none.
std::string_view SafetensorsDTypeName(at::ScalarType type);

// Opens `path` as a TensorSource: a "*.safetensors.index.json" (or any "*.json") sharded index, or
// a single "*.safetensors" file.
absl::StatusOr<std::unique_ptr<TensorSource>> OpenTensorSource(const std::string& path);

}  // namespace imginterp::models
