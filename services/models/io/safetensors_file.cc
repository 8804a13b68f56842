#include "services/models/io/safetensors_file.h"

#include <ATen/Functions.h>
#include <c10/util/Exception.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "services/core/common/status_macros.h"

namespace imginterp::models {

namespace detail {

// A private, copy-on-write mapping of a whole file: tensors may be modified in place without
// touching the file and without faulting. Unmapped when the last owner (the SafetensorsFile or a
// tensor over it) goes away.
struct FileMapping {
  void* data = nullptr;
  size_t size = 0;

  FileMapping() = default;
  FileMapping(const FileMapping&) = delete;
  FileMapping& operator=(const FileMapping&) = delete;
  ~FileMapping() {
    if (data != nullptr) munmap(data, size);
  }
};

}  // namespace detail

namespace {

// Same limit as the reference implementation: a header this large is not a real checkpoint.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct DTypeSpec {
  std::string_view name;
  std::optional<at::ScalarType> scalar_type;  // nullopt: in the format, not in LibTorch 1.13
  uint64_t element_size;
};

constexpr DTypeSpec kDTypes[] = {
    {"F64", at::ScalarType::Double, 8}, {"F32", at::ScalarType::Float, 4},
    {"F16", at::ScalarType::Half, 2},   {"BF16", at::ScalarType::BFloat16, 2},
    {"I64", at::ScalarType::Long, 8},   {"I32", at::ScalarType::Int, 4},
    {"I16", at::ScalarType::Short, 2},  {"I8", at::ScalarType::Char, 1},
    {"U8", at::ScalarType::Byte, 1},    {"BOOL", at::ScalarType::Bool, 1},
    {"U64", std::nullopt, 8},           {"U32", std::nullopt, 4},
    {"U16", std::nullopt, 2},           {"F8_E5M2", std::nullopt, 1},
    {"F8_E4M3", std::nullopt, 1},
};

const DTypeSpec* FindDType(std::string_view name) {
  for (const DTypeSpec& spec : kDTypes) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

std::string SupportedDTypes() {
  std::vector<std::string> names;
  for (const DTypeSpec& spec : kDTypes) {
    if (spec.scalar_type.has_value()) names.emplace_back(spec.name);
  }
  return absl::StrJoin(names, ", ");
}

std::string OffsetsText(uint64_t begin, uint64_t end) {
  return absl::StrCat("[", begin, ", ", end, "]");
}

// Parses one tensor entry of the header; `data_size` is the size of the data section.
absl::Status ParseEntry(const std::string& where, const std::string& name,
                        const nlohmann::json& entry, uint64_t data_offset, TensorInfo* info) {
  const std::string prefix = absl::StrCat(where, ": tensor '", name, "'");
  if (!entry.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, " is not a JSON object"));
  }
  auto dtype_it = entry.find("dtype");
  if (dtype_it == entry.end() || !dtype_it->is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, " has no string \"dtype\""));
  }
  info->name = name;
  info->dtype = dtype_it->get<std::string>();
  const DTypeSpec* spec = FindDType(info->dtype);
  if (spec == nullptr || !spec->scalar_type.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, " has dtype '", info->dtype, "', which ",
                     spec == nullptr ? "is not a safetensors dtype" : "LibTorch 1.13 cannot hold",
                     " (supported: ", SupportedDTypes(), ")"));
  }
  info->scalar_type = *spec->scalar_type;

  auto shape_it = entry.find("shape");
  if (shape_it == entry.end() || !shape_it->is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, " has no \"shape\" array"));
  }
  uint64_t numel = 1;
  info->shape.clear();
  for (const nlohmann::json& dim : *shape_it) {
    if (!dim.is_number_unsigned()) {
      return absl::InvalidArgumentError(absl::StrCat(prefix, " has shape ", shape_it->dump(),
                                                     "; dimensions must be non-negative integers"));
    }
    const uint64_t value = dim.get<uint64_t>();
    if (value > static_cast<uint64_t>(INT64_MAX) || __builtin_mul_overflow(numel, value, &numel)) {
      return absl::InvalidArgumentError(
          absl::StrCat(prefix, " has shape ", shape_it->dump(), ", whose size overflows"));
    }
    info->shape.push_back(static_cast<int64_t>(value));
  }

  auto offsets_it = entry.find("data_offsets");
  if (offsets_it == entry.end() || !offsets_it->is_array() || offsets_it->size() != 2 ||
      !(*offsets_it)[0].is_number_unsigned() || !(*offsets_it)[1].is_number_unsigned()) {
    return absl::InvalidArgumentError(absl::StrCat(
        prefix, " needs \"data_offsets\": [begin, end] with non-negative integers, got ",
        offsets_it == entry.end() ? std::string("nothing") : offsets_it->dump()));
  }
  info->data_begin = (*offsets_it)[0].get<uint64_t>();
  info->data_end = (*offsets_it)[1].get<uint64_t>();
  if (info->data_end < info->data_begin) {
    return absl::InvalidArgumentError(absl::StrCat(
        prefix, " has data_offsets ", OffsetsText(info->data_begin, info->data_end),
        " with end before begin (file byte offset ", data_offset + info->data_begin, ")"));
  }
  uint64_t needed = 0;
  if (__builtin_mul_overflow(numel, spec->element_size, &needed) ||
      info->data_end - info->data_begin != needed) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, " has data_offsets ", OffsetsText(info->data_begin, info->data_end),
                     " (", info->data_end - info->data_begin, " bytes at file byte offset ",
                     data_offset + info->data_begin, ") but dtype ", info->dtype, " with shape ",
                     shape_it->dump(), " needs ", needed, " bytes"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  const std::string where = absl::StrCat("safetensors file '", path, "'");
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    const std::string message = absl::StrCat("cannot open ", where, ": ", std::strerror(err));
    if (err == ENOENT) return absl::NotFoundError(message);
    if (err == EACCES) return absl::PermissionDeniedError(message);
    return absl::InternalError(message);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(where, " is not a regular file"));
  }
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < 8) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(
        where, " is ", file_size, " bytes, shorter than the 8-byte header length at byte 0"));
  }
  auto mapping = std::make_shared<detail::FileMapping>();
  void* data = ::mmap(nullptr, file_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  const int mmap_errno = errno;
  ::close(fd);
  if (data == MAP_FAILED) {
    return absl::InternalError(absl::StrCat("cannot map ", where, " (", file_size,
                                            " bytes): ", std::strerror(mmap_errno)));
  }
  mapping->data = data;
  mapping->size = file_size;
  const auto* bytes = static_cast<const unsigned char*>(data);

  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | bytes[i];
  if (header_size > kMaxHeaderBytes) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": header length ", header_size,
                                                   " (bytes 0..8) exceeds the limit of ",
                                                   kMaxHeaderBytes, " bytes"));
  }
  if (header_size > file_size - 8) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": header length ", header_size, " (bytes 0..8) runs past the end of ",
        "the file, which is ", file_size, " bytes; the file is truncated or not ", "safetensors"));
  }
  const uint64_t data_offset = 8 + header_size;
  const uint64_t data_size = file_size - data_offset;

  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes + 8, bytes + data_offset);
  } catch (const nlohmann::json::parse_error& e) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": header is not valid JSON near file ",
                                                   "byte offset ", 8 + e.byte, ": ", e.what()));
  }
  if (!header.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": header (file bytes 8..", data_offset, ") is not a JSON object"));
  }

  auto file = std::unique_ptr<SafetensorsFile>(new SafetensorsFile());
  file->path_ = path;
  file->data_offset_ = data_offset;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": \"__metadata__\" must be an object of strings"));
      }
      for (auto meta = it->begin(); meta != it->end(); ++meta) {
        if (!meta->is_string()) {
          return absl::InvalidArgumentError(
              absl::StrCat(where, ": \"__metadata__\" entry '", meta.key(), "' is not a string"));
        }
        file->metadata_[meta.key()] = meta->get<std::string>();
      }
      continue;
    }
    TensorInfo info;
    IMGINTERP_RETURN_IF_ERROR(ParseEntry(where, it.key(), *it, data_offset, &info));
    if (info.data_end > data_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": tensor '", info.name, "' has data_offsets ",
          OffsetsText(info.data_begin, info.data_end), " (file byte offsets ",
          data_offset + info.data_begin, "..", data_offset + info.data_end,
          ") past the end of the data section, which is ", data_size, " bytes (file size ",
          file_size, "); the file is truncated or the offsets are wrong"));
    }
    file->tensors_.emplace(info.name, std::move(info));
  }

  // The data section must be covered exactly once: no overlaps, no holes, nothing after the end.
  std::vector<const TensorInfo*> by_offset;
  by_offset.reserve(file->tensors_.size());
  for (const auto& [name, info] : file->tensors_) by_offset.push_back(&info);
  std::sort(by_offset.begin(), by_offset.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return std::tie(a->data_begin, a->data_end, a->name) <
           std::tie(b->data_begin, b->data_end, b->name);
  });
  uint64_t covered = 0;
  const TensorInfo* previous = nullptr;
  for (const TensorInfo* info : by_offset) {
    if (info->data_begin < covered) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": tensor '", info->name, "' at data_offsets ",
          OffsetsText(info->data_begin, info->data_end), " overlaps tensor '", previous->name,
          "' at ", OffsetsText(previous->data_begin, previous->data_end), " (file byte offset ",
          data_offset + info->data_begin, ")"));
    }
    if (info->data_begin > covered) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": data section has a hole of ", info->data_begin - covered,
                       " bytes before tensor '", info->name, "' at data_offsets ",
                       OffsetsText(info->data_begin, info->data_end), " (file byte offset ",
                       data_offset + covered, ")"));
    }
    covered = info->data_end;
    if (info->data_end > info->data_begin) previous = info;
  }
  if (covered != data_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": data section is ", data_size, " bytes but the tensors end at ", covered,
        " (file byte offset ", data_offset + covered, "); the file has trailing bytes"));
  }
  file->mapping_ = std::move(mapping);
  return file;
}

