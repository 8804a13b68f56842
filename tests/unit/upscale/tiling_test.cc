#include "services/upscale/tiling.h"

#include <torch/torch.h>

#include <opencv2/imgproc.hpp>

#include "gtest/gtest.h"
#include "tests/unit/upscale/mat_compare.h"

namespace imginterp::upscale {
namespace {

// Pure-tensor "models" with a known receptive field, NHWC float in and out.
at::Tensor Nchw(const at::Tensor& nhwc) { return nhwc.permute({0, 3, 1, 2}); }
at::Tensor Nhwc(const at::Tensor& nchw) { return nchw.permute({0, 2, 3, 1}).contiguous(); }

// Each output pixel depends on one input pixel.
TileUpscaler Nearest(int scale) {
  return [scale](const at::Tensor& tile) -> absl::StatusOr<at::Tensor> {
    return Nhwc(torch::nn::functional::interpolate(
        Nchw(tile), torch::nn::functional::InterpolateFuncOptions()
                        .scale_factor(std::vector<double>{double(scale), double(scale)})
                        .mode(torch::kNearest)));
  };
}

// Each output pixel depends on the input pixels within 1 (edge pixels replicated).
TileUpscaler Bilinear(int scale) {
  return [scale](const at::Tensor& tile) -> absl::StatusOr<at::Tensor> {
    return Nhwc(torch::nn::functional::interpolate(
        Nchw(tile), torch::nn::functional::InterpolateFuncOptions()
                        .scale_factor(std::vector<double>{double(scale), double(scale)})
                        .mode(torch::kBilinear)
                        .align_corners(false)));
  };
}

// A 5x5 box blur with zero padding (like a SAME convolution, receptive radius 2), then nearest.
TileUpscaler BlurThenNearest(int scale) {
  return [scale](const at::Tensor& tile) -> absl::StatusOr<at::Tensor> {
    at::Tensor blurred = torch::avg_pool2d(Nchw(tile), 5, 1, 2, false, true);
    return Nearest(scale)(Nhwc(blurred));
  };
}

cv::Mat RandomImage(int width, int height, int seed) {
  cv::Mat rgb(height, width, CV_8UC3);
  cv::RNG rng(seed);
  rng.fill(rgb, cv::RNG::UNIFORM, 0, 256);
  return rgb;
}

using test_util::MaxDifference;

// The untiled reference: one tile covering the whole image.
cv::Mat Untiled(const cv::Mat& rgb, int scale, const TileUpscaler& upscaler) {
  TilingOptions options;
  options.scale = scale;
  options.tile_size = std::max(rgb.cols, rgb.rows);
  auto result = UpscaleTiled(rgb, options, upscaler);
  EXPECT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->tiles, 1);
  return result->rgb;
}

TEST(PlanAxisTest, ImageSmallerThanATileIsOneTileOfTheImage) {
  EXPECT_EQ(*PlanAxis(100, 128, 16), (std::vector<Span>{{0, 100}}));
  EXPECT_EQ(*PlanAxis(128, 128, 16), (std::vector<Span>{{0, 128}}));
  EXPECT_EQ(*PlanAxis(1, 128, 16), (std::vector<Span>{{0, 1}}));
}

TEST(PlanAxisTest, ExactMultipleOfTheStrideOverlapsByExactlyTheOverlap) {
  // 3 tiles of 128 with 16 shared: 128 + 2 * 112 = 352.
  EXPECT_EQ(*PlanAxis(352, 128, 16), (std::vector<Span>{{0, 128}, {112, 128}, {224, 128}}));
  // One pixel more needs a fourth tile, and the four spread evenly.
  EXPECT_EQ(*PlanAxis(353, 128, 16),
            (std::vector<Span>{{0, 128}, {75, 128}, {150, 128}, {225, 128}}));
}

TEST(PlanAxisTest, CoversExactlyWithFullTilesAndAtLeastTheOverlapUsingTheFewestTiles) {
  for (int tile : {16, 33, 128}) {
    for (int overlap : {0, 1, 4, 7, 15}) {
      if (overlap >= tile) continue;
      for (int length = 1; length <= 3 * tile + 5; ++length) {
        auto spans = PlanAxis(length, tile, overlap);
        ASSERT_TRUE(spans.ok()) << spans.status();
        SCOPED_TRACE(testing::Message()
                     << "length " << length << " tile " << tile << " overlap " << overlap);
        ASSERT_FALSE(spans->empty());
        EXPECT_EQ(spans->front().start, 0);
        EXPECT_EQ(spans->back().end(), length);
        for (size_t i = 0; i < spans->size(); ++i) {
          EXPECT_EQ((*spans)[i].size, std::min(tile, length));
          if (i > 0) {
            EXPECT_GT((*spans)[i].start, (*spans)[i - 1].start);
            EXPECT_GE((*spans)[i - 1].end() - (*spans)[i].start, overlap);
          }
        }
        // One tile fewer could not have covered the length with that overlap.
        const int n = static_cast<int>(spans->size());
        if (n > 1) {
          EXPECT_LT(tile + (n - 2) * (tile - overlap), length);
        }
      }
    }
  }
}

TEST(PlanAxisTest, RejectsImpossibleRequestsNamingTheValues) {
  EXPECT_EQ(PlanAxis(0, 128, 16).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PlanAxis(100, 0, 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PlanAxis(100, 10, -1).status().code(), absl::StatusCode::kInvalidArgument);
  auto status = PlanAxis(300, 64, 64).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("64"), std::string::npos);
  // An overlap as big as the tile is harmless when one tile covers the image.
  EXPECT_TRUE(PlanAxis(50, 64, 64).ok());
}

TEST(PlanTilesTest, CombinesColumnsAndRows) {
  auto plan = PlanTiles(300, 100, 128, 16);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->columns.size(), 3u);
  EXPECT_EQ(plan->rows, (std::vector<Span>{{0, 100}}));
  EXPECT_EQ(plan->count(), 3);
}

