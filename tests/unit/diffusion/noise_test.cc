#include "services/models/diffusion/noise.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "services/models/io/safetensors_file.h"

namespace imginterp::diffusion {
namespace {

// torch.randn(shape, generator=torch.Generator().manual_seed(seed)) from PyTorch, fp32 CPU.
constexpr char kSeededNoise[] = IMGINTERP_REFERENCE_DIR "/diffusion/noise/seeded_noise.safetensors";

class SeededNoiseTest : public ::testing::TestWithParam<std::tuple<uint64_t, std::string>> {};

TEST_P(SeededNoiseTest, EqualsTorchRandnFromAFreshlySeededGenerator) {
  const auto& [seed, shape_name] = GetParam();
  auto file = models::SafetensorsFile::Open(kSeededNoise);
  ASSERT_TRUE(file.ok()) << file.status();
  auto expected = (*file)->Tensor("seed" + std::to_string(seed) + ".latents_" + shape_name);
  ASSERT_TRUE(expected.ok()) << expected.status();

  auto noise = InitialNoise(expected->sizes().vec(), seed);
  ASSERT_TRUE(noise.ok()) << noise.status();
  ASSERT_EQ(noise->scalar_type(), at::kFloat);
  ASSERT_EQ(noise->sizes(), expected->sizes());
  // Bit-exact: the same generator and sampler as the reference.
  EXPECT_EQ(at::max(at::abs(*noise - *expected)).item<float>(), 0.0f);
}

INSTANTIATE_TEST_SUITE_P(AllReferenceEntries, SeededNoiseTest,
                         ::testing::Combine(::testing::Values(0u, 42u, 1234u),
                                            ::testing::Values("1x4x64x64", "2x4x16x24")),
                         [](const auto& info) {
                           return "seed" + std::to_string(std::get<0>(info.param)) + "_" +
                                  std::get<1>(info.param);
                         });

TEST(InitialNoiseTest, SameSeedSameNoiseDifferentSeedDifferentNoise) {
  auto a = InitialNoise({1, 4, 8, 8}, 7);
  auto b = InitialNoise({1, 4, 8, 8}, 7);
  auto c = InitialNoise({1, 4, 8, 8}, 8);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_TRUE(at::equal(*a, *b));
  EXPECT_FALSE(at::equal(*a, *c));
}

TEST(InitialNoiseTest, CastsTheFloat32DrawToTheRequestedDtype) {
  auto f32 = InitialNoise({2, 4, 16, 24}, 42);
  auto f64 = InitialNoise({2, 4, 16, 24}, 42, at::kDouble);
  auto f16 = InitialNoise({2, 4, 16, 24}, 42, at::kHalf);
  ASSERT_TRUE(f32.ok() && f64.ok() && f16.ok());
  EXPECT_EQ(f64->scalar_type(), at::kDouble);
  EXPECT_EQ(f16->scalar_type(), at::kHalf);
  EXPECT_TRUE(at::equal(f64->to(at::kFloat), *f32));
  EXPECT_TRUE(at::equal(*f16, f32->to(at::kHalf)));
}

TEST(InitialNoiseTest, RejectsBadShapesAndIntegerDtypes) {
  EXPECT_EQ(InitialNoise({}, 1).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(InitialNoise({1, 0, 4}, 1).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(InitialNoise({1, -4}, 1).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(InitialNoise({1, 4}, 1, at::kInt).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SlerpNoiseTest, EndpointsReturnTheInputs) {
  auto a = *InitialNoise({2, 4, 8, 8}, 1);
  auto b = *InitialNoise({2, 4, 8, 8}, 2);
  auto at0 = SlerpNoise(a, b, 0.0);
  auto at1 = SlerpNoise(a, b, 1.0);
  ASSERT_TRUE(at0.ok() && at1.ok());
  EXPECT_TRUE(at::allclose(*at0, a, 0, 1e-6));
  EXPECT_TRUE(at::allclose(*at1, b, 0, 1e-6));
  EXPECT_EQ(at0->scalar_type(), at::kFloat);
  EXPECT_EQ(at0->sizes(), a.sizes());
}

TEST(SlerpNoiseTest, MidpointOfOrthogonalUnitVectorsStaysOnTheCircle) {
  // a = e0, b = e1: slerp(0.5) = (e0 + e1) / sqrt(2); lerp would give length 1/sqrt(2).
  at::Tensor a = at::zeros({1, 2}, at::kDouble);
  at::Tensor b = at::zeros({1, 2}, at::kDouble);
  a[0][0] = 1.0;
  b[0][1] = 1.0;
  auto mid = SlerpNoise(a, b, 0.5);
  ASSERT_TRUE(mid.ok());
  EXPECT_NEAR((*mid)[0][0].item<double>(), std::sqrt(0.5), 1e-12);
  EXPECT_NEAR((*mid)[0][1].item<double>(), std::sqrt(0.5), 1e-12);
  // A third of the way: angle pi/6 from a.
  auto third = SlerpNoise(a, b, 1.0 / 3);
  ASSERT_TRUE(third.ok());
  EXPECT_NEAR((*third)[0][0].item<double>(), std::cos(M_PI / 6), 1e-12);
  EXPECT_NEAR((*third)[0][1].item<double>(), std::sin(M_PI / 6), 1e-12);
}

TEST(SlerpNoiseTest, KeepsTheNormOfGaussianNoiseWhereLerpShrinksIt) {
  auto a = *InitialNoise({1, 4, 64, 64}, 0);
  auto b = *InitialNoise({1, 4, 64, 64}, 42);
  auto mid = SlerpNoise(a, b, 0.5);
  ASSERT_TRUE(mid.ok());
  const double norm_a = a.norm().item<double>();
  EXPECT_NEAR(mid->norm().item<double>() / norm_a, 1.0, 0.02);
  EXPECT_LT(((a + b) * 0.5).norm().item<double>() / norm_a, 0.75);
}

TEST(SlerpNoiseTest, InterpolatesEachBatchItemSeparately) {
  auto a = *InitialNoise({2, 4, 8, 8}, 3);
  auto b = *InitialNoise({2, 4, 8, 8}, 4);
  auto both = SlerpNoise(a, b, 0.3);
  auto first = SlerpNoise(a.slice(0, 0, 1), b.slice(0, 0, 1), 0.3);
  auto second = SlerpNoise(a.slice(0, 1, 2), b.slice(0, 1, 2), 0.3);
  ASSERT_TRUE(both.ok() && first.ok() && second.ok());
  EXPECT_TRUE(at::equal(both->slice(0, 0, 1), *first));
  EXPECT_TRUE(at::equal(both->slice(0, 1, 2), *second));
}

TEST(SlerpNoiseTest, FallsBackToLerpForNearlyParallelInputs) {
  at::Tensor a = at::ones({1, 16}, at::kDouble);
  at::Tensor b = a * 3.0;  // parallel: the angle is 0 and slerp's formula divides by sin(0)
  auto mid = SlerpNoise(a, b, 0.25);
  ASSERT_TRUE(mid.ok());
  EXPECT_TRUE(at::allclose(*mid, a * 1.5));
}

TEST(SlerpNoiseTest, RejectsMismatchedInputsAndTOutsideTheUnitInterval) {
  auto a = *InitialNoise({1, 4, 8, 8}, 1);
  auto b = *InitialNoise({1, 4, 8, 9}, 2);
  EXPECT_EQ(SlerpNoise(a, b, 0.5).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SlerpNoise(a, a.to(at::kDouble), 0.5).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SlerpNoise(a, a, 1.5).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SlerpNoise(a, a, -0.1).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace imginterp::diffusion
