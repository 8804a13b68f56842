// The generate family on the tiny random-weight SD1.5 set (deploy/models/make_tiny_set.py, run
// into a temporary store once per test binary): what a client of the service gets for txt2img,
// img2img, pose keypoints, seeds, progress, cancellation and bad requests.
#include "services/generate/generation_handler.h"

#include <stdlib.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <opencv2/imgproc.hpp>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "inference/grpc_service.pb.h"
#include "prometheus/registry.h"
#include "services/core/codec/image_codec.h"
#include "services/core/codec/tensor_convert.h"
#include "services/core/metrics/serving_metrics.h"
#include "services/core/model/model_repository.h"
#include "services/core/service/kserve_service.h"
#include "services/generate/generate_request.h"
#include "services/generate/mp4_encode.h"
#include "services/pose/openpose_render.h"

namespace imginterp::generate {
namespace {

class GenerationHandlerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char dir[] = "/tmp/generate-test-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    store_ = new std::string(dir);
    const std::string command =
        absl::StrCat("python3 ", IMGINTERP_MAKE_TINY_SET, " --store ", *store_, " > /dev/null");
    ASSERT_EQ(std::system(command.c_str()), 0) << command;
    auto repository = model::ModelRepository::Create({*store_ + "/generate"});
    ASSERT_TRUE(repository.ok()) << repository.status();
    auto version = (*repository)->Resolve("tiny-sd15", 0);
    ASSERT_TRUE(version.ok()) << version.status();
    info_ = new service::ModelLoadInfo;
    info_->name = version->name;
    info_->version = version->version;
    info_->config = version->config;
    info_->version_dir = version->version_dir;
    GenerationHandler handler;
    auto instance = handler.CreateInstance(*info_, nullptr);
    ASSERT_TRUE(instance.ok()) << instance.status();
    instance_ = instance->release();
  }
  static void TearDownTestSuite() {
    delete instance_;
    delete info_;
    if (store_ != nullptr) std::filesystem::remove_all(*store_);
    delete store_;
  }

  struct Outcome {
    absl::Status status;
    std::vector<std::pair<int, int>> progress;
  };

  template <typename Response, typename Request>
  static Outcome Run(const Request& request, Response* response,
                     std::function<bool(int)> cancel_after = nullptr) {
    Outcome outcome;
    service::WorkItem item;
    item.request = &request;
    item.response = response;
    item.progress = [&](int step, int total) { outcome.progress.emplace_back(step, total); };
    item.cancelled = [&] {
      return cancel_after != nullptr && cancel_after(static_cast<int>(outcome.progress.size()));
    };
    instance_->RunBatch({&item});
    outcome.status = item.status;
    return outcome;
  }

  static v1::GenerateResponse Generate(const v1::GenerateRequest& request) {
    v1::GenerateResponse response;
    Outcome outcome = Run(request, &response);
    EXPECT_TRUE(outcome.status.ok()) << outcome.status;
    return response;
  }

  static absl::Status Refusal(const v1::GenerateRequest& request) {
    v1::GenerateResponse response;
    return Run(request, &response).status;
  }

  static v1::GenerateRequest Small(uint64_t seed = 1) {
    v1::GenerateRequest request;
    request.set_prompt("a red circle on a blue square");
    request.set_width(64);
    request.set_height(48);
    request.set_steps(2);
    request.set_seed(seed);
    return request;
  }

  static std::string Png(int width, int height, int seed) {
    cv::Mat rgb(height, width, CV_8UC3, cv::Scalar(10, 60 + seed, 200));
    cv::circle(rgb, {width / 3, height / 2}, std::max(2, height / 4), cv::Scalar(250, 250, 20),
               cv::FILLED);
    return *codec::EncodePng(rgb);
  }

  static v1::Person Person(float dx) {
    v1::Person person;
    const auto& names = pose::KeypointNames(pose::Skeleton::kCoco17);
    for (size_t i = 0; i < names.size(); ++i) {
      auto* keypoint = person.add_keypoints();
      keypoint->set_name(names[i]);
      keypoint->set_x(20 + dx + 3.0f * (i % 5));
      keypoint->set_y(6 + 2.5f * i);
      keypoint->set_score(0.9f);
    }
    return person;
  }

  static std::string* store_;
  static service::ModelLoadInfo* info_;
  static service::ModelInstance* instance_;
};

