// The `clip` family: CLIP image–text scores, ranking of candidate images against a text and/or a
// source image, and embeddings, from transformers CLIPModel folders run natively
// (services/models/clip). Repository models use backend "native"; the version folder holds
// config.json, model.safetensors, vocab.json, merges.txt and preprocessor_config.json.
//
// config.pbtxt parameters (all optional):
//   embedding_cache_size  image embeddings kept per model version, keyed by a 128-bit hash of the
//                         encoded bytes (LRU; default 1024, 0 disables)
//   text_cache_size       text embeddings kept, keyed by the text (LRU; default 1024)
//   max_images            images (or rank candidates) accepted per request (default 64)
//   max_texts             texts accepted per request (default 64)
// intra_op_threads sets LibTorch's intra-op threads for the instance's passes.
//
// Typed API: ClipService.Score / Rank / Embed (proto/imginterp/v1/clip.proto). KServe v2 and the
// job bus carry ScoreRequest: one "image" input and the parameter "text" (plus
// "return_embeddings") score one image against one text.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "imginterp/v1/clip.pb.h"
#include "services/clip/clip_instance.h"
#include "services/core/codec/image_codec.h"
#include "services/core/service/family_handler.h"

namespace imginterp::clip_service {

struct ClipOptions {
  // Limits on every decoded image.
  codec::ImageLimits limits;
};

// Thread-safe.
class ClipHandler final : public service::FamilyHandler {
 public:
  explicit ClipHandler(ClipOptions options = {}) : options_(options) {}
  std::string family() const override { return "clip"; }
  std::string description() const override;
  const google::protobuf::Message& request_prototype() const override {
    return v1::ScoreRequest::default_instance();
  }
  const google::protobuf::Message& response_prototype() const override {
    return v1::ScoreResponse::default_instance();
  }
  // Score, Rank and Embed all run as pipeline stages.
  std::vector<BusMethod> BusMethods() const override {
    return {{&v1::ScoreRequest::default_instance(), &v1::ScoreResponse::default_instance()},
            {&v1::RankRequest::default_instance(), &v1::RankResponse::default_instance()},
            {&v1::EmbedRequest::default_instance(), &v1::EmbedResponse::default_instance()}};
  }
  bool uses_repository() const override { return true; }
  // Needs backend "native" (runner null); INVALID_ARGUMENT otherwise.
  absl::StatusOr<std::unique_ptr<service::ModelInstance>> CreateInstance(
      const service::ModelLoadInfo& info,
      std::unique_ptr<model::ModelRunner> runner) const override;
  // Outputs "scores" and "cosines": FP32 [num_images, num_texts]; with return_embeddings also
  // "image_embeddings" [num_images, dim] and "text_embeddings" [num_texts, dim]. Parameter
  // "logit_scale_exp".
  absl::Status ToKServe(const google::protobuf::Message& response,
                        inference::ModelInferResponse* out) const override;
  void DescribeKServeOutputs(inference::ModelMetadataResponse* metadata) const override;

 private:
  ClipOptions options_;
};

}  // namespace imginterp::clip_service
