// ControlNetModel: config parsing, the published SD1.5 ControlNet v1.1 key set (on the meta
// device), parity with diffusers 0.27.2 on the tiny reference ControlNet, and the conditioning
// scale / guess-mode scaling.
#include "services/models/diffusion/controlnet.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
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

TEST(ControlNetConfig, OpenposeV11ConfigParses) {
  auto config =
      ControlNetConfig::FromFile(ReferenceDiffusionDir() + "configs/sd15/controlnet_openpose.json");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->conditioning_embedding_out_channels, (std::vector<int64_t>{16, 32, 96, 256}));
  EXPECT_EQ(config->unet.cross_attention_dim, 768);
  EXPECT_TRUE(config->unet.up_block_types.empty());
  EXPECT_FALSE(config->conditioning_bgr);
  EXPECT_FALSE(config->global_pool_conditions);
  auto bad = ControlNetConfig::FromJson(R"({"controlnet_conditioning_channel_order": "gbr"})");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("controlnet_conditioning_channel_order"),
            std::string::npos);
}

TEST(ControlNetKeys, Sd15ControlNetBuiltOnMetaHasExactlyThePublishedKeysAndShapes) {
  auto config =
      ControlNetConfig::FromFile(ReferenceDiffusionDir() + "configs/sd15/controlnet_openpose.json");
  ASSERT_TRUE(config.ok()) << config.status();
  auto controlnet = CreateControlNetModel(*config, kMeta);
  ASSERT_TRUE(controlnet.ok()) << controlnet.status();
  ExpectKeysMatchTable(**controlnet, "controlnet_keys.tsv", 340, 361279120);
}

TEST(ControlNetKeys, TinyControlNetMatchesItsKeyTable) {
  auto config = ControlNetConfig::FromFile(TinyDir() + "tiny_controlnet.config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  auto controlnet = CreateControlNetModel(*config, kMeta);
  ASSERT_TRUE(controlnet.ok()) << controlnet.status();
  ExpectKeysMatchTable(**controlnet, "tiny_controlnet_keys.tsv");
}

class ControlNetParity : public DtypeParity {
 protected:
  void SetUp() override {
    auto config = ControlNetConfig::FromFile(TinyDir() + "tiny_controlnet.config.json");
    ASSERT_TRUE(config.ok()) << config.status();
    auto weights = OpenOrFail(TinyDir() + "tiny_controlnet.weights.safetensors");
    io_ = OpenOrFail(TinyDir() + "tiny_controlnet.io.safetensors");
    ASSERT_TRUE(weights && io_);
    auto controlnet = LoadControlNetModel(*config, *weights, Options());
    ASSERT_TRUE(controlnet.ok()) << controlnet.status();
    controlnet_ = *controlnet;
  }

  ControlNetOutput Run(double scale, bool guess_mode) {
    const auto dtype = GetParam();
    return controlnet_->forward(Get(*io_, "in.sample").to(dtype), Get(*io_, "in.timestep"),
                                Get(*io_, "in.encoder_hidden_states").to(dtype),
                                Get(*io_, "in.controlnet_cond").to(dtype), scale, guess_mode);
  }

  std::unique_ptr<models::SafetensorsFile> io_;
  ControlNetModel controlnet_{nullptr};
};

TEST_P(ControlNetParity, TinyControlNetResidualsMatchDiffusers) {
  ControlNetOutput out = Run(1.0, /*guess_mode=*/false);
  ASSERT_EQ(out.down_block_res_samples.size(), 4u);
  for (int i = 0; i < 4; ++i) {
    const std::string name = "down_block_res_samples." + std::to_string(i);
    testing::ExpectClose(Label("controlnet." + name), out.down_block_res_samples[i],
                         Get(*io_, OutPrefix() + name));
  }
  testing::ExpectClose(Label("controlnet.mid_block_res_sample"), out.mid_block_res_sample,
                       Get(*io_, OutPrefix() + "mid_block_res_sample"));
}

TEST_P(ControlNetParity, ConditioningScaleAndGuessModeScaleTheResiduals) {
  const ControlNetOutput full = Run(1.0, false);
  const ControlNetOutput half = Run(0.5, false);
  const ControlNetOutput guess = Run(0.5, true);
  const size_t n = full.down_block_res_samples.size();
  for (size_t i = 0; i < n; ++i) {
    EXPECT_TRUE(torch::allclose(half.down_block_res_samples[i],
                                full.down_block_res_samples[i] * 0.5, 1e-5, 1e-6));
    // logspace(-1, 0, n + 1): 10^(-1 + i / n).
    const double expected_scale = 0.5 * std::pow(10.0, -1.0 + static_cast<double>(i) / n);
    EXPECT_TRUE(torch::allclose(guess.down_block_res_samples[i],
                                full.down_block_res_samples[i] * expected_scale, 1e-5, 1e-6))
        << "residual " << i;
  }
  EXPECT_TRUE(
      torch::allclose(guess.mid_block_res_sample, full.mid_block_res_sample * 0.5, 1e-5, 1e-6));
}

TEST(ControlNetOutputs, AccumulateSumsResidualsOfSeveralControlNets) {
  ControlNetOutput a{{torch::ones({1, 2}), torch::full({1, 2}, 2.0)}, torch::full({1, 2}, 3.0)};
  ControlNetOutput sum;
  AccumulateControlNetOutput(a, &sum);
  AccumulateControlNetOutput(a, &sum);
  EXPECT_TRUE(torch::equal(sum.down_block_res_samples[1], torch::full({1, 2}, 4.0)));
  EXPECT_TRUE(torch::equal(sum.mid_block_res_sample, torch::full({1, 2}, 6.0)));
  // `a` itself is unchanged.
  EXPECT_TRUE(torch::equal(a.mid_block_res_sample, torch::full({1, 2}, 3.0)));
}

INSTANTIATE_TEST_SUITE_P(Dtypes, ControlNetParity, ::testing::Values(torch::kDouble, torch::kFloat),
                         [](const auto& info) { return std::string(c10::toString(info.param)); });

}  // namespace
}  // namespace imginterp::diffusion
