#include "services/models/io/sharded_safetensors.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "tests/unit/models_io/test_util.h"

namespace imginterp::models {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::TempDir;
using testing::WriteBytes;

constexpr char kIndex[] = R"({
  "metadata": {"total_size": 40},
  "weight_map": {
    "a.weight": "model-00001-of-00002.safetensors",
    "a.bias": "model-00001-of-00002.safetensors",
    "b.weight": "model-00002-of-00002.safetensors"
  }
})";

class ShardedSafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(WriteSafetensors(dir_.File("model-00001-of-00002.safetensors"),
                                 {{"a.weight", a_weight_}, {"a.bias", a_bias_}})
                    .ok());
    ASSERT_TRUE(
        WriteSafetensors(dir_.File("model-00002-of-00002.safetensors"), {{"b.weight", b_weight_}})
            .ok());
  }

  TempDir dir_;
  at::Tensor a_weight_ = at::randn({2, 3});
  at::Tensor a_bias_ = at::randn({2});
  at::Tensor b_weight_ = at::randn({4}).to(at::kHalf);
};

TEST_F(ShardedSafetensorsTest, ServesEveryKeyFromItsShard) {
  WriteBytes(dir_.File("model.safetensors.index.json"), kIndex);
  absl::StatusOr<std::unique_ptr<TensorSource>> source =
      OpenTensorSource(dir_.File("model.safetensors.index.json"));
  ASSERT_TRUE(source.ok()) << source.status();
  EXPECT_THAT((*source)->Names(), ElementsAre("a.bias", "a.weight", "b.weight"));
  EXPECT_TRUE(at::equal(*(*source)->Tensor("a.weight"), a_weight_));
  EXPECT_TRUE(at::equal(*(*source)->Tensor("a.bias"), a_bias_));
  EXPECT_TRUE(at::equal(*(*source)->Tensor("b.weight"), b_weight_));
  EXPECT_EQ((*source)->Info("b.weight")->dtype, "F16");
  EXPECT_EQ((*source)->Tensor("c").status().code(), absl::StatusCode::kNotFound);

  auto* sharded = dynamic_cast<ShardedSafetensors*>(source->get());
  ASSERT_NE(sharded, nullptr);
  EXPECT_THAT(sharded->ShardFiles(),
              ElementsAre("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"));
}

TEST_F(ShardedSafetensorsTest, KeyPointingToAMissingShardNamesKeyAndShard) {
  WriteBytes(dir_.File("index.json"),
             R"({"weight_map": {"a.weight": "model-00001-of-00002.safetensors",
                                "c.weight": "model-00003-of-00003.safetensors"}})");
  absl::StatusOr<std::unique_ptr<ShardedSafetensors>> sharded =
      ShardedSafetensors::Open(dir_.File("index.json"));
  ASSERT_FALSE(sharded.ok());
  EXPECT_EQ(sharded.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(sharded.status().message(),
              AllOf(HasSubstr("'c.weight'"), HasSubstr("model-00003-of-00003.safetensors")));
}

TEST_F(ShardedSafetensorsTest, KeyAbsentFromItsShardIsAnError) {
  WriteBytes(dir_.File("index.json"),
             R"({"weight_map": {"b.weight": "model-00001-of-00002.safetensors"}})");
  absl::StatusOr<std::unique_ptr<ShardedSafetensors>> sharded =
      ShardedSafetensors::Open(dir_.File("index.json"));
  ASSERT_FALSE(sharded.ok());
  EXPECT_EQ(sharded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(sharded.status().message(),
              AllOf(HasSubstr("'b.weight'"), HasSubstr("does not contain it")));
}

TEST_F(ShardedSafetensorsTest, IndexWithoutWeightMapIsInvalid) {
  WriteBytes(dir_.File("index.json"), R"({"metadata": {}})");
  absl::StatusOr<std::unique_ptr<ShardedSafetensors>> sharded =
      ShardedSafetensors::Open(dir_.File("index.json"));
  EXPECT_EQ(sharded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(sharded.status().message(), HasSubstr("weight_map"));
}

TEST_F(ShardedSafetensorsTest, IndexThatIsNotJsonIsInvalid) {
  WriteBytes(dir_.File("index.json"), "{weight_map:");
  absl::StatusOr<std::unique_ptr<ShardedSafetensors>> sharded =
      ShardedSafetensors::Open(dir_.File("index.json"));
  EXPECT_EQ(sharded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(sharded.status().message(), HasSubstr("not valid JSON"));
}

TEST(MapTensorSource, ServesTheGivenTensorsWithoutCopying) {
  at::Tensor weight = at::randn({3});
  MapTensorSource source({{"w", weight}}, "test tensors");
  EXPECT_EQ(source.Tensor("w")->data_ptr(), weight.data_ptr());
  EXPECT_EQ(source.Info("w")->dtype, "F32");
  absl::StatusOr<at::Tensor> missing = source.Tensor("x");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("test tensors"));
}

}  // namespace
}  // namespace imginterp::models
