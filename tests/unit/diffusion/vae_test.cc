// AutoencoderKL: config parsing, the published SD1.5 VAE key set (on the meta device), parity with
// diffusers 0.27.2 on the tiny reference VAE (decode and encode), and loading checkpoints that use
// the legacy mid-block attention names.
#include "services/models/diffusion/vae.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>
#include <string>

#include "services/models/io/state_dict.h"
#include "services/models/io/tensor_source.h"
#include "tests/unit/diffusion/models_test_util.h"

namespace imginterp::diffusion {
namespace {

using testing::DtypeParity;
using testing::ExpectKeysMatchTable;
using testing::Get;
using testing::OpenOrFail;
using testing::ReferenceDiffusionDir;
using testing::TinyDir;

using testing::kMeta;

TEST(VaeConfig, Sd15ConfigExposesScalingFactorAndDownscale) {
  auto config = AutoencoderKLConfig::FromFile(ReferenceDiffusionDir() + "configs/sd15/vae.json");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_DOUBLE_EQ(config->scaling_factor, 0.18215);
  EXPECT_EQ(config->DownscaleFactor(), 8);
  EXPECT_EQ(config->layers_per_block, 2);
  auto bad = AutoencoderKLConfig::FromJson(
      R"({"block_out_channels": [32], "down_block_types": ["AttnDownEncoderBlock2D"]})");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("AttnDownEncoderBlock2D"), std::string::npos);
  EXPECT_FALSE(AutoencoderKLConfig::FromJson(R"({"block_out_channels": [48]})").ok());
}

TEST(VaeKeys, Sd15VaeBuiltOnMetaHasExactlyThePublishedKeysAndShapes) {
  auto config = AutoencoderKLConfig::FromFile(ReferenceDiffusionDir() + "configs/sd15/vae.json");
  ASSERT_TRUE(config.ok()) << config.status();
  auto vae = CreateAutoencoderKL(*config, kMeta);
  ASSERT_TRUE(vae.ok()) << vae.status();
  ExpectKeysMatchTable(**vae, "vae_keys.tsv", 248, 83653863);
}

TEST(VaeKeys, TinyVaeMatchesItsKeyTable) {
  auto config = AutoencoderKLConfig::FromFile(TinyDir() + "tiny_vae.config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  auto vae = CreateAutoencoderKL(*config, kMeta);
  ASSERT_TRUE(vae.ok()) << vae.status();
  ExpectKeysMatchTable(**vae, "tiny_vae_keys.tsv");
}

class VaeParity : public DtypeParity {
 protected:
  void SetUp() override {
    auto config = AutoencoderKLConfig::FromFile(TinyDir() + "tiny_vae.config.json");
    ASSERT_TRUE(config.ok()) << config.status();
    config_ = *config;
    weights_ = OpenOrFail(TinyDir() + "tiny_vae.weights.safetensors");
    io_ = OpenOrFail(TinyDir() + "tiny_vae.io.safetensors");
    ASSERT_TRUE(weights_ && io_);
  }

  AutoencoderKLConfig config_;
  std::unique_ptr<models::SafetensorsFile> weights_;
  std::unique_ptr<models::SafetensorsFile> io_;
};

TEST_P(VaeParity, TinyVaeDecodeAndEncodeMatchDiffusers) {
  auto vae = LoadAutoencoderKL(config_, *weights_, Options());
  ASSERT_TRUE(vae.ok()) << vae.status();
  const auto dtype = GetParam();
  testing::ExpectClose(Label("vae.decode"), (*vae)->Decode(Get(*io_, "in.z").to(dtype)),
                       Get(*io_, OutPrefix() + "decode"));
  LatentDistribution dist = (*vae)->Encode(Get(*io_, "in.image").to(dtype));
  testing::ExpectClose(Label("vae.encode_mean"), dist.mean, Get(*io_, OutPrefix() + "encode_mean"));
  testing::ExpectClose(Label("vae.encode_logvar"), dist.logvar,
                       Get(*io_, OutPrefix() + "encode_logvar"));
}

TEST_P(VaeParity, LegacyMidBlockAttentionNamesLoadToTheSameModel) {
  std::map<std::string, at::Tensor> legacy;
  int renamed = 0;
  for (const auto& name : weights_->Names()) {
    std::string key = name;
    for (const auto& [now, before] :
         std::map<std::string, std::string>{{".to_q.", ".query."},
                                            {".to_k.", ".key."},
                                            {".to_v.", ".value."},
                                            {".to_out.0.", ".proj_attn."}}) {
      const auto pos = key.find(now);
      if (key.find("mid_block.attentions") != std::string::npos && pos != std::string::npos) {
        key.replace(pos, now.size(), before);
        ++renamed;
      }
    }
    legacy[key] = *weights_->Tensor(name);
  }
  EXPECT_EQ(renamed, 16);  // encoder and decoder: 4 linears x weight and bias
  models::MapTensorSource source(legacy, "legacy-named tiny VAE");
  auto vae = LoadAutoencoderKL(config_, source, Options());
  ASSERT_TRUE(vae.ok()) << vae.status();
  testing::ExpectClose(Label("vae.decode (legacy names)"),
                       (*vae)->Decode(Get(*io_, "in.z").to(GetParam())),
                       Get(*io_, OutPrefix() + "decode"));
}

TEST(VaeLoad, MissingWeightsAreReportedByName) {
  auto config = AutoencoderKLConfig::FromFile(TinyDir() + "tiny_vae.config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  auto weights = OpenOrFail(TinyDir() + "tiny_vae.weights.safetensors");
  ASSERT_TRUE(weights);
  std::map<std::string, at::Tensor> partial;
  for (const auto& name : weights->Names()) {
    if (name != "post_quant_conv.weight") partial[name] = *weights->Tensor(name);
  }
  models::MapTensorSource source(partial);
  auto vae = LoadAutoencoderKL(*config, source);
  ASSERT_FALSE(vae.ok());
  EXPECT_NE(vae.status().message().find("post_quant_conv.weight"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, VaeParity, ::testing::Values(torch::kDouble, torch::kFloat),
                         [](const auto& info) { return std::string(c10::toString(info.param)); });

}  // namespace
}  // namespace imginterp::diffusion
