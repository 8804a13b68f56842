#include "services/core/model/model_repository.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "services/core/common/status_macros.h"

namespace imginterp::model {
namespace {

namespace fs = std::filesystem;

constexpr char kConfigFile[] = "config.pbtxt";
// Config and label files are small; anything bigger is a mistake, not a model.
constexpr std::uintmax_t kMaxTextFileBytes = 16 << 20;

// True if `path` (canonical) is `dir` (canonical) itself or lies below it.
bool IsWithin(const fs::path& path, const fs::path& dir) {
  const std::string p = path.generic_string();
  std::string d = dir.generic_string();
  if (p == d) return true;
  if (d.empty() || d.back() != '/') d.push_back('/');
  return absl::StartsWith(p, d);
}

// Canonical form of an existing path; the error names the path.
absl::StatusOr<fs::path> Canonical(const fs::path& path) {
  std::error_code ec;
  fs::path canonical = fs::canonical(path, ec);
  if (ec) {
    return absl::NotFoundError(absl::StrCat("cannot resolve ", path.string(), ": ", ec.message()));
  }
  return canonical;
}

absl::StatusOr<std::string> ReadTextFile(const fs::path& path) {
  std::error_code ec;
  const std::uintmax_t size = fs::file_size(path, ec);
  if (ec) {
    return absl::NotFoundError(absl::StrCat("cannot read ", path.string(), ": ", ec.message()));
  }
  if (size > kMaxTextFileBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(path.string(), " is ", size, " bytes, limit is ", kMaxTextFileBytes));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path.string()));
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("error while reading ", path.string()));
  return contents.str();
}

// Keeps the first parse error with its position (TextFormat reports 0-based lines and columns).
class FirstErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    if (!error_.empty()) return;
    error_ = absl::StrCat("line ", line + 1, ", column ", column + 1, ": ", message);
  }
  void AddWarning(int line, google::protobuf::io::ColumnNumber column,
                  const std::string& message) override {}
  const std::string& error() const { return error_; }

 private:
  std::string error_;
};

absl::Status ValidateName(const std::string& name) {
  if (name.empty()) return absl::InvalidArgumentError("model name is empty");
  if (absl::StrContains(name, '/') || absl::StrContains(name, '\\') ||
      absl::StrContains(name, "..")) {
    return absl::InvalidArgumentError(
        absl::StrCat("model name '", name, "' escapes the repository"));
  }
  if (name.front() == '.') {
    return absl::InvalidArgumentError(
        absl::StrCat("model name '", name, "' is not valid: names may not start with '.'"));
  }
  return absl::OkStatus();
}

// Checks the fields the rest of the system relies on; `where` names the file for messages.
absl::Status ValidateConfig(const v1::ModelConfig& config, const std::string& where) {
  if (config.backend() != "torchscript" && config.backend() != "native" &&
      config.backend() != "builtin") {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": backend '", config.backend(),
                     "' is not supported (use \"torchscript\", \"native\" or \"builtin\")"));
  }
  struct NonNegative {
    const char* field;
    int64_t value;
  };
  for (const NonNegative& f : {NonNegative{"max_batch_size", config.max_batch_size()},
                               NonNegative{"max_queue_delay_us", config.max_queue_delay_us()},
                               NonNegative{"max_queue_size", config.max_queue_size()},
                               NonNegative{"pinned_version", config.pinned_version()},
                               NonNegative{"intra_op_threads", config.intra_op_threads()}}) {
    if (f.value < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": ", f.field, " is ", f.value, ", it must be 0 or more"));
    }
  }
  const v1::Preprocessing& pre = config.preprocessing();
  if (pre.resize_shorter() < 0 || pre.center_crop() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": preprocessing sizes must be 0 or more (resize_shorter ",
                     pre.resize_shorter(), ", center_crop ", pre.center_crop(), ")"));
  }
  if (pre.mean_size() != 0 && pre.mean_size() != 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": preprocessing.mean has ", pre.mean_size(), " values, give 3 (RGB) or none"));
  }
  if (pre.std_size() != 0 && pre.std_size() != 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": preprocessing.std has ", pre.std_size(), " values, give 3 (RGB) or none"));
  }
  for (float s : pre.std()) {
    if (!(s > 0.0f)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": preprocessing.std values must be positive, got ", s));
    }
  }
  if (!pre.layout().empty() && pre.layout() != "NCHW" && pre.layout() != "NHWC") {
    return absl::InvalidArgumentError(absl::StrCat(where, ": preprocessing.layout '", pre.layout(),
                                                   "' is not \"NCHW\" or \"NHWC\""));
  }
  return absl::OkStatus();
}