std::string* GenerationHandlerTest::store_ = nullptr;
service::ModelLoadInfo* GenerationHandlerTest::info_ = nullptr;
service::ModelInstance* GenerationHandlerTest::instance_ = nullptr;

TEST_F(GenerationHandlerTest, TextToImageHasTheRequestedSizeAsPng) {
  const v1::GenerateResponse response = Generate(Small());
  ASSERT_EQ(response.images_size(), 1);
  EXPECT_EQ(response.images(0).media_type(), "image/png");
  auto decoded = codec::Decode(response.images(0).data(), {});
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->rgb.cols, 64);
  EXPECT_EQ(decoded->rgb.rows, 48);
  EXPECT_EQ(response.images(0).width(), 64);
  ASSERT_EQ(response.timings_size(), 1);
  EXPECT_EQ(response.timings(0).steps(), 2);
  EXPECT_GT(response.timings(0).total_seconds(), 0);
}

TEST_F(GenerationHandlerTest, SizeZeroMeansTheModelDefault) {
  v1::GenerateRequest request = Small();
  request.clear_width();
  request.clear_height();
  const v1::GenerateResponse response = Generate(request);
  ASSERT_EQ(response.images_size(), 1);
  EXPECT_EQ(response.images(0).width(), 64);  // tiny UNet sample_size 8 x VAE factor 8
  EXPECT_EQ(response.images(0).height(), 64);
}

TEST_F(GenerationHandlerTest, SameSeedGivesSamePngBytesAndOtherSeedDiffers) {
  const auto a = Generate(Small(7));
  const auto b = Generate(Small(7));
  const auto c = Generate(Small(8));
  ASSERT_EQ(a.images_size(), 1);
  ASSERT_EQ(c.images_size(), 1);
  EXPECT_EQ(a.images(0).data(), b.images(0).data());
  EXPECT_NE(a.images(0).data(), c.images(0).data());
}

TEST_F(GenerationHandlerTest, ImageIOfNUsesSeedPlusIAndEqualsASingleRunWithThatSeed) {
  v1::GenerateRequest request = Small(20);
  request.set_num_images(2);
  const auto both = Generate(request);
  ASSERT_EQ(both.images_size(), 2);
  EXPECT_EQ(both.seeds(0), 20u);
  EXPECT_EQ(both.seeds(1), 21u);
  EXPECT_EQ(both.timings_size(), 2);
  const auto second = Generate(Small(21));
  EXPECT_EQ(both.images(1).data(), second.images(0).data());
  EXPECT_NE(both.images(0).data(), both.images(1).data());
}

TEST_F(GenerationHandlerTest, ProgressCountsEveryStepOfEveryImage) {
  v1::GenerateRequest request = Small();
  request.set_num_images(2);
  request.set_steps(3);
  v1::GenerateResponse response;
  const Outcome outcome = Run(request, &response);
  ASSERT_TRUE(outcome.status.ok()) << outcome.status;
  ASSERT_EQ(outcome.progress.size(), 6u);
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(outcome.progress[i].first, i + 1);
    EXPECT_EQ(outcome.progress[i].second, 6);
  }
}

TEST_F(GenerationHandlerTest, CancellationStopsWithinOneStep) {
  v1::GenerateRequest request = Small();
  request.set_steps(10);
  v1::GenerateResponse response;
  const Outcome outcome = Run(request, &response, [](int reports) { return reports >= 1; });
  EXPECT_EQ(outcome.status.code(), absl::StatusCode::kCancelled) << outcome.status;
  EXPECT_LE(outcome.progress.size(), 2u);
}

