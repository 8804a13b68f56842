// The native modules must have exactly the state-dict keys and shapes of the published models, so
// that real checkpoints load without renaming. Full-size modules are built on the meta device:
// shapes only, no memory.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>

#include "services/models/clip/clip_config.h"
#include "services/models/clip/clip_model.h"
#include "services/models/clip/clip_text_model.h"
#include "services/models/clip/clip_vision_model.h"
#include "services/models/io/state_dict.h"
#include "tests/unit/clip/clip_test_data.h"

namespace imginterp::clip {
namespace {

using test_data::kRef;
const auto kMeta = torch::TensorOptions().device(torch::kMeta);

void ExpectKeysMatch(const torch::nn::Module& module, const std::string& table) {
  auto expected = models::ReadKeyTable(table);
  ASSERT_TRUE(expected.ok()) << expected.status();
  const auto actual = models::ExpectedKeys(module);
  EXPECT_EQ(actual.size(), expected->size());
  auto compared = models::CompareKeys(*expected, actual);
  EXPECT_TRUE(compared.ok()) << compared;
}

TEST(ClipKeys, Sd15TextEncoderMatchesPublishedKeys) {
  auto config = ClipTextConfig::FromFile(kRef + "/diffusion/configs/sd15/text_encoder.json");
  ASSERT_TRUE(config.ok()) << config.status();
  ClipTextModel model(*config, /*with_projection=*/false, kMeta);
  ExpectKeysMatch(*model, kRef + "/diffusion/keys/text_encoder_keys.tsv");
}

TEST(ClipKeys, IpAdapterImageEncoderMatchesPublishedKeys) {
  auto config = ClipVisionConfig::FromFile(
      kRef + "/diffusion/configs/sd15/image_encoder_ipadapter_vith14.json");
  ASSERT_TRUE(config.ok()) << config.status();
  ClipVisionModel model(*config, /*with_projection=*/true, kMeta);
  ExpectKeysMatch(*model, kRef + "/diffusion/keys/image_encoder_keys.tsv");
}

TEST(ClipKeys, ClipVitBasePatch32MatchesPublishedKeys) {
  auto config = ClipConfig::FromFile(kRef + "/clip/configs/clip_vit_base_patch32.json");
  ASSERT_TRUE(config.ok()) << config.status();
  ClipModel model(*config, kMeta);
  ExpectKeysMatch(*model, kRef + "/clip/keys/clip_vit_base_patch32_keys.tsv");
}

TEST(ClipKeys, ClipVitLargePatch14MatchesPublishedKeys) {
  auto config = ClipConfig::FromFile(kRef + "/clip/configs/clip_vit_large_patch14.json");
  ASSERT_TRUE(config.ok()) << config.status();
  ClipModel model(*config, kMeta);
  ExpectKeysMatch(*model, kRef + "/clip/keys/clip_vit_large_patch14_keys.tsv");
}

TEST(ClipKeys, TinyModelsMatchTheirKeyTables) {
  auto text = ClipTextConfig::FromFile(kRef + "/diffusion/configs/tiny/text_encoder.json");
  auto vision = ClipVisionConfig::FromFile(kRef + "/diffusion/configs/tiny/image_encoder.json");
  auto clip = ClipConfig::FromFile(kRef + "/clip/tiny_clip.config.json");
  ASSERT_TRUE(text.ok() && vision.ok() && clip.ok());
  ExpectKeysMatch(*ClipTextModel(*text, false, kMeta),
                  kRef + "/diffusion/keys/tiny_text_encoder_keys.tsv");
  ExpectKeysMatch(*ClipVisionModel(*vision, true, kMeta),
                  kRef + "/diffusion/keys/tiny_image_encoder_keys.tsv");
  ExpectKeysMatch(*ClipModel(*clip, kMeta), kRef + "/clip/keys/tiny_clip_keys.tsv");
}

}  // namespace
}  // namespace imginterp::clip
