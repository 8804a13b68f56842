#include "services/core/codec/tensor_convert.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <string>

namespace imginterp::codec {
namespace {

using ::testing::HasSubstr;

TEST(MatToTensorTest, CopiesHwcUint8KeepingChannelOrder) {
  cv::Mat rgb(2, 3, CV_8UC3, cv::Scalar(10, 20, 30));
  rgb.at<cv::Vec3b>(1, 2) = cv::Vec3b(200, 100, 50);
  at::Tensor t = MatToTensor(rgb);
  ASSERT_TRUE(t.defined());
  EXPECT_EQ(t.sizes(), (at::IntArrayRef{2, 3, 3}));
  EXPECT_EQ(t.scalar_type(), at::kByte);
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(t[0][0][0].item<uint8_t>(), 10);
  EXPECT_EQ(t[0][0][2].item<uint8_t>(), 30);
  EXPECT_EQ(t[1][2][0].item<uint8_t>(), 200);
  rgb.setTo(cv::Scalar(0, 0, 0));  // The tensor owns a copy.
  EXPECT_EQ(t[1][2][1].item<uint8_t>(), 100);
}

TEST(MatToTensorTest, CopiesNonContiguousRoi) {
  cv::Mat big(4, 4, CV_8UC1);
  for (int i = 0; i < 16; ++i) big.data[i] = static_cast<uchar>(i);
  at::Tensor t = MatToTensor(big(cv::Rect(1, 1, 2, 2)));
  EXPECT_EQ(t.sizes(), (at::IntArrayRef{2, 2, 1}));
  EXPECT_EQ(t[0][0][0].item<uint8_t>(), 5);
  EXPECT_EQ(t[1][1][0].item<uint8_t>(), 10);
}

TEST(MatToTensorTest, UnsupportedDepthGivesUndefinedTensor) {
  EXPECT_FALSE(MatToTensor(cv::Mat(2, 2, CV_16UC1)).defined());
}

TEST(TensorToMatTest, HwcUint8RoundTripsThroughMatToTensor) {
  cv::Mat rgb(3, 5, CV_8UC3);
  cv::randu(rgb, 0, 256);
  auto back = TensorToMat(MatToTensor(rgb));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->type(), CV_8UC3);
  EXPECT_EQ(cv::norm(*back, rgb, cv::NORM_INF), 0);
}

TEST(TensorToMatTest, ChwFloatInUnitRangeIsScaledTo255) {
  at::Tensor chw = at::zeros({3, 2, 5}, at::kFloat);
  chw[0].fill_(1.0);   // R
  chw[1].fill_(0.5);   // G
  chw[2].fill_(-0.2);  // B, clamped.
  auto mat = TensorToMat(chw);
  ASSERT_TRUE(mat.ok()) << mat.status();
  EXPECT_EQ(mat->rows, 2);
  EXPECT_EQ(mat->cols, 5);
  EXPECT_EQ(mat->type(), CV_8UC3);
  EXPECT_EQ(mat->at<cv::Vec3b>(1, 3), cv::Vec3b(255, 128, 0));
}

TEST(TensorToMatTest, AmbiguousThreeDimShapeIsReadAsHwc) {
  at::Tensor t = at::zeros({3, 2, 4}, at::kByte);
  t[2][1][3] = 9;
  auto mat = TensorToMat(t);
  ASSERT_TRUE(mat.ok()) << mat.status();
  EXPECT_EQ(mat->rows, 3);
  EXPECT_EQ(mat->cols, 2);
  EXPECT_EQ(mat->type(), CV_8UC4);
  EXPECT_EQ(mat->at<cv::Vec4b>(2, 1)[3], 9);
}

TEST(TensorToMatTest, FloatScaleOneKeeps0To255Values) {
  at::Tensor hw = at::full({2, 2}, 42.4, at::kFloat);
  auto mat = TensorToMat(hw, /*float_scale=*/1.0);
  ASSERT_TRUE(mat.ok()) << mat.status();
  EXPECT_EQ(mat->type(), CV_8UC1);
  EXPECT_EQ(mat->at<uchar>(0, 1), 42);
}

TEST(TensorToMatTest, BatchOfOneIsReadAsNchwAndBatchOfTwoRejected) {
  at::Tensor nchw = at::zeros({1, 3, 2, 4}, at::kByte);
  nchw[0][0][1][3] = 7;  // R of pixel (row 1, col 3).
  auto one = TensorToMat(nchw);
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->type(), CV_8UC3);
  EXPECT_EQ(one->rows, 2);
  EXPECT_EQ(one->cols, 4);
  EXPECT_EQ(one->at<cv::Vec3b>(1, 3), cv::Vec3b(7, 0, 0));
  auto nhwc = TensorToMat(at::zeros({1, 5, 6, 3}, at::kByte));
  ASSERT_TRUE(nhwc.ok()) << nhwc.status();
  EXPECT_EQ(nhwc->rows, 5);
  EXPECT_EQ(nhwc->cols, 6);
  auto two = TensorToMat(at::ones({2, 3, 8, 8}, at::kByte));
  EXPECT_EQ(two.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(two.status().message(), HasSubstr("[2, 3, 8, 8]"));
}

TEST(TensorToMatTest, RejectsShapesWithoutAChannelAxis) {
  auto mat = TensorToMat(at::zeros({5, 6, 7}, at::kByte));
  EXPECT_EQ(mat.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(TensorToMat(at::Tensor()).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(TensorToMatTest, IntegerLabelsAreClampedNotScaled) {
  at::Tensor labels = at::tensor({0, 7, 300, -4}, at::kLong).reshape({2, 2});
  auto mat = TensorToMat(labels);
  ASSERT_TRUE(mat.ok()) << mat.status();
  EXPECT_EQ(mat->at<uchar>(0, 1), 7);
  EXPECT_EQ(mat->at<uchar>(1, 0), 255);
  EXPECT_EQ(mat->at<uchar>(1, 1), 0);
}

TEST(TensorProtoTest, Float32RoundTrips) {
  at::Tensor t = at::arange(6, at::kFloat).reshape({2, 3}).div(4);
  v1::Tensor proto = ToProto(t, "scores");
  EXPECT_EQ(proto.name(), "scores");
  EXPECT_EQ(proto.dtype(), v1::DATA_TYPE_FLOAT32);
  EXPECT_THAT(proto.shape(), ::testing::ElementsAre(2, 3));
  EXPECT_EQ(proto.raw_data().size(), 24u);
  float second = 0;
  std::memcpy(&second, proto.raw_data().data() + 4, 4);
  EXPECT_EQ(second, 0.25f);  // Row-major, little-endian.
  auto back = FromProto(proto);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->scalar_type(), at::kFloat);
  EXPECT_TRUE(at::equal(*back, t));
}

TEST(TensorProtoTest, Int64RoundTripsNonContiguousInput) {
  at::Tensor t = at::arange(12, at::kLong).reshape({3, 4}).t();  // Transposed view.
  auto back = FromProto(ToProto(t, "ids"));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->scalar_type(), at::kLong);
  EXPECT_EQ(back->sizes(), (at::IntArrayRef{4, 3}));
  EXPECT_TRUE(at::equal(*back, t));
}

TEST(TensorProtoTest, Uint8RoundTrips) {
  at::Tensor t = at::tensor({0, 1, 128, 255}, at::kByte).reshape({1, 2, 2});
  v1::Tensor proto = ToProto(t, "mask");
  EXPECT_EQ(proto.dtype(), v1::DATA_TYPE_UINT8);
  EXPECT_EQ(proto.raw_data(), std::string("\x00\x01\x80\xff", 4));
  auto back = FromProto(proto);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(at::equal(*back, t));
}

TEST(TensorProtoTest, BoolBytesOtherThanZeroReadAsTrue) {
  v1::Tensor proto;
  proto.set_dtype(v1::DATA_TYPE_BOOL);
  proto.add_shape(3);
  proto.set_raw_data(std::string("\x00\x01\x07", 3));
  auto t = FromProto(proto);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_TRUE(at::equal(*t, at::tensor({0, 1, 1}, at::kByte).to(at::kBool)));
}

TEST(TensorProtoTest, SizeMismatchNamesBothSizes) {
  v1::Tensor proto;
  proto.set_name("pixel_values");
  proto.set_dtype(v1::DATA_TYPE_FLOAT32);
  proto.add_shape(2);
  proto.add_shape(3);
  proto.set_raw_data(std::string(10, '\0'));
  auto t = FromProto(proto);
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(t.status().message(), HasSubstr("'pixel_values'"));
  EXPECT_THAT(t.status().message(), HasSubstr("10 bytes"));
  EXPECT_THAT(t.status().message(), HasSubstr("needs 24 bytes"));
}

TEST(TensorProtoTest, RejectsUnspecifiedDtypeAndNegativeDims) {
  v1::Tensor proto;
  proto.add_shape(1);
  proto.set_raw_data(std::string(4, '\0'));
  EXPECT_EQ(FromProto(proto).status().code(), absl::StatusCode::kInvalidArgument);
  proto.set_dtype(v1::DATA_TYPE_INT32);
  proto.set_shape(0, -1);
  EXPECT_EQ(FromProto(proto).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(TensorProtoTest, HugeShapeIsRejectedWithoutOverflow) {
  v1::Tensor proto;
  proto.set_dtype(v1::DATA_TYPE_FLOAT64);
  for (int i = 0; i < 4; ++i) proto.add_shape(int64_t{1} << 40);
  proto.set_raw_data(std::string(8, '\0'));
  EXPECT_EQ(FromProto(proto).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(TensorProtoTest, ScalarHasEmptyShape) {
  v1::Tensor proto = ToProto(at::scalar_tensor(3.5, at::kDouble), "x");
  EXPECT_EQ(proto.shape_size(), 0);
  EXPECT_EQ(proto.dtype(), v1::DATA_TYPE_FLOAT64);
  auto back = FromProto(proto);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->item<double>(), 3.5);
}

TEST(TensorProtoTest, Int16IsWidenedToInt32AndUndefinedIsUnspecified) {
  v1::Tensor proto = ToProto(at::tensor({-2, 5}, at::kShort), "s");
  EXPECT_EQ(proto.dtype(), v1::DATA_TYPE_INT32);
  EXPECT_EQ(proto.raw_data().size(), 8u);
  EXPECT_EQ(ToProto(at::Tensor(), "u").dtype(), v1::DATA_TYPE_UNSPECIFIED);
}

}  // namespace
}  // namespace imginterp::codec
