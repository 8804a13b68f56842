#include "services/models/nn/attention.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "services/models/nn/attention_core.h"
#include "services/models/nn/layers.h"
#include "tests/support/tensor_compare.h"

namespace imginterp::nn {
namespace {

// softmax(Q K^T * scale + mask) V spelled out, in float64.
torch::Tensor Reference(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& additive_mask, double scale) {
  auto scores = torch::matmul(q.to(torch::kDouble), k.to(torch::kDouble).transpose(-2, -1)) * scale;
  if (additive_mask.defined()) scores = scores + additive_mask.to(torch::kDouble);
  auto weights = torch::exp(scores - std::get<0>(scores.max(-1, true)));
  weights = weights / weights.sum(-1, true);
  return torch::matmul(weights, v.to(torch::kDouble));
}

using test_support::MaxAbsDiff;

class AttentionCoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::manual_seed(7);
    q_ = torch::randn({2, 3, 37, 8}, torch::kDouble);
    k_ = torch::randn({2, 3, 29, 8}, torch::kDouble);
    v_ = torch::randn({2, 3, 29, 5}, torch::kDouble);
  }
  torch::Tensor q_, k_, v_;
};

TEST_F(AttentionCoreTest, NaiveMatchesClosedForm) {
  const auto expected = Reference(q_, k_, v_, {}, 1.0 / std::sqrt(8.0));
  EXPECT_LT(MaxAbsDiff(NaiveAttention(q_, k_, v_, std::nullopt), expected), 1e-12);
}

TEST_F(AttentionCoreTest, ChunkedEqualsNaiveForEveryChunkSize) {
  const auto expected = Reference(q_, k_, v_, {}, 1.0 / std::sqrt(8.0));
  for (int64_t chunk : {1, 2, 5, 7, 36, 37, 100}) {
    AttentionCoreOptions options;
    options.query_chunk_size = chunk;
    EXPECT_LT(MaxAbsDiff(ChunkedAttention(q_, k_, v_, std::nullopt, options), expected), 1e-12)
        << "chunk " << chunk;
  }
}

TEST_F(AttentionCoreTest, ChunkedHonoursPerQueryAdditiveMask) {
  auto mask = torch::randn({2, 1, 37, 29}, torch::kDouble);
  const double scale = 0.3;
  const auto expected = Reference(q_, k_, v_, mask, scale);
  AttentionCoreOptions options;
  options.scale = scale;
  options.query_chunk_size = 6;
  EXPECT_LT(MaxAbsDiff(ChunkedAttention(q_, k_, v_, mask, options), expected), 1e-12);
  EXPECT_LT(MaxAbsDiff(NaiveAttention(q_, k_, v_, mask, options), expected), 1e-12);
}

TEST_F(AttentionCoreTest, BoolKeyMaskHidesKeys) {
  auto keep = torch::rand({2, 1, 1, 29}) > 0.4;
  keep.index_put_({torch::indexing::Slice(), 0, 0, 0}, true);
  auto additive = torch::zeros({2, 1, 1, 29}, torch::kDouble)
                      .masked_fill(keep.logical_not(), -std::numeric_limits<double>::infinity());
  const auto expected = Reference(q_, k_, v_, additive, 1.0 / std::sqrt(8.0));
  AttentionCoreOptions options;
  options.query_chunk_size = 4;
  EXPECT_LT(MaxAbsDiff(ChunkedAttention(q_, k_, v_, keep, options), expected), 1e-12);
}

TEST(AttentionCore, CausalMaskMatchesExplicitTriangularMask) {
  torch::manual_seed(3);
  auto q = torch::randn({1, 2, 11, 4}, torch::kDouble);
  auto k = torch::randn({1, 2, 11, 4}, torch::kDouble);
  auto v = torch::randn({1, 2, 11, 4}, torch::kDouble);
  auto upper = torch::ones({11, 11}, torch::kBool).triu(1);
  auto additive = torch::zeros({11, 11}, torch::kDouble)
                      .masked_fill(upper, -std::numeric_limits<double>::infinity());
  const auto expected = Reference(q, k, v, additive, 0.5);
  for (int64_t chunk : {0, 1, 3, 4, 11}) {
    AttentionCoreOptions options;
    options.scale = 0.5;
    options.causal = true;
    options.query_chunk_size = chunk;
    EXPECT_LT(MaxAbsDiff(ScaledDotProductAttention(q, k, v, std::nullopt, options), expected),
              1e-12)
        << "chunk " << chunk;
  }
  // Query 0 sees only key 0.
  AttentionCoreOptions options;
  options.causal = true;
  auto out = ScaledDotProductAttention(q, k, v, std::nullopt, options);
  EXPECT_LT(MaxAbsDiff(out.select(2, 0), v.select(2, 0)), 1e-12);
}

