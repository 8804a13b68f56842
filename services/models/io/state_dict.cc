#include "services/models/io/state_dict.h"

#include <fnmatch.h>
#include <torch/nn/module.h>

#include <fstream>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "services/core/common/status_macros.h"

namespace imginterp::models {
namespace {

constexpr size_t kMaxListedKeys = 10;

// "a, b, c" or "a, ..., j and 5 more".
std::string ListKeys(const std::vector<std::string>& keys) {
  if (keys.size() <= kMaxListedKeys) return absl::StrJoin(keys, ", ");
  std::vector<std::string> head(keys.begin(), keys.begin() + kMaxListedKeys);
  return absl::StrCat(absl::StrJoin(head, ", "), " and ", keys.size() - kMaxListedKeys, " more");
}

bool MatchesAny(const std::vector<std::string>& patterns, const std::string& key) {
  for (const std::string& pattern : patterns) {
    if (pattern == key || fnmatch(pattern.c_str(), key.c_str(), 0) == 0) return true;
  }
  return false;
}

std::string TorchDTypeName(at::ScalarType type) {
  switch (type) {
    case at::ScalarType::Double:
      return "float64";
    case at::ScalarType::Float:
      return "float32";
    case at::ScalarType::Half:
      return "float16";
    case at::ScalarType::BFloat16:
      return "bfloat16";
    case at::ScalarType::Long:
      return "int64";
    case at::ScalarType::Int:
      return "int32";
    case at::ScalarType::Short:
      return "int16";
    case at::ScalarType::Char:
      return "int8";
    case at::ScalarType::Byte:
      return "uint8";
    case at::ScalarType::Bool:
      return "bool";
    default:
      return c10::toString(type);
  }
}

struct Assignment {
  std::string source_key;  // name in the TensorSource
  at::Tensor target;       // parameter or buffer of the module
};

}  // namespace

std::string ShapeToString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

int64_t KeyEntry::Numel() const {
  int64_t numel = 1;
  for (int64_t dim : shape) numel *= dim;
  return numel;
}

absl::Status LoadStateDict(torch::nn::Module& module, const TensorSource& source,
                           const LoadOptions& options, LoadReport* report) {
  LoadReport local_report;
  LoadReport& out = report != nullptr ? *report : local_report;
  out = LoadReport();
  try {
    std::map<std::string, at::Tensor> targets;
    for (const auto& item : module.named_parameters(/*recurse=*/true)) {
      targets.emplace(item.key(), item.value());
    }
    for (const auto& item : module.named_buffers(/*recurse=*/true)) {
      targets.emplace(item.key(), item.value());
    }

    std::map<std::string, Assignment> assigned;  // by module key
    std::vector<std::string> duplicates;
    for (const std::string& name : source.Names()) {
      std::string_view key = name;
      if (key.substr(0, options.source_prefix.size()) != options.source_prefix) continue;
      key.remove_prefix(options.source_prefix.size());
      const std::string module_key = options.rename ? options.rename(key) : std::string(key);
      if (module_key.empty() || MatchesAny(options.ignore, std::string(key)) ||
          MatchesAny(options.ignore, module_key)) {
        out.ignored.push_back(name);
        continue;
      }
      auto target = targets.find(module_key);
      if (target == targets.end()) {
        out.unexpected.push_back(module_key == key ? name
                                                   : absl::StrCat(name, " (as ", module_key, ")"));
        continue;
      }
      auto [it, inserted] = assigned.emplace(module_key, Assignment{name, target->second});
      if (!inserted) {
        duplicates.push_back(
            absl::StrCat("'", it->second.source_key, "' and '", name, "' -> '", module_key, "'"));
      }
    }
    for (const auto& [key, tensor] : targets) {
      if (assigned.count(key) == 0) {
        if (MatchesAny(options.ignore, key)) {
          out.ignored.push_back(key);
        } else {
          out.missing.push_back(key);
        }
      }
    }

    std::vector<std::string> mismatches;
    for (const auto& [key, assignment] : assigned) {
      IMGINTERP_ASSIGN_OR_RETURN(TensorInfo info, source.Info(assignment.source_key));
      const std::vector<int64_t> want = assignment.target.sizes().vec();
      if (info.shape != want) {
        mismatches.push_back(absl::StrCat("'", key, "': checkpoint ", ShapeToString(info.shape),
                                          ", module ", ShapeToString(want)));
      }
    }

    std::vector<std::string> problems;
    if (options.strict && !out.missing.empty()) {
      problems.push_back(absl::StrCat(
          out.missing.size(),
          " missing key(s) (in the module, not in the checkpoint): ", ListKeys(out.missing)));
    }
    if (options.strict && !out.unexpected.empty()) {
      problems.push_back(absl::StrCat(
          out.unexpected.size(),
          " unexpected key(s) (in the checkpoint, not in the module): ", ListKeys(out.unexpected)));
    }
    if (!mismatches.empty()) {
      problems.push_back(
          absl::StrCat(mismatches.size(), " shape mismatch(es): ", ListKeys(mismatches)));
    }
    if (!duplicates.empty()) {
      problems.push_back(
          absl::StrCat(duplicates.size(), " module key(s) given twice: ", ListKeys(duplicates)));
    }
    if (!problems.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("checkpoint ", source.Describe(),
                       " does not match the module: ", absl::StrJoin(problems, "; ")));
    }

    torch::NoGradGuard no_grad;
    for (auto& [key, assignment] : assigned) {
      IMGINTERP_ASSIGN_OR_RETURN(at::Tensor value, source.Tensor(assignment.source_key));
      assignment.target.copy_(value);
      ++out.loaded;
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat(
        "loading ", source.Describe(), " into the module failed: ", e.what_without_backtrace()));
  }
  return absl::OkStatus();
}

