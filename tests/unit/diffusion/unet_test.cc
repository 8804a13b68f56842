// UNet2DConditionModel: config parsing, the published key set of SD1.5 (built on the meta device,
// so nothing is allocated), and parity with diffusers 0.27.2 on the tiny reference UNet, with and
// without ControlNet residuals.
#include "services/models/diffusion/unet.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "services/models/io/state_dict.h"
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

TEST(UNetConfig, Sd15AttentionHeadDimMeansEightHeads) {
  auto config = UNet2DConditionConfig::FromFile(ReferenceDiffusionDir() + "configs/sd15/unet.json");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->block_out_channels, (std::vector<int64_t>{320, 640, 1280, 1280}));
  EXPECT_EQ(config->num_attention_heads, (std::vector<int64_t>{8, 8, 8, 8}));
  EXPECT_EQ(config->layers_per_block, (std::vector<int64_t>{2, 2, 2, 2}));
  EXPECT_EQ(config->cross_attention_dim, 768);
  EXPECT_EQ(config->TimeEmbedDim(), 1280);
  EXPECT_EQ(config->down_block_types.back(), DownBlockType::kDownBlock2D);
  EXPECT_EQ(config->up_block_types.front(), UpBlockType::kUpBlock2D);
}

TEST(UNetConfig, RejectsUnsupportedFeaturesNamingTheField) {
  auto sdxl = UNet2DConditionConfig::FromJson(R"({"addition_embed_type": "text_time"})");
  ASSERT_FALSE(sdxl.ok());
  EXPECT_NE(sdxl.status().message().find("addition_embed_type"), std::string::npos);
  auto block = UNet2DConditionConfig::FromJson(
      R"({"down_block_types": ["SimpleCrossAttnDownBlock2D"], "block_out_channels": [32],
          "up_block_types": ["UpBlock2D"]})");
  ASSERT_FALSE(block.ok());
  EXPECT_NE(block.status().message().find("SimpleCrossAttnDownBlock2D"), std::string::npos);
  auto lengths = UNet2DConditionConfig::FromJson(R"({"block_out_channels": [32, 64]})");
  EXPECT_FALSE(lengths.ok());
  auto heads = UNet2DConditionConfig::FromJson(
      R"({"block_out_channels": [32, 64, 96, 128], "attention_head_dim": 5})");
  ASSERT_FALSE(heads.ok());
  EXPECT_NE(heads.status().message().find("attention head"), std::string::npos);
  EXPECT_FALSE(UNet2DConditionConfig::FromJson("[1, 2]").ok());
  EXPECT_EQ(UNet2DConditionConfig::FromFile("/nonexistent/config.json").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(UNetKeys, Sd15UNetBuiltOnMetaHasExactlyThePublishedKeysAndShapes) {
  auto config = UNet2DConditionConfig::FromFile(ReferenceDiffusionDir() + "configs/sd15/unet.json");
  ASSERT_TRUE(config.ok()) << config.status();
  auto unet = CreateUNet2DConditionModel(*config, kMeta);
  ASSERT_TRUE(unet.ok()) << unet.status();
  ExpectKeysMatchTable(**unet, "unet_keys.tsv", 686, 859520964);
}

TEST(UNetKeys, TinyUNetMatchesItsKeyTable) {
  auto config = UNet2DConditionConfig::FromFile(TinyDir() + "tiny_unet.config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  auto unet = CreateUNet2DConditionModel(*config, kMeta);
  ASSERT_TRUE(unet.ok()) << unet.status();
  ExpectKeysMatchTable(**unet, "tiny_unet_keys.tsv");
  EXPECT_EQ((*unet)->NumDownResiduals(), 4);
}

using UNetParity = DtypeParity;

TEST_P(UNetParity, TinyUNetMatchesDiffusersWithAndWithoutControlNetResiduals) {
  auto config = UNet2DConditionConfig::FromFile(TinyDir() + "tiny_unet.config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  auto weights = OpenOrFail(TinyDir() + "tiny_unet.weights.safetensors");
  auto io = OpenOrFail(TinyDir() + "tiny_unet.io.safetensors");
  auto cn_io = OpenOrFail(TinyDir() + "tiny_controlnet.io.safetensors");
  ASSERT_TRUE(weights && io && cn_io);
  auto unet = LoadUNet2DConditionModel(*config, *weights, Options());
  ASSERT_TRUE(unet.ok()) << unet.status();

  const auto dtype = GetParam();
  const torch::Tensor sample = Get(*io, "in.sample").to(dtype);
  const torch::Tensor timestep = Get(*io, "in.timestep");
  const torch::Tensor context = Get(*io, "in.encoder_hidden_states").to(dtype);
  torch::Tensor out = (*unet)->forward(sample, timestep, context);
  testing::ExpectClose(Label("unet.sample"), out, Get(*io, OutPrefix() + "sample"));

  // The residuals the reference added are the tiny ControlNet's outputs of the same precision.
  std::vector<torch::Tensor> down;
  for (int i = 0; i < 4; ++i) {
    down.push_back(
        Get(*cn_io, OutPrefix() + "down_block_res_samples." + std::to_string(i)).to(dtype));
  }
  const torch::Tensor mid = Get(*cn_io, OutPrefix() + "mid_block_res_sample").to(dtype);
  torch::Tensor with_cn = (*unet)->forward(sample, timestep, context, down, mid);
  testing::ExpectClose(Label("unet.sample_with_controlnet"), with_cn,
                       Get(*io, OutPrefix() + "sample_with_controlnet"));
  // The residuals matter: the two outputs differ by far more than the tolerance.
  EXPECT_GT((with_cn - out).abs().max().item<double>(), 1e-2);
}

TEST_P(UNetParity, LatentSizesNotMultipleOfTheDownscalingKeepTheirShape) {
  auto config = UNet2DConditionConfig::FromFile(TinyDir() + "tiny_unet.config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  auto weights = OpenOrFail(TinyDir() + "tiny_unet.weights.safetensors");
  ASSERT_TRUE(weights);
  auto unet = LoadUNet2DConditionModel(*config, *weights, Options());
  ASSERT_TRUE(unet.ok()) << unet.status();
  torch::Tensor sample = torch::randn({1, 4, 7, 9}, Options());
  torch::Tensor context = torch::randn({1, 5, 32}, Options());
  torch::Tensor out = (*unet)->forward(sample, torch::tensor(500), context);
  EXPECT_EQ(out.sizes(), sample.sizes());
  EXPECT_TRUE(torch::isfinite(out).all().item<bool>());
}

TEST(UNetLoad, WrongShapesAreRejectedNamingTheKey) {
  auto config = UNet2DConditionConfig::FromFile(TinyDir() + "tiny_unet.config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  config->cross_attention_dim = 48;  // attn2.to_k/to_v no longer match the checkpoint
  auto weights = OpenOrFail(TinyDir() + "tiny_unet.weights.safetensors");
  ASSERT_TRUE(weights);
  auto unet = LoadUNet2DConditionModel(*config, *weights);
  ASSERT_FALSE(unet.ok());
  EXPECT_NE(unet.status().message().find("attn2.to_k.weight"), std::string::npos) << unet.status();
}

INSTANTIATE_TEST_SUITE_P(Dtypes, UNetParity, ::testing::Values(torch::kDouble, torch::kFloat),
                         [](const auto& info) { return std::string(c10::toString(info.param)); });

}  // namespace
}  // namespace imginterp::diffusion