std::string JoinVersions(const std::vector<int64_t>& versions) {
  if (versions.empty()) return "none";
  return absl::StrJoin(versions, ", ");
}

}  // namespace

absl::StatusOr<std::unique_ptr<ModelRepository>> ModelRepository::Create(const Options& options) {
  if (options.root.empty()) {
    return absl::InvalidArgumentError("model repository root is empty: give the folder path");
  }
  std::error_code ec;
  fs::path root = fs::canonical(fs::absolute(options.root, ec), ec);
  if (ec || !fs::is_directory(root, ec)) {
    return absl::NotFoundError(absl::StrCat("model repository ", options.root, " does not exist"));
  }
  return std::unique_ptr<ModelRepository>(new ModelRepository(root.string()));
}

absl::StatusOr<std::vector<std::string>> ModelRepository::ListModels() const {
  std::vector<std::string> names;
  std::error_code ec;
  fs::directory_iterator it(root_, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot list model repository ", root_, ": ", ec.message()));
  }
  for (const fs::directory_entry& entry : it) {
    const std::string name = entry.path().filename().string();
    if (!ValidateName(name).ok()) continue;
    std::error_code entry_ec;
    if (!entry.is_directory(entry_ec)) continue;
    // Skip folders that are symlinks leading out of the repository: ReadConfig refuses them.
    fs::path dir = fs::canonical(entry.path(), entry_ec);
    if (entry_ec || !IsWithin(dir, root_)) continue;
    if (!fs::is_regular_file(dir / kConfigFile, entry_ec)) continue;
    names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

absl::StatusOr<std::string> ModelRepository::ModelDir(const std::string& name) const {
  IMGINTERP_RETURN_IF_ERROR(ValidateName(name));
  const fs::path dir = fs::path(root_) / name;
  std::error_code ec;
  const bool exists = fs::exists(fs::symlink_status(dir, ec));
  if (exists) {
    fs::path canonical = fs::canonical(dir, ec);
    if (!ec && !IsWithin(canonical, root_)) {
      return absl::InvalidArgumentError(
          absl::StrCat("model name '", name, "' escapes the repository"));
    }
    if (!ec && fs::is_regular_file(canonical / kConfigFile, ec)) return canonical.string();
  }
  absl::StatusOr<std::vector<std::string>> available = ListModels();
  std::string listed = "none";
  if (available.ok() && !available->empty()) listed = absl::StrJoin(*available, ", ");
  return absl::NotFoundError(absl::StrCat("model '", name, "' is not in the repository ", root_,
                                          " (available: ", listed, ")"));
}

absl::StatusOr<v1::ModelConfig> ModelRepository::ReadConfig(const std::string& name) const {
  IMGINTERP_ASSIGN_OR_RETURN(const std::string dir, ModelDir(name));
  const std::string path = (fs::path(root_) / name / kConfigFile).string();
  IMGINTERP_ASSIGN_OR_RETURN(const std::string text, ReadTextFile(fs::path(dir) / kConfigFile));

  v1::ModelConfig config;
  FirstErrorCollector errors;
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, &config)) {
    const std::string detail = errors.error().empty() ? "unknown error" : errors.error();
    return absl::InvalidArgumentError(absl::StrCat(path, " does not parse: ", detail));
  }
  // Like Triton, a config may leave the name out; it is the folder's.
  if (config.name().empty()) config.set_name(name);
  if (config.name() != name) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": name '", config.name(),
                                                   "' differs from its folder '", name,
                                                   "'; make them equal"));
  }
  IMGINTERP_RETURN_IF_ERROR(ValidateConfig(config, path));
  return config;
}

