#include "services/models/nn/row_softmax.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <limits>

#include "tests/support/tensor_compare.h"

namespace imginterp::nn {
namespace {

using test_support::MaxAbsDiff;

// Runs both paths (AVX2 where the CPU has it, and the portable one) on a copy of `scores` and
// returns the larger difference from torch::softmax computed in double.
double RowSoftmaxError(const torch::Tensor& scores) {
  const torch::Tensor expected = torch::softmax(scores.to(torch::kDouble), -1);
  torch::Tensor fast = scores.clone();
  SoftmaxRowsInPlace(fast.data_ptr<float>(), fast.size(0), fast.size(1));
  torch::Tensor portable = scores.clone();
  SoftmaxRowsInPlaceScalar(portable.data_ptr<float>(), portable.size(0), portable.size(1));
  return std::max(MaxAbsDiff(fast, expected), MaxAbsDiff(portable, expected));
}

TEST(RowSoftmaxTest, MatchesTorchSoftmaxForWidthsAroundTheVectorLength) {
  torch::manual_seed(3);
  // Widths below, at and past multiples of 8 exercise the vector loop and its scalar tail.
  for (int64_t width : {1, 7, 8, 9, 77, 1024, 4099}) {
    SCOPED_TRACE(width);
    const torch::Tensor scores = torch::randn({5, width}) * 4;
    EXPECT_LE(RowSoftmaxError(scores), 1e-6);
  }
}

TEST(RowSoftmaxTest, RowsSumToOne) {
  torch::manual_seed(4);
  torch::Tensor scores = torch::randn({16, 333}) * 10;
  SoftmaxRowsInPlace(scores.data_ptr<float>(), scores.size(0), scores.size(1));
  EXPECT_LE(MaxAbsDiff(scores.sum(-1), torch::ones({16})), 1e-5);
}

TEST(RowSoftmaxTest, LargeSpreadAndMinusInfinity) {
  // Scores 200 apart (exp underflows for the small ones) and masked-out -inf keys: both give 0,
  // never NaN, and the rest still sums to 1.
  torch::Tensor scores =
      torch::tensor({{0.0f, -200.0f, 5.0f, -std::numeric_limits<float>::infinity(), 1.0f, 2.0f,
                      3.0f, 4.0f, -1000.0f}});
  EXPECT_LE(RowSoftmaxError(scores), 1e-6);
  SoftmaxRowsInPlace(scores.data_ptr<float>(), 1, scores.size(1));
  EXPECT_FALSE(scores.isnan().any().item<bool>());
  EXPECT_LE(scores[0][3].item<float>(), 1e-30f);
}

TEST(RowSoftmaxTest, ShiftInvariant) {
  // softmax(x + c) = softmax(x): rows far from 0 must not overflow.
  torch::manual_seed(5);
  const torch::Tensor scores = torch::randn({3, 100});
  EXPECT_LE(RowSoftmaxError(scores + 1e4), 1e-5);
  EXPECT_LE(RowSoftmaxError(scores - 1e4), 1e-5);
}

}  // namespace
}  // namespace imginterp::nn
