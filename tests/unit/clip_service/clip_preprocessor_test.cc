#include "services/clip/clip_preprocessor.h"

#include <torch/torch.h>

#include <opencv2/imgproc.hpp>

#include "gtest/gtest.h"
#include "tests/unit/clip_service/tiny_clip_store.h"

namespace imginterp::clip_service {
namespace {

ClipPreprocessorConfig TinyConfig() {
  auto dir = testing::TinyClipModelDir();
  EXPECT_TRUE(dir.ok()) << dir.status();
  auto config = ClipPreprocessorConfig::FromFile(*dir + "/1/preprocessor_config.json");
  EXPECT_TRUE(config.ok()) << config.status();
  return *config;
}

// (x / 255 - mean) / std of one 8-bit RGB pixel channel, computed independently of OpenCV.
float Normalised(const ClipPreprocessorConfig& c, uint8_t value, int channel) {
  return static_cast<float>((value / 255.0 - c.image_mean[channel]) / c.image_std[channel]);
}

TEST(ClipPreprocessorConfig, ReadsTheTinyModelsTransformersConfig) {
  const ClipPreprocessorConfig c = TinyConfig();
  EXPECT_TRUE(c.do_resize);
  EXPECT_EQ(c.shortest_edge, 30);
  EXPECT_TRUE(c.do_center_crop);
  EXPECT_EQ(c.crop_height, 30);
  EXPECT_EQ(c.crop_width, 30);
  EXPECT_NEAR(c.rescale_factor, 1 / 255.0, 1e-12);
  EXPECT_NEAR(c.image_mean[0], 0.48145466, 1e-9);
  EXPECT_NEAR(c.image_std[2], 0.27577711, 1e-9);
}

TEST(ClipPreprocessorConfig, ReadsIntegerSizesAsTransformersDoes) {
  auto c = ClipPreprocessorConfig::FromJson(R"({"size": 64, "crop_size": 48})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->shortest_edge, 64);
  EXPECT_EQ(c->crop_height, 48);
  EXPECT_EQ(c->crop_width, 48);
}

TEST(ClipPreprocessorConfig, RejectsBadValuesNamingTheKey) {
  auto zero_std = ClipPreprocessorConfig::FromJson(R"({"image_std": [0.2, 0, 0.2]})");
  EXPECT_EQ(zero_std.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(zero_std.status().message().find("image_std"), std::string::npos);
  auto bad_crop = ClipPreprocessorConfig::FromJson(R"({"crop_size": {"height": -3, "width": 3}})");
  EXPECT_EQ(bad_crop.status().code(), absl::StatusCode::kInvalidArgument);
  auto not_json = ClipPreprocessorConfig::FromJson("{size");
  EXPECT_EQ(not_json.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      ClipPreprocessorConfig::FromFile("/nonexistent/preprocessor_config.json").status().code(),
      absl::StatusCode::kNotFound);
}

TEST(ClipPreprocessor, ImageAtModelSizeIsOnlyRescaledAndNormalised) {
  const ClipPreprocessorConfig c = TinyConfig();
  cv::Mat rgb(30, 30, CV_8UC3);
  cv::randu(rgb, 0, 256);
  auto pixels = ClipPreprocessor(c).Preprocess(rgb);
  ASSERT_TRUE(pixels.ok()) << pixels.status();
  ASSERT_EQ(pixels->sizes(), (std::vector<int64_t>{3, 30, 30}));
  auto a = pixels->accessor<float, 3>();
  for (int y = 0; y < 30; ++y) {
    for (int x = 0; x < 30; ++x) {
      for (int ch = 0; ch < 3; ++ch) {
        ASSERT_NEAR(a[ch][y][x], Normalised(c, rgb.at<cv::Vec3b>(y, x)[ch], ch), 1e-5)
            << "at " << x << "," << y << " channel " << ch;
      }
    }
  }
}

TEST(ClipPreprocessor, WideImageAtTheShortEdgeIsCentreCropped) {
  const ClipPreprocessorConfig c = TinyConfig();
  // 45x30: the short side already is 30, so only the crop (columns 7..36) applies.
  cv::Mat rgb(30, 45, CV_8UC3);
  cv::randu(rgb, 0, 256);
  auto pixels = ClipPreprocessor(c).Preprocess(rgb);
  ASSERT_TRUE(pixels.ok()) << pixels.status();
  ASSERT_EQ(pixels->sizes(), (std::vector<int64_t>{3, 30, 30}));
  auto a = pixels->accessor<float, 3>();
  for (int y = 0; y < 30; ++y) {
    for (int x = 0; x < 30; ++x) {
      for (int ch = 0; ch < 3; ++ch) {
        ASSERT_NEAR(a[ch][y][x], Normalised(c, rgb.at<cv::Vec3b>(y, x + 7)[ch], ch), 1e-5);
      }
    }
  }
}

TEST(ClipPreprocessor, LargerNonSquareImageIsResizedThenCropped) {
  const ClipPreprocessorConfig c = TinyConfig();
  const ClipPreprocessor preprocessor(c);
  // 120x80 -> shortest edge 30 gives 45x30 -> crop 30x30, the middle two thirds of the width.
  EXPECT_EQ(preprocessor.OutputSize(120, 80), cv::Size(30, 30));
  // Left third red, middle third green, right third blue: after resize and crop only green
  // remains away from the two seams.
  cv::Mat rgb(80, 120, CV_8UC3, cv::Scalar(0, 200, 0));
  rgb(cv::Rect(0, 0, 40, 80)).setTo(cv::Scalar(255, 0, 0));
  rgb(cv::Rect(80, 0, 40, 80)).setTo(cv::Scalar(0, 0, 255));
  auto pixels = preprocessor.Preprocess(rgb);
  ASSERT_TRUE(pixels.ok()) << pixels.status();
  ASSERT_EQ(pixels->sizes(), (std::vector<int64_t>{3, 30, 30}));
  auto a = pixels->accessor<float, 3>();
  // The green third spans resized columns 15..29, i.e. crop columns 8..22; check 10..20.
  for (int y = 0; y < 30; ++y) {
    for (int x = 10; x <= 20; ++x) {
      EXPECT_NEAR(a[0][y][x], Normalised(c, 0, 0), 1e-5);
      EXPECT_NEAR(a[1][y][x], Normalised(c, 200, 1), 1e-5);
    }
  }
  // The crop keeps some red at the left edge and some blue at the right edge.
  EXPECT_GT(a[0][15][0], Normalised(c, 100, 0));
  EXPECT_GT(a[2][15][29], Normalised(c, 100, 2));
}

TEST(ClipPreprocessor, SmallerImageIsUpscaledToTheShortEdge) {
  const ClipPreprocessorConfig c = TinyConfig();
  cv::Mat rgb(10, 12, CV_8UC3, cv::Scalar(10, 120, 240));
  auto pixels = ClipPreprocessor(c).Preprocess(rgb);
  ASSERT_TRUE(pixels.ok()) << pixels.status();
  ASSERT_EQ(pixels->sizes(), (std::vector<int64_t>{3, 30, 30}));
  // A constant image stays constant through bicubic resizing.
  EXPECT_NEAR(pixels->select(0, 2).min().item<float>(), Normalised(c, 240, 2), 1e-5);
  EXPECT_NEAR(pixels->select(0, 2).max().item<float>(), Normalised(c, 240, 2), 1e-5);
}

TEST(ClipPreprocessor, RejectsNonRgbMats) {
  cv::Mat gray(30, 30, CV_8UC1, cv::Scalar(5));
  EXPECT_EQ(ClipPreprocessor(TinyConfig()).Preprocess(gray).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace imginterp::clip_service
