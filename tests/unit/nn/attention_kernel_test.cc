#include "services/models/nn/attention_kernel.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>

#include "services/models/nn/avx2_exp.h"
#include "tests/support/tensor_compare.h"

namespace imginterp::nn {
namespace {

using test_support::MaxAbsDiff;

// Random rows with `stride` >= width floats between them, as one head's slice of [L, heads * d]
// activations is laid out; the columns past `width` hold NaN so that reading them would show.
torch::Tensor StridedRows(int64_t rows, int64_t width, int64_t stride, double magnitude = 1.0) {
  torch::Tensor storage = torch::full({rows, stride}, std::nan(""));
  storage.narrow(1, 0, width).copy_(torch::randn({rows, width}) * magnitude);
  return storage.narrow(1, 0, width);
}

// softmax(scale * q k^T) v by LibTorch's ops, in the dtype of q, k and v.
torch::Tensor TorchAttention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             double scale) {
  return torch::matmul(torch::softmax(torch::matmul(q, k.t()) * scale, -1), v);
}

torch::Tensor Float64Reference(const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, double scale) {
  return TorchAttention(q.to(torch::kDouble), k.to(torch::kDouble), v.to(torch::kDouble), scale);
}

// The error allowed against the float64 result: twice that of LibTorch's float32 ops, and at
// least 2e-6. Float rounding of large scores (~1e-7 relative) moves the probabilities by as much,
// so a fixed bound would be either loose for small scores or wrong for large ones.
double Tolerance(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                 double scale) {
  return std::max(2e-6,
                  2 * MaxAbsDiff(TorchAttention(q, k, v, scale), Float64Reference(q, k, v, scale)));
}

class HeadAttentionKernelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!HeadAttentionKernel::Supported()) GTEST_SKIP() << "this CPU has no AVX2/FMA";
    torch::manual_seed(5);
  }

  // Runs the kernel on q, k, v (2-D, rows adjacent in memory) into out rows `out_stride` apart.
  static torch::Tensor Run(HeadAttentionKernel& kernel, const torch::Tensor& q,
                           const torch::Tensor& k, const torch::Tensor& v, double scale,
                           int64_t out_stride) {
    torch::Tensor storage = torch::full({q.size(0), out_stride}, std::nan(""));
    kernel.SetKeysValues(k.data_ptr<float>(), k.stride(0), v.data_ptr<float>(), v.stride(0),
                         k.size(0), k.size(1), v.size(1));
    kernel.Attend(q.data_ptr<float>(), q.stride(0), q.size(0), static_cast<float>(scale),
                  storage.data_ptr<float>(), out_stride);
    EXPECT_TRUE(storage.narrow(1, v.size(1), out_stride - v.size(1)).isnan().all().item<bool>())
        << "wrote past dv";
    return storage.narrow(1, 0, v.size(1));
  }

  void RecordMaxAbsDiff(const std::string& label, double diff) {
    std::ostringstream value;
    value << diff;
    RecordProperty("max_abs_diff_" + label, value.str());
  }
};

struct HeadShape {
  int64_t rows, keys, d, dv;
};

// Row counts around the 6-row register tiles and 48-row blocks, key counts around the 16-key
// panels and the chunks (256 keys at d = 40, 32 at d = 512), head sizes that fill two, one or
// part of a 16-float value panel, and SD1.5's sizes.
TEST_F(HeadAttentionKernelTest, MatchesFloat64SoftmaxAttentionOverShapes) {
  const HeadShape shapes[] = {{1, 1, 1, 1},       {5, 3, 2, 7},       {6, 16, 16, 16},
                              {7, 17, 8, 8},      {48, 77, 40, 40},   {49, 255, 40, 40},
                              {97, 257, 40, 40},  {100, 600, 80, 80}, {13, 100, 160, 160},
                              {50, 70, 512, 512}, {20, 1000, 40, 9},  {11, 33, 24, 25},
                              {300, 4096, 40, 40}};
  HeadAttentionKernel kernel;
  for (const HeadShape& s : shapes) {
    const std::string label = std::to_string(s.rows) + "x" + std::to_string(s.keys) + "_d" +
                              std::to_string(s.d) + "_dv" + std::to_string(s.dv);
    SCOPED_TRACE(label);
    const auto q = StridedRows(s.rows, s.d, s.d + 3);
    const auto k = StridedRows(s.keys, s.d, 2 * s.d);
    const auto v = StridedRows(s.keys, s.dv, s.dv + 1);
    const double scale = 1.0 / std::sqrt(static_cast<double>(s.d));
    const auto out = Run(kernel, q, k, v, scale, s.dv + 5);
    const double diff = MaxAbsDiff(out, Float64Reference(q, k, v, scale));
    RecordMaxAbsDiff(label, diff);
    EXPECT_LE(diff, Tolerance(q, k, v, scale));
  }
}

