// The real imginterp-generate binary on the tiny SD1.5 set, through gRPC: streamed progress,
// cancellation that frees the worker, and the reference diffusers run replayed through the API.
#include <stdlib.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "imginterp/v1/generate.grpc.pb.h"
#include "inference/grpc_service.grpc.pb.h"
#include "services/core/codec/image_codec.h"
#include "services/core/codec/tensor_convert.h"
#include "services/models/io/safetensors_file.h"
#include "tests/integration/stack.h"

namespace imginterp::integration {
namespace {

using Clock = std::chrono::steady_clock;

class GenerateServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char dir[] = "/tmp/generate-it-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    store_ = new std::string(dir);
    const std::string command =
        absl::StrCat("python3 ", IMGINTERP_MAKE_TINY_SET, " --store ", *store_, " > /dev/null");
    ASSERT_EQ(std::system(command.c_str()), 0) << command;
  }
  static void TearDownTestSuite() {
    if (store_ != nullptr) std::filesystem::remove_all(*store_);
    delete store_;
  }

  void SetUp() override {
    auto process = stack_.StartService("generate", {"--model_repository=" + *store_ + "/generate"});
    ASSERT_TRUE(process.ok()) << process.status();
    process_ = *process;
    stub_ = v1::GenerationService::NewStub(Stack::Channel(process_->address()));
  }

  static v1::GenerateRequest Small(int steps, uint64_t seed = 1) {
    v1::GenerateRequest request;
    request.set_prompt("a lighthouse at dusk");
    request.set_width(64);
    request.set_height(64);
    request.set_steps(steps);
    request.set_seed(seed);
    return request;
  }

  grpc::Status Generate(const v1::GenerateRequest& request, v1::GenerateResponse* response,
                        std::chrono::seconds timeout = std::chrono::seconds(120)) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + timeout);
    return stub_->Generate(&context, request, response);
  }

  static std::string* store_;
  Stack stack_;
  Process* process_ = nullptr;
  std::unique_ptr<v1::GenerationService::Stub> stub_;
};

std::string* GenerateServiceTest::store_ = nullptr;

TEST_F(GenerateServiceTest, StreamDeliversProgressOneToNThenTheResult) {
  v1::GenerateRequest request = Small(3);
  request.set_num_images(2);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  auto reader = stub_->GenerateStream(&context, request);
  std::vector<v1::GenerateUpdate> updates;
  v1::GenerateUpdate update;
  while (reader->Read(&update)) updates.push_back(update);
  const grpc::Status status = reader->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message() << "\n" << Stack::Tail(*process_);
  ASSERT_EQ(updates.size(), 7u);
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(updates[i].has_progress()) << i;
    EXPECT_EQ(updates[i].progress().step(), i + 1);
    EXPECT_EQ(updates[i].progress().total(), 6);
    EXPECT_EQ(updates[i].progress().image_index(), i / 3);
  }
  ASSERT_TRUE(updates.back().has_result());
  const v1::GenerateResponse& result = updates.back().result();
  EXPECT_EQ(result.images_size(), 2);
  EXPECT_EQ(result.model().name(), "tiny-sd15");
  // The streamed result is the unary one.
  v1::GenerateResponse unary;
  ASSERT_TRUE(Generate(request, &unary).ok());
  EXPECT_EQ(unary.images(1).data(), result.images(1).data());
}

TEST_F(GenerateServiceTest, CancellingAStreamStopsItAndFreesTheWorker) {
  // The time of one step, to size a run that would clearly outlast the check below.
  v1::GenerateResponse warm;
  auto warm_start = Clock::now();
  ASSERT_TRUE(Generate(Small(4), &warm).ok());
  const double seconds_per_step =
      std::chrono::duration<double>(Clock::now() - warm_start).count() / 4;

  v1::GenerateRequest long_request = Small(150);
  long_request.set_num_images(8);  // 1200 steps
  grpc::ClientContext context;
  auto reader = stub_->GenerateStream(&context, long_request);
  v1::GenerateUpdate update;
  ASSERT_TRUE(reader->Read(&update));
  ASSERT_TRUE(update.has_progress());
  EXPECT_EQ(update.progress().total(), 1200);
  context.TryCancel();
  int more = 0;
  while (reader->Read(&update)) ++more;
  const grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED) << status.error_message();

  // The next request runs now, not after the cancelled 1200 steps.
  const auto start = Clock::now();
  v1::GenerateResponse next;
  const grpc::Status next_status = Generate(Small(2), &next);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  ASSERT_TRUE(next_status.ok()) << next_status.error_message() << "\n" << Stack::Tail(*process_);
  EXPECT_EQ(next.images_size(), 1);
  EXPECT_LT(seconds, 0.25 * 1200 * seconds_per_step + 2.0)
      << "seconds per step " << seconds_per_step;
  // The server logs the cancelled run as CANCELLED.
  const std::string metrics = HttpGet(process_->metrics_port, "/metrics");
  EXPECT_NE(metrics.find("code=\"CANCELLED\""), std::string::npos);
  EXPECT_NE(metrics.find("imginterp_generate_step_seconds"), std::string::npos);
  EXPECT_NE(metrics.find("imginterp_generate_model_memory_bytes"), std::string::npos);
}

