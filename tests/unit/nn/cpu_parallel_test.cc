#include "services/models/nn/cpu_parallel.h"

#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "services/models/nn/attention_core.h"
#include "tests/support/tensor_compare.h"

namespace imginterp::nn {
namespace {

using test_support::MaxAbsDiff;

// The ctest environment runs with OMP_NUM_THREADS=1, where every function here falls back to the
// plain ATen op; two intra-op threads (the machine has two cores) make them split the work.
class CpuParallelTwoThreads : public ::testing::Test {
 protected:
  void SetUp() override {
    previous_threads_ = torch::get_num_threads();
    torch::set_num_threads(2);
    torch::manual_seed(11);
  }
  void TearDown() override { torch::set_num_threads(previous_threads_); }

  // The reference result: `op` run on one intra-op thread, where nothing is split.
  static torch::Tensor OnOneThread(const std::function<torch::Tensor()>& op) {
    torch::set_num_threads(1);
    torch::Tensor result = op();
    torch::set_num_threads(2);
    return result;
  }

  // Shown as max_abs_diff_<label> properties in --gtest_output=xml, for tuning the tolerances.
  static void RecordMaxAbsDiff(const std::string& label, double diff) {
    std::ostringstream value;
    value << diff;
    RecordProperty("max_abs_diff_" + label, value.str());
  }