TEST_F(GenerationHandlerTest, EditedKeypointsChangeTheRenderedMapAndTheResult) {
  PipelineFacts facts;
  facts.control_kinds = {"canny", "pose"};
  facts.default_size = 64;
  auto with_person = [&](float dx) {
    v1::GenerateRequest request = Small(3);
    auto* control = request.add_controls();
    control->set_kind("pose");
    *control->mutable_pose()->add_people() = Person(dx);
    return request;
  };
  const v1::GenerateRequest original = with_person(0);
  const v1::GenerateRequest edited = with_person(16);
  auto original_request = ToGenerationRequest(original, facts, {}, {});
  auto edited_request = ToGenerationRequest(edited, facts, {}, {});
  ASSERT_TRUE(original_request.ok()) << original_request.status();
  ASSERT_TRUE(edited_request.ok()) << edited_request.status();
  const at::Tensor map = original_request->controls.at(0).image;
  ASSERT_EQ(map.sizes().vec(), (std::vector<int64_t>{1, 3, 48, 64}));
  // The map is the pose renderer's drawing of the keypoints, scaled to [0, 1].
  auto drawn = pose::RenderOpenPose(64, 48, original.controls(0).pose().people(),
                                    pose::Skeleton::kCoco17, 0.3f);
  ASSERT_TRUE(drawn.ok()) << drawn.status();
  const at::Tensor expected =
      codec::MatToTensor(*drawn).permute({2, 0, 1}).unsqueeze(0).to(torch::kFloat32) / 255.0;
  EXPECT_TRUE(torch::allclose(map, expected));
  EXPECT_GT(map.sum().item<double>(), 0);
  EXPECT_FALSE(torch::equal(map, edited_request->controls.at(0).image));

  const auto a = Generate(original);
  const auto b = Generate(edited);
  const auto plain = Generate(Small(3));
  ASSERT_EQ(a.images_size(), 1);
  ASSERT_EQ(b.images_size(), 1);
  EXPECT_NE(a.images(0).data(), b.images(0).data());
  EXPECT_NE(a.images(0).data(), plain.images(0).data());
}

TEST_F(GenerationHandlerTest, ImageToImageTakesTheInitImageSizeAndSkipsSteps) {
  v1::GenerateRequest request = Small(5);
  request.clear_width();
  request.clear_height();
  request.set_steps(4);
  request.mutable_init_image()->set_data(Png(70, 44, 1));
  request.set_strength(0.5f);
  const auto response = Generate(request);
  ASSERT_EQ(response.images_size(), 1);
  EXPECT_EQ(response.images(0).width(), 64);  // 70 rounded down to a multiple of 8
  EXPECT_EQ(response.images(0).height(), 40);
  EXPECT_EQ(response.timings(0).steps(), 2);  // int(4 * 0.5)
  EXPECT_GT(response.timings(0).vae_encode_seconds(), 0);
  // A different init image gives a different result.
  request.mutable_init_image()->set_data(Png(70, 44, 90));
  const auto other = Generate(request);
  ASSERT_EQ(other.images_size(), 1);
  EXPECT_NE(response.images(0).data(), other.images(0).data());
}

TEST_F(GenerationHandlerTest, ControlImageIsResizedToTheOutput) {
  v1::GenerateRequest request = Small(9);
  auto* control = request.add_controls();
  control->set_kind("canny");
  control->mutable_image()->set_data(Png(100, 90, 2));
  const auto response = Generate(request);
  ASSERT_EQ(response.images_size(), 1);
  EXPECT_EQ(response.images(0).width(), 64);
  EXPECT_EQ(response.images(0).height(), 48);
  EXPECT_NE(response.images(0).data(), Generate(Small(9)).images(0).data());
}

TEST_F(GenerationHandlerTest, ReturnTensorsGivesImagesAndLatents) {
  v1::GenerateRequest request = Small();
  request.set_return_tensors(true);
  const auto response = Generate(request);
  auto images = codec::FromProto(response.tensors().images());
  auto latents = codec::FromProto(response.tensors().latents());
  ASSERT_TRUE(images.ok()) << images.status();
  ASSERT_TRUE(latents.ok()) << latents.status();
  EXPECT_EQ(images->sizes().vec(), (std::vector<int64_t>{1, 3, 48, 64}));
  EXPECT_EQ(latents->sizes().vec(), (std::vector<int64_t>{1, 4, 6, 8}));
  // The PNG is the float image rounded to 8 bits.
  auto png = codec::Decode(response.images(0).data(), {});
  ASSERT_TRUE(png.ok());
  const at::Tensor from_png =
      codec::MatToTensor(png->rgb).permute({2, 0, 1}).unsqueeze(0).to(torch::kFloat32) / 255.0;
  EXPECT_LE((from_png - *images).abs().max().item<double>(), 0.5 / 255 + 1e-6);
}

