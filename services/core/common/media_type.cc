#include "services/core/common/media_type.h"

#include <filesystem>

#include "absl/strings/ascii.h"

namespace imginterp::common {

std::string ImageMediaTypeOf(absl::string_view path) {
  const std::string extension =
      absl::AsciiStrToLower(std::filesystem::path(std::string(path)).extension().string());
  if (extension == ".png") return "image/png";
  if (extension == ".jpg" || extension == ".jpeg") return "image/jpeg";
  if (extension == ".webp") return "image/webp";
  if (extension == ".bmp") return "image/bmp";
  return "";
}

}  // namespace imginterp::common
