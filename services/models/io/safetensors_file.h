// Reader and writer of the safetensors format (https://huggingface.co/docs/safetensors): an 8-byte
// little-endian header length N, N bytes of JSON header, then the data section. The header maps
// each tensor name to {"dtype", "shape", "data_offsets": [begin, end)} (offsets relative to the
// data section) plus an optional "__metadata__" string map.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "services/models/io/tensor_source.h"

namespace imginterp::models {

namespace detail {
struct FileMapping;
}  // namespace detail

// One memory-mapped safetensors file. Open() validates the whole header against the file: header
// length, JSON, dtypes, shapes, offsets in range, sizes matching shape x dtype, no overlapping
// tensors and no gaps. Errors are INVALID_ARGUMENT (NOT_FOUND / PERMISSION_DENIED for the file
// itself) and name the path, the tensor and the byte offset.
//
// Supported dtypes: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL. Other dtypes of the format
// (F8_*, U16, U32, U64) are rejected at Open() because LibTorch 1.13 cannot hold them.
//
// Thread-safe (immutable after Open). Tensors returned by Tensor() keep the mapping alive, so they
// may outlive this object.
class SafetensorsFile : public TensorSource {
 public:
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);

  ~SafetensorsFile() override;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  // The "__metadata__" map of the header (empty when absent).
  const std::map<std::string, std::string>& Metadata() const { return metadata_; }
  // Offset of the data section in the file (8 + header length).
  uint64_t DataOffset() const { return data_offset_; }
  // Start and size of the whole mapped file, so callers can check zero-copy.
  const void* MappedData() const;
  size_t MappedSize() const;

  std::vector<std::string> Names() const override;
  bool Contains(std::string_view name) const override;
  absl::StatusOr<TensorInfo> Info(std::string_view name) const override;
  // Zero-copy over the mapping when the data is aligned for its dtype (always the case for files
  // written by the reference writer and by WriteSafetensors); otherwise an aligned copy.
  absl::StatusOr<at::Tensor> Tensor(std::string_view name) const override;
  std::string Describe() const override { return path_; }

 private:
  SafetensorsFile() = default;

  std::string path_;
  std::shared_ptr<detail::FileMapping> mapping_;
  uint64_t data_offset_ = 0;
  std::map<std::string, std::string> metadata_;
  std::map<std::string, TensorInfo, std::less<>> tensors_;
};

// Writes `tensors` (any device, any layout; stored contiguous from the CPU) and `metadata` as a
// safetensors file. The header is padded with spaces to a multiple of 8 bytes so that every tensor
// is aligned. Writes to "<path>.tmp" and renames, so readers never see a partial file.
// INVALID_ARGUMENT for a dtype the format cannot store or a name "__metadata__"; INTERNAL for I/O.
absl::Status WriteSafetensors(const std::string& path,
                              const std::map<std::string, at::Tensor>& tensors,
                              const std::map<std::string, std::string>& metadata = {});

}  // namespace imginterp::models
