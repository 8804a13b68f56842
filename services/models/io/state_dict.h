// Loading a checkpoint (any TensorSource) into a torch::nn::Module by dotted state-dict names,
// and listing a module's keys so that tests can compare a native module tree with the published
// one (keys/*.tsv tables of the reference data).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "services/models/io/tensor_source.h"

namespace torch::nn {
class Module;
}  // namespace torch::nn

namespace imginterp::models {

struct LoadOptions {
  // Only checkpoint keys starting with this prefix are considered, with the prefix removed
  // (e.g. "text_model." ... or "first_stage_model." for a single-file checkpoint). Keys without it
  // are skipped silently. Empty: every key.
  std::string source_prefix;
  // Maps a checkpoint key (after source_prefix is removed) to the module key. Return an empty
  // string to drop the key. Unset: identity.
  std::function<std::string(std::string_view)> rename;
  // Patterns (fnmatch-style globs: '*', '?', '[...]'; a plain key matches itself) of keys that are
  // neither loaded nor reported as missing or unexpected. Matched against the checkpoint key
  // (after prefix removal and rename) and the module key, e.g. "*.position_ids".
  std::vector<std::string> ignore;
  // When true (default), missing and unexpected keys are errors. When false they are only listed
  // in the LoadReport. Shape mismatches are always errors.
  bool strict = true;
};

struct LoadReport {
  int64_t loaded = 0;                   // parameters and buffers copied
  std::vector<std::string> missing;     // module keys the checkpoint lacks (non-strict only)
  std::vector<std::string> unexpected;  // checkpoint keys the module lacks (non-strict only)
  std::vector<std::string> ignored;     // keys matched by LoadOptions::ignore
};

// Copies every parameter and buffer of `module` (recursive named_parameters()/named_buffers())
// from `source`, converting to the module tensor's dtype and device. Nothing is copied unless the
// whole checkpoint matches. INVALID_ARGUMENT listing (up to 10 each, plus the total count) the
// missing keys, the unexpected keys, and for each shape mismatch the key with both shapes; also
// when two checkpoint keys rename to the same module key. Errors reading the source are passed
// on. LibTorch exceptions become INTERNAL. `report` may be null.
// Not thread-safe with respect to `module`: the caller must not use the module meanwhile.
absl::Status LoadStateDict(torch::nn::Module& module, const TensorSource& source,
                           const LoadOptions& options = {}, LoadReport* report = nullptr);

// The rename for VAE checkpoints written before diffusers 0.14: mid-block attention
// "query/key/value/proj_attn" become "to_q/to_k/to_v/to_out.0"; any other key is unchanged.
// e.g. "decoder.mid_block.attentions.0.proj_attn.weight" -> "...attentions.0.to_out.0.weight".
std::string LegacyVaeAttentionRename(std::string_view key);

// One row of a key table: a state-dict key with its shape and dtype ("float32", "float16",
// "int64", ... as PyTorch prints them without the "torch." prefix).
struct KeyEntry {
  std::string key;
  std::vector<int64_t> shape;  // empty for a scalar
  std::string dtype;
  int64_t Numel() const;
};

// Every parameter and then every buffer of `module` with its shape and dtype, in registration
// order.
std::vector<KeyEntry> ExpectedKeys(const torch::nn::Module& module);

// Reads a TSV key table with the header "key<TAB>shape<TAB>dtype<TAB>numel"; shape is
// comma-separated, empty for a scalar. INVALID_ARGUMENT naming the line for malformed rows or a
// numel that does not match the shape; NOT_FOUND when the file is missing.
absl::StatusOr<std::vector<KeyEntry>> ReadKeyTable(const std::string& path);

// OK when `actual` has exactly the keys of `expected` with the same shapes (order and dtype are
// not compared). Otherwise INVALID_ARGUMENT listing (up to 10 each, plus counts) the keys only in
// `expected`, only in `actual`, and the shape differences.
absl::Status CompareKeys(const std::vector<KeyEntry>& expected,
                         const std::vector<KeyEntry>& actual);

// Shape as text: "[32, 4, 3, 3]", "[]" for a scalar.
std::string ShapeToString(const std::vector<int64_t>& shape);

}  // namespace imginterp::models
