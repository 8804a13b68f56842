#include "services/models/diffusion/unet_config_json.h"

#include "absl/strings/str_cat.h"

namespace imginterp::diffusion::detail {

using nlohmann::json;

absl::StatusOr<ConfigReader> ConfigReader::Parse(std::string_view json_text,
                                                 std::string_view what) {
  ConfigReader reader;
  reader.what_ = std::string(what);
  try {
    reader.json_ = json::parse(json_text);
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(reader.what_, " is not valid JSON: ", e.what()));
  }
  if (!reader.json_.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(reader.what_, " must be a JSON object"));
  }
  return reader;
}

bool ConfigReader::Has(const char* key) const {
  auto it = json_.find(key);
  return it != json_.end() && !it->is_null();
}

namespace {
absl::Status TypeError(const std::string& what, const char* key, const char* expected,
                       const json& got) {
  return absl::InvalidArgumentError(
      absl::StrCat(what, " field \"", key, "\" must be ", expected, ", got ", got.dump()));
}
}  // namespace

absl::Status ConfigReader::Int(const char* key, int64_t* out) const {
  if (!Has(key)) return absl::OkStatus();
  const json& v = json_.at(key);
  if (!v.is_number_integer()) return TypeError(what_, key, "an integer", v);
  *out = v.get<int64_t>();
  return absl::OkStatus();
}

absl::Status ConfigReader::Double(const char* key, double* out) const {
  if (!Has(key)) return absl::OkStatus();
  const json& v = json_.at(key);
  if (!v.is_number()) return TypeError(what_, key, "a number", v);
  *out = v.get<double>();
  return absl::OkStatus();
}

absl::Status ConfigReader::Bool(const char* key, bool* out) const {
  if (!Has(key)) return absl::OkStatus();
  const json& v = json_.at(key);
  if (!v.is_boolean()) return TypeError(what_, key, "true or false", v);
  *out = v.get<bool>();
  return absl::OkStatus();
}

absl::Status ConfigReader::String(const char* key, std::string* out) const {
  if (!Has(key)) return absl::OkStatus();
  const json& v = json_.at(key);
  if (!v.is_string()) return TypeError(what_, key, "a string", v);
  *out = v.get<std::string>();
  return absl::OkStatus();
}

absl::Status ConfigReader::IntList(const char* key, std::vector<int64_t>* out) const {
  if (!Has(key)) return absl::OkStatus();
  const json& v = json_.at(key);
  if (!v.is_array()) return TypeError(what_, key, "a list of integers", v);
  std::vector<int64_t> values;
  for (const json& e : v) {
    if (!e.is_number_integer()) return TypeError(what_, key, "a list of integers", v);
    values.push_back(e.get<int64_t>());
  }
  *out = std::move(values);
  return absl::OkStatus();
}

absl::Status ConfigReader::StringList(const char* key, std::vector<std::string>* out) const {
  if (!Has(key)) return absl::OkStatus();
  const json& v = json_.at(key);
  if (!v.is_array()) return TypeError(what_, key, "a list of strings", v);
  std::vector<std::string> values;
  for (const json& e : v) {
    if (!e.is_string()) return TypeError(what_, key, "a list of strings", v);
    values.push_back(e.get<std::string>());
  }
  *out = std::move(values);
  return absl::OkStatus();
}

absl::Status ConfigReader::IntOrList(const char* key, size_t n, std::vector<int64_t>* out) const {
  if (!Has(key)) return absl::OkStatus();
  const json& v = json_.at(key);
  if (v.is_number_integer()) {
    out->assign(n, v.get<int64_t>());
    return absl::OkStatus();
  }
  std::vector<int64_t> values;
  if (!v.is_array()) return TypeError(what_, key, "an integer or a list of integers", v);
  for (const json& e : v) {
    if (!e.is_number_integer()) return TypeError(what_, key, "an integer or a list of integers", v);
    values.push_back(e.get<int64_t>());
  }
  if (values.size() != n) {
    return absl::InvalidArgumentError(absl::StrCat(what_, " field \"", key, "\" has ",
                                                   values.size(), " entries, expected ", n,
                                                   " (one per down block)"));
  }
  *out = std::move(values);
  return absl::OkStatus();
}

absl::Status ConfigReader::RequireNullOr(const char* key, const json& allowed) const {
  if (!Has(key)) return absl::OkStatus();
  const json& v = json_.at(key);
  if (!allowed.is_null() && v == allowed) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(what_, " field \"", key, "\" = ", v.dump(),
                                                 " is not supported by this implementation"));
}

}  // namespace imginterp::diffusion::detail
