#include "services/pose/pose_handler.h"

#include <torch/types.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "gtest/gtest.h"
#include "inference/grpc_service.pb.h"
#include "services/core/model/model_runner.h"
#include "services/pose/openpose_render.h"
#include "services/pose/pose_decode.h"

namespace imginterp::pose {
namespace {

v1::ModelConfig Config(const std::string& name, const std::string& kind, v1::DataType dtype,
                       std::vector<int64_t> shape) {
  v1::ModelConfig config;
  config.set_name(name);
  config.set_backend("torchscript");
  auto* input = config.add_inputs();
  input->set_name("input");
  input->set_dtype(dtype);
  for (int64_t d : shape) input->add_shape(d);
  input->set_layout("NHWC");
  (*config.mutable_parameters())["kind"] = kind;
  return config;
}

v1::ModelConfig Lightning() {
  return Config("movenet-lightning", "movenet-singlepose", v1::DATA_TYPE_INT32, {1, 192, 192, 3});
}
v1::ModelConfig Thunder() {
  return Config("movenet-thunder", "movenet-singlepose", v1::DATA_TYPE_INT32, {1, 256, 256, 3});
}
v1::ModelConfig Blaze() {
  return Config("blazepose-lite", "blazepose", v1::DATA_TYPE_FLOAT32, {-1, 256, 256, 3});
}

TEST(SettingsFromConfigTest, ReadsKindSizeDtypeAndCropPass) {
  auto lightning = SettingsFromConfig("movenet-lightning", Lightning());
  ASSERT_TRUE(lightning.ok()) << lightning.status();
  EXPECT_EQ(lightning->input_size, 192);
  EXPECT_TRUE(lightning->int_input);
  EXPECT_FLOAT_EQ(lightning->input_max, 255);
  EXPECT_FALSE(lightning->crop_pass);
  auto thunder = SettingsFromConfig("movenet-thunder", Thunder());
  ASSERT_TRUE(thunder.ok());
  EXPECT_EQ(thunder->input_size, 256);
  EXPECT_TRUE(thunder->crop_pass);
  auto blaze = SettingsFromConfig("blazepose-lite", Blaze());
  ASSERT_TRUE(blaze.ok());
  EXPECT_FALSE(blaze->int_input);
  EXPECT_FLOAT_EQ(blaze->input_max, 1);
  EXPECT_TRUE(blaze->crop_pass);
  v1::ModelConfig lightning_crop = Lightning();
  (*lightning_crop.mutable_parameters())["crop_pass"] = "true";
  EXPECT_TRUE(SettingsFromConfig("movenet-lightning", lightning_crop)->crop_pass);
}

TEST(SettingsFromConfigTest, RejectsWhatItCannotRun) {
  v1::ModelConfig bad_kind = Lightning();
  (*bad_kind.mutable_parameters())["kind"] = "posenet";
  auto status = SettingsFromConfig("x", bad_kind).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("posenet"), std::string::npos);
  v1::ModelConfig dynamic =
      Config("multi", "movenet-multipose", v1::DATA_TYPE_INT32, {1, -1, -1, 3});
  EXPECT_EQ(SettingsFromConfig("multi", dynamic).status().code(),
            absl::StatusCode::kInvalidArgument);
  (*dynamic.mutable_parameters())["input_size"] = "256";
  EXPECT_EQ(SettingsFromConfig("multi", dynamic)->input_size, 256);
  v1::ModelConfig bad_range = Blaze();
  (*bad_range.mutable_parameters())["input_range"] = "-1..1";
  EXPECT_EQ(SettingsFromConfig("b", bad_range).status().code(), absl::StatusCode::kInvalidArgument);
}

// Returns canned outputs and records the inputs it was given. Externally synchronized.
class FakeRunner final : public model::ModelRunner {
 public:
  explicit FakeRunner(std::vector<at::Tensor> outputs) : outputs_(std::move(outputs)) {}
  absl::StatusOr<std::vector<at::Tensor>> Forward(const std::vector<at::Tensor>& inputs) override {
    inputs_->push_back(inputs.at(0).clone());
    return outputs_;
  }
  std::string device() const override { return "cpu"; }
  // Shared so the test can read it after the runner moved into the instance.
  std::shared_ptr<std::vector<at::Tensor>> inputs_ = std::make_shared<std::vector<at::Tensor>>();