TEST_F(GenerateServiceTest, ReplaysTheReferenceControlNetPipelineRun) {
  auto file =
      models::SafetensorsFile::Open(std::string(IMGINTERP_REFERENCE_DIR) +
                                    "/diffusion/tiny/tiny_pipeline_controlnet.io.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  auto tensor = [&](const std::string& name) {
    auto t = (*file)->Tensor(name);
    EXPECT_TRUE(t.ok()) << name << ": " << t.status();
    return t.ok() ? t->contiguous() : at::Tensor();
  };
  v1::GenerateRequest request;
  request.set_width(192);
  request.set_height(128);
  request.set_steps(3);
  request.set_guidance_scale(7.5f);
  request.set_return_tensors(true);
  *request.mutable_initial_latents() = codec::ToProto(tensor("in.latents"), "latents");
  *request.mutable_prompt_embeds() = codec::ToProto(tensor("in.prompt_embeds"), "prompt_embeds");
  *request.mutable_negative_prompt_embeds() =
      codec::ToProto(tensor("in.negative_prompt_embeds"), "negative_prompt_embeds");
  auto* control = request.add_controls();
  control->set_kind("canny");
  *control->mutable_tensor() = codec::ToProto(tensor("in.controlnet_image"), "control");
  v1::GenerateResponse response;
  const grpc::Status status = Generate(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message() << "\n" << Stack::Tail(*process_);
  auto latents = codec::FromProto(response.tensors().latents());
  auto image = codec::FromProto(response.tensors().images());
  ASSERT_TRUE(latents.ok()) << latents.status();
  ASSERT_TRUE(image.ok()) << image.status();
  const at::Tensor expected_latents = tensor("out.latents");
  const at::Tensor expected_image = tensor("out.image");
  ASSERT_EQ(latents->sizes(), expected_latents.sizes());
  ASSERT_EQ(image->sizes(), expected_image.sizes());
  EXPECT_LE((*latents - expected_latents).abs().max().item<double>(), 1e-4);
  EXPECT_LE((*image - expected_image).abs().max().item<double>(), 1e-4);
  EXPECT_EQ(response.images(0).width(), 192);
  EXPECT_EQ(response.images(0).height(), 128);

  // The PNG the caller gets is the reference image quantised to 8 bits: within 1/255 (rounding
  // takes 0.5/255, the float error is far below the rest).
  ASSERT_EQ(response.images_size(), 1);
  auto png = codec::Decode(response.images(0).data(), codec::ImageLimits{});
  ASSERT_TRUE(png.ok()) << png.status();
  EXPECT_EQ(png->media_type, "image/png");
  const at::Tensor png_chw =
      codec::MatToTensor(png->rgb).permute({2, 0, 1}).unsqueeze(0).to(at::kDouble) / 255.0;
  ASSERT_EQ(png_chw.sizes(), expected_image.sizes());
  const double png_error = (png_chw - expected_image.to(at::kDouble)).abs().max().item<double>();
  std::cout << "PNG max error vs the reference image: " << png_error * 255.0 << "/255\n";
  EXPECT_LE(png_error, 1.0 / 255.0);
}

TEST_F(GenerateServiceTest, KServeInferTakesThePromptAsBytesAndReturnsPngs) {
  auto stub = inference::GRPCInferenceService::NewStub(Stack::Channel(process_->address()));
  inference::ModelInferRequest request;
  request.set_model_name("tiny-sd15");
  auto* prompt = request.add_inputs();
  prompt->set_name("prompt");
  prompt->set_datatype("BYTES");
  prompt->add_shape(1);
  prompt->mutable_contents()->add_bytes_contents("a lighthouse at dusk");
  (*request.mutable_parameters())["steps"].set_int64_param(2);
  (*request.mutable_parameters())["width"].set_int64_param(64);
  (*request.mutable_parameters())["height"].set_int64_param(64);
  (*request.mutable_parameters())["seed"].set_int64_param(1);
  (*request.mutable_parameters())["num_images"].set_int64_param(2);
  inference::ModelInferResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  const grpc::Status status = stub->ModelInfer(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.outputs_size(), 1);
  EXPECT_EQ(response.outputs(0).name(), "images");
  ASSERT_EQ(response.outputs(0).contents().bytes_contents_size(), 2);
  EXPECT_EQ(response.parameters().at("seeds").string_param(), "1,2");
  // The same PNG as the typed API gives.
  v1::GenerateResponse typed;
  ASSERT_TRUE(Generate(Small(2, 1), &typed).ok());
  EXPECT_EQ(response.outputs(0).contents().bytes_contents(0), typed.images(0).data());

  inference::ModelMetadataRequest metadata_request;
  metadata_request.set_name("tiny-sd15");
  inference::ModelMetadataResponse metadata;
  grpc::ClientContext metadata_context;
  ASSERT_TRUE(stub->ModelMetadata(&metadata_context, metadata_request, &metadata).ok());
  ASSERT_GE(metadata.inputs_size(), 1);
  EXPECT_EQ(metadata.inputs(0).name(), "prompt");
}

TEST_F(GenerateServiceTest, InterpolateReturnsFramesAndAVideo) {
  v1::InterpolateRequest request;
  *request.mutable_base() = Small(2, 3);
  request.set_seed_b(4);
  request.set_prompt_b("a castle at noon");
  request.set_frames(4);
  v1::InterpolateResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  const grpc::Status status = stub_->Interpolate(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message() << "\n" << Stack::Tail(*process_);
  EXPECT_EQ(response.frames_size(), 4);
  EXPECT_EQ(response.model().name(), "tiny-sd15");
  EXPECT_TRUE(!response.video().empty() || !response.video_note().empty());
  EXPECT_NE(response.frames(1).data(), response.frames(2).data());
}

TEST_F(GenerateServiceTest, BadRequestsGetTheirCodesOverGrpc) {
  v1::GenerateResponse response;
  v1::GenerateRequest no_prompt = Small(2);
  no_prompt.clear_prompt();
  EXPECT_EQ(Generate(no_prompt, &response).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::GenerateRequest too_many_steps = Small(151);
  EXPECT_EQ(Generate(too_many_steps, &response).error_code(), grpc::StatusCode::OUT_OF_RANGE);
}

}  // namespace
}  // namespace imginterp::integration
