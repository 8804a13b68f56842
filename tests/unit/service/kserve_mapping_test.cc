#include "gtest/gtest.h"
#include "imginterp/v1/classify.pb.h"
#include "services/core/service/kserve_service.h"

namespace imginterp::service {
namespace {

inference::ModelInferRequest RequestWithImage(const std::string& bytes) {
  inference::ModelInferRequest request;
  request.set_model_name("squeezenet");
  request.set_model_version("2");
  auto* input = request.add_inputs();
  input->set_name("image");
  input->set_datatype("BYTES");
  input->add_shape(1);
  input->mutable_contents()->add_bytes_contents(bytes);
  return request;
}

TEST(KServeMappingTest, TypedContentsAndParametersBecomeTheTypedRequest) {
  auto request = RequestWithImage("PNGDATA");
  (*request.mutable_parameters())["top_k"].set_int64_param(3);
  v1::ClassifyRequest typed;
  ASSERT_TRUE(KServeToTypedRequest(request, &typed).ok());
  EXPECT_EQ(typed.model().name(), "squeezenet");
  EXPECT_EQ(typed.model().version(), 2);
  EXPECT_EQ(typed.image().data(), "PNGDATA");
  EXPECT_EQ(typed.top_k(), 3);
}

TEST(KServeMappingTest, RawContentsUseTheLengthPrefix) {
  inference::ModelInferRequest request = RequestWithImage("");
  request.mutable_inputs(0)->clear_contents();
  const std::string payload = "abcdef";
  std::string raw(4, '\0');
  raw[0] = static_cast<char>(payload.size());
  raw += payload;
  request.add_raw_input_contents(raw);
  v1::ClassifyRequest typed;
  ASSERT_TRUE(KServeToTypedRequest(request, &typed).ok());
  EXPECT_EQ(typed.image().data(), payload);
  // A prefix that disagrees with the bytes is refused.
  request.set_raw_input_contents(0, std::string("\x09\0\0\0abc", 7));
  EXPECT_EQ(KServeToTypedRequest(request, &typed).code(), absl::StatusCode::kInvalidArgument);
}

TEST(KServeMappingTest, RejectsWrongDatatypeBatchesAndBadVersions) {
  auto request = RequestWithImage("x");
  request.mutable_inputs(0)->set_datatype("FP32");
  v1::ClassifyRequest typed;
  auto status = KServeToTypedRequest(request, &typed);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("BYTES"), std::string::npos);

  request = RequestWithImage("x");
  request.mutable_inputs(0)->set_shape(0, 2);
  EXPECT_EQ(KServeToTypedRequest(request, &typed).code(), absl::StatusCode::kInvalidArgument);

  request = RequestWithImage("x");
  request.set_model_version("latest");
  status = KServeToTypedRequest(request, &typed);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("latest"), std::string::npos);

  request = RequestWithImage("x");
  (*request.mutable_parameters())["no_such_field"].set_int64_param(1);
  EXPECT_EQ(KServeToTypedRequest(request, &typed).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace imginterp::service
