#include "services/models/nn/embeddings.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

namespace imginterp::nn {
namespace {

// diffusers' formula written out with std::sin/std::cos in double precision.
std::vector<double> ClosedForm(double t, int dim, bool flip, double shift, double scale,
                               double max_period) {
  const int half = dim / 2;
  std::vector<double> sin_part, cos_part;
  for (int i = 0; i < half; ++i) {
    const double freq = std::exp(-std::log(max_period) * i / (half - shift));
    sin_part.push_back(std::sin(scale * t * freq));
    cos_part.push_back(std::cos(scale * t * freq));
  }
  std::vector<double> out = flip ? cos_part : sin_part;
  const auto& second = flip ? sin_part : cos_part;
  out.insert(out.end(), second.begin(), second.end());
  if (dim % 2 == 1) out.push_back(0.0);
  return out;
}

struct Case {
  int dim;
  bool flip;
  double shift;
  double scale;
  double max_period;
};

class TimestepEmbeddingFormula : public ::testing::TestWithParam<Case> {};

TEST_P(TimestepEmbeddingFormula, MatchesClosedForm) {
  const Case c = GetParam();
  auto timesteps = torch::tensor({0.0, 1.0, 37.5, 999.0});
  auto emb = GetTimestepEmbedding(timesteps, c.dim, c.flip, c.shift, c.scale, c.max_period);
  ASSERT_EQ(emb.sizes(), (std::vector<int64_t>{4, c.dim}));
  EXPECT_EQ(emb.scalar_type(), torch::kFloat);
  for (int64_t row = 0; row < 4; ++row) {
    const auto expected =
        ClosedForm(timesteps[row].item<double>(), c.dim, c.flip, c.shift, c.scale, c.max_period);
    for (int col = 0; col < c.dim; ++col) {
      // float32 arithmetic on arguments up to ~1000 rad.
      EXPECT_NEAR(emb[row][col].item<double>(), expected[col], 2e-4)
          << "t=" << timesteps[row].item<double>() << " col " << col;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Settings, TimestepEmbeddingFormula,
                         ::testing::Values(Case{320, true, 0.0, 1.0, 10000.0},
                                           Case{8, false, 1.0, 1.0, 10000.0},
                                           Case{7, true, 0.0, 1.0, 10000.0},
                                           Case{16, false, 1.0, 0.5, 10000.0},
                                           Case{10, true, 0.0, 1.0, 100.0}));

TEST(Timesteps, SdSettingsStartWithCosine) {
  Timesteps timesteps(TimestepsOptions{});
  auto emb = timesteps->forward(torch::tensor({0}, torch::kLong));
  ASSERT_EQ(emb.sizes(), (std::vector<int64_t>{1, 320}));
  EXPECT_FLOAT_EQ(emb[0][0].item<float>(), 1.0f);    // cos(0)
  EXPECT_FLOAT_EQ(emb[0][160].item<float>(), 0.0f);  // sin(0)
}

TEST(TimestepEmbedding, IsLinearActLinear) {
  torch::manual_seed(1);
  TimestepEmbedding embedding(32, 128);
  ResetParameters(*embedding);
  EXPECT_EQ(embedding->linear_2->weight.sizes(), (std::vector<int64_t>{128, 128}));
  auto x = torch::randn({2, 32});
  auto expected = embedding->linear_2->forward(torch::silu(embedding->linear_1->forward(x)));
  EXPECT_TRUE(torch::allclose(embedding->forward(x), expected));
}

TEST(VitEmbeddings, PrependsClassTokenAndAddsPositions) {
  torch::manual_seed(2);
  VitEmbeddings vit(VitEmbeddingsOptions{16, 12, 4, 3});
  ResetParameters(*vit);
  EXPECT_EQ(vit->num_positions(), 10);
  auto params = vit->named_parameters();
  EXPECT_EQ(params["class_embedding"].sizes(), (std::vector<int64_t>{16}));
  EXPECT_EQ(params["patch_embedding.weight"].sizes(), (std::vector<int64_t>{16, 3, 4, 4}));
  EXPECT_FALSE(params.contains("patch_embedding.bias"));
  EXPECT_EQ(params["position_embedding.weight"].sizes(), (std::vector<int64_t>{10, 16}));
  auto pixels = torch::randn({2, 3, 12, 12});
  auto out = vit->forward(pixels);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{2, 10, 16}));
  auto cls = vit->class_embedding + vit->position_embedding->weight[0];
  EXPECT_TRUE(torch::allclose(out[1][0], cls));
  // Patch (row 0, col 1) is token 2.
  auto patch = torch::conv2d(pixels, vit->patch_embedding->weight, {}, 4);
  EXPECT_TRUE(torch::allclose(
      out[0][2], patch[0].select(1, 0).select(1, 1) + vit->position_embedding->weight[2], 1e-5,
      1e-5));
  EXPECT_THROW(vit->forward(torch::randn({1, 3, 16, 16})), c10::Error);
}

}  // namespace
}  // namespace imginterp::nn