 private:
  int previous_threads_ = 1;
};

// ---------------------------------------------------------------------------------------------
// ParallelBlocks and ForEachBlock

class CpuParallelForEachBlock : public CpuParallelTwoThreads {};

TEST_F(CpuParallelForEachBlock, ParallelBlocksIsTheThreadCountOnlyForLargeFloatCpuWork) {
  const auto x = torch::zeros({4, 4});
  EXPECT_EQ(ParallelBlocks(x, 1e9), 2);
  EXPECT_EQ(ParallelBlocks(x.to(torch::kDouble), 1e9), 2);
  EXPECT_EQ(ParallelBlocks(x, 1e3), 1) << "too small to pay for waking the other thread";
  EXPECT_EQ(ParallelBlocks(x.to(torch::kHalf), 1e9), 1);
  EXPECT_EQ(ParallelBlocks(x.to(torch::kInt), 1e9), 1);
  EXPECT_EQ(ParallelBlocks(torch::Tensor(), 1e9), 1);
  // Inside a block of a split the work stays on the thread that has it.
  std::mutex mu;
  std::vector<int64_t> nested;
  ForEachBlock(2, 2, [&](int64_t, int64_t) {
    const int64_t blocks = ParallelBlocks(x, 1e9);
    std::lock_guard<std::mutex> lock(mu);
    nested.push_back(blocks);
  });
  EXPECT_EQ(nested, (std::vector<int64_t>{1, 1}));
}

// IMGINTERP_CPU_KERNELS=aten (or SetCpuKernels) turns every split off, so that a comparison or a
// user who distrusts the kernels gets LibTorch's own ops; the setting is restored afterwards.
TEST_F(CpuParallelForEachBlock, AtenKernelsSettingTurnsTheSplitOff) {
  const auto x = torch::randn({512, 320});
  const auto w = torch::randn({640, 320});
  const CpuKernels before = GetCpuKernels();
  SetCpuKernels(CpuKernels::kAten);
  EXPECT_EQ(ParallelBlocks(x, 1e9), 1);
  const torch::Tensor aten = ParallelLinear(x, w, torch::Tensor());
  EXPECT_TRUE(torch::equal(aten, torch::linear(x, w)));
  SetCpuKernels(CpuKernels::kProject);
  EXPECT_EQ(ParallelBlocks(x, 1e9), 2);
  SetCpuKernels(before);
}

// Without -fopenmp on the library, at::parallel_for silently runs every block on the caller
// (thread number 0); this is the check that the split is real.
TEST_F(CpuParallelForEachBlock, RunsTwoBlocksOnTwoThreads) {
  std::mutex mu;
  std::set<int> thread_numbers;
  std::set<std::thread::id> thread_ids;
  ForEachBlock(2, 2, [&](int64_t, int64_t) {
    std::lock_guard<std::mutex> lock(mu);
    thread_numbers.insert(at::get_thread_num());
    thread_ids.insert(std::this_thread::get_id());
  });
  EXPECT_EQ(thread_numbers, (std::set<int>{0, 1}));
  EXPECT_EQ(thread_ids.size(), 2u);
}

TEST_F(CpuParallelForEachBlock, CoversTheRangeExactlyOnce) {
  const std::vector<std::pair<int64_t, int64_t>> n_and_blocks = {
      {1, 1}, {1, 2}, {2, 2}, {3, 2}, {7, 2}, {10, 3}, {10, 5}, {3, 8}, {1000, 2}, {5, 1}};
  for (const auto& [n, blocks] : n_and_blocks) {
    std::mutex mu;
    std::vector<int> visits(n, 0);
    bool bad_range = false;
    ForEachBlock(n, blocks, [&](int64_t begin, int64_t end) {
      std::lock_guard<std::mutex> lock(mu);
      if (begin >= end || begin < 0 || end > n) {
        bad_range = true;
        return;
      }
      for (int64_t i = begin; i < end; ++i) ++visits[i];
    });
    EXPECT_FALSE(bad_range) << "a range is empty or outside [0, n): n " << n << " blocks "
                            << blocks;
    EXPECT_EQ(visits, std::vector<int>(n, 1)) << "n " << n << " blocks " << blocks;
  }
  bool called = false;
  ForEachBlock(0, 2, [&](int64_t, int64_t) { called = true; });
  EXPECT_FALSE(called) << "an empty range has no blocks";
}

TEST_F(CpuParallelForEachBlock, RethrowsAnExceptionFromABlock) {
  // From the block the other thread runs, and from the inline single-block path.
  auto throw_from_second_half = [](int64_t begin, int64_t) {
    if (begin > 0) throw std::runtime_error("block failed");
  };
  EXPECT_THROW(ForEachBlock(4, 2, throw_from_second_half), std::runtime_error);
  EXPECT_THROW(ForEachBlock(4, 1, [](int64_t, int64_t) { throw std::runtime_error("inline"); }),
               std::runtime_error);
}

// OpenMP workers start with default thread-local state; the out= products refuse parameters that
// require grad when grad mode is on, so the caller's NoGradGuard has to reach every block.
TEST_F(CpuParallelForEachBlock, BlocksInheritTheCallersGradMode) {
  auto grad_mode_per_block = [] {
    std::mutex mu;
    std::vector<bool> enabled;
    ForEachBlock(2, 2, [&](int64_t, int64_t) {
      const bool is_enabled = at::GradMode::is_enabled();
      std::lock_guard<std::mutex> lock(mu);
      enabled.push_back(is_enabled);
    });
    return enabled;
  };
  {
    torch::NoGradGuard no_grad;
    EXPECT_EQ(grad_mode_per_block(), (std::vector<bool>{false, false}));
  }
  ASSERT_TRUE(at::GradMode::is_enabled());
  EXPECT_EQ(grad_mode_per_block(), (std::vector<bool>{true, true}));
}

// ---------------------------------------------------------------------------------------------
// ParallelLinear

struct CpuParallelLinearCase {
  std::string name;
  std::vector<int64_t> x_shape;
  int64_t out_features;
  bool bias;
  torch::Dtype dtype;
};

class CpuParallelLinear : public CpuParallelTwoThreads {};

// Observed max abs diffs: float 2e-6 to 4e-6, double 0. Both sides run the same single-threaded
// BLAS per row, only the block edges differ.
TEST_F(CpuParallelLinear, MatchesSingleThreadedTorchLinear) {
  const std::vector<CpuParallelLinearCase> cases = {
      // Many rows (a 32x32 latent's tokens): threads split the rows.
      {"RowSplit", {2, 1024, 320}, 640, true, torch::kFloat},
      // Few rows, many features (a 77-token context, the GEGLU projection of an 8x8 map): threads
      // split the output features.
      {"FeatureSplit", {2, 64, 1280}, 5120, true, torch::kFloat},
      {"TwoDimensionalInput", {777, 320}, 320, true, torch::kFloat},
      {"NoBias", {2, 1024, 320}, 640, false, torch::kFloat},
      {"FeatureSplitNoBias", {77, 768}, 3072, false, torch::kFloat},
      {"Double", {2, 512, 320}, 640, true, torch::kDouble},
      {"FeatureSplitDouble", {2, 16, 640}, 2560, true, torch::kDouble},
  };
  torch::NoGradGuard no_grad;
  for (const CpuParallelLinearCase& c : cases) {
    SCOPED_TRACE(c.name);
    const auto options = torch::TensorOptions().dtype(c.dtype);
    const auto x = torch::randn(c.x_shape, options);
    const int64_t in = c.x_shape.back();
    const auto weight = torch::randn({c.out_features, in}, options) / std::sqrt(in);
    const auto bias = c.bias ? torch::randn({c.out_features}, options) : torch::Tensor();
    const double flops = 2.0 * static_cast<double>(x.numel()) * c.out_features;
    EXPECT_EQ(ParallelBlocks(x, flops), 2) << "the case must be large enough to be split";

    const auto expected = OnOneThread([&] { return torch::linear(x, weight, bias); });
    const auto actual = ParallelLinear(x, weight, bias);
    std::vector<int64_t> expected_shape = c.x_shape;
    expected_shape.back() = c.out_features;
    EXPECT_EQ(actual.sizes(), torch::IntArrayRef(expected_shape));
    const double diff = MaxAbsDiff(actual, expected);
    RecordMaxAbsDiff(c.name, diff);
    EXPECT_LE(diff, c.dtype == torch::kDouble ? 1e-12 : 1e-4);
  }
}

// Module parameters require grad; inference runs them under NoGradGuard, which the worker threads
// must see or their out= products throw.
TEST_F(CpuParallelLinear, AcceptsParametersThatRequireGradUnderNoGradGuard) {
  const auto x = torch::randn({2, 1024, 320});
  const auto weight = (torch::randn({640, 320}) / 18).requires_grad_(true);
  const auto bias = torch::randn({640}).requires_grad_(true);
  torch::NoGradGuard no_grad;
  const auto expected = OnOneThread([&] { return torch::linear(x, weight, bias); });
  torch::Tensor actual;
  ASSERT_NO_THROW(actual = ParallelLinear(x, weight, bias));
  EXPECT_LE(MaxAbsDiff(actual, expected), 1e-4);
}

// Shapes LibTorch rejects are rejected the same way (its error, not an out-of-range read or a
// broadcasting message from inside a split).
TEST_F(CpuParallelLinear, MismatchedShapesFailLikeLibTorch) {
  torch::NoGradGuard no_grad;
  const auto x = torch::randn({2, 256, 320});
  const auto weight = torch::randn({640, 320});
  EXPECT_THROW(ParallelLinear(x, weight, torch::randn({639})), c10::Error);
  EXPECT_THROW(ParallelLinear(x, torch::randn({640, 321}), {}), c10::Error);
  EXPECT_THROW(ParallelLinear(x, torch::randn({640}), {}), c10::Error);
  EXPECT_THROW(ParallelConv2d(torch::randn({2, 64, 32, 32}), torch::randn({64, 64, 3, 3}),
                              torch::randn({63}), 1, 1),
               c10::Error);
}

// Below the flop threshold, and with fewer rows than threads, it is torch::linear itself.
TEST_F(CpuParallelLinear, SmallProductsFallBackToTorchLinearExactly) {
  torch::NoGradGuard no_grad;
  const auto x = torch::randn({3, 16, 32});
  const auto weight = torch::randn({48, 32});
  const auto bias = torch::randn({48});
  ASSERT_EQ(ParallelBlocks(x, 2.0 * 48 * 32 * 48), 1);
  EXPECT_TRUE(torch::equal(ParallelLinear(x, weight, bias), torch::linear(x, weight, bias)));

  const auto one_row = torch::randn({1, 2048});  // 16.8 MFLOP, but a single row to split
  const auto wide = torch::randn({4096, 2048});
  EXPECT_TRUE(torch::equal(ParallelLinear(one_row, wide, {}),
                           torch::linear(one_row, wide, torch::Tensor())));
}

// ---------------------------------------------------------------------------------------------
// ParallelConv2d

struct CpuParallelConvCase {
  std::string name;
  std::vector<int64_t> x_shape;  // N, Cin, H, W
  int64_t out_channels;
  int64_t kernel;
  int64_t stride;
  int64_t padding;
  bool bias;
  torch::Dtype dtype;
};

class CpuParallelConv2d : public CpuParallelTwoThreads {};

// Three paths: "small maps" (N * Hout * Wout < 2048: one im2col of all images, threads split the
// output channels), "bands" (items of (image, band of output rows), each band's im2col ~4 MiB), and
// Winograd for 3x3 stride-1 padding-1 convolutions with enough tiles and channels: F(4x4, 3x3)
// with 512 or more 4x4 tiles, else F(2x2, 3x3) with 128 or more 2x2 tiles. The case names say
// which path each case is meant for. Observed max abs diffs: float up to 5e-4 at magnitudes of
// ~250 (relative ~2e-6), F(4x4) float up to 1.1e-3 at ~110 (relative ~1e-5), double up to 1e-12.
TEST_F(CpuParallelConv2d, MatchesSingleThreadedTorchConv2d) {
  const std::vector<CpuParallelConvCase> cases = {
      // Small maps. SD's 8x8 maps: too few tiles for Winograd.
      {"SmallMap3x3", {2, 320, 8, 8}, 320, 3, 1, 1, true, torch::kFloat},
      {"SmallMapNoBias", {2, 320, 8, 8}, 320, 3, 1, 1, false, torch::kFloat},
      {"SmallMapDouble", {2, 128, 8, 8}, 128, 3, 1, 1, true, torch::kDouble},
      {"SmallMapOddSizes", {1, 16, 17, 13}, 128, 3, 1, 1, true, torch::kFloat},
      // The downsampler: stride 2 takes im2col's strided loop.
      {"SmallMapStride2", {2, 32, 33, 31}, 64, 3, 2, 1, true, torch::kFloat},
      // 1x1 convolutions use the image as its own im2col.
      {"SmallMapPointwise", {2, 128, 4, 4}, 640, 1, 1, 0, true, torch::kFloat},
      {"SmallMapKernel5Padding2", {1, 32, 24, 24}, 64, 5, 1, 2, true, torch::kFloat},
      // Bands.
      {"BandsStride2", {1, 32, 130, 129}, 64, 3, 2, 1, true, torch::kFloat},
      {"BandsPointwise", {2, 64, 32, 32}, 128, 1, 1, 0, true, torch::kFloat},
      {"BandsPointwiseNoBias", {2, 64, 32, 32}, 128, 1, 1, 0, false, torch::kFloat},
      {"BandsNoPadding", {2, 32, 34, 34}, 64, 3, 1, 0, true, torch::kFloat},
      {"BandsNoPaddingDouble", {2, 32, 34, 34}, 64, 3, 1, 0, true, torch::kDouble},
      // An even kernel with padding 2 makes the output one larger than the input.
      {"BandsKernel4Padding2", {1, 16, 48, 48}, 32, 4, 1, 2, true, torch::kFloat},
      // 3x3 padding 1 with few channels (as in ControlNet's hint embedding): not Winograd.
      {"BandsFewInputChannels", {2, 16, 48, 48}, 64, 3, 1, 1, false, torch::kFloat},
      // A 5x5 im2col row is 48*25*64*4 = 307 KB, so 13 rows fit a band: 5 bands per image (the
      // last one 8 rows), 15 items, and one thread's items run from image 0 into image 1.
      {"BandsSeveralPerImage", {3, 48, 60, 64}, 32, 5, 1, 2, true, torch::kFloat},
      // Winograd F(4x4): 2 x 16 x 16 tiles of 4x4 at 64x64 (SD's 512x512 latent).
      {"WinogradF4At64x64", {2, 64, 64, 64}, 64, 3, 1, 1, true, torch::kFloat},
      {"WinogradF4NoBias", {2, 48, 64, 64}, 64, 3, 1, 1, false, torch::kFloat},
      {"WinogradF4Double", {2, 32, 64, 64}, 32, 3, 1, 1, true, torch::kDouble},
      // Sizes that are not multiples of 4: the last row and column of tiles reach past the map.
      {"WinogradF4OddSizes", {1, 32, 91, 90}, 48, 3, 1, 1, true, torch::kFloat},
      // A pass holds ~96 MiB of transforms, 10922 tiles here: of 105 x 106 tiles, the second
      // pass starts inside a row of tiles (at column 4), so the eight-tile groups do too.
      {"WinogradF4SeveralPasses", {1, 32, 418, 421}, 32, 3, 1, 1, true, torch::kFloat},
      // Winograd F(2x2): 128 tiles of 4x4 are too few at 32x32, 512 of 2x2 are enough.
      {"WinogradF2At32x32", {2, 64, 32, 32}, 64, 3, 1, 1, true, torch::kFloat},
      {"WinogradF2NoBias", {2, 64, 32, 32}, 64, 3, 1, 1, false, torch::kFloat},
      {"WinogradF2Double", {2, 64, 16, 16}, 64, 3, 1, 1, true, torch::kDouble},
      {"WinogradF2OddSizes", {2, 32, 17, 15}, 48, 3, 1, 1, true, torch::kFloat},
      // The float kernel transform takes eight input channels at a time: 37 leaves 5 over.
      {"WinogradF2OddChannels", {2, 37, 32, 32}, 40, 3, 1, 1, true, torch::kFloat},
  };
  torch::NoGradGuard no_grad;
  for (const CpuParallelConvCase& c : cases) {
    SCOPED_TRACE(c.name);
    const auto options = torch::TensorOptions().dtype(c.dtype);
    const auto x = torch::randn(c.x_shape, options);
    const auto weight = torch::randn({c.out_channels, c.x_shape[1], c.kernel, c.kernel}, options);
    const auto bias = c.bias ? torch::randn({c.out_channels}, options) : torch::Tensor();
    const int64_t h_out = (c.x_shape[2] + 2 * c.padding - c.kernel) / c.stride + 1;
    const int64_t w_out = (c.x_shape[3] + 2 * c.padding - c.kernel) / c.stride + 1;
    const double flops =
        2.0 * c.x_shape[0] * h_out * w_out * c.out_channels * c.x_shape[1] * c.kernel * c.kernel;
    EXPECT_EQ(ParallelBlocks(x, flops), 2) << "the case must be large enough to be split";

    const auto expected = OnOneThread([&] {
      return torch::conv2d(x, weight, bias, {c.stride, c.stride}, {c.padding, c.padding});
    });
    const auto actual = ParallelConv2d(x, weight, bias, c.stride, c.padding);
    // Sums of Cin*k*k (up to 2880) products of unit normals reach magnitudes of 50 to 250: the
    // float bound scales with them.
    const double magnitude = std::max(1.0, expected.abs().max().item<double>());
    const double tolerance = c.dtype == torch::kDouble ? 1e-10 : 1e-4 * magnitude;
    const double diff = MaxAbsDiff(actual, expected);
    RecordMaxAbsDiff(c.name, diff);
    EXPECT_LE(diff, tolerance) << "max |reference| " << magnitude;
  }
}

TEST_F(CpuParallelConv2d, NonContiguousInputMatches) {
  torch::NoGradGuard no_grad;
  const auto x = torch::randn({2, 32, 32, 64}).permute({0, 3, 1, 2});  // [2, 64, 32, 32]
  ASSERT_FALSE(x.is_contiguous());
  const auto weight = torch::randn({64, 64, 3, 3});
  const auto bias = torch::randn({64});
  const auto expected = OnOneThread([&] { return torch::conv2d(x, weight, bias, 1, 1); });
  const double magnitude = std::max(1.0, expected.abs().max().item<double>());
  EXPECT_LE(MaxAbsDiff(ParallelConv2d(x, weight, bias, 1, 1), expected), 1e-4 * magnitude);
}

// The function takes no `groups`: a weight with fewer input channels than x falls back to
// torch::conv2d with one group, which rejects it, instead of reading past the weight.
TEST_F(CpuParallelConv2d, GroupedWeightFallsBackToTorchConv2dWithOneGroup) {
  torch::NoGradGuard no_grad;
  const auto x = torch::randn({2, 64, 32, 32});
  const auto grouped_weight = torch::randn({64, 32, 3, 3});  // two groups of 32 channels
  EXPECT_THROW(torch::conv2d(x, grouped_weight, {}, 1, 1), c10::Error);
  EXPECT_THROW(ParallelConv2d(x, grouped_weight, {}, 1, 1), c10::Error);
}

// ---------------------------------------------------------------------------------------------
// ScaledDotProductAttention's parallel path

class CpuParallelAttention : public CpuParallelTwoThreads {
 protected:
  // ScaledDotProductAttention on two threads against NaiveAttention on one.
  void ExpectMatchesNaive(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                          const std::optional<torch::Tensor>& mask,
                          const AttentionCoreOptions& options = {}) {
    double entries = 1;
    for (int64_t d = 0; d < q.dim() - 2; ++d) {
      entries *= static_cast<double>(std::max({q.size(d), k.size(d), v.size(d)}));
    }
    const double flops = 2.0 * entries * q.size(-2) * k.size(-2) * (q.size(-1) + v.size(-1));
    ASSERT_EQ(ParallelBlocks(q, flops), 2) << "the case must be large enough to be split";
    const auto expected = OnOneThread([&] { return NaiveAttention(q, k, v, mask, options); });
    const auto actual = ScaledDotProductAttention(q, k, v, mask, options);
    ASSERT_FALSE(expected.isnan().any().item<bool>()) << "the case must have no empty rows";
    const double diff = MaxAbsDiff(actual, expected);
    RecordMaxAbsDiff(std::to_string(comparisons_++), diff);
    EXPECT_LE(diff, 1e-5);
  }

