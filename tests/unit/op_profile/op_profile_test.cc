#include "benchmarks/diffusion/op_profile.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <numeric>
#include <string>
#include <thread>

#include "services/models/nn/cpu_parallel.h"

namespace imginterp::bench {
namespace {

double SumOfSelfTimes(const OpProfile& profile) {
  double sum = 0;
  for (const auto& [name, stats] : profile.ops) sum += stats.self_seconds;
  return sum;
}

TEST(OpProfileTest, CountsAMatrixProductWithItsFlops) {
  torch::NoGradGuard no_grad;
  const auto a = torch::randn({64, 32});
  const auto b = torch::randn({32, 16});
  OpProfile profile;
  {
    ScopedOpProfile recording(&profile);
    torch::mm(a, b);
  }
  ASSERT_EQ(profile.ops.count("aten::mm"), 1u);
  const OpStats& mm = profile.ops.at("aten::mm");
  EXPECT_EQ(mm.calls, 1);
  EXPECT_DOUBLE_EQ(mm.flops, 2.0 * 64 * 32 * 16);
  EXPECT_GT(mm.self_seconds, 0);
}

// Self times telescope: each operator's wall time minus its callees', summed over all operators,
// is the wall time of the top-level ones. aten::linear calls aten::addmm (2-D input) and must not
// count the product's FLOPs or time a second time.
TEST(OpProfileTest, SelfTimesAddUpToTheTopLevelTime) {
  torch::NoGradGuard no_grad;
  const auto x = torch::randn({128, 64});
  const auto w = torch::randn({32, 64});
  const auto bias = torch::randn({32});
  OpProfile profile;
  {
    ScopedOpProfile recording(&profile);
    for (int i = 0; i < 3; ++i) torch::relu(torch::linear(x, w, bias));
  }
  EXPECT_NEAR(SumOfSelfTimes(profile), profile.top_level_seconds, 1e-9);
  ASSERT_EQ(profile.ops.count("aten::linear"), 1u);
  ASSERT_EQ(profile.ops.count("aten::addmm"), 1u);
  EXPECT_EQ(profile.ops.at("aten::linear").calls, 3);
  EXPECT_DOUBLE_EQ(profile.ops.at("aten::addmm").flops, 3 * 2.0 * 128 * 64 * 32);
  EXPECT_EQ(profile.ops.at("aten::linear").flops, 0);
}

// The split operators of the native models are timed whole, with their FLOPs; the ATen products
// they run on each thread are not listed (the calling thread sees only its share).
TEST(OpProfileTest, SplitOperatorsCountAsOneWithTheirFlops) {
  torch::NoGradGuard no_grad;
  const int previous_threads = torch::get_num_threads();
  torch::set_num_threads(2);
  const auto x = torch::randn({2, 256, 320});
  const auto w = torch::randn({640, 320});
  OpProfile profile;
  {
    ScopedOpProfile recording(&profile);
    nn::ParallelLinear(x, w, torch::Tensor());
  }
  torch::set_num_threads(previous_threads);
  ASSERT_EQ(profile.ops.count("imginterp::linear"), 1u);
  EXPECT_DOUBLE_EQ(profile.ops.at("imginterp::linear").flops, 2.0 * 512 * 320 * 640);
  EXPECT_EQ(profile.ops.count("aten::mm"), 0u);
  EXPECT_EQ(profile.ops.count("aten::addmm"), 0u);
  EXPECT_NEAR(SumOfSelfTimes(profile), profile.top_level_seconds, 1e-9);
}

TEST(OpProfileTest, RecordsOnlyTheProfilingThreadAndOnlyWhileInScope) {
  torch::NoGradGuard no_grad;
  const auto a = torch::randn({16, 16});
  OpProfile profile;
  {
    ScopedOpProfile recording(&profile);
    std::thread other([&] {
      torch::NoGradGuard other_no_grad;
      torch::mm(a, a);
    });
    other.join();
    torch::add(a, a);
  }
  torch::mm(a, a);  // after the scope
  EXPECT_EQ(profile.ops.count("aten::mm"), 0u);
  ASSERT_EQ(profile.ops.count("aten::add"), 1u);
  EXPECT_EQ(profile.ops.at("aten::add").calls, 1);
}

TEST(OpProfileTest, ByShapeKeysCarryTheInputShapes) {
  torch::NoGradGuard no_grad;
  OpProfile profile;
  profile.by_shape = true;
  {
    ScopedOpProfile recording(&profile);
    torch::mm(torch::ones({4, 3}), torch::ones({3, 2}));
  }
  EXPECT_EQ(profile.ops.count("aten::mm [4,3] [3,2]"), 1u);
}

TEST(OpProfileTest, KindsGroupOperators) {
  EXPECT_EQ(OpProfile::KindOf("aten::mkldnn_convolution"), "convolution");
  EXPECT_EQ(OpProfile::KindOf("imginterp::conv2d"), "convolution");
  EXPECT_EQ(OpProfile::KindOf("imginterp::linear"), "matmul");
  EXPECT_EQ(OpProfile::KindOf("aten::bmm"), "matmul");
  EXPECT_EQ(OpProfile::KindOf("imginterp::attention"), "attention (whole)");
  EXPECT_EQ(OpProfile::KindOf("aten::_softmax"), "softmax");
  EXPECT_EQ(OpProfile::KindOf("aten::native_group_norm"), "norm");
  EXPECT_EQ(OpProfile::KindOf("aten::copy_"), "copy/layout");
  EXPECT_EQ(OpProfile::KindOf("aten::silu"), "elementwise");
  EXPECT_EQ(OpProfile::KindOf("aten::item"), "other");
}

TEST(OpProfileTest, PrintsOperatorsAndKinds) {
  OpProfile profile;
  profile.ops["aten::mm"] = OpStats{2, 0.5, 4e9};
  profile.ops["aten::add"] = OpStats{4, 0.25, 0};
  profile.top_level_seconds = 0.75;
  char* buffer = nullptr;
  size_t size = 0;
  std::FILE* out = open_memstream(&buffer, &size);
  ASSERT_NE(out, nullptr);
  profile.Print(out, /*steps=*/2, /*step_seconds=*/0.5, /*top=*/1);
  std::fclose(out);
  const std::string text(buffer, size);
  std::free(buffer);
  // Per step: mm 1 call, 0.25 s (50% of a 0.5 s step), 2 GFLOP at 8 GFLOP/s; add is beyond top=1
  // in the operator list but shows in its kind.
  EXPECT_NE(text.find("aten::mm"), std::string::npos) << text;
  EXPECT_NE(text.find("0.250   50.0        2.0       8.0"), std::string::npos) << text;
  EXPECT_EQ(text.find("aten::add"), std::string::npos) << text;
  EXPECT_NE(text.find("elementwise"), std::string::npos) << text;
  EXPECT_NE(text.find("all operators"), std::string::npos) << text;
}

}  // namespace
}  // namespace imginterp::bench
