#include "services/models/nn/layers.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "services/models/nn/activations.h"

namespace imginterp::nn {
namespace {

TEST(Layers, AreBuiltUninitialisedWithRequestedDtype) {
  Linear linear(4, 3, true, torch::TensorOptions().dtype(torch::kDouble));
  EXPECT_EQ(linear->weight.scalar_type(), torch::kDouble);
  EXPECT_EQ(linear->weight.sizes(), (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(linear->named_parameters().size(), 2u);
  Linear no_bias(4, 3, false);
  EXPECT_EQ(no_bias->named_parameters().size(), 1u);
}

TEST(Layers, MetaDeviceAllocatesNothingButHasShapes) {
  auto meta = torch::TensorOptions().device(torch::kMeta);
  Embedding embedding(49408, 1280, meta);
  Conv2d conv(Conv2dOptions{3, 1280, 14, 14, 0, 1, false}, meta);
  ResetParameters(*embedding);  // no-op on meta
  EXPECT_TRUE(embedding->weight.device().is_meta());
  EXPECT_EQ(conv->weight.sizes(), (std::vector<int64_t>{1280, 3, 14, 14}));
}

TEST(Layers, ResetParametersFollowsPyTorchDefaults) {
  torch::manual_seed(0);
  Linear linear(16, 8);
  GroupNorm norm(4, 8);
  LayerNorm layer_norm(8);
  ResetParameters(*linear);
  ResetParameters(*norm);
  ResetParameters(*layer_norm);
  EXPECT_LE(linear->weight.abs().max().item<float>(), 0.25f);  // 1/sqrt(16)
  EXPECT_GT(linear->weight.abs().max().item<float>(), 0.0f);
  EXPECT_TRUE(torch::equal(norm->weight, torch::ones({8})));
  EXPECT_TRUE(torch::equal(layer_norm->bias, torch::zeros({8})));
}

TEST(Layers, ForwardMatchesFunctionalOps) {
  torch::manual_seed(1);
  Conv2d conv(Conv2dOptions{4, 6, 3, 2, 1, 2, true});
  ResetParameters(*conv);
  auto x = torch::randn({1, 4, 9, 7});
  auto expected = torch::conv2d(x, conv->weight, conv->bias, 2, 1, 1, 2);
  EXPECT_TRUE(torch::allclose(conv->forward(x), expected));
  EXPECT_EQ(conv->weight.sizes(), (std::vector<int64_t>{6, 2, 3, 3}));
  GroupNorm norm(2, 4, 1e-6);
  ResetParameters(*norm);
  EXPECT_TRUE(torch::allclose(norm->forward(x), torch::group_norm(x, 2, {}, {}, 1e-6), 1e-5, 1e-6));
}

TEST(Layers, RejectChannelsNotDivisibleByGroups) {
  EXPECT_THROW(GroupNorm(3, 8), c10::Error);
  EXPECT_THROW(Conv2d(Conv2dOptions{3, 6, 3, 1, 1, 2, true}), c10::Error);
}

TEST(Activations, ParseNamesOfConfigs) {
  EXPECT_EQ(*ParseActivation("quick_gelu"), Activation::kQuickGelu);
  EXPECT_EQ(*ParseActivation("gelu"), Activation::kGelu);
  EXPECT_EQ(*ParseActivation("swish"), Activation::kSilu);
  EXPECT_EQ(*ParseActivation("gelu_pytorch_tanh"), Activation::kGeluTanh);
  auto bad = ParseActivation("tanhshrink");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("tanhshrink"), std::string::npos);
}

TEST(Activations, QuickGeluIsXTimesSigmoidOf1702X) {
  auto x = torch::linspace(-4, 4, 17, torch::kDouble);
  EXPECT_TRUE(
      torch::allclose(Activate(Activation::kQuickGelu, x), x / (1 + torch::exp(-1.702 * x))));
  EXPECT_TRUE(torch::allclose(Activate(Activation::kGelu, x),
                              0.5 * x * (1 + torch::erf(x / std::sqrt(2.0)))));
  EXPECT_TRUE(torch::allclose(Activate(Activation::kSilu, x), x / (1 + torch::exp(-x))));
}

}  // namespace
}  // namespace imginterp::nn
