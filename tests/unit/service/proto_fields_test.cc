#include "services/core/service/proto_fields.h"

#include "gtest/gtest.h"
#include "imginterp/v1/classify.pb.h"
#include "imginterp/v1/edges.pb.h"

namespace imginterp::service {
namespace {

TEST(ProtoFieldsTest, ReadsAndWritesModelRef) {
  v1::ClassifyRequest request;
  request.mutable_model()->set_name("squeezenet");
  request.mutable_model()->set_version(3);
  ModelRef ref = GetModelRef(request);
  EXPECT_EQ(ref.name, "squeezenet");
  EXPECT_EQ(ref.version, 3);
  v1::ClassifyResponse response;
  SetModelRef(&response, {"other", 2});
  EXPECT_EQ(response.model().name(), "other");
  EXPECT_EQ(response.model().version(), 2);
}

TEST(ProtoFieldsTest, SetsImageOnRequestsAndRefusesMessagesWithoutOne) {
  v1::EdgesRequest request;
  ASSERT_TRUE(SetImage(&request, "bytes", "image/png").ok());
  EXPECT_EQ(request.image().data(), "bytes");
  EXPECT_EQ(request.image().media_type(), "image/png");
  v1::ModelId no_image;
  EXPECT_EQ(SetImage(&no_image, "x", "").code(), absl::StatusCode::kInvalidArgument);
}

TEST(ProtoFieldsTest, SetsScalarsByDottedPathWithTypeChecks) {
  v1::EdgesRequest request;
  ASSERT_TRUE(SetScalarByPath(&request, "canny.low_threshold", 50.0).ok());
  ASSERT_TRUE(SetScalarByPath(&request, "canny.blur_kernel", int64_t{5}).ok());
  EXPECT_FLOAT_EQ(request.canny().low_threshold(), 50.0f);
  EXPECT_EQ(request.canny().blur_kernel(), 5);
  // Integer field refuses a fraction and a string.
  EXPECT_EQ(SetScalarByPath(&request, "canny.blur_kernel", 2.5).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SetScalarByPath(&request, "canny.blur_kernel", std::string("x")).code(),
            absl::StatusCode::kInvalidArgument);
  auto unknown = SetScalarByPath(&request, "canny.nope", 1.0);
  EXPECT_EQ(unknown.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.message().find("nope"), std::string::npos);
  EXPECT_EQ(SetScalarByPath(&request, "missing.field", 1.0).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace imginterp::service
