#include "services/classify/classify_handler.h"

#include <torch/types.h>

#include "gtest/gtest.h"

namespace imginterp::classify {
namespace {

v1::Preprocessing ImageNet() {
  v1::Preprocessing config;
  config.set_resize_shorter(256);
  config.set_center_crop(224);
  for (float m : {0.485f, 0.456f, 0.406f}) config.add_mean(m);
  for (float s : {0.229f, 0.224f, 0.225f}) config.add_std(s);
  return config;
}

TEST(PreprocessImageTest, ResizesCropsAndNormalisesToNchw) {
  // 300x600 (h x w): shorter side 300 -> 256, width -> 512; centre crop 224.
  cv::Mat rgb(300, 600, CV_8UC3, cv::Scalar(255, 0, 128));
  auto tensor = PreprocessImage(rgb, ImageNet());
  ASSERT_TRUE(tensor.ok()) << tensor.status();
  EXPECT_EQ(tensor->sizes().vec(), (std::vector<int64_t>{1, 3, 224, 224}));
  // Red channel: (1 - 0.485) / 0.229; green: (0 - 0.456) / 0.224.
  EXPECT_NEAR((*tensor)[0][0][100][100].item<float>(), (1 - 0.485f) / 0.229f, 1e-4);
  EXPECT_NEAR((*tensor)[0][1][100][100].item<float>(), (0 - 0.456f) / 0.224f, 1e-4);
  EXPECT_NEAR((*tensor)[0][2][0][0].item<float>(), (128 / 255.f - 0.406f) / 0.225f, 1e-4);
}

TEST(PreprocessImageTest, CropTakesTheCentre) {
  // Left half black, right half white, 256x512: the 224 centre crop straddles the middle.
  cv::Mat rgb(256, 512, CV_8UC3, cv::Scalar(0, 0, 0));
  rgb(cv::Rect(256, 0, 256, 256)).setTo(cv::Scalar(255, 255, 255));
  v1::Preprocessing config;
  config.set_center_crop(224);
  auto tensor = PreprocessImage(rgb, config);
  ASSERT_TRUE(tensor.ok());
  EXPECT_FLOAT_EQ((*tensor)[0][0][10][5].item<float>(), 0.0f);
  EXPECT_FLOAT_EQ((*tensor)[0][0][10][218].item<float>(), 1.0f);
}

TEST(PreprocessImageTest, NhwcLayoutAndBadNormalisation) {
  cv::Mat rgb(10, 10, CV_8UC3, cv::Scalar(0, 0, 0));
  v1::Preprocessing config;
  config.set_layout("NHWC");
  auto tensor = PreprocessImage(rgb, config);
  ASSERT_TRUE(tensor.ok());
  EXPECT_EQ(tensor->sizes().vec(), (std::vector<int64_t>{1, 10, 10, 3}));
  config.add_mean(0.5f);
  EXPECT_EQ(PreprocessImage(rgb, config).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(TopKTest, SoftmaxOrderAndLabels) {
  at::Tensor logits = torch::tensor({0.0f, 3.0f, 1.0f, 2.0f});
  auto top = TopK(logits, 2, {"a", "b", "c"});
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(top[0].class_id(), 1);
  EXPECT_EQ(top[0].name(), "b");
  EXPECT_EQ(top[1].class_id(), 3);
  EXPECT_EQ(top[1].name(), "class_3");  // No label for id 3.
  const float denominator = 1 + std::exp(3.0f) + std::exp(1.0f) + std::exp(2.0f);
  EXPECT_NEAR(top[0].score(), std::exp(3.0f) / denominator, 1e-6);
  EXPECT_EQ(TopK(logits, 10, {}).size(), 4u);
}

}  // namespace
}  // namespace imginterp::classify
