#include "services/edges/edges_handler.h"

#include <opencv2/imgproc.hpp>

#include "gtest/gtest.h"

namespace imginterp::edges {
namespace {

// A black image with a white filled square: edges exactly around the square.
cv::Mat Square() {
  cv::Mat rgb(64, 64, CV_8UC3, cv::Scalar(0, 0, 0));
  cv::rectangle(rgb, cv::Rect(16, 16, 32, 32), cv::Scalar(255, 255, 255), cv::FILLED);
  return rgb;
}

TEST(DetectCannyTest, FindsTheSquareOutlineAndNothingElse) {
  v1::CannyParams params;
  params.set_low_threshold(50);
  params.set_high_threshold(150);
  auto result = DetectCanny(Square(), params);
  ASSERT_TRUE(result.ok()) << result.status();
  const cv::Mat& edges = result->edges;
  ASSERT_EQ(edges.type(), CV_8UC1);
  EXPECT_GT(cv::countNonZero(edges), 4 * 28);
  // Far from the outline nothing fires.
  EXPECT_EQ(cv::countNonZero(edges(cv::Rect(24, 24, 16, 16))), 0);
  EXPECT_EQ(cv::countNonZero(edges(cv::Rect(0, 0, 10, 10))), 0);
  EXPECT_FLOAT_EQ(result->low_threshold, 50);
}

TEST(DetectCannyTest, AutomaticThresholdsFollowTheMedian) {
  cv::Mat grey(32, 32, CV_8UC3, cv::Scalar(100, 100, 100));
  auto result = DetectCanny(grey, v1::CannyParams());
  ASSERT_TRUE(result.ok());
  EXPECT_NEAR(result->low_threshold, 67, 1);
  EXPECT_NEAR(result->high_threshold, 133, 1);
}

TEST(DetectCannyTest, RejectsBadParametersWithValues) {
  v1::CannyParams params;
  params.set_low_threshold(200);
  params.set_high_threshold(100);
  auto result = DetectCanny(Square(), params);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(result.status().message().find("200"), std::string::npos);
  v1::CannyParams even;
  even.set_blur_kernel(4);
  EXPECT_EQ(DetectCanny(Square(), even).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SobelMagnitudeTest, PeaksAtTheOutlineAndIsZeroOnFlatAreas) {
  auto magnitude = SobelMagnitude(Square(), v1::SobelParams());
  ASSERT_TRUE(magnitude.ok());
  double max_value = 0;
  cv::minMaxLoc(*magnitude, nullptr, &max_value);
  EXPECT_EQ(max_value, 255);
  EXPECT_EQ(magnitude->at<uint8_t>(32, 32), 0);
  EXPECT_GT(magnitude->at<uint8_t>(32, 16), 100);
  v1::SobelParams bad;
  bad.set_kernel_size(4);
  EXPECT_EQ(SobelMagnitude(Square(), bad).status().code(), absl::StatusCode::kInvalidArgument);
}

// The whole model as the service runs it: encoded image in, RGB PNG map of the same size out.
TEST(EdgesHandlerTest, CannyModelTurnsAnEncodedImageIntoAnRgbMap) {
  EdgesHandler handler;
  service::ModelLoadInfo info;
  info.name = "canny";
  auto instance = handler.CreateInstance(info, nullptr);
  ASSERT_TRUE(instance.ok());
  v1::EdgesRequest request;
  request.mutable_image()->set_data(*codec::EncodePng(Square()));
  v1::EdgesResponse response;
  service::WorkItem item;
  item.request = &request;
  item.response = &response;
  (*instance)->RunBatch({&item});
  ASSERT_TRUE(item.status.ok()) << item.status;
  EXPECT_EQ(response.map().kind(), v1::PRIOR_KIND_EDGES);
  EXPECT_EQ(response.map().image().width(), 64);
  auto decoded = codec::Decode(response.map().image().data(), {});
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->rgb.cols, 64);
  EXPECT_GT(cv::countNonZero(decoded->rgb.reshape(1)), 0);
}

TEST(EdgesHandlerTest, BadImagesFailWithTheCodecsStatus) {
  EdgesHandler handler;
  service::ModelLoadInfo info;
  info.name = "sobel";
  auto instance = handler.CreateInstance(info, nullptr);
  ASSERT_TRUE(instance.ok());
  v1::EdgesRequest request;
  v1::EdgesResponse response;
  service::WorkItem item;
  item.request = &request;
  item.response = &response;
  (*instance)->RunBatch({&item});
  EXPECT_EQ(item.status.code(), absl::StatusCode::kInvalidArgument);
  request.mutable_image()->set_data("<html>not an image</html>");
  (*instance)->RunBatch({&item});
  EXPECT_EQ(item.status.code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace imginterp::edges
