// One loaded CLIP model version of the clip family: the native CLIPModel, its tokenizer and image
// preprocessor, and LRU caches of image and text embeddings shared by every request the version
// serves. Runs ScoreRequest, RankRequest and EmbedRequest (proto/imginterp/v1/clip.proto); see
// clip_handler.h for the folder layout and config.pbtxt parameters.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "imginterp/v1/model_config.pb.h"
#include "services/core/codec/image_codec.h"
#include "services/core/service/family_handler.h"

namespace imginterp::clip_service {

// Per-model settings from config.pbtxt parameters (documented in clip_handler.h).
struct ClipModelSettings {
  int64_t embedding_cache_size = 1024;
  int64_t text_cache_size = 1024;
  int max_images = 64;
  int max_texts = 64;
  int intra_op_threads = 1;
};
// INVALID_ARGUMENT naming the parameter for values that are not integers in range.
absl::StatusOr<ClipModelSettings> ParseClipModelSettings(const v1::ModelConfig& config);

// Counters of the instance's embedding caches. Thread-safe to read at any time.
struct ClipCacheStats {
  int64_t image_hits = 0;
  int64_t image_misses = 0;
  int64_t text_hits = 0;
  int64_t text_misses = 0;
};

// One loaded CLIP model version with its tokenizer, preprocessor and caches. Externally
// synchronized (the core's executor thread runs it), except cache_stats().
class ClipInstance final : public service::ExecuteModel {
 public:
  // Loads `version_dir` (see the file comment). Errors of the loaders, with the folder named.
  static absl::StatusOr<std::unique_ptr<ClipInstance>> Load(const std::string& name,
                                                            const std::string& version_dir,
                                                            const ClipModelSettings& settings,
                                                            const codec::ImageLimits& limits);
  ~ClipInstance() override;
  ClipInstance(const ClipInstance&) = delete;
  ClipInstance& operator=(const ClipInstance&) = delete;

  // One pass of each tower on a blank image and an empty text (caches untouched).
  absl::Status Warmup() override;
  ClipCacheStats cache_stats() const;
  // The model's projection dimension and exp(logit_scale).
  int dimension() const;
  float logit_scale_exp() const;

 protected:
  // Runs a ScoreRequest, RankRequest or EmbedRequest (INVALID_ARGUMENT for any other message).
  absl::Status Execute(service::WorkItem& item) override;

 private:
  struct State;
  explicit ClipInstance(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace imginterp::clip_service