SafetensorsFile::~SafetensorsFile() = default;

const void* SafetensorsFile::MappedData() const { return mapping_->data; }
size_t SafetensorsFile::MappedSize() const { return mapping_->size; }

std::vector<std::string> SafetensorsFile::Names() const {
  std::vector<std::string> names;
  names.reserve(tensors_.size());
  for (const auto& [name, info] : tensors_) names.push_back(name);
  return names;
}

bool SafetensorsFile::Contains(std::string_view name) const {
  return tensors_.find(name) != tensors_.end();
}

absl::StatusOr<TensorInfo> SafetensorsFile::Info(std::string_view name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) {
    return absl::NotFoundError(
        absl::StrCat("no tensor '", std::string(name), "' in safetensors file '", path_, "'"));
  }
  return it->second;
}

absl::StatusOr<at::Tensor> SafetensorsFile::Tensor(std::string_view name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) {
    return absl::NotFoundError(
        absl::StrCat("no tensor '", std::string(name), "' in safetensors file '", path_, "'"));
  }
  const TensorInfo& info = it->second;
  const auto options = at::TensorOptions().dtype(info.scalar_type).device(at::kCPU);
  try {
    if (info.data_end == info.data_begin) return at::empty(info.shape, options);
    char* ptr = static_cast<char*>(mapping_->data) + data_offset_ + info.data_begin;
    const size_t element_size = c10::elementSize(info.scalar_type);
    if (reinterpret_cast<uintptr_t>(ptr) % element_size != 0) {
      return at::from_blob(ptr, info.shape, options).clone();
    }
    std::shared_ptr<detail::FileMapping> keep_alive = mapping_;
    return at::from_blob(
        ptr, info.shape, [keep_alive](void*) mutable { keep_alive.reset(); }, options);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("cannot make a tensor of '", std::string(name),
                                            "' from '", path_, "': ", e.what_without_backtrace()));
  }
}

