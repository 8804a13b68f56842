#include "services/core/rpc/grpc_status.h"

#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"
#include "imginterp/v1/common.pb.h"

namespace imginterp::rpc {
namespace {

TEST(GrpcStatusTest, KeepsCodeAndMessageAndAttachesRichDetails) {
  const absl::Status status =
      absl::ResourceExhaustedError("image is 50000x50000 (2500.0 Mpx), limit is 40.0 Mpx");
  const grpc::Status mapped = ToGrpcStatus(status);
  EXPECT_EQ(mapped.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(mapped.error_message(), status.message());
  google::rpc::Status rich;
  ASSERT_TRUE(rich.ParseFromString(mapped.error_details()));
  EXPECT_EQ(rich.code(), static_cast<int>(grpc::StatusCode::RESOURCE_EXHAUSTED));
  ASSERT_EQ(rich.details_size(), 1);
  v1::ErrorDetail detail;
  ASSERT_TRUE(rich.details(0).UnpackTo(&detail));
  EXPECT_EQ(detail.code(), "RESOURCE_EXHAUSTED");
  EXPECT_EQ(detail.message(), status.message());
}

TEST(GrpcStatusTest, OkAndRoundTrip) {
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  const absl::Status back = FromGrpcStatus(ToGrpcStatus(absl::NotFoundError("no model 'x'")));
  EXPECT_EQ(back.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(back.message(), "no model 'x'");
}

}  // namespace
}  // namespace imginterp::rpc
