#include "services/core/common/read_file.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace imginterp::common {

absl::StatusOr<std::string> ReadFile(const std::string& path, absl::string_view what) {
  std::error_code error;
  // An ifstream opens a directory without complaint and then reads nothing.
  if (std::filesystem::is_directory(path, error)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": '", path, "' is a directory, not a file"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat(what, ": cannot read '", path, "' (", std::strerror(errno), ")"));
  }
  std::ostringstream bytes;
  bytes << in.rdbuf();
  if (in.bad()) {
    return absl::DataLossError(absl::StrCat(what, ": reading '", path, "' failed midway"));
  }
  return std::move(bytes).str();
}

}  // namespace imginterp::common