TEST_F(GenerationHandlerTest, InterpolationGivesFramesFromStartToEnd) {
  v1::InterpolateRequest request;
  *request.mutable_base() = Small(1);
  request.set_seed_b(2);
  request.set_frames(3);
  v1::InterpolateResponse response;
  const Outcome outcome = Run(request, &response);
  ASSERT_TRUE(outcome.status.ok()) << outcome.status;
  ASSERT_EQ(response.frames_size(), 3);
  ASSERT_EQ(response.t_size(), 3);
  EXPECT_DOUBLE_EQ(response.t(0), 0.0);
  EXPECT_DOUBLE_EQ(response.t(2), 1.0);
  // The ends are the two seeds' images.
  EXPECT_EQ(response.frames(0).data(), Generate(Small(1)).images(0).data());
  EXPECT_EQ(response.frames(2).data(), Generate(Small(2)).images(0).data());
  // Either an MP4 ('ftyp' box at offset 4) or a note saying why not.
  if (response.video().empty()) {
    EXPECT_FALSE(response.video_note().empty());
  } else {
    EXPECT_EQ(response.video().substr(4, 4), "ftyp");
  }
}

TEST_F(GenerationHandlerTest, RefusesBadRequestsWithCodesThatSayWhy) {
  v1::GenerateRequest no_prompt = Small();
  no_prompt.clear_prompt();
  absl::Status status = Refusal(no_prompt);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_NE(status.message().find("prompt"), std::string::npos) << status;

  v1::GenerateRequest unknown_kind = Small();
  unknown_kind.add_controls()->set_kind("normals");
  unknown_kind.mutable_controls(0)->mutable_image()->set_data(Png(16, 16, 0));
  status = Refusal(unknown_kind);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_NE(status.message().find("canny"), std::string::npos) << status;  // lists the kinds

  v1::GenerateRequest tiny_image = Small();
  tiny_image.add_controls()->set_kind("canny");
  tiny_image.mutable_controls(0)->mutable_image()->set_data(Png(7, 7, 0));
  status = Refusal(tiny_image);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_NE(status.message().find("7x7"), std::string::npos) << status;

  v1::GenerateRequest too_many_steps = Small();
  too_many_steps.set_steps(151);
  status = Refusal(too_many_steps);
  EXPECT_EQ(status.code(), absl::StatusCode::kOutOfRange) << status;
  EXPECT_NE(status.message().find("150"), std::string::npos) << status;

  v1::GenerateRequest too_many_images = Small();
  too_many_images.set_num_images(9);
  status = Refusal(too_many_images);
  EXPECT_EQ(status.code(), absl::StatusCode::kOutOfRange) << status;

  v1::GenerateRequest too_many_pixels = Small();
  too_many_pixels.set_width(2048);
  too_many_pixels.set_height(1024);
  EXPECT_EQ(Refusal(too_many_pixels).code(), absl::StatusCode::kOutOfRange);

  v1::GenerateRequest odd_size = Small();
  odd_size.set_width(60);
  EXPECT_EQ(Refusal(odd_size).code(), absl::StatusCode::kInvalidArgument);

  v1::GenerateRequest bad_latents = Small();
  *bad_latents.mutable_initial_latents() = codec::ToProto(torch::zeros({1, 4, 5, 5}), "latents");
  status = Refusal(bad_latents);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_NE(status.message().find("[1, 4, 6, 8]"), std::string::npos) << status;

  v1::GenerateRequest bad_embeds = Small();
  *bad_embeds.mutable_prompt_embeds() = codec::ToProto(torch::zeros({1, 10, 32}), "embeds");
  EXPECT_EQ(Refusal(bad_embeds).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(GenerationHandlerTest, ConfigLimitsComeFromParameters) {
  v1::ModelConfig config = info_->config;
  (*config.mutable_parameters())["max_steps"] = "3";
  (*config.mutable_parameters())["max_images"] = "2";
  auto parsed = ParseGenerateModelConfig(config);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->max_steps, 3);
  EXPECT_EQ(parsed->max_images, 2);
  EXPECT_EQ(parsed->max_pixels, 1024 * 1024);
  EXPECT_EQ(parsed->controlnets.at("pose"), "controlnet/tiny");
  EXPECT_EQ(parsed->controlnets.size(), 6u);
  EXPECT_EQ(parsed->intra_op_threads, 2);
  (*config.mutable_parameters())["max_steps"] = "many";
  EXPECT_EQ(ParseGenerateModelConfig(config).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(GenerationHandlerTest, KServeBytesInputsFillPromptAndInitImage) {
  inference::ModelInferRequest in;
  in.set_model_name("tiny-sd15");
  auto* prompt = in.add_inputs();
  prompt->set_name("prompt");
  prompt->set_datatype("BYTES");
  prompt->add_shape(1);
  prompt->mutable_contents()->add_bytes_contents("a cat");
  auto* image = in.add_inputs();
  image->set_name("init_image");
  image->set_datatype("BYTES");
  image->add_shape(1);
  image->mutable_contents()->add_bytes_contents(Png(16, 16, 1));
  (*in.mutable_parameters())["steps"].set_int64_param(2);
  (*in.mutable_parameters())["negative_prompt"].set_string_param("blurry");
  v1::GenerateRequest typed;
  ASSERT_TRUE(service::KServeToTypedRequest(in, &typed).ok());
  EXPECT_EQ(typed.model().name(), "tiny-sd15");
  EXPECT_EQ(typed.prompt(), "a cat");
  EXPECT_EQ(typed.negative_prompt(), "blurry");
  EXPECT_EQ(typed.steps(), 2);
  EXPECT_EQ(typed.init_image().data(), Png(16, 16, 1));

  // A non-BYTES input named after a field is refused.
  prompt->set_datatype("FP32");
  EXPECT_EQ(service::KServeToTypedRequest(in, &typed).code(), absl::StatusCode::kInvalidArgument);

  // The response: one BYTES element per image, seeds as a parameter.
  v1::GenerateResponse response;
  response.add_images()->set_data("png-a");
  response.add_images()->set_data("png-b");
  response.add_seeds(4);
  response.add_seeds(5);
  inference::ModelInferResponse out;
  ASSERT_TRUE(GenerationHandler().ToKServe(response, &out).ok());
  ASSERT_EQ(out.outputs_size(), 1);
  EXPECT_EQ(out.outputs(0).shape(0), 2);
  EXPECT_EQ(out.outputs(0).contents().bytes_contents(1), "png-b");
  EXPECT_EQ(out.parameters().at("seeds").string_param(), "4,5");
}

TEST(FamilyMetricsTest, AFamilyRegistersItsOwnGaugesAndHistogramsOnce) {
  prometheus::Registry registry;
  metrics::ServingMetrics metrics(registry, "generate");
  metrics.SetFamilyGauge("imginterp_test_bytes", "Bytes.", "m", "1", 3);
  metrics.SetFamilyGauge("imginterp_test_bytes", "Bytes.", "m", "1", 5);
  metrics.ObserveFamilyHistogram("imginterp_test_seconds", "Seconds.", {0.1, 1}, "m", "1", 0.5);
  metrics.ObserveFamilyHistogram("imginterp_test_seconds", "Seconds.", {0.1, 1}, "m", "2", 2);
  // The same name as the other kind is ignored rather than thrown.
  metrics.SetFamilyGauge("imginterp_test_seconds", "Seconds.", "m", "1", 1);
  int found = 0;
  for (const prometheus::MetricFamily& family : registry.Collect()) {
    if (family.name == "imginterp_test_bytes") {
      ++found;
      ASSERT_EQ(family.metric.size(), 1u);
      EXPECT_EQ(family.metric[0].gauge.value, 5);
      bool has_service = false;
      for (const auto& label : family.metric[0].label) {
        has_service |= label.name == "service" && label.value == "generate";
      }
      EXPECT_TRUE(has_service);
    }
    if (family.name == "imginterp_test_seconds") {
      ++found;
      EXPECT_EQ(family.type, prometheus::MetricType::Histogram);
      ASSERT_EQ(family.metric.size(), 2u);
      EXPECT_EQ(family.metric[0].histogram.sample_count, 1u);
    }
  }
  EXPECT_EQ(found, 2);
}

TEST(Mp4EncodeTest, WritesAnMp4OrSaysTheCodecIsUnavailable) {
  std::vector<cv::Mat> frames;
  for (int k = 0; k < 4; ++k) frames.emplace_back(48, 64, CV_8UC3, cv::Scalar(40 * k, 80, 200));
  auto video = EncodeMp4(frames, 8);
  if (video.ok()) {
    ASSERT_GT(video->size(), 8u);
    EXPECT_EQ(video->substr(4, 4), "ftyp");
  } else {
    EXPECT_EQ(video.status().code(), absl::StatusCode::kUnavailable) << video.status();
  }
  std::cout << "MP4: " << (video.ok() ? "written" : std::string(video.status().message())) << "\n";
  frames.emplace_back(10, 10, CV_8UC3);
  EXPECT_EQ(EncodeMp4(frames, 8).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(GenerationHandlerTest, RefusesNonNativeBackends) {
  service::ModelLoadInfo info = *info_;
  info.config.set_backend("torchscript");
  EXPECT_EQ(GenerationHandler().CreateInstance(info, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace imginterp::generate