absl::StatusOr<std::vector<int64_t>> ModelRepository::ListVersions(const std::string& name) const {
  IMGINTERP_ASSIGN_OR_RETURN(const std::string dir, ModelDir(name));
  std::vector<int64_t> versions;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot list versions of model '", name, "' in ", dir, ": ", ec.message()));
  }
  for (const fs::directory_entry& entry : it) {
    const std::string folder = entry.path().filename().string();
    int64_t version = 0;
    // Only canonical positive decimals: "01" or "+1" would alias "1".
    if (!absl::SimpleAtoi(folder, &version) || version <= 0 || absl::StrCat(version) != folder) {
      continue;
    }
    std::error_code entry_ec;
    if (!entry.is_directory(entry_ec)) continue;
    if (entry.is_symlink(entry_ec)) {
      fs::path target = fs::canonical(entry.path(), entry_ec);
      if (entry_ec || !IsWithin(target, root_)) {
        return absl::InvalidArgumentError(
            absl::StrCat("version folder ", (fs::path(root_) / name / folder).string(),
                         " is a symlink leading outside the repository ", root_));
      }
    }
    versions.push_back(version);
  }
  std::sort(versions.begin(), versions.end());
  return versions;
}

absl::StatusOr<ModelVersion> ModelRepository::Resolve(const std::string& name,
                                                      int64_t version) const {
  if (version < 0) {
    return absl::InvalidArgumentError(absl::StrCat("model '", name, "' version ", version,
                                                   " is negative; use 0 for the serving version"));
  }
  IMGINTERP_ASSIGN_OR_RETURN(v1::ModelConfig config, ReadConfig(name));
  IMGINTERP_ASSIGN_OR_RETURN(std::vector<int64_t> versions, ListVersions(name));
  if (versions.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("model '", name, "' has no versions: add a folder ",
                     (fs::path(root_) / name / "1").string(), "/ with model.pt"));
  }
  const auto has = [&versions](int64_t v) {
    return std::binary_search(versions.begin(), versions.end(), v);
  };
  int64_t chosen = version;
  if (chosen == 0 && config.pinned_version() != 0) {
    chosen = config.pinned_version();
    if (!has(chosen)) {
      return absl::NotFoundError(absl::StrCat("model '", name, "' pins version ", chosen,
                                              " in its config.pbtxt but has no version ", chosen,
                                              " (available: ", JoinVersions(versions), ")"));
    }
  } else if (chosen == 0) {
    chosen = versions.back();
  } else if (!has(chosen)) {
    return absl::NotFoundError(absl::StrCat("model '", name, "' has no version ", chosen,
                                            " (available: ", JoinVersions(versions), ")"));
  }

  ModelVersion resolved;
  resolved.name = name;
  resolved.version = chosen;
  resolved.model_dir = (fs::path(root_) / name).string();
  resolved.version_dir = (fs::path(root_) / name / std::to_string(chosen)).string();
  resolved.config = std::move(config);
  resolved.available_versions = std::move(versions);
  return resolved;
}

absl::StatusOr<std::vector<std::string>> ModelRepository::ReadLabels(
    const ModelVersion& model) const {
  const std::string& labels_file = model.config.labels_file();
  if (labels_file.empty()) return std::vector<std::string>{};
  const fs::path relative(labels_file);
  if (relative.is_absolute()) {
    return absl::InvalidArgumentError(absl::StrCat("labels_file '", labels_file, "' of model '",
                                                   model.name,
                                                   "' must be relative to the model folder"));
  }
  IMGINTERP_ASSIGN_OR_RETURN(const fs::path model_dir, Canonical(model.model_dir));
  const fs::path path = fs::path(model.model_dir) / relative;
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    return absl::NotFoundError(
        absl::StrCat("labels file ", path.string(), " of model '", model.name, "' does not exist"));
  }
  IMGINTERP_ASSIGN_OR_RETURN(const fs::path canonical, Canonical(path));
  if (!IsWithin(canonical, model_dir) || canonical == model_dir) {
    return absl::InvalidArgumentError(absl::StrCat("labels_file '", labels_file, "' of model '",
                                                   model.name, "' leaves the model folder ",
                                                   model.model_dir));
  }
  IMGINTERP_ASSIGN_OR_RETURN(const std::string text, ReadTextFile(canonical));
  std::vector<std::string> labels;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    labels.push_back(std::move(line));
  }
  return labels;
}

}  // namespace imginterp::model