std::string LegacyVaeAttentionRename(std::string_view key) {
  static const std::pair<std::string_view, std::string_view> kRenames[] = {
      {"query", "to_q"}, {"key", "to_k"}, {"value", "to_v"}, {"proj_attn", "to_out.0"}};
  if (key.find("attentions.") == std::string_view::npos) return std::string(key);
  // The module name is the second-to-last segment: "<...>.attentions.0.<module>.<weight|bias>".
  const size_t last_dot = key.rfind('.');
  if (last_dot == std::string_view::npos || last_dot == 0) return std::string(key);
  const size_t module_begin = key.rfind('.', last_dot - 1) + 1;  // npos + 1 == 0
  const std::string_view module_name = key.substr(module_begin, last_dot - module_begin);
  for (const auto& [old_name, new_name] : kRenames) {
    if (module_name == old_name) {
      std::string renamed(key.substr(0, module_begin));
      renamed.append(new_name);
      renamed.append(key.substr(last_dot));
      return renamed;
    }
  }
  return std::string(key);
}

std::vector<KeyEntry> ExpectedKeys(const torch::nn::Module& module) {
  std::vector<KeyEntry> keys;
  auto add = [&keys](const std::string& name, const at::Tensor& tensor) {
    keys.push_back({name, tensor.sizes().vec(), TorchDTypeName(tensor.scalar_type())});
  };
  for (const auto& item : module.named_parameters(/*recurse=*/true)) add(item.key(), item.value());
  for (const auto& item : module.named_buffers(/*recurse=*/true)) add(item.key(), item.value());
  return keys;
}

absl::StatusOr<std::vector<KeyEntry>> ReadKeyTable(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read key table '", path, "'"));
  std::vector<KeyEntry> entries;
  std::string line;
  int line_number = 0;
  while (std::getline(in, line)) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    std::vector<absl::string_view> fields = absl::StrSplit(line, '\t');
    const std::string where = absl::StrCat("key table '", path, "' line ", line_number);
    if (line_number == 1) {
      if (fields.size() < 2 || fields[0] != "key" || fields[1] != "shape") {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": expected the header \"key<TAB>shape<TAB>dtype<TAB>numel\""));
      }
      continue;
    }
    if (fields.size() != 4) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": has ", fields.size(), " fields, expected 4"));
    }
    KeyEntry entry;
    entry.key = std::string(fields[0]);
    entry.dtype = std::string(fields[2]);
    if (!fields[1].empty()) {
      for (absl::string_view dim : absl::StrSplit(fields[1], ',')) {
        int64_t value = 0;
        if (!absl::SimpleAtoi(dim, &value) || value < 0) {
          return absl::InvalidArgumentError(
              absl::StrCat(where, ": bad shape '", fields[1], "' for key '", entry.key, "'"));
        }
        entry.shape.push_back(value);
      }
    }
    int64_t numel = 0;
    if (!absl::SimpleAtoi(fields[3], &numel) || numel != entry.Numel()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": numel '", fields[3], "' of key '",
                                                     entry.key, "' does not match shape ",
                                                     ShapeToString(entry.shape)));
    }
    entries.push_back(std::move(entry));
  }
  if (line_number == 0) {
    return absl::InvalidArgumentError(absl::StrCat("key table '", path, "' is empty"));
  }
  return entries;
}

absl::Status CompareKeys(const std::vector<KeyEntry>& expected,
                         const std::vector<KeyEntry>& actual) {
  std::map<std::string, const KeyEntry*> want;
  for (const KeyEntry& entry : expected) want.emplace(entry.key, &entry);
  std::map<std::string, const KeyEntry*> got;
  for (const KeyEntry& entry : actual) got.emplace(entry.key, &entry);

  std::vector<std::string> only_expected;
  std::vector<std::string> only_actual;
  std::vector<std::string> shape_differences;
  for (const auto& [key, entry] : want) {
    auto it = got.find(key);
    if (it == got.end()) {
      only_expected.push_back(key);
    } else if (it->second->shape != entry->shape) {
      shape_differences.push_back(absl::StrCat("'", key, "': expected ",
                                               ShapeToString(entry->shape), ", actual ",
                                               ShapeToString(it->second->shape)));
    }
  }
  for (const auto& [key, entry] : got) {
    if (want.count(key) == 0) only_actual.push_back(key);
  }
  std::vector<std::string> problems;
  if (!only_expected.empty()) {
    problems.push_back(
        absl::StrCat(only_expected.size(), " key(s) missing: ", ListKeys(only_expected)));
  }
  if (!only_actual.empty()) {
    problems.push_back(
        absl::StrCat(only_actual.size(), " unexpected key(s): ", ListKeys(only_actual)));
  }
  if (!shape_differences.empty()) {
    problems.push_back(absl::StrCat(shape_differences.size(),
                                    " shape difference(s): ", ListKeys(shape_differences)));
  }
  if (problems.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("key tables differ (", expected.size(),
                                                 " expected, ", actual.size(),
                                                 " actual): ", absl::StrJoin(problems, "; ")));
}

}  // namespace imginterp::models
