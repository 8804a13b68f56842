#include "services/clip/clip_handler.h"

#include "absl/strings/str_cat.h"
#include "inference/grpc_service.pb.h"
#include "services/core/common/status_macros.h"

namespace imginterp::clip_service {

std::string ClipHandler::description() const {
  return "CLIP image-text scoring (exp(logit_scale) x cosine for every image x text pair), "
         "ranking of candidate images against a text and/or a source image, and unit-norm "
         "embeddings, from transformers CLIP folders (backend \"native\"). Image embeddings are "
         "cached per model by the hash of the encoded bytes (config parameter "
         "embedding_cache_size).";
}

absl::StatusOr<std::unique_ptr<service::ModelInstance>> ClipHandler::CreateInstance(
    const service::ModelLoadInfo& info, std::unique_ptr<model::ModelRunner> runner) const {
  if (runner != nullptr || info.version_dir.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "clip model '", info.name,
        "' needs backend \"native\" in config.pbtxt and a transformers CLIP folder (config.json, "
        "model.safetensors, vocab.json, merges.txt, preprocessor_config.json) as its version "
        "directory"));
  }
  IMGINTERP_ASSIGN_OR_RETURN(ClipModelSettings settings, ParseClipModelSettings(info.config));
  IMGINTERP_ASSIGN_OR_RETURN(
      std::unique_ptr<ClipInstance> instance,
      ClipInstance::Load(info.name, info.version_dir, settings, options_.limits));
  return instance;
}

absl::Status ClipHandler::ToKServe(const google::protobuf::Message& message,
                                   inference::ModelInferResponse* out) const {
  const auto& response = static_cast<const v1::ScoreResponse&>(message);
  auto add_matrix = [out](const std::string& name, int64_t rows, int64_t cols,
                          const google::protobuf::RepeatedField<float>& values) {
    auto* tensor = out->add_outputs();
    tensor->set_name(name);
    tensor->set_datatype("FP32");
    tensor->add_shape(rows);
    tensor->add_shape(cols);
    tensor->mutable_contents()->mutable_fp32_contents()->Add(values.begin(), values.end());
  };
  add_matrix("scores", response.num_images(), response.num_texts(), response.scores());
  add_matrix("cosines", response.num_images(), response.num_texts(), response.cosines());
  auto add_embeddings = [&](const std::string& name,
                            const google::protobuf::RepeatedPtrField<v1::Embedding>& rows) {
    if (rows.empty()) return;
    google::protobuf::RepeatedField<float> values;
    for (const v1::Embedding& row : rows) values.Add(row.values().begin(), row.values().end());
    add_matrix(name, rows.size(), rows[0].values_size(), values);
  };
  add_embeddings("image_embeddings", response.image_embeddings());
  add_embeddings("text_embeddings", response.text_embeddings());
  (*out->mutable_parameters())["logit_scale_exp"].set_double_param(response.logit_scale_exp());
  return absl::OkStatus();
}

void ClipHandler::DescribeKServeOutputs(inference::ModelMetadataResponse* metadata) const {
  for (const char* name : {"scores", "cosines"}) {
    auto* output = metadata->add_outputs();
    output->set_name(name);
    output->set_datatype("FP32");
    output->add_shape(-1);
    output->add_shape(-1);
  }
}

}  // namespace imginterp::clip_service