 private:
  int comparisons_ = 0;
};

TEST_F(CpuParallelAttention, SelfAttentionSplitsHeads) {
  torch::NoGradGuard no_grad;
  const auto q = torch::randn({2, 8, 1024, 40});
  const auto k = torch::randn({2, 8, 1024, 40});
  const auto v = torch::randn({2, 8, 1024, 40});
  ExpectMatchesNaive(q, k, v, std::nullopt);
}

// The VAE's single head: fewer entries than threads, so the threads split the query rows.
TEST_F(CpuParallelAttention, OneHeadSplitsQueryRows) {
  torch::NoGradGuard no_grad;
  const auto q = torch::randn({1, 1, 1024, 64});
  const auto k = torch::randn({1, 1, 1024, 64});
  const auto v = torch::randn({1, 1, 1024, 64});
  ExpectMatchesNaive(q, k, v, std::nullopt);
}

TEST_F(CpuParallelAttention, CrossAttentionToAShortContext) {
  torch::NoGradGuard no_grad;
  const auto q = torch::randn({2, 8, 1024, 40});
  const auto k = torch::randn({2, 8, 77, 40});
  const auto v = torch::randn({2, 8, 77, 40});
  ExpectMatchesNaive(q, k, v, std::nullopt);
}

// A padding mask per batch entry, broadcast over heads and queries.
TEST_F(CpuParallelAttention, BroadcastBoolKeyMask) {
  torch::NoGradGuard no_grad;
  const auto q = torch::randn({2, 8, 1024, 40});
  const auto k = torch::randn({2, 8, 77, 40});
  const auto v = torch::randn({2, 8, 77, 40});
  auto mask = torch::rand({2, 1, 1, 77}) > 0.3;
  mask.select(-1, 0).fill_(true);  // every query keeps at least one key
  ExpectMatchesNaive(q, k, v, mask);
}

// A mask with only [Lq, Lk] dims must be cut to each thread's query rows.
TEST_F(CpuParallelAttention, AdditivePerQueryMaskWithRowSplit) {
  torch::NoGradGuard no_grad;
  const auto q = torch::randn({1, 1, 600, 64});
  const auto k = torch::randn({1, 1, 500, 64});
  const auto v = torch::randn({1, 1, 500, 32});
  const auto mask = torch::randn({600, 500}) * 3;
  ExpectMatchesNaive(q, k, v, mask);
  // And the same mask shared by several heads.
  ExpectMatchesNaive(torch::randn({2, 4, 600, 32}), torch::randn({2, 4, 500, 32}),
                     torch::randn({2, 4, 500, 32}), mask);
}

// The causal triangle depends on the absolute query row, not the row within a thread's share.
TEST_F(CpuParallelAttention, CausalWithRowSplit) {
  torch::NoGradGuard no_grad;
  const auto q = torch::randn({1, 1, 512, 64});
  const auto k = torch::randn({1, 1, 512, 64});
  const auto v = torch::randn({1, 1, 512, 64});
  AttentionCoreOptions options;
  options.causal = true;
  ExpectMatchesNaive(q, k, v, std::nullopt, options);
}

// Chunks of 100 rows do not divide the 1024 rows or the 512-row halves the threads get. Chunks
// and the score budget below only shape the BLAS path, which CPUs without AVX2 take for
// unmasked float attention too; the tiled kernel is switched off to test it here.
TEST_F(CpuParallelAttention, QueryChunksThatDoNotDivideTheRows) {
  torch::NoGradGuard no_grad;
  AttentionCoreOptions options;
  options.query_chunk_size = 100;
  options.tiled_kernel = false;
  ExpectMatchesNaive(torch::randn({1, 1, 1024, 64}), torch::randn({1, 1, 1024, 64}),
                     torch::randn({1, 1, 1024, 64}), std::nullopt, options);
  ExpectMatchesNaive(torch::randn({2, 3, 250, 32}), torch::randn({2, 3, 250, 32}),
                     torch::randn({2, 3, 250, 32}), std::nullopt, options);
}

// k and v shared by all heads (size 1 in dim 1), and by the whole batch (size 1 in dim 0).
TEST_F(CpuParallelAttention, BroadcastBatchDims) {
  torch::NoGradGuard no_grad;
  const auto q = torch::randn({2, 8, 256, 40});
  ExpectMatchesNaive(q, torch::randn({2, 1, 256, 40}), torch::randn({2, 1, 256, 40}), std::nullopt);
  ExpectMatchesNaive(q, torch::randn({1, 8, 256, 40}), torch::randn({1, 8, 256, 40}), std::nullopt);
}

// A small score budget only shrinks the blocks of rows each thread walks.
TEST_F(CpuParallelAttention, SmallScoreBudgetGivesTheSameResult) {
  torch::NoGradGuard no_grad;
  const auto q = torch::randn({1, 2, 1024, 64});
  const auto k = torch::randn({1, 2, 1024, 64});
  const auto v = torch::randn({1, 2, 1024, 64});
  // 1 MiB: 128-row blocks instead of 256; 64 KiB: 8-row blocks.
  for (int64_t budget : {int64_t{1} << 20, int64_t{64} << 10}) {
    SCOPED_TRACE(budget);
    AttentionCoreOptions options;
    options.max_score_bytes = budget;
    options.tiled_kernel = false;
    ExpectMatchesNaive(q, k, v, std::nullopt, options);
  }
}

// ---------------------------------------------------------------------------------------------
// With autograd recording (grad mode on, inputs or parameters that require grad)

// The functions stand in for torch::linear, torch::conv2d and attention inside modules whose
// parameters require grad; outside a NoGradGuard they must give the same values and gradients as
// the ATen ops (a split that cannot record autograd has to fall back).
class CpuParallelAutograd : public CpuParallelTwoThreads {
 protected:
  // d(sum(y * upstream)) / d(inputs).
  static std::vector<torch::Tensor> Gradients(const torch::Tensor& y, const torch::Tensor& upstream,
                                              const std::vector<torch::Tensor>& inputs) {
    return torch::autograd::grad({(y * upstream).sum()}, inputs);
  }