TEST(AttentionCore, SmallScoreBudgetSelectsChunkedPathWithSameResult) {
  torch::manual_seed(5);
  auto q = torch::randn({2, 4, 64, 16});
  auto k = torch::randn({2, 4, 48, 16});
  auto v = torch::randn({2, 4, 48, 16});
  AttentionCoreOptions small;
  small.max_score_bytes = 2 * 4 * 48 * 4 * 10;  // ten query rows of float scores
  EXPECT_EQ(PlannedQueryChunk(q, k, small), 10);
  EXPECT_EQ(PlannedQueryChunk(q, k, AttentionCoreOptions{}), 64);
  auto chunked = ScaledDotProductAttention(q, k, v, std::nullopt, small);
  auto naive = NaiveAttention(q, k, v, std::nullopt);
  EXPECT_LT(MaxAbsDiff(chunked, naive), 1e-6);
}

TEST(AttentionCore, RejectsMismatchedHeadSizes) {
  EXPECT_THROW(ScaledDotProductAttention(torch::zeros({1, 1, 2, 4}), torch::zeros({1, 1, 2, 3}),
                                         torch::zeros({1, 1, 2, 3})),
               c10::Error);
}

TEST(AttentionCore, SplitAndMergeHeadsAreInverse) {
  auto x = torch::randn({2, 5, 12});
  auto split = SplitHeads(x, 3);
  EXPECT_EQ(split.sizes(), (std::vector<int64_t>{2, 3, 5, 4}));
  EXPECT_TRUE(torch::equal(MergeHeads(split), x));
}

TEST(AttentionModule, HasDiffusersKeysForCrossAttention) {
  AttentionOptions a;
  a.query_dim = 32;
  a.cross_attention_dim = 24;
  a.heads = 4;
  a.dim_head = 8;
  Attention attention(a);
  auto params = attention->named_parameters();
  EXPECT_EQ(params.size(), 5u);  // to_q/k/v weights, to_out.0 weight + bias
  EXPECT_EQ(params["to_k.weight"].sizes(), (std::vector<int64_t>{32, 24}));
  EXPECT_EQ(params["to_out.0.weight"].sizes(), (std::vector<int64_t>{32, 32}));
  EXPECT_TRUE(params.contains("to_out.0.bias"));
  EXPECT_FALSE(params.contains("to_q.bias"));
}

TEST(AttentionModule, CrossAttentionMatchesManualComputation) {
  torch::manual_seed(11);
  AttentionOptions a;
  a.query_dim = 16;
  a.cross_attention_dim = 12;
  a.heads = 2;
  a.dim_head = 8;
  Attention attention(a);
  ResetParameters(*attention);
  attention->to(torch::kDouble);
  auto x = torch::randn({2, 9, 16}, torch::kDouble);
  auto context = torch::randn({2, 7, 12}, torch::kDouble);
  auto q = SplitHeads(torch::linear(x, attention->to_q->weight), 2);
  auto k = SplitHeads(torch::linear(context, attention->to_k->weight), 2);
  auto v = SplitHeads(torch::linear(context, attention->to_v->weight), 2);
  auto expected = torch::linear(MergeHeads(Reference(q, k, v, {}, 1.0 / std::sqrt(8.0))),
                                attention->to_out_proj->weight, attention->to_out_proj->bias);
  EXPECT_LT(MaxAbsDiff(attention->forward(x, context), expected), 1e-12);
}

TEST(AttentionModule, VaeFormNormalisesSpatialInputAndAddsResidual) {
  torch::manual_seed(12);
  AttentionOptions a;
  a.query_dim = 8;
  a.heads = 1;
  a.dim_head = 8;
  a.bias = true;
  a.norm_num_groups = 4;
  a.eps = 1e-6;
  a.residual_connection = true;
  a.rescale_output_factor = 2.0;
  Attention attention(a);
  ResetParameters(*attention);
  attention->to(torch::kDouble);
  auto params = attention->named_parameters();
  EXPECT_TRUE(params.contains("group_norm.weight"));
  EXPECT_TRUE(params.contains("to_q.bias"));
  auto x = torch::randn({2, 8, 3, 5}, torch::kDouble);
  auto tokens =
      torch::group_norm(x, 4, attention->group_norm->weight, attention->group_norm->bias, 1e-6)
          .flatten(2)
          .transpose(1, 2);
  auto q = SplitHeads(attention->to_q->forward(tokens), 1);
  auto k = SplitHeads(attention->to_k->forward(tokens), 1);
  auto v = SplitHeads(attention->to_v->forward(tokens), 1);
  auto out =
      attention->to_out_proj->forward(MergeHeads(Reference(q, k, v, {}, 1 / std::sqrt(8.0))));
  auto expected = (out.transpose(1, 2).reshape({2, 8, 3, 5}) + x) / 2.0;
  EXPECT_LT(MaxAbsDiff(attention->forward(x), expected), 1e-12);
}

TEST(AttentionModule, ChunkingPolicyDoesNotChangeTheOutput) {
  torch::manual_seed(13);
  AttentionOptions a;
  a.query_dim = 16;
  a.heads = 2;
  a.dim_head = 8;
  Attention attention(a);
  ResetParameters(*attention);
  auto x = torch::randn({1, 50, 16});
  auto full = attention->forward(x);
  AttentionCoreOptions chunked;
  chunked.query_chunk_size = 7;
  SetAttentionCoreOptions(*attention, chunked);
  EXPECT_LT(MaxAbsDiff(attention->forward(x), full), 1e-6);
}

}  // namespace
}  // namespace imginterp::nn