TEST(AxisWeightsTest, SumToOneEverywhereAndStayInZeroToOne) {
  for (int scale : {1, 2, 3, 8}) {
    for (int feather : {0, 1, 6, 16, 200}) {
      for (int length : {1, 40, 64, 65, 100, 117, 250, 353}) {
        auto spans = *PlanAxis(length, 64, 16);
        std::vector<double> sum(static_cast<size_t>(length) * scale, 0.0);
        for (size_t i = 0; i < spans.size(); ++i) {
          const auto weights = AxisWeights(spans, static_cast<int>(i), scale, feather);
          ASSERT_EQ(weights.size(), static_cast<size_t>(spans[i].size) * scale);
          for (size_t k = 0; k < weights.size(); ++k) {
            EXPECT_GE(weights[k], 0.0f);
            EXPECT_LE(weights[k], 1.0f);
            sum[spans[i].start * scale + k] += weights[k];
          }
        }
        for (size_t x = 0; x < sum.size(); ++x) {
          ASSERT_NEAR(sum[x], 1.0, 1e-6) << "output pixel " << x << " of " << length << "x" << scale
                                         << ", feather " << feather;
        }
      }
    }
  }
}

TEST(AxisWeightsTest, HardCutGivesEachPixelToTheTileWhereItIsFurthestFromAnEdge) {
  const int scale = 2;
  auto spans = *PlanAxis(353, 128, 16);
  int next = 0;
  for (size_t i = 0; i < spans.size(); ++i) {
    const Span owned = OwnedOutputRange(spans, static_cast<int>(i), scale);
    EXPECT_EQ(owned.start, next);  // Owned ranges partition the output.
    next = owned.end();
    const auto weights = AxisWeights(spans, static_cast<int>(i), scale, 0);
    for (size_t k = 0; k < weights.size(); ++k) {
      const int x = spans[i].start * scale + static_cast<int>(k);
      EXPECT_EQ(weights[k], x >= owned.start && x < owned.end() ? 1.0f : 0.0f);
    }
    // At least overlap / 2 input pixels from any edge shared with a neighbour.
    if (i > 0) {
      EXPECT_GE(owned.start - spans[i].start * scale, 8 * scale);
    }
    if (i + 1 < spans.size()) {
      EXPECT_GE(spans[i].end() * scale - owned.end(), 8 * scale);
    }
  }
  EXPECT_EQ(next, 353 * scale);
}

TEST(AxisWeightsTest, FeatherRampsLinearlyAcrossTheBandAroundTheCut) {
  // Two tiles [0, 64) and [36, 100): cut at 50, feather 8 ramps over input [46, 54).
  auto spans = *PlanAxis(100, 64, 16);
  ASSERT_EQ(spans, (std::vector<Span>{{0, 64}, {36, 64}}));
  const auto left = AxisWeights(spans, 0, 1, 8);
  EXPECT_FLOAT_EQ(left[45], 1.0f);
  EXPECT_FLOAT_EQ(left[46], 1.0f - 0.5f / 8);
  EXPECT_FLOAT_EQ(left[50], 0.5f - 0.5f / 8);
  EXPECT_FLOAT_EQ(left[54], 0.0f);
}

TEST(UpscaleTiledTest, TiledEqualsUntiledForPointwiseAndLocalUpscalers) {
  const cv::Mat rgb = RandomImage(203, 150, 7);
  struct Case {
    const char* name;
    TileUpscaler upscaler;
    int scale;
    int feather;
  };
  const std::vector<Case> cases = {
      {"nearest x3 hard cut", Nearest(3), 3, 0},      {"nearest x3 feathered", Nearest(3), 3, 16},
      {"bilinear x2 hard cut", Bilinear(2), 2, 0},    {"bilinear x4 hard cut", Bilinear(4), 4, 0},
      {"blur x2 hard cut", BlurThenNearest(2), 2, 0},
  };
  for (const auto& c : cases) {
    const cv::Mat reference = Untiled(rgb, c.scale, c.upscaler);
    TilingOptions options;
    options.scale = c.scale;
    options.tile_size = 48;
    options.overlap = 8;
    options.feather = c.feather;
    auto tiled = UpscaleTiled(rgb, options, c.upscaler);
    ASSERT_TRUE(tiled.ok()) << tiled.status();
    EXPECT_EQ(tiled->tiles, 5 * 4) << c.name;
    ASSERT_EQ(tiled->rgb.size(), reference.size());
    EXPECT_EQ(MaxDifference(tiled->rgb, reference), 0) << c.name;
  }
}

