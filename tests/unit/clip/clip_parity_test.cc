// Parity with transformers 4.38.2: the tiny reference models (random weights) loaded strictly
// from their safetensors files and run on the recorded inputs, in float64 and float32, must
// reproduce every float64 reference output within 1e-4 (the reference's own fp32/fp64 gap is
// below 5e-6). Each comparison prints its max error.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <iostream>
#include <memory>
#include <string>

#include "services/models/clip/clip_config.h"
#include "services/models/clip/clip_loader.h"
#include "services/models/io/safetensors_file.h"
#include "services/models/nn/attention.h"
#include "tests/unit/clip/clip_test_data.h"

namespace imginterp::clip {
namespace {

using test_data::kRef;
constexpr double kTolerance = 1e-4;

std::unique_ptr<models::SafetensorsFile> OpenOrDie(const std::string& path) {
  auto file = models::SafetensorsFile::Open(path);
  EXPECT_TRUE(file.ok()) << file.status();
  return file.ok() ? std::move(file).value() : nullptr;
}

torch::Tensor Get(const models::SafetensorsFile& file, const std::string& name) {
  auto tensor = file.Tensor(name);
  EXPECT_TRUE(tensor.ok()) << tensor.status();
  return tensor.ok() ? *tensor : torch::Tensor();
}

void ExpectClose(const std::string& what, torch::ScalarType dtype, const torch::Tensor& actual,
                 const torch::Tensor& expected64) {
  ASSERT_TRUE(actual.defined()) << what;
  ASSERT_EQ(actual.sizes(), expected64.sizes()) << what;
  const double err = (actual.to(torch::kDouble) - expected64).abs().max().item<double>();
  std::cout << "[ max error ] " << what << " (" << c10::toString(dtype) << "): " << err
            << std::endl;
  EXPECT_LT(err, kTolerance) << what;
}

class ClipParity : public ::testing::TestWithParam<torch::ScalarType> {
 protected:
  torch::TensorOptions Options() const { return torch::TensorOptions().dtype(GetParam()); }
  torch::NoGradGuard no_grad_;
};

TEST_P(ClipParity, Sd15StyleTextEncoderMatchesTransformers) {
  const std::string dir = kRef + "/diffusion/tiny/";
  auto config = ClipTextConfig::FromFile(dir + "tiny_text_encoder.config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  auto weights = OpenOrDie(dir + "tiny_text_encoder.weights.safetensors");
  auto io = OpenOrDie(dir + "tiny_text_encoder.io.safetensors");
  ASSERT_TRUE(weights && io);
  auto model = LoadClipTextModel(*config, *weights, /*with_projection=*/false, Options());
  ASSERT_TRUE(model.ok()) << model.status();
  auto out = (*model)->forward(Get(*io, "in.input_ids"));
  ExpectClose("text_encoder.last_hidden_state", GetParam(), out.last_hidden_state,
              Get(*io, "out64.last_hidden_state"));
  ExpectClose("text_encoder.pooler_output", GetParam(), out.pooler_output,
              Get(*io, "out64.pooler_output"));
}

TEST_P(ClipParity, IpAdapterStyleImageEncoderMatchesTransformers) {
  const std::string dir = kRef + "/diffusion/tiny/";
  auto config = ClipVisionConfig::FromFile(dir + "tiny_image_encoder.config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  auto weights = OpenOrDie(dir + "tiny_image_encoder.weights.safetensors");
  auto io = OpenOrDie(dir + "tiny_image_encoder.io.safetensors");
  ASSERT_TRUE(weights && io);
  auto model = LoadClipVisionModel(*config, *weights, /*with_projection=*/true, Options());
  ASSERT_TRUE(model.ok()) << model.status();
  auto out = (*model)->forward(Get(*io, "in.pixel_values").to(GetParam()));
  ExpectClose("image_encoder.image_embeds", GetParam(), out.image_embeds,
              Get(*io, "out64.image_embeds"));
  ExpectClose("image_encoder.last_hidden_state", GetParam(), out.last_hidden_state,
              Get(*io, "out64.last_hidden_state"));
  ExpectClose("image_encoder.penultimate_hidden_state", GetParam(), out.penultimate_hidden_state,
              Get(*io, "out64.penultimate_hidden_state"));
}

TEST_P(ClipParity, FullClipModelMatchesTransformers) {
  const std::string dir = kRef + "/clip/";
  auto config = ClipConfig::FromFile(dir + "tiny_clip.config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  auto weights = OpenOrDie(dir + "tiny_clip.weights.safetensors");
  auto io = OpenOrDie(dir + "tiny_clip.io.safetensors");
  ASSERT_TRUE(weights && io);
  auto model = LoadClipModel(*config, *weights, Options());
  ASSERT_TRUE(model.ok()) << model.status();
  auto out =
      (*model)->forward(Get(*io, "in.input_ids"), Get(*io, "in.pixel_values").to(GetParam()));
  const auto dtype = GetParam();
  ExpectClose("clip.text_embeds", dtype, out.text_embeds, Get(*io, "out64.text_embeds"));
  ExpectClose("clip.image_embeds", dtype, out.image_embeds, Get(*io, "out64.image_embeds"));
  ExpectClose("clip.text_features", dtype, out.text_features, Get(*io, "out64.text_features"));
  ExpectClose("clip.image_features", dtype, out.image_features, Get(*io, "out64.image_features"));
  ExpectClose("clip.logits_per_text", dtype, out.logits_per_text,
              Get(*io, "out64.logits_per_text"));
  ExpectClose("clip.logits_per_image", dtype, out.logits_per_image,
              Get(*io, "out64.logits_per_image"));
  ExpectClose("clip.logit_scale", dtype, (*model)->logit_scale, Get(*io, "out64.logit_scale"));
  ExpectClose("clip.logit_scale_exp", dtype, (*model)->logit_scale.exp(),
              Get(*io, "out64.logit_scale_exp"));
  ExpectClose("clip.text_pooler_output", dtype, out.text.pooler_output,
              Get(*io, "out64.text_pooler_output"));
  ExpectClose("clip.vision_pooler_output", dtype, out.vision.pooler_output,
              Get(*io, "out64.vision_pooler_output"));
  ExpectClose("clip.text_last_hidden_state", dtype, out.text.last_hidden_state,
              Get(*io, "out64.text_last_hidden_state"));
  ExpectClose("clip.vision_last_hidden_state", dtype, out.vision.last_hidden_state,
              Get(*io, "out64.vision_last_hidden_state"));
  // get_text_features / get_image_features give the same projections.
  ExpectClose("clip.get_text_features", dtype, (*model)->GetTextFeatures(Get(*io, "in.input_ids")),
              Get(*io, "out64.text_features"));
}

INSTANTIATE_TEST_SUITE_P(Dtypes, ClipParity, ::testing::Values(torch::kDouble, torch::kFloat),
                         [](const ::testing::TestParamInfo<torch::ScalarType>& info) {
                           return info.param == torch::kDouble ? std::string("Float64")
                                                               : std::string("Float32");
                         });

TEST(ClipParityChunked, ChunkedAttentionKeepsTextEncoderParity) {
  torch::NoGradGuard no_grad;
  const std::string dir = kRef + "/diffusion/tiny/";
  auto config = ClipTextConfig::FromFile(dir + "tiny_text_encoder.config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  auto weights = OpenOrDie(dir + "tiny_text_encoder.weights.safetensors");
  auto io = OpenOrDie(dir + "tiny_text_encoder.io.safetensors");
  ASSERT_TRUE(weights && io);
  auto model = LoadClipTextModel(*config, *weights, /*with_projection=*/false);
  ASSERT_TRUE(model.ok()) << model.status();
  nn::AttentionCoreOptions chunked;
  chunked.query_chunk_size = 5;  // 77 queries in 16 chunks, the last one of 2
  nn::SetAttentionCoreOptions(**model, chunked);
  auto out = (*model)->forward(Get(*io, "in.input_ids"));
  ExpectClose("text_encoder.last_hidden_state chunked", torch::kFloat, out.last_hidden_state,
              Get(*io, "out64.last_hidden_state"));
}

TEST(ClipText, PoolsAtTheEndTokenPosition) {
  // Legacy configs (eos_token_id == 2) pool at the highest id; others at the first eos.
  auto ids = torch::tensor({{998, 5, 999, 1, 1}, {998, 7, 8, 999, 999}}, torch::kLong);
  EXPECT_TRUE(torch::equal(EndTokenPositions(ids, 2), torch::tensor({2, 3}, torch::kLong)));
  auto real = torch::tensor({{49406, 320, 49407, 49407}, {49406, 49407, 0, 0}}, torch::kLong);
  EXPECT_TRUE(torch::equal(EndTokenPositions(real, 49407).to(torch::kLong),
                           torch::tensor({2, 1}, torch::kLong)));
}

TEST(ClipText, PaddingMaskLeavesRealTokensUnchanged) {
  // Under the causal mask, padding after the end token cannot affect earlier positions, so an
  // attention mask over the padding changes only the padded positions.
  torch::manual_seed(0);
  ClipTextConfig config;
  config.vocab_size = 50;
  config.hidden_size = 16;
  config.intermediate_size = 20;
  config.num_attention_heads = 2;
  config.num_hidden_layers = 2;
  config.max_position_embeddings = 8;
  config.eos_token_id = 49;
  ClipTextModel model(config);
  nn::ResetParameters(*model);
  auto ids = torch::tensor({{48, 3, 4, 49, 49, 49, 49, 49}}, torch::kLong);
  auto mask = torch::tensor({{1, 1, 1, 1, 0, 0, 0, 0}}, torch::kLong);
  auto plain = model->forward(ids);
  auto masked = model->forward(ids, mask, /*output_hidden_states=*/true);
  EXPECT_TRUE(torch::allclose(plain.last_hidden_state.narrow(1, 0, 4),
                              masked.last_hidden_state.narrow(1, 0, 4), 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(plain.pooler_output, masked.pooler_output, 1e-5, 1e-6));
  EXPECT_EQ(masked.hidden_states.size(), 3u);
  EXPECT_TRUE(torch::equal(masked.hidden_states[1], masked.penultimate_hidden_state));
}

TEST(ClipLoader, StrictLoadNamesMissingKeys) {
  auto config = ClipTextConfig::FromFile(kRef + "/diffusion/tiny/tiny_text_encoder.config.json");
  ASSERT_TRUE(config.ok());
  auto weights = OpenOrDie(kRef + "/diffusion/tiny/tiny_text_encoder.weights.safetensors");
  ASSERT_TRUE(weights);
  // With a projection the checkpoint lacks text_projection.weight.
  auto model = LoadClipTextModel(*config, *weights, /*with_projection=*/true);
  ASSERT_FALSE(model.ok());
  EXPECT_NE(model.status().message().find("text_projection.weight"), std::string::npos)
      << model.status();
}

}  // namespace
}  // namespace imginterp::clip
