// The `priors` pipeline of the default pipelines file on real photos, through the real gateway,
// NATS and the services of the imported pretrained models (deploy/models/fetch-models.sh): the
// families' answers are checked against each other (pose keypoints inside the person box that
// detect found, the person mask where the person is), upscale is appended to another stage with
// image_from, and the `generate` pipeline turns a photo's priors into ranked generations (on the
// tiny random-weight models of deploy/models/make_tiny_set.py) through SubmitJob and WatchJob.
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "gtest/gtest.h"
#include "imginterp/v1/clip.pb.h"
#include "imginterp/v1/detect.pb.h"
#include "imginterp/v1/edges.pb.h"
#include "imginterp/v1/generate.pb.h"
#include "imginterp/v1/pose.pb.h"
#include "imginterp/v1/segment.pb.h"
#include "imginterp/v1/upscale.pb.h"
#include "nlohmann/json.hpp"
#include "services/core/codec/image_codec.h"
#include "tests/integration/stack.h"
#include "tests/support/assets.h"

namespace imginterp::integration {
namespace {

using std::chrono::seconds;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

class PriorsTest : public ::testing::Test {
 protected:
  // Starts NATS, the given families and a gateway on `pipelines`.
  void StartStack(const std::vector<std::string>& families, const std::string& pipelines) {
    ASSERT_TRUE(stack_.StartNats().ok());
    for (const std::string& family : families) {
      auto service = stack_.StartService(family);
      ASSERT_TRUE(service.ok()) << service.status();
    }
    auto gateway = stack_.StartGateway({"--pipelines=" + pipelines});
    ASSERT_TRUE(gateway.ok()) << gateway.status();
    stub_ = stack_.GatewayStub();
  }