 private:
  std::vector<at::Tensor> outputs_;
};

// A MoveNet single-pose output: a standing person in normalised input coordinates.
at::Tensor MoveNetOutput() {
  const float points[17][2] = {{0.30f, 0.50f}, {0.28f, 0.52f}, {0.28f, 0.48f}, {0.29f, 0.54f},
                               {0.29f, 0.46f}, {0.38f, 0.56f}, {0.38f, 0.44f}, {0.48f, 0.58f},
                               {0.48f, 0.42f}, {0.56f, 0.59f}, {0.56f, 0.41f}, {0.58f, 0.54f},
                               {0.58f, 0.46f}, {0.68f, 0.54f}, {0.68f, 0.46f}, {0.78f, 0.54f},
                               {0.78f, 0.46f}};
  at::Tensor out = torch::zeros({1, 1, 17, 3});
  for (int i = 0; i < 17; ++i) {
    out[0][0][i][0] = points[i][0];  // y
    out[0][0][i][1] = points[i][1];  // x
    out[0][0][i][2] = 0.8f;
  }
  return out;
}

struct Instance {
  std::unique_ptr<service::ModelInstance> instance;
  std::shared_ptr<std::vector<at::Tensor>> inputs;
};

Instance MakeInstance(const v1::ModelConfig& config, std::vector<at::Tensor> outputs) {
  auto runner = std::make_unique<FakeRunner>(std::move(outputs));
  auto inputs = runner->inputs_;
  service::ModelLoadInfo info;
  info.name = config.name();
  info.config = config;
  auto instance = PoseHandler().CreateInstance(info, std::move(runner));
  EXPECT_TRUE(instance.ok()) << instance.status();
  return {instance.ok() ? *std::move(instance) : nullptr, inputs};
}

struct Result {
  absl::Status status;
  v1::PoseResponse response;
  service::WorkItem item;
};

Result EstimatePose(service::ModelInstance& instance, const std::string& image_bytes,
                    float min_score = 0, int max_people = 0) {
  v1::PoseRequest request;
  request.mutable_image()->set_data(image_bytes);
  request.set_min_score(min_score);
  request.set_max_people(max_people);
  Result result;
  result.item.request = &request;
  result.item.response = &result.response;
  instance.RunBatch({&result.item});
  result.status = result.item.status;
  return result;
}

std::string Png(const cv::Mat& image) {
  std::vector<uint8_t> bytes;
  cv::imencode(".png", image, bytes);
  return std::string(bytes.begin(), bytes.end());
}

cv::Mat DecodeMap(const v1::PoseResponse& response) {
  const std::string& data = response.openpose_map().image().data();
  return cv::imdecode(std::vector<uint8_t>(data.begin(), data.end()), cv::IMREAD_UNCHANGED);
}

TEST(PoseModelTest, SinglePoseMapsKeypointsBackToTheOriginalImage) {
  Instance fake = MakeInstance(Lightning(), {MoveNetOutput()});
  Result result =
      EstimatePose(*fake.instance, Png(cv::Mat(424, 640, CV_8UC3, cv::Scalar(30, 30, 30))));
  ASSERT_TRUE(result.status.ok()) << result.status;
  // The model saw one letterboxed int32 192x192 RGB image.
  ASSERT_EQ(fake.inputs->size(), 1u);
  const at::Tensor& input = fake.inputs->front();
  EXPECT_EQ(input.sizes().vec(), (std::vector<int64_t>{1, 192, 192, 3}));
  EXPECT_EQ(input.scalar_type(), torch::kInt32);
  EXPECT_EQ(input[0][96][96][0].item<int>(), 30);
  EXPECT_EQ(input[0][5][96][0].item<int>(), 0);  // letterbox bar
  EXPECT_EQ(result.response.skeleton(), "coco17");
  ASSERT_EQ(result.response.people_size(), 1);
  const v1::Person& person = result.response.people(0);
  ASSERT_EQ(person.keypoints_size(), 17);
  EXPECT_EQ(person.keypoints(0).name(), "nose");
  EXPECT_NEAR(person.keypoints(0).x(), 0.5 * 640, 1e-3);
  EXPECT_NEAR(person.keypoints(0).y(), -108 + 0.3 * 640, 1e-3);
  EXPECT_NEAR(person.score(), 0.8, 1e-6);
  EXPECT_GT(person.box().y2(), person.box().y1());
  const cv::Mat map = DecodeMap(result.response);
  ASSERT_EQ(map.size(), cv::Size(640, 424));
  EXPECT_EQ(result.response.openpose_map().kind(), v1::PRIOR_KIND_POSE);
  EXPECT_EQ(result.response.openpose_map().image().width(), 640);
  // The nose joint (red) is drawn where the nose is (PNG decodes to BGR).
  EXPECT_EQ(map.at<cv::Vec3b>(84, 320), cv::Vec3b(0, 0, 255));
  EXPECT_GE(result.item.postprocess_seconds, 0);
}

TEST(PoseModelTest, ThunderRunsASecondPassOnTheCropAroundThePerson) {
  Instance fake = MakeInstance(Thunder(), {MoveNetOutput()});
  Result result =
      EstimatePose(*fake.instance, Png(cv::Mat(424, 640, CV_8UC3, cv::Scalar(30, 30, 30))));
  ASSERT_TRUE(result.status.ok()) << result.status;
  ASSERT_EQ(fake.inputs->size(), 2u);
  EXPECT_EQ(fake.inputs->at(1).sizes().vec(), (std::vector<int64_t>{1, 256, 256, 3}));
  // The fake answers the same normalised points for the crop, so the final keypoints are
  // those points mapped through the crop region of the first pass.
  v1::Person first =
      *DecodeMoveNetSingle(absl::Span<const float>(MoveNetOutput().data_ptr<float>(), 51),
                           LetterboxRegion(640, 424), 640, 424, 0.3f);
  const SquareRegion crop = CropRegion(first, kCocoTorso, 640, 424);
  ASSERT_LT(crop.side, 640);
  const cv::Point2d nose = ToImage(crop, 0.5, 0.3);
  ASSERT_EQ(result.response.people_size(), 1);
  EXPECT_NEAR(result.response.people(0).keypoints(0).x(), nose.x, 1e-3);
  EXPECT_NEAR(result.response.people(0).keypoints(0).y(), nose.y, 1e-3);
}

TEST(PoseModelTest, BlazePoseGetsFloatInputAndFindsItsOutputsBySize) {
  at::Tensor landmarks = torch::zeros({1, 195});
  for (int i = 0; i < 39; ++i) {
    landmarks[0][5 * i] = 128.0f;  // x (input pixels)
    landmarks[0][5 * i + 1] = 64.0f + 3 * i;
    landmarks[0][5 * i + 3] = 5.0f;  // visibility logit
    landmarks[0][5 * i + 4] = 5.0f;  // presence logit
  }
  std::vector<at::Tensor> outputs = {torch::zeros({1, 64, 64, 39}), torch::full({1, 1}, 0.9f),
                                     landmarks, torch::zeros({1, 117})};
  v1::ModelConfig config = Blaze();
  (*config.mutable_parameters())["crop_pass"] = "false";
  Instance fake = MakeInstance(config, outputs);
  Result result =
      EstimatePose(*fake.instance, Png(cv::Mat(300, 300, CV_8UC3, cv::Scalar(255, 0, 0))));
  ASSERT_TRUE(result.status.ok()) << result.status;
  const at::Tensor& input = fake.inputs->front();
  EXPECT_EQ(input.scalar_type(), torch::kFloat32);
  EXPECT_FLOAT_EQ(input[0][100][100][2].item<float>(), 1.0f);  // BGR PNG -> RGB, 255 -> 1
  EXPECT_FLOAT_EQ(input[0][100][100][0].item<float>(), 0.0f);
  EXPECT_EQ(result.response.skeleton(), "blazepose33");
  ASSERT_EQ(result.response.people_size(), 1);
  EXPECT_EQ(result.response.people(0).keypoints_size(), 33);
  EXPECT_NEAR(result.response.people(0).keypoints(0).x(), 150, 1e-3);
  EXPECT_NEAR(result.response.people(0).score(), 0.9, 1e-6);
}

TEST(PoseModelTest, MultiPoseRespectsMinScoreAndMaxPeople) {
  at::Tensor out = torch::zeros({1, 6, 56});
  for (int p = 0; p < 3; ++p) {
    for (int i = 0; i < 17; ++i) {
      out[0][p][3 * i] = 0.5f;
      out[0][p][3 * i + 1] = 0.2f + 0.3f * p;
      out[0][p][3 * i + 2] = 0.9f;
    }
    out[0][p][55] = 0.5f + 0.1f * p;
  }
  Instance fake = MakeInstance(
      Config("movenet-multipose", "movenet-multipose", v1::DATA_TYPE_INT32, {1, 256, 256, 3}),
      {out});
  const std::string image = Png(cv::Mat(200, 200, CV_8UC3, cv::Scalar(0, 0, 0)));
  Result all = EstimatePose(*fake.instance, image);
  ASSERT_TRUE(all.status.ok()) << all.status;
  EXPECT_EQ(all.response.people_size(), 3);
  EXPECT_NEAR(all.response.people(0).score(), 0.7, 1e-6);
  Result two = EstimatePose(*fake.instance, image, 0, 2);
  EXPECT_EQ(two.response.people_size(), 2);
  Result strict = EstimatePose(*fake.instance, image, 0.65f);
  EXPECT_EQ(strict.response.people_size(), 1);
  EXPECT_EQ(EstimatePose(*fake.instance, image, 1.5f).status.code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EstimatePose(*fake.instance, image, 0, -1).status.code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(PoseModelTest, BadImagesGiveAResultOrAClearError) {
  Instance fake = MakeInstance(Thunder(), {MoveNetOutput()});
  cv::Mat rgba(50, 40, CV_8UC4, cv::Scalar(10, 20, 30, 128));
  cv::Mat deep(50, 40, CV_16UC3, cv::Scalar(1000, 30000, 65535));
  const std::pair<std::string, cv::Mat> images[] = {
      {"gray", cv::Mat(50, 40, CV_8UC1, cv::Scalar(90))},
      {"rgba", rgba},
      {"16-bit", deep},
      {"1x1", cv::Mat(1, 1, CV_8UC3, cv::Scalar(1, 2, 3))},
      {"10000x100", cv::Mat(100, 10000, CV_8UC3, cv::Scalar(5, 5, 5))}};
  for (const auto& [name, image] : images) {
    Result result = EstimatePose(*fake.instance, Png(image));
    ASSERT_TRUE(result.status.ok()) << name << ": " << result.status;
    const cv::Mat map = DecodeMap(result.response);
    EXPECT_EQ(map.size(), image.size()) << name;
    EXPECT_EQ(map.type(), CV_8UC3) << name;
  }
  EXPECT_EQ(fake.inputs->back().sizes().vec(), (std::vector<int64_t>{1, 256, 256, 3}));
  EXPECT_EQ(EstimatePose(*fake.instance, "not an image").status.code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EstimatePose(*fake.instance, "").status.code(), absl::StatusCode::kInvalidArgument);
}

TEST(PoseModelTest, AModelWithTheWrongOutputIsAnInternalError) {
  Instance fake = MakeInstance(Lightning(), {torch::zeros({1, 10})});
  EXPECT_EQ(EstimatePose(*fake.instance, Png(cv::Mat(8, 8, CV_8UC3))).status.code(),
            absl::StatusCode::kInternal);
}

TEST(PoseHandlerTest, KServeOutputsKeypointsBoxesScoresAndTheMap) {
  Instance fake = MakeInstance(Lightning(), {MoveNetOutput()});
  Result result = EstimatePose(*fake.instance, Png(cv::Mat(64, 64, CV_8UC3, cv::Scalar(0, 0, 0))));
  ASSERT_TRUE(result.status.ok());
  inference::ModelInferResponse out;
  ASSERT_TRUE(PoseHandler().ToKServe(result.response, &out).ok());
  ASSERT_EQ(out.outputs_size(), 4);
  EXPECT_EQ(out.outputs(0).name(), "keypoints");
  EXPECT_EQ(std::vector<int64_t>(out.outputs(0).shape().begin(), out.outputs(0).shape().end()),
            (std::vector<int64_t>{1, 17, 3}));
  EXPECT_EQ(out.outputs(0).contents().fp32_contents_size(), 51);
  EXPECT_FLOAT_EQ(out.outputs(0).contents().fp32_contents(0),
                  result.response.people(0).keypoints(0).x());
  EXPECT_EQ(out.outputs(3).name(), "openpose_map");
  EXPECT_EQ(out.outputs(3).contents().bytes_contents(0),
            result.response.openpose_map().image().data());
  EXPECT_EQ(out.parameters().at("skeleton").string_param(), "coco17");
  inference::ModelMetadataResponse metadata;
  PoseHandler().DescribeKServeOutputs(&metadata);
  EXPECT_EQ(metadata.outputs_size(), 4);
}

TEST(RenderPoseTest, DrawsEditedKeypointsWithoutAModel) {
  v1::RenderPoseRequest request;
  request.set_width(100);
  request.set_height(80);
  auto* person = request.add_people();
  for (const auto& [name, x, y] :
       {std::tuple{"left_shoulder", 70.0f, 30.0f}, std::tuple{"right_shoulder", 30.0f, 30.0f}}) {
    auto* k = person->add_keypoints();
    k->set_name(name);
    k->set_x(x);
    k->set_y(y);
    k->set_score(1);
  }
  auto response = RenderPose(request);
  ASSERT_TRUE(response.ok()) << response.status();
  const std::string& data = response->openpose_map().image().data();
  cv::Mat map = cv::imdecode(std::vector<uint8_t>(data.begin(), data.end()), cv::IMREAD_COLOR);
  ASSERT_EQ(map.size(), cv::Size(100, 80));
  const cv::Vec3b neck = OpenPoseColors()[1];
  EXPECT_EQ(map.at<cv::Vec3b>(30, 50), cv::Vec3b(neck[2], neck[1], neck[0]));
  request.set_skeleton("hands");
  EXPECT_EQ(RenderPose(request).status().code(), absl::StatusCode::kInvalidArgument);
  request.set_skeleton("coco17");
  request.set_width(0);
  EXPECT_EQ(RenderPose(request).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace imginterp::pose