// Keys whose scores grow from chunk to chunk make the running maximum move many times, so the
// outputs accumulated from earlier chunks are rescaled again and again; scores spanning ~200
// also put most probabilities far below float's smallest normal.
TEST_F(HeadAttentionKernelTest, RescalesEarlierChunksWhenTheMaximumGrows) {
  const int64_t keys = 2000;
  const auto q = StridedRows(30, 40, 40).abs() + 0.5;
  auto k = StridedRows(keys, 40, 40).abs();
  k.mul_(torch::linspace(0.0, 3.0, keys).unsqueeze(1));  // later keys score higher
  const auto v = StridedRows(keys, 40, 40);
  HeadAttentionKernel kernel;
  const auto expected = Float64Reference(q, k, v, 1.0);
  const double tolerance = Tolerance(q, k, v, 1.0);
  const double diff = MaxAbsDiff(Run(kernel, q, k, v, 1.0, 40), expected);
  RecordMaxAbsDiff("growing", diff);
  EXPECT_LE(diff, tolerance);
  // And the reverse order, where the first chunk holds the maximum and nothing is rescaled.
  const auto k_reversed = k.flip(0).contiguous();
  const auto v_reversed = v.flip(0).contiguous();
  EXPECT_LE(MaxAbsDiff(Run(kernel, q, k_reversed, v_reversed, 1.0, 40), expected), tolerance);
}

// One kernel per thread serves heads of different sizes in turn: buffers sized for a small head
// must grow for a large one, and a large head's leftovers must not leak into a small one.
TEST_F(HeadAttentionKernelTest, ReusedAcrossHeadsOfDifferentSizes) {
  HeadAttentionKernel kernel;
  const HeadShape shapes[] = {{10, 20, 8, 8}, {60, 700, 160, 96}, {10, 20, 8, 8}, {7, 5, 40, 40}};
  for (const HeadShape& s : shapes) {
    SCOPED_TRACE(std::to_string(s.rows) + "x" + std::to_string(s.keys));
    const auto q = StridedRows(s.rows, s.d, s.d);
    const auto k = StridedRows(s.keys, s.d, s.d);
    const auto v = StridedRows(s.keys, s.dv, s.dv);
    EXPECT_LE(MaxAbsDiff(Run(kernel, q, k, v, 0.3, s.dv), Float64Reference(q, k, v, 0.3)),
              Tolerance(q, k, v, 0.3));
  }
}

// The keys and values stay set across calls: query rows attended in pieces give the rows of one
// call.
TEST_F(HeadAttentionKernelTest, QueryRowsInPiecesMatchOneCall) {
  HeadAttentionKernel kernel;
  const auto q = StridedRows(100, 40, 40);
  const auto k = StridedRows(300, 40, 40);
  const auto v = StridedRows(300, 40, 40);
  const auto whole = Run(kernel, q, k, v, 0.2, 40);
  torch::Tensor pieces = torch::empty({100, 40});
  kernel.Attend(q.data_ptr<float>(), 40, 37, 0.2f, pieces.data_ptr<float>(), 40);
  kernel.Attend(q.data_ptr<float>() + 37 * 40, 40, 63, 0.2f, pieces.data_ptr<float>() + 37 * 40,
                40);
  EXPECT_EQ(MaxAbsDiff(pieces, whole), 0.0);
}

// Every score far below zero, with a partial last panel of keys (77 = 4 x 16 + 13): the zero
// scores of that panel's padding must not count as the row maximum, or every probability would
// sink to the exponential's floor and the output become the plain mean of the values.
TEST_F(HeadAttentionKernelTest, PaddingScoresDoNotCountTowardsTheMaximum) {
  HeadAttentionKernel kernel;
  const auto q = torch::ones({5, 8});
  const auto k = -(50 + 0.1 * torch::arange(77, torch::kFloat)).unsqueeze(1).expand({77, 8});
  const auto v = StridedRows(77, 8, 8);
  const auto keys = k.contiguous();
  const auto actual = Run(kernel, q, keys, v, 1.0, 8);
  const auto expected = Float64Reference(q, keys, v, 1.0).to(torch::kFloat);
  EXPECT_LE(MaxAbsDiff(actual, expected), Tolerance(q, keys, v, 1.0));
  EXPECT_GT(MaxAbsDiff(expected, v.mean(0).expand({5, 8})), 0.1) << "the case cannot tell";
}

#ifdef IMGINTERP_HAS_AVX2_EXP
__attribute__((target("avx2,fma"))) void Exp2OfEight(const float* x, float* out) {
  _mm256_storeu_ps(out, Exp2_8(_mm256_loadu_ps(x)));
}

// The kernel's softmax takes 2^x (scores in log2 units) by a degree-5 polynomial: within 3e-7
// relative of exp2 in long double from the clamp up to 2^10, and clamped below -125.
TEST(Exp2Of8Floats, MatchesExp2WithinThreeTenthsOfAMillionth) {
  if (!HeadAttentionKernel::Supported()) GTEST_SKIP() << "no AVX2/FMA on this CPU";
  double worst = 0;
  float x[8], out[8];
  for (int i = 0; i < 135 * 1000; i += 8) {
    for (int lane = 0; lane < 8; ++lane) x[lane] = -125.0f + (i + lane) * 1e-3f;
    Exp2OfEight(x, out);
    for (int lane = 0; lane < 8; ++lane) {
      const long double exact = std::exp2(static_cast<long double>(x[lane]));
      worst = std::max(worst, static_cast<double>(std::fabs(out[lane] - exact) / exact));
    }
  }
  EXPECT_LE(worst, 3e-7);
  std::ostringstream recorded;
  recorded << worst;
  RecordProperty("max_relative_error", recorded.str());
  std::fill(x, x + 8, -1000.0f);
  Exp2OfEight(x, out);
  for (float value : out) EXPECT_FLOAT_EQ(value, std::exp2(kMinExp2Argument));
}
#endif

}  // namespace
}  // namespace imginterp::nn