  // `parallel` on two threads and `reference` on one: same values and gradients.
  static void ExpectSameValuesAndGradients(const std::function<torch::Tensor()>& parallel,
                                           const std::function<torch::Tensor()>& reference,
                                           const std::vector<torch::Tensor>& inputs) {
    const auto expected = OnOneThread(reference);
    torch::Tensor actual;
    ASSERT_NO_THROW(actual = parallel());
    ASSERT_TRUE(actual.requires_grad()) << "the result is cut off from autograd";
    const double magnitude = std::max(1.0, expected.abs().max().item<double>());
    EXPECT_LE(MaxAbsDiff(actual, expected), 1e-4 * magnitude);
    const auto upstream = torch::randn_like(expected);
    const auto expected_grads = Gradients(expected, upstream, inputs);
    const auto actual_grads = Gradients(actual, upstream, inputs);
    for (size_t i = 0; i < inputs.size(); ++i) {
      const double scale = std::max(1.0, expected_grads[i].abs().max().item<double>());
      EXPECT_LE(MaxAbsDiff(actual_grads[i], expected_grads[i]), 1e-4 * scale) << "input " << i;
    }
  }
};

TEST_F(CpuParallelAutograd, LinearMatchesTorchLinear) {
  const auto x = torch::randn({2, 256, 320}).requires_grad_(true);
  const auto weight = (torch::randn({640, 320}) / 18).requires_grad_(true);
  const auto bias = torch::randn({640}).requires_grad_(true);
  ExpectSameValuesAndGradients([&] { return ParallelLinear(x, weight, bias); },
                               [&] { return torch::linear(x, weight, bias); }, {x, weight, bias});
}

TEST_F(CpuParallelAutograd, Conv2dMatchesTorchConv2d) {
  // A map the Winograd path takes, and SD's 8x8 maps (direct, small-map path).
  for (const std::vector<int64_t>& shape : {std::vector<int64_t>{2, 64, 32, 32}, {2, 128, 8, 8}}) {
    SCOPED_TRACE(torch::IntArrayRef(shape));
    const auto x = torch::randn(shape).requires_grad_(true);
    const auto weight = (torch::randn({shape[1], shape[1], 3, 3}) / 24).requires_grad_(true);
    const auto bias = torch::randn({shape[1]}).requires_grad_(true);
    ExpectSameValuesAndGradients([&] { return ParallelConv2d(x, weight, bias, 1, 1); },
                                 [&] { return torch::conv2d(x, weight, bias, 1, 1); },
                                 {x, weight, bias});
  }
}

TEST_F(CpuParallelAutograd, AttentionMatchesNaiveAttention) {
  const auto q = torch::randn({2, 2, 128, 40}).requires_grad_(true);
  const auto k = torch::randn({2, 2, 128, 40}).requires_grad_(true);
  const auto v = torch::randn({2, 2, 128, 40}).requires_grad_(true);
  ExpectSameValuesAndGradients([&] { return ScaledDotProductAttention(q, k, v); },
                               [&] { return NaiveAttention(q, k, v, std::nullopt); }, {q, k, v});
}

}  // namespace
}  // namespace imginterp::nn