  v1::RunPipelineResponse Run(const std::string& pipeline, const std::string& image) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + seconds(240));
    v1::RunPipelineRequest request;
    request.mutable_job()->set_pipeline(pipeline);
    request.mutable_job()->mutable_image()->set_data(image);
    v1::RunPipelineResponse response;
    const grpc::Status status = stub_->RunPipeline(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  Stack stack_;
  std::unique_ptr<v1::GatewayService::Stub> stub_;
};

template <typename T>
T Unpack(const v1::RunPipelineResponse& response, const std::string& stage) {
  T message;
  for (const v1::StageResult& result : response.results()) {
    if (result.stage() == stage) {
      EXPECT_TRUE(result.response().UnpackTo(&message)) << result.response().type_url();
      return message;
    }
  }
  ADD_FAILURE() << "no result for stage " << stage;
  return message;
}

cv::Size SizeOf(const v1::Image& image) {
  absl::StatusOr<codec::DecodedImage> decoded = codec::Decode(image.data(), {});
  EXPECT_TRUE(decoded.ok()) << decoded.status();
  return decoded.ok() ? decoded->rgb.size() : cv::Size();
}

TEST_F(PriorsTest, PriorsOfAPhotoWithAPersonAgreeAcrossFamilies) {
  IMGINTERP_REQUIRE_IMPORTED_MODEL("pose", "movenet-thunder");
  IMGINTERP_REQUIRE_IMPORTED_MODEL("segment", "selfie");
  IMGINTERP_REQUIRE_IMPORTED_MODEL("detect", "centernet");
  IMGINTERP_REQUIRE_SAMPLE("person.jpg");
  StartStack({"edges", "pose", "segment", "detect"}, IMGINTERP_DEFAULT_PIPELINES);
  const std::string photo = ReadFile(test_support::SamplesDir() + "/person.jpg");
  const v1::RunPipelineResponse response = Run("priors", photo);
  ASSERT_EQ(response.state(), v1::JOB_STATE_SUCCEEDED) << response.error().message();
  ASSERT_EQ(response.results_size(), 4);
  const cv::Size size(640, 424);

  const auto detect = Unpack<v1::DetectResponse>(response, "detect");
  const v1::Detection* person = nullptr;
  for (const v1::Detection& detection : detect.detections()) {
    if (detection.name() == "person" &&
        (person == nullptr || detection.score() > person->score())) {
      person = &detection;
    }
  }
  ASSERT_NE(person, nullptr) << detect.DebugString();
  EXPECT_EQ(SizeOf(detect.map().image()), size);

  const auto pose = Unpack<v1::PoseResponse>(response, "pose");
  ASSERT_GE(pose.people_size(), 1);
  EXPECT_EQ(pose.skeleton(), "coco17");
  int confident = 0;
  for (const v1::Keypoint& keypoint : pose.people(0).keypoints()) {
    if (keypoint.score() <= 0.3f) continue;
    ++confident;
    // Inside the person box that the detect family found, with 2 % of the box as slack for
    // the two models' different ideas of where a body ends.
    const float slack_x = 0.02f * (person->box().x2() - person->box().x1());
    const float slack_y = 0.02f * (person->box().y2() - person->box().y1());
    EXPECT_GE(keypoint.x(), person->box().x1() - slack_x) << keypoint.name();
    EXPECT_LE(keypoint.x(), person->box().x2() + slack_x) << keypoint.name();
    EXPECT_GE(keypoint.y(), person->box().y1() - slack_y) << keypoint.name();
    EXPECT_LE(keypoint.y(), person->box().y2() + slack_y) << keypoint.name();
  }
  EXPECT_GE(confident, 10) << pose.DebugString();
  EXPECT_EQ(SizeOf(pose.openpose_map().image()), size);

  const auto segment = Unpack<v1::SegmentResponse>(response, "segment");
  EXPECT_EQ(SizeOf(segment.mask()), size);
  EXPECT_EQ(SizeOf(segment.map().image()), size);
  ASSERT_GE(segment.classes_size(), 1);
  EXPECT_EQ(segment.classes(0).name(), "person");
  EXPECT_GT(segment.classes(0).area_fraction(), 0.02f);
  // Most of the person's mask lies inside the detected person box.
  const v1::Box& mask_box = segment.classes(0).box();
  const float centre_x = (mask_box.x1() + mask_box.x2()) / 2;
  const float centre_y = (mask_box.y1() + mask_box.y2()) / 2;
  EXPECT_GT(centre_x, person->box().x1());
  EXPECT_LT(centre_x, person->box().x2());
  EXPECT_GT(centre_y, person->box().y1());
  EXPECT_LT(centre_y, person->box().y2());

  const auto canny = Unpack<v1::EdgesResponse>(response, "canny");
  EXPECT_EQ(SizeOf(canny.map().image()), size);
}

TEST_F(PriorsTest, CliWritesEveryPriorMapAndAResultWithKeypointsBoxesAndClasses) {
  IMGINTERP_REQUIRE_IMPORTED_MODEL("pose", "movenet-thunder");
  IMGINTERP_REQUIRE_IMPORTED_MODEL("segment", "selfie");
  IMGINTERP_REQUIRE_IMPORTED_MODEL("detect", "centernet");
  IMGINTERP_REQUIRE_SAMPLE("astronaut.png");
  StartStack({"edges", "pose", "segment", "detect"}, IMGINTERP_DEFAULT_PIPELINES);
  const std::string out = stack_.work_dir() + "/out";
  auto cli = test_support::ChildProcess::Start(
      {BinaryPath("cli"), "run", test_support::SamplesDir() + "/astronaut.png",
       "--gateway=" + stack_.gateway()->address(), "--pipeline=priors", "--out=" + out},
      {}, stack_.work_dir() + "/cli.log");
  ASSERT_TRUE(cli.ok()) << cli.status();
  ASSERT_EQ((*cli)->WaitExit(seconds(240)).value_or(-1), 0)
      << ReadFile(stack_.work_dir() + "/cli.log");
  for (const char* file : {"canny.png", "pose.png", "segment.png", "detect.png"}) {
    EXPECT_TRUE(std::filesystem::exists(out + "/" + file)) << file;
  }
  const nlohmann::json result = nlohmann::json::parse(ReadFile(out + "/result.json"));
  const std::string text = result.dump();
  for (const char* expected :
       {"keypoints", "left_shoulder", "detections", "\"person\"", "classes", "openpose_map"}) {
    EXPECT_NE(text.find(expected), std::string::npos) << expected << " missing from result.json";
  }
}

TEST_F(PriorsTest, UpscaleAppendedToAnotherStageRunsOnThatStagesMap) {
  IMGINTERP_REQUIRE_IMPORTED_MODEL("upscale", "esrgan-slim-x2");
  StartStack({"edges", "upscale"}, IMGINTERP_IT_PIPELINES);
  const v1::RunPipelineResponse response = Run("canny-x2", MakePng(96, 80, 5));
  ASSERT_EQ(response.state(), v1::JOB_STATE_SUCCEEDED) << response.error().message();
  const auto upscaled = Unpack<v1::UpscaleResponse>(response, "upscale");
  EXPECT_EQ(upscaled.scale(), 2);
  EXPECT_EQ(SizeOf(upscaled.image()), cv::Size(192, 160));
}

// Downloads a finished stage's typed result.
template <typename T>
T Download(v1::GatewayService::Stub& stub, const std::string& job_id, const std::string& stage) {
  grpc::ClientContext context;
  v1::DownloadResultRequest request;
  request.set_job_id(job_id);
  request.set_stage(stage);
  auto reader = stub.DownloadResult(&context, request);
  v1::ResultChunk chunk;
  std::string bytes;
  while (reader->Read(&chunk)) bytes += chunk.data();
  EXPECT_TRUE(reader->Finish().ok()) << stage;
  T message;
  EXPECT_TRUE(message.ParseFromString(bytes)) << stage;
  return message;
}

TEST_F(PriorsTest, GeneratePipelineRanksGenerationsFromAPhotosPriorsAndUpscalesTheBest) {
  IMGINTERP_REQUIRE_SAMPLE("person.jpg");
  IMGINTERP_REQUIRE_IMPORTED_MODEL("pose", "movenet-thunder");
  IMGINTERP_REQUIRE_IMPORTED_MODEL("upscale", "esrgan-slim-x2");
  IMGINTERP_REQUIRE_IMPORTED_MODEL("generate", "tiny-sd15");
  IMGINTERP_REQUIRE_IMPORTED_MODEL("clip", "tiny-clip");
  StartStack({"edges", "pose", "generate", "clip", "upscale"}, IMGINTERP_DEFAULT_PIPELINES);

  grpc::ClientContext submit_context;
  v1::SubmitJobRequest submit;
  submit.mutable_job()->set_pipeline("generate");
  submit.mutable_job()->mutable_image()->set_data(
      ReadFile(test_support::SamplesDir() + "/person.jpg"));
  auto& parameters = *submit.mutable_job()->mutable_parameters();
  parameters["prompt"] = "a dancer on a stage";
  parameters["steps"] = "2";
  parameters["width"] = "64";
  parameters["height"] = "48";
  parameters["seed"] = "11";
  v1::SubmitJobResponse submitted;
  ASSERT_TRUE(stub_->SubmitJob(&submit_context, submit, &submitted).ok());

  grpc::ClientContext watch_context;
  watch_context.set_deadline(std::chrono::system_clock::now() + seconds(300));
  v1::WatchJobRequest watch;
  watch.set_job_id(submitted.job_id());
  auto reader = stub_->WatchJob(&watch_context, watch);
  v1::Job job;
  while (reader->Read(&job)) {
  }
  ASSERT_TRUE(reader->Finish().ok());
  ASSERT_EQ(job.record().state(), v1::JOB_STATE_SUCCEEDED) << job.record().error().message();
  EXPECT_EQ(job.record().parameters().at("prompt"), "a dancer on a stage");

  // One generation per prior and one from both, each at the requested size and seed.
  std::map<std::string, v1::GenerateResponse> generated;
  for (const char* stage : {"from-canny", "from-pose", "from-both"}) {
    generated[stage] = Download<v1::GenerateResponse>(*stub_, submitted.job_id(), stage);
    ASSERT_EQ(generated[stage].images_size(), 1) << stage;
    EXPECT_EQ(SizeOf(generated[stage].images(0)), cv::Size(64, 48)) << stage;
    ASSERT_EQ(generated[stage].seeds_size(), 1);
    EXPECT_EQ(generated[stage].seeds(0), 11u);
  }
  // Same seed and prompt, different conditions: different images.
  EXPECT_NE(generated["from-canny"].images(0).data(), generated["from-pose"].images(0).data());
  EXPECT_NE(generated["from-canny"].images(0).data(), generated["from-both"].images(0).data());

  // The ranking covers the three candidates in stage order, best first, with their images.
  const auto rank = Download<v1::RankResponse>(*stub_, submitted.job_id(), "rank");
  ASSERT_EQ(rank.ranked_size(), 3);
  const std::vector<std::string> candidates = {generated["from-canny"].images(0).data(),
                                               generated["from-pose"].images(0).data(),
                                               generated["from-both"].images(0).data()};
  std::set<int> indices;
  for (int r = 0; r < rank.ranked_size(); ++r) {
    const v1::RankedCandidate& c = rank.ranked(r);
    indices.insert(c.index());
    ASSERT_GE(c.index(), 0);
    ASSERT_LT(c.index(), 3);
    EXPECT_EQ(c.image().data(), candidates[c.index()]) << "rank " << r;
    EXPECT_NE(c.text_cosine(), 0) << "ranked against the prompt";
    EXPECT_NE(c.image_similarity(), 0) << "ranked against the photo";
    if (r > 0) {
      EXPECT_GE(rank.ranked(r - 1).combined_score(), c.combined_score());
    }
  }
  EXPECT_EQ(indices.size(), 3u);

  // The best one, upscaled x2.
  const auto upscaled = Download<v1::UpscaleResponse>(*stub_, submitted.job_id(), "upscale");
  EXPECT_EQ(upscaled.scale(), 2);
  EXPECT_EQ(SizeOf(upscaled.image()), cv::Size(128, 96));
}

}  // namespace
}  // namespace imginterp::integration