absl::Status WriteSafetensors(const std::string& path,
                              const std::map<std::string, at::Tensor>& tensors,
                              const std::map<std::string, std::string>& metadata) {
  struct Entry {
    std::string name;
    at::Tensor data;
    std::string_view dtype;
  };
  std::vector<Entry> entries;
  try {
    for (const auto& [name, tensor] : tensors) {
      if (name == "__metadata__") {
        return absl::InvalidArgumentError("a tensor cannot be named \"__metadata__\"");
      }
      if (!tensor.defined()) {
        return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' is undefined"));
      }
      const std::string_view dtype = SafetensorsDTypeName(tensor.scalar_type());
      if (dtype.empty()) {
        return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' has dtype ",
                                                       c10::toString(tensor.scalar_type()),
                                                       ", which safetensors cannot store"));
      }
      entries.push_back({name, tensor.detach().to(at::kCPU).contiguous(), dtype});
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("cannot prepare tensors for '", path, "': ", e.what_without_backtrace()));
  }
  // Larger elements first, so that every tensor starts aligned for its dtype.
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.data.element_size() > b.data.element_size();
  });

  std::string header_text;
  try {
    nlohmann::json header = nlohmann::json::object();
    if (!metadata.empty()) header["__metadata__"] = metadata;
    uint64_t offset = 0;
    for (const Entry& entry : entries) {
      const uint64_t size = entry.data.numel() * entry.data.element_size();
      header[entry.name] = {{"dtype", std::string(entry.dtype)},
                            {"shape", entry.data.sizes().vec()},
                            {"data_offsets", {offset, offset + size}}};
      offset += size;
    }
    header_text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot write the header of '", path, "': ", e.what()));
  }
  header_text.append((8 - header_text.size() % 8) % 8, ' ');

  const std::string tmp_path = path + ".tmp";
  {
    std::ofstream out(tmp_path, std::ios::binary | std::ios::trunc);
    if (!out) {
      return absl::InternalError(
          absl::StrCat("cannot create '", tmp_path, "': ", std::strerror(errno)));
    }
    unsigned char length[8];
    uint64_t header_size = header_text.size();
    for (unsigned char& byte : length) {
      byte = static_cast<unsigned char>(header_size & 0xff);
      header_size >>= 8;
    }
    out.write(reinterpret_cast<const char*>(length), sizeof(length));
    out.write(header_text.data(), static_cast<std::streamsize>(header_text.size()));
    for (const Entry& entry : entries) {
      out.write(static_cast<const char*>(entry.data.data_ptr()),
                static_cast<std::streamsize>(entry.data.numel() * entry.data.element_size()));
    }
    out.close();
    if (!out) {
      std::remove(tmp_path.c_str());
      return absl::InternalError(absl::StrCat("cannot write '", tmp_path, "'"));
    }
  }
  if (std::rename(tmp_path.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp_path.c_str());
    return absl::InternalError(
        absl::StrCat("cannot rename '", tmp_path, "' to '", path, "': ", std::strerror(err)));
  }
  return absl::OkStatus();
}

}  // namespace imginterp::models
