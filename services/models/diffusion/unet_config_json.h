// Internal: typed reads of diffusers config.json fields with errors that name the field. Used by
// the UNet, ControlNet and VAE configs; not part of the library's API.
//
// Thread-safety: immutable after Parse().
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace imginterp::diffusion::detail {

class ConfigReader {
 public:
  // INVALID_ARGUMENT (prefixed with `what`) unless the text is a JSON object.
  static absl::StatusOr<ConfigReader> Parse(std::string_view json_text, std::string_view what);

  // True when the field is present and not null.
  bool Has(const char* key) const;
  const nlohmann::json& Get(const char* key) const { return json_.at(key); }

  // Each leaves *out unchanged when the field is absent or null.
  absl::Status Int(const char* key, int64_t* out) const;
  absl::Status Double(const char* key, double* out) const;
  absl::Status Bool(const char* key, bool* out) const;
  absl::Status String(const char* key, std::string* out) const;
  absl::Status IntList(const char* key, std::vector<int64_t>* out) const;
  absl::Status StringList(const char* key, std::vector<std::string>* out) const;
  // An integer (repeated `n` times) or a list of exactly `n` integers.
  absl::Status IntOrList(const char* key, size_t n, std::vector<int64_t>* out) const;
  // OK when the field is absent, null, or equal to `allowed`; otherwise INVALID_ARGUMENT saying
  // the feature is not supported.
  absl::Status RequireNullOr(const char* key, const nlohmann::json& allowed) const;

 private:
  nlohmann::json json_;
  std::string what_;
};

}  // namespace imginterp::diffusion::detail
