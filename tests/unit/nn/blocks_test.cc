#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>
#include <string>

#include "services/models/nn/basic_transformer_block.h"
#include "services/models/nn/clip_encoder_layer.h"
#include "services/models/nn/resnet_block.h"
#include "services/models/nn/sampling.h"
#include "services/models/nn/transformer_2d.h"
#include "tests/support/tensor_compare.h"

namespace imginterp::nn {
namespace {

using Shape = std::vector<int64_t>;

std::set<std::string> Keys(const torch::nn::Module& module) {
  std::set<std::string> keys;
  for (const auto& item : module.named_parameters()) keys.insert(item.key());
  return keys;
}

using test_support::MaxAbsDiff;

TEST(ResnetBlock2D, ChangingChannelsAddsShortcutAndTimeProjection) {
  ResnetBlock2DOptions o;
  o.in_channels = 32;
  o.out_channels = 64;
  o.temb_channels = 128;
  ResnetBlock2D block(o);
  ResetParameters(*block);
  const std::set<std::string> expected = {
      "norm1.weight",         "norm1.bias",         "conv1.weight",         "conv1.bias",
      "time_emb_proj.weight", "time_emb_proj.bias", "norm2.weight",         "norm2.bias",
      "conv2.weight",         "conv2.bias",         "conv_shortcut.weight", "conv_shortcut.bias"};
  EXPECT_EQ(Keys(*block), expected);
  EXPECT_EQ(block->conv_shortcut->weight.sizes(), (Shape{64, 32, 1, 1}));
  auto out = block->forward(torch::randn({2, 32, 6, 10}), torch::randn({2, 128}));
  EXPECT_EQ(out.sizes(), (Shape{2, 64, 6, 10}));
}

TEST(ResnetBlock2D, VaeFormHasNoTimeProjectionNorShortcut) {
  ResnetBlock2DOptions o;
  o.in_channels = 32;
  o.temb_channels = 0;
  ResnetBlock2D block(o);
  auto keys = Keys(*block);
  EXPECT_EQ(keys.count("time_emb_proj.weight"), 0u);
  EXPECT_EQ(keys.count("conv_shortcut.weight"), 0u);
  EXPECT_EQ(keys.size(), 8u);
}

TEST(ResnetBlock2D, ComputesDiffusersFormula) {
  torch::manual_seed(1);
  ResnetBlock2DOptions o;
  o.in_channels = 8;
  o.out_channels = 16;
  o.temb_channels = 12;
  o.groups = 4;
  o.output_scale_factor = 2.0;
  ResnetBlock2D block(o);
  ResetParameters(*block);
  block->to(torch::kDouble);
  auto x = torch::randn({2, 8, 5, 7}, torch::kDouble);
  auto temb = torch::randn({2, 12}, torch::kDouble);
  auto h = block->conv1->forward(
      torch::silu(torch::group_norm(x, 4, block->norm1->weight, block->norm1->bias, 1e-6)));
  h = h + block->time_emb_proj->forward(torch::silu(temb)).view({2, 16, 1, 1});
  h = torch::silu(torch::group_norm(h, 4, block->norm2->weight, block->norm2->bias, 1e-6));
  h = block->conv2->forward(h);
  auto expected = (block->conv_shortcut->forward(x) + h) / 2.0;
  EXPECT_LT(MaxAbsDiff(block->forward(x, temb), expected), 1e-12);
}

TEST(Downsample2D, ConvHalvesOddAndEvenSizes) {
  Downsample2D down(Downsample2DOptions{16, true, 0, 1, 3, true});
  EXPECT_EQ(down->forward(torch::randn({1, 16, 16, 24})).sizes(), (Shape{1, 16, 8, 12}));
  EXPECT_EQ(down->forward(torch::randn({1, 16, 15, 9})).sizes(), (Shape{1, 16, 8, 5}));
  EXPECT_EQ(Keys(*down), (std::set<std::string>{"conv.weight", "conv.bias"}));
}

TEST(Downsample2D, VaeFormPadsRightAndBottom) {
  torch::manual_seed(2);
  Downsample2D down(Downsample2DOptions{4, true, 0, 0, 3, true});
  ResetParameters(*down);
  auto x = torch::randn({1, 4, 8, 6});
  auto expected = torch::conv2d(torch::constant_pad_nd(x, {0, 1, 0, 1}), down->conv->weight,
                                down->conv->bias, 2);
  auto out = down->forward(x);
  EXPECT_EQ(out.sizes(), (Shape{1, 4, 4, 3}));
  EXPECT_LT(MaxAbsDiff(out, expected), 1e-6);
}

TEST(Downsample2D, AveragePoolingWithoutConv) {
  Downsample2D down(Downsample2DOptions{2, false});
  auto x = torch::arange(16, torch::kFloat).view({1, 1, 4, 4}).repeat({1, 2, 1, 1});
  auto out = down->forward(x);
  EXPECT_EQ(out.sizes(), (Shape{1, 2, 2, 2}));
  EXPECT_FLOAT_EQ(out[0][0][0][0].item<float>(), (0 + 1 + 4 + 5) / 4.0f);
  EXPECT_TRUE(Keys(*down).empty());
}

TEST(Upsample2D, NearestDoublesThenConvolves) {
  Upsample2D up(Upsample2DOptions{4, false});
  auto x = torch::arange(6, torch::kFloat).view({1, 1, 2, 3}).repeat({1, 4, 1, 1});
  auto out = up->forward(x);
  EXPECT_EQ(out.sizes(), (Shape{1, 4, 4, 6}));
  EXPECT_FLOAT_EQ(out[0][0][1][1].item<float>(), 0.0f);
  EXPECT_FLOAT_EQ(out[0][0][3][5].item<float>(), 5.0f);
  Upsample2D with_conv(Upsample2DOptions{4, true, 8});
  EXPECT_EQ(with_conv->forward(x).sizes(), (Shape{1, 8, 4, 6}));
  EXPECT_EQ(Keys(*with_conv), (std::set<std::string>{"conv.weight", "conv.bias"}));
}

TEST(Upsample2D, ExplicitOutputSizeIsHonoured) {
  Upsample2D up(Upsample2DOptions{4, true});
  auto out = up->forward(torch::randn({2, 4, 5, 3}), std::make_pair<int64_t, int64_t>(9, 7));
  EXPECT_EQ(out.sizes(), (Shape{2, 4, 9, 7}));
}

TEST(FeedForward, GegluMultipliesValueByGeluOfGate) {
  torch::manual_seed(4);
  FeedForward ff(8, 16);
  ResetParameters(*ff);
  ff->to(torch::kDouble);
  EXPECT_EQ(Keys(*ff), (std::set<std::string>{"net.0.proj.weight", "net.0.proj.bias",
                                              "net.2.weight", "net.2.bias"}));
  EXPECT_EQ(ff->proj->weight.sizes(), (Shape{32, 8}));
  auto x = torch::randn({2, 3, 8}, torch::kDouble);
  auto projected = ff->proj->forward(x);
  auto value = projected.narrow(-1, 0, 16);
  auto gate = projected.narrow(-1, 16, 16);
  auto gelu = 0.5 * gate * (1 + torch::erf(gate / std::sqrt(2.0)));
  auto expected = ff->out_proj->forward(value * gelu);
  EXPECT_LT(MaxAbsDiff(ff->forward(x), expected), 1e-12);
}

TEST(BasicTransformerBlock, HasSdKeysAndKeepsShape) {
  BasicTransformerBlockOptions o;
  o.dim = 32;
  o.num_attention_heads = 4;
  o.attention_head_dim = 8;
  o.cross_attention_dim = 24;
  BasicTransformerBlock block(o);
  ResetParameters(*block);
  const std::set<std::string> expected = {"norm1.weight",
                                          "norm1.bias",
                                          "attn1.to_q.weight",
                                          "attn1.to_k.weight",
                                          "attn1.to_v.weight",
                                          "attn1.to_out.0.weight",
                                          "attn1.to_out.0.bias",
                                          "norm2.weight",
                                          "norm2.bias",
                                          "attn2.to_q.weight",
                                          "attn2.to_k.weight",
                                          "attn2.to_v.weight",
                                          "attn2.to_out.0.weight",
                                          "attn2.to_out.0.bias",
                                          "norm3.weight",
                                          "norm3.bias",
                                          "ff.net.0.proj.weight",
                                          "ff.net.0.proj.bias",
                                          "ff.net.2.weight",
                                          "ff.net.2.bias"};
  EXPECT_EQ(Keys(*block), expected);
  EXPECT_EQ(block->attn2->to_k->weight.sizes(), (Shape{32, 24}));
  auto out = block->forward(torch::randn({2, 15, 32}), torch::randn({2, 7, 24}));
  EXPECT_EQ(out.sizes(), (Shape{2, 15, 32}));
}

TEST(BasicTransformerBlock, RequiresContextForCrossAttention) {
  BasicTransformerBlockOptions o;
  o.dim = 16;
  o.num_attention_heads = 2;
  o.attention_head_dim = 8;
  o.cross_attention_dim = 8;
  BasicTransformerBlock block(o);
  ResetParameters(*block);
  EXPECT_THROW(block->forward(torch::randn({1, 4, 16})), c10::Error);
}

TEST(Transformer2DModel, ConvProjectionKeysAndShape) {
  Transformer2DOptions o;
  o.num_attention_heads = 2;
  o.attention_head_dim = 16;
  o.in_channels = 32;
  o.cross_attention_dim = 24;
  o.num_layers = 2;
  Transformer2DModel model(o);
  ResetParameters(*model);
  auto keys = Keys(*model);
  EXPECT_EQ(keys.count("norm.weight"), 1u);
  EXPECT_EQ(keys.count("transformer_blocks.1.attn2.to_k.weight"), 1u);
  EXPECT_EQ(model->proj_in_conv->weight.sizes(), (Shape{32, 32, 1, 1}));
  EXPECT_EQ(model->proj_out_conv->weight.sizes(), (Shape{32, 32, 1, 1}));
  auto out = model->forward(torch::randn({2, 32, 4, 6}), torch::randn({2, 5, 24}));
  EXPECT_EQ(out.sizes(), (Shape{2, 32, 4, 6}));
}

TEST(Transformer2DModel, LinearProjectionEqualsConvProjectionWithSameWeights) {
  torch::manual_seed(9);
  Transformer2DOptions o;
  o.num_attention_heads = 2;
  o.attention_head_dim = 8;
  o.in_channels = 16;
  o.norm_num_groups = 4;
  o.cross_attention_dim = 8;
  Transformer2DModel conv(o);
  ResetParameters(*conv);
  o.use_linear_projection = true;
  Transformer2DModel linear(o);
  EXPECT_EQ(linear->proj_in_linear->weight.sizes(), (Shape{16, 16}));
  {
    torch::NoGradGuard no_grad;
    auto src = conv->named_parameters();
    for (auto& item : linear->named_parameters()) {
      item.value().copy_(src[item.key()].reshape(item.value().sizes()));
    }
  }
  auto x = torch::randn({1, 16, 3, 5});
  auto context = torch::randn({1, 4, 8});
  EXPECT_LT(MaxAbsDiff(conv->forward(x, context), linear->forward(x, context)), 1e-5);
}

TEST(ClipEncoderLayer, HasTransformersKeysInOrder) {
  ClipEncoderLayer layer(ClipLayerOptions{32, 37, 4, Activation::kQuickGelu, 1e-5});
  std::vector<std::string> keys;
  for (const auto& item : layer->named_parameters()) keys.push_back(item.key());
  const std::vector<std::string> expected = {"self_attn.k_proj.weight",
                                             "self_attn.k_proj.bias",
                                             "self_attn.v_proj.weight",
                                             "self_attn.v_proj.bias",
                                             "self_attn.q_proj.weight",
                                             "self_attn.q_proj.bias",
                                             "self_attn.out_proj.weight",
                                             "self_attn.out_proj.bias",
                                             "layer_norm1.weight",
                                             "layer_norm1.bias",
                                             "mlp.fc1.weight",
                                             "mlp.fc1.bias",
                                             "mlp.fc2.weight",
                                             "mlp.fc2.bias",
                                             "layer_norm2.weight",
                                             "layer_norm2.bias"};
  EXPECT_EQ(keys, expected);
}

TEST(ClipEncoder, CausalLayerIgnoresLaterTokens) {
  torch::manual_seed(10);
  ClipEncoder encoder(ClipLayerOptions{16, 20, 2, Activation::kQuickGelu, 1e-5}, 2);
  ResetParameters(*encoder);
  auto x = torch::randn({1, 6, 16});
  auto changed = x.clone();
  changed.narrow(1, 4, 2).add_(
      torch::randn({1, 2, 16}));  // not a constant: LayerNorm removes those
  std::vector<torch::Tensor> states;
  auto a = encoder->forward(x, /*causal=*/true, std::nullopt, &states);
  auto b = encoder->forward(changed, /*causal=*/true);
  EXPECT_EQ(states.size(), 3u);
  EXPECT_LT(MaxAbsDiff(a.narrow(1, 0, 4), b.narrow(1, 0, 4)), 1e-6);
  EXPECT_GT(MaxAbsDiff(a.narrow(1, 4, 2), b.narrow(1, 4, 2)), 1e-3);
  auto bidirectional = encoder->forward(changed, /*causal=*/false);
  EXPECT_GT(MaxAbsDiff(encoder->forward(x, false).narrow(1, 0, 4), bidirectional.narrow(1, 0, 4)),
            1e-3);
}

}  // namespace
}  // namespace imginterp::nn