TEST(UpscaleTiledTest, HardCutIsExactOnlyWhenTheReceptiveFieldFitsInHalfTheOverlap) {
  // The blur reaches 2 input pixels. Sizes are exact multiples of the stride, so neighbours share
  // exactly `overlap` pixels: with 4 the blur stays inside the tile, with 2 it does not.
  for (auto [overlap, side, exact] :
       {std::tuple{4, 40 + 2 * 36, true}, std::tuple{2, 40 + 2 * 38, false}}) {
    const cv::Mat rgb = RandomImage(side, side, 3);
    TilingOptions options;
    options.scale = 2;
    options.tile_size = 40;
    options.overlap = overlap;
    auto tiled = UpscaleTiled(rgb, options, BlurThenNearest(2));
    ASSERT_TRUE(tiled.ok()) << tiled.status();
    EXPECT_EQ(tiled->tiles, 9);
    const double difference = MaxDifference(tiled->rgb, Untiled(rgb, 2, BlurThenNearest(2)));
    if (exact) {
      EXPECT_EQ(difference, 0) << "overlap " << overlap;
    } else {
      EXPECT_GT(difference, 0) << "overlap " << overlap;
    }
  }
}

TEST(UpscaleTiledTest, TinyAndThinImagesWork) {
  for (auto [width, height] : {std::pair{1, 1}, std::pair{1, 300}, std::pair{300, 2}}) {
    const cv::Mat rgb = RandomImage(width, height, width + height);
    TilingOptions options;
    options.scale = 2;
    options.tile_size = 64;
    options.overlap = 8;
    auto tiled = UpscaleTiled(rgb, options, Nearest(2));
    ASSERT_TRUE(tiled.ok()) << tiled.status();
    EXPECT_EQ(tiled->rgb.cols, 2 * width);
    EXPECT_EQ(tiled->rgb.rows, 2 * height);
    EXPECT_EQ(MaxDifference(tiled->rgb, Untiled(rgb, 2, Nearest(2))), 0);
  }
}

TEST(UpscaleTiledTest, ReportsProgressPerTileAndStopsBetweenTilesWhenCancelled) {
  const cv::Mat rgb = RandomImage(100, 100, 1);
  int calls = 0;
  std::vector<std::pair<int, int>> progress;
  TilingOptions options;
  options.scale = 2;
  options.tile_size = 40;
  options.overlap = 8;
  options.progress = [&](int done, int total) { progress.emplace_back(done, total); };
  options.cancelled = [&] { return progress.size() >= 3; };
  auto counting = [&](const at::Tensor& tile) {
    ++calls;
    return Nearest(2)(tile);
  };
  auto result = UpscaleTiled(rgb, options, counting);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled);
  EXPECT_NE(result.status().message().find("3 of 9"), std::string::npos) << result.status();
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(progress, (std::vector<std::pair<int, int>>{{1, 9}, {2, 9}, {3, 9}}));
}

TEST(UpscaleTiledTest, UpscalerErrorsAndWrongShapesFailTheCall) {
  const cv::Mat rgb = RandomImage(50, 50, 2);
  TilingOptions options;
  options.scale = 2;
  auto wrong_scale = UpscaleTiled(rgb, options, Nearest(3));
  EXPECT_EQ(wrong_scale.status().code(), absl::StatusCode::kInternal);
  EXPECT_NE(wrong_scale.status().message().find("[1,150,150,3]"), std::string::npos)
      << wrong_scale.status();
  auto failing = UpscaleTiled(rgb, options, [](const at::Tensor&) -> absl::StatusOr<at::Tensor> {
    return absl::InvalidArgumentError("model says no");
  });
  EXPECT_EQ(failing.status().message(), "model says no");
  EXPECT_EQ(UpscaleTiled(cv::Mat(), options, Nearest(2)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(UpscaleTiledTest, ClampsAndRoundsTheUpscalerOutput) {
  const cv::Mat rgb(4, 4, CV_8UC3, cv::Scalar(100, 100, 100));
  TilingOptions options;
  options.scale = 1;
  auto shifted = [](const at::Tensor& tile) -> absl::StatusOr<at::Tensor> {
    at::Tensor out = tile.clone();
    out.select(3, 0).fill_(-20.0f);
    out.select(3, 1).fill_(300.0f);
    out.select(3, 2).fill_(7.6f);
    return out;
  };
  auto result = UpscaleTiled(rgb, options, shifted);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->rgb.at<cv::Vec3b>(2, 2), cv::Vec3b(0, 255, 8));
}

}  // namespace
}  // namespace imginterp::upscale
