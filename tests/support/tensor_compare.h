// Comparing tensors in tests: the largest absolute difference, computed in double so the
// comparison itself adds no rounding. Header-only; for test targets that link LibTorch.
#pragma once

#include <gtest/gtest.h>
#include <torch/types.h>

namespace imginterp::test_support {

// max |a - b| over all elements; a shape mismatch fails the test and returns a huge value.
inline double MaxAbsDiff(const at::Tensor& a, const at::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  if (a.sizes() != b.sizes()) return 1e30;
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

}  // namespace imginterp::test_support
