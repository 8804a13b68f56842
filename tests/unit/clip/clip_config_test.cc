#include "services/models/clip/clip_config.h"

#include <gtest/gtest.h>

#include <string>

#include "tests/unit/clip/clip_test_data.h"

namespace imginterp::clip {
namespace {

using test_data::kRef;

TEST(ClipConfig, ReadsSd15TextEncoderConfig) {
  auto c = ClipTextConfig::FromFile(kRef + "/diffusion/configs/sd15/text_encoder.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->hidden_size, 768);
  EXPECT_EQ(c->intermediate_size, 3072);
  EXPECT_EQ(c->num_attention_heads, 12);
  EXPECT_EQ(c->num_hidden_layers, 12);
  EXPECT_EQ(c->vocab_size, 49408);
  EXPECT_EQ(c->max_position_embeddings, 77);
  EXPECT_EQ(c->hidden_act, nn::Activation::kQuickGelu);
  EXPECT_EQ(c->eos_token_id, 2);
}

TEST(ClipConfig, ReadsIpAdapterImageEncoderConfig) {
  auto c = ClipVisionConfig::FromFile(
      kRef + "/diffusion/configs/sd15/image_encoder_ipadapter_vith14.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->hidden_size, 1280);
  EXPECT_EQ(c->num_hidden_layers, 32);
  EXPECT_EQ(c->patch_size, 14);
  EXPECT_EQ(c->image_size, 224);
  EXPECT_EQ(c->projection_dim, 1024);
  EXPECT_EQ(c->hidden_act, nn::Activation::kGelu);
}

TEST(ClipConfig, ReadsFullClipConfigWithBothTowers) {
  auto c = ClipConfig::FromFile(kRef + "/clip/configs/clip_vit_large_patch14.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->text.hidden_size, 768);
  EXPECT_EQ(c->vision.hidden_size, 1024);
  EXPECT_EQ(c->vision.patch_size, 14);
  EXPECT_EQ(c->projection_dim, 768);
  EXPECT_DOUBLE_EQ(c->logit_scale_init_value, 2.6592);
  // The text tower can be read from the full config too.
  auto text = ClipTextConfig::FromFile(kRef + "/clip/configs/clip_vit_large_patch14.json");
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(text->hidden_size, 768);
}

TEST(ClipConfig, MissingFieldsTakeTransformersDefaults) {
  auto c = ClipConfig::FromJson("{}");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->text.hidden_size, 512);
  EXPECT_EQ(c->vision.patch_size, 32);
  EXPECT_EQ(c->projection_dim, 512);
}

TEST(ClipConfig, RejectsInconsistentValuesNamingTheField) {
  auto heads = ClipTextConfig::FromJson(R"({"hidden_size": 30, "num_attention_heads": 4})");
  ASSERT_FALSE(heads.ok());
  EXPECT_NE(heads.status().message().find("not divisible"), std::string::npos);
  auto type = ClipTextConfig::FromJson(R"({"hidden_size": "big"})");
  ASSERT_FALSE(type.ok());
  EXPECT_NE(type.status().message().find("hidden_size"), std::string::npos);
  auto act = ClipVisionConfig::FromJson(R"({"hidden_act": "softsign"})");
  ASSERT_FALSE(act.ok());
  EXPECT_NE(act.status().message().find("softsign"), std::string::npos);
  auto patch = ClipVisionConfig::FromJson(R"({"image_size": 30, "patch_size": 4})");
  EXPECT_FALSE(patch.ok());
  EXPECT_EQ(ClipConfig::FromFile("/nonexistent.json").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace imginterp::clip
