#include "services/detect/detect_handler.h"

#include <torch/types.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>

#include "gtest/gtest.h"
#include "services/core/common/status_macros.h"
#include "services/core/model/model_repository.h"
#include "services/core/model/torchscript_runner.h"
#include "tests/support/assets.h"

namespace imginterp::detect {
namespace {

RawDetection Box(float x1, float y1, float x2, float y2, float score, int class_id) {
  return RawDetection{x1, y1, x2, y2, score, class_id};
}

// ---- NMS ----

TEST(IntersectionOverUnionTest, OverlapDisjointAndDegenerate) {
  EXPECT_FLOAT_EQ(IntersectionOverUnion(Box(0, 0, 2, 2, 1, 0), Box(1, 0, 3, 2, 1, 0)), 2.0f / 6);
  EXPECT_FLOAT_EQ(IntersectionOverUnion(Box(0, 0, 1, 1, 1, 0), Box(2, 2, 3, 3, 1, 0)), 0.0f);
  EXPECT_FLOAT_EQ(IntersectionOverUnion(Box(0, 0, 1, 1, 1, 0), Box(1, 0, 2, 1, 1, 0)), 0.0f);
  EXPECT_FLOAT_EQ(IntersectionOverUnion(Box(0, 0, 0, 0, 1, 0), Box(0, 0, 0, 0, 1, 0)), 0.0f);
  EXPECT_FLOAT_EQ(IntersectionOverUnion(Box(0, 0, 4, 4, 1, 0), Box(0, 0, 4, 4, 1, 0)), 1.0f);
}

TEST(NonMaxSuppressionTest, SuppressesOverlapsWithinAClassOnly) {
  std::vector<RawDetection> boxes = {
      Box(0, 0, 10, 10, 0.6f, 0),    // overlaps the next one, weaker: dropped
      Box(1, 1, 11, 11, 0.9f, 0),    // best person
      Box(1, 1, 11, 11, 0.8f, 16),   // same place, a dog: kept (other class)
      Box(50, 50, 60, 60, 0.7f, 0),  // person elsewhere: kept
  };
  auto kept = NonMaxSuppression(boxes, 0.5f, 100);
  ASSERT_EQ(kept.size(), 3u);
  EXPECT_FLOAT_EQ(kept[0].score, 0.9f);
  EXPECT_EQ(kept[0].class_id, 0);
  EXPECT_FLOAT_EQ(kept[1].score, 0.8f);
  EXPECT_EQ(kept[1].class_id, 16);
  EXPECT_FLOAT_EQ(kept[2].score, 0.7f);
  EXPECT_FLOAT_EQ(kept[2].x1, 50);
}

TEST(NonMaxSuppressionTest, ReturnsBestFirstAndCapsTheCount) {
  std::vector<RawDetection> boxes;
  for (int i = 0; i < 5; ++i) boxes.push_back(Box(i * 20, 0, i * 20 + 10, 10, 0.1f * (i + 1), 0));
  auto kept = NonMaxSuppression(boxes, 0.5f, 3);
  ASSERT_EQ(kept.size(), 3u);
  EXPECT_FLOAT_EQ(kept[0].score, 0.5f);
  EXPECT_FLOAT_EQ(kept[1].score, 0.4f);
  EXPECT_FLOAT_EQ(kept[2].score, 0.3f);
  EXPECT_TRUE(NonMaxSuppression({}, 0.5f, 10).empty());
}

TEST(NonMaxSuppressionTest, IouEqualToTheThresholdIsKeptAboveIsDropped) {
  // [0,3]x[0,1] and [1,4]x[0,1]: intersection 2, union 4, IoU exactly 0.5.
  std::vector<RawDetection> boxes = {Box(0, 0, 3, 1, 0.9f, 2), Box(1, 0, 4, 1, 0.8f, 2)};
  EXPECT_EQ(NonMaxSuppression(boxes, 0.5f, 10).size(), 2u);
  EXPECT_EQ(NonMaxSuppression(boxes, 0.49f, 10).size(), 1u);
}

// ---- Decoding ----

TEST(DecodeCenterNetTest, RowsAreCornersScoreAndClass) {
  at::Tensor detections = torch::zeros({1, 4, 6});
  detections[0][0] = torch::tensor({10.0f, 20.0f, 110.0f, 220.0f, 0.9f, 0.0f});
  detections[0][1] = torch::tensor({5.0f, 5.0f, 50.0f, 50.0f, 0.2f, 16.0f});  // below min_score
  detections[0][2] = torch::tensor({1.0f, 2.0f, 3.0f, 4.0f, 0.8f, NAN});      // no class
  detections[0][3] = torch::tensor({300.0f, 40.0f, 500.0f, 400.0f, 0.5f, 17.0f});
  auto decoded = DecodeCenterNet(detections, 0.3f);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ASSERT_EQ(decoded->size(), 2u);
  EXPECT_FLOAT_EQ((*decoded)[0].x1, 10);
  EXPECT_FLOAT_EQ((*decoded)[0].y1, 20);
  EXPECT_FLOAT_EQ((*decoded)[0].x2, 110);
  EXPECT_FLOAT_EQ((*decoded)[0].y2, 220);
  EXPECT_FLOAT_EQ((*decoded)[0].score, 0.9f);
  EXPECT_EQ((*decoded)[0].class_id, 0);
  EXPECT_EQ((*decoded)[1].class_id, 17);
  EXPECT_EQ(CocoNames()[17], "horse");
  EXPECT_EQ(DecodeCenterNet(torch::zeros({1, 4, 5}), 0.3f).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// NanoDet outputs for a 64x64 input (strides 8, 16, 32 -> 64, 16, 4 cells) with reg_max 3
// (4 bins), all scores 0 and flat distributions, in the TF.js order (scores, then boxes).
std::vector<at::Tensor> EmptyNanoDetOutputs() {
  std::vector<at::Tensor> outputs;
  for (int cells : {64, 16, 4}) outputs.push_back(torch::zeros({1, cells, 80}));
  for (int cells : {64, 16, 4}) outputs.push_back(torch::zeros({1, cells, 16}));
  return outputs;
}

TEST(DecodeNanoDetTest, CellCentrePlusExpectedDistancesTimesStride) {
  auto outputs = EmptyNanoDetOutputs();
  // Stride 8, cell (x 2, y 1) = index 10, class 16 (dog) at 0.9. Centre (20, 12).
  outputs[0][0][10][16] = 0.9f;
  // Left: all mass on bin 1 (8 px); top: on bin 3 (24 px, clipped at 0); right: bins 1 and 2
  // equally (1.5 -> 12 px); bottom: flat (1.5 -> 12 px).
  at::Tensor distribution = torch::zeros({4, 4});
  distribution[0][1] = 50;
  distribution[1][3] = 50;
  distribution[2][1] = 50;
  distribution[2][2] = 50;
  outputs[3][0][10] = distribution.flatten();
  // Stride 32, cell (1, 1) = index 3, person at 0.5 with flat distributions: 1.5 * 32 = 48
  // around the centre (48, 48).
  outputs[2][0][3][0] = 0.5f;
  // A score below min_score is ignored.
  outputs[1][0][0][3] = 0.2f;
  // Any output order works: put the boxes first.
  std::rotate(outputs.begin(), outputs.begin() + 3, outputs.end());
  auto decoded = DecodeNanoDet(outputs, 64, 64, 0.3f);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ASSERT_EQ(decoded->size(), 2u);
  const RawDetection& dog = (*decoded)[0].class_id == 16 ? (*decoded)[0] : (*decoded)[1];
  const RawDetection& person = (*decoded)[0].class_id == 16 ? (*decoded)[1] : (*decoded)[0];
  EXPECT_NEAR(dog.x1, 12, 1e-3);
  EXPECT_NEAR(dog.y1, 0, 1e-3);  // 12 - 24, clipped
  EXPECT_NEAR(dog.x2, 32, 1e-3);
  EXPECT_NEAR(dog.y2, 24, 1e-3);
  EXPECT_FLOAT_EQ(dog.score, 0.9f);
  EXPECT_EQ(person.class_id, 0);
  EXPECT_NEAR(person.x1, 0, 1e-3);
  EXPECT_NEAR(person.y1, 0, 1e-3);
  EXPECT_NEAR(person.x2, 64, 1e-3);  // 96, clipped to the input
  EXPECT_NEAR(person.y2, 64, 1e-3);
}

TEST(DecodeNanoDetTest, OneCellCanGiveSeveralClassesAndCandidatesAreCapped) {
  auto outputs = EmptyNanoDetOutputs();
  outputs[0][0][0][0] = 0.9f;
  outputs[0][0][0][1] = 0.8f;
  outputs[0][0][5][2] = 0.7f;
  auto decoded = DecodeNanoDet(outputs, 64, 64, 0.3f, 80, 2);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ASSERT_EQ(decoded->size(), 2u);
  EXPECT_FLOAT_EQ((*decoded)[0].score, 0.9f);
  EXPECT_FLOAT_EQ((*decoded)[1].score, 0.8f);
}

TEST(DecodeNanoDetTest, UnpairedOrUnknownGridsAreInvalidArgument) {
  auto outputs = EmptyNanoDetOutputs();
  outputs.pop_back();
  EXPECT_EQ(DecodeNanoDet(outputs, 64, 64, 0.3f).status().code(),
            absl::StatusCode::kInvalidArgument);
  std::vector<at::Tensor> odd = {torch::zeros({1, 7, 80}), torch::zeros({1, 7, 44})};
  auto status = DecodeNanoDet(odd, 64, 64, 0.3f).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("7 cells"), std::string::npos) << status;
}

// ---- Geometry and the map ----

TEST(FitTest, LetterboxMapsBoxesBackToImagePixels) {
  // 640x424 into 512x512: scale 0.8, content 512x339, 86 rows of padding above.
  const Fit fit = ComputeFit(640, 424, 512, 512, FitMode::kLetterbox);
  EXPECT_DOUBLE_EQ(fit.scale_x, 0.8);
  EXPECT_EQ(fit.offset_y, 86);
  RawDetection back = MapToImage(Box(80, 86 + 40, 160, 86 + 120, 0.5f, 3), fit);
  EXPECT_EQ(fit.content_height, 339);  // 424 * 0.8 = 339.2, so y scales by 339/424.
  EXPECT_FLOAT_EQ(back.x1, 100);
  EXPECT_NEAR(back.y1, 50, 0.1);
  EXPECT_FLOAT_EQ(back.x2, 200);
  EXPECT_NEAR(back.y2, 150, 0.1);
  EXPECT_EQ(back.class_id, 3);
  // Boxes reaching into the padding are clipped to the image.
  RawDetection clipped = MapToImage(Box(-10, 0, 600, 512, 0.5f, 0), fit);
  EXPECT_FLOAT_EQ(clipped.x1, 0);
  EXPECT_FLOAT_EQ(clipped.y1, 0);
  EXPECT_FLOAT_EQ(clipped.x2, 640);
  EXPECT_FLOAT_EQ(clipped.y2, 424);
}

TEST(FitTest, StretchScalesEachAxis) {
  const Fit fit = ComputeFit(640, 424, 416, 416, FitMode::kStretch);
  RawDetection back = MapToImage(Box(104, 208, 208, 416, 1, 0), fit);
  EXPECT_FLOAT_EQ(back.x1, 160);
  EXPECT_FLOAT_EQ(back.y1, 212);
  EXPECT_FLOAT_EQ(back.x2, 320);
  EXPECT_FLOAT_EQ(back.y2, 424);
  cv::Mat fitted = FitImage(cv::Mat(424, 640, CV_8UC3, cv::Scalar(1, 2, 3)), fit);
  EXPECT_EQ(fitted.size(), cv::Size(416, 416));
  EXPECT_EQ(fitted.at<cv::Vec3b>(200, 200), cv::Vec3b(1, 2, 3));
}

TEST(DetectionMapTest, FillsBoxesInClassColoursSmallOnTop) {
  EXPECT_NE(ClassColour(0), ClassColour(16));
  EXPECT_NE(ClassColour(0), cv::Vec3b(0, 0, 0));
  std::vector<RawDetection> boxes = {Box(20, 20, 30, 30, 0.9f, 16), Box(0, 0, 50, 50, 0.5f, 0)};
  cv::Mat map = DetectionMap(boxes, 100, 60);
  ASSERT_EQ(map.size(), cv::Size(100, 60));
  EXPECT_EQ(map.at<cv::Vec3b>(5, 5), ClassColour(0));
  EXPECT_EQ(map.at<cv::Vec3b>(25, 25), ClassColour(16));  // The smaller box is drawn last.
  EXPECT_EQ(map.at<cv::Vec3b>(55, 90), cv::Vec3b(0, 0, 0));
}

// ---- The handler with fake models ----

class FakeRunner final : public model::ModelRunner {
 public:
  using Function = std::function<std::vector<at::Tensor>(const std::vector<at::Tensor>&)>;
  explicit FakeRunner(Function function) : function_(std::move(function)) {}
  absl::StatusOr<std::vector<at::Tensor>> Forward(const std::vector<at::Tensor>& inputs) override {
    input_sizes.push_back(inputs[0].sizes().vec());
    max_input.push_back(inputs[0].max().item<float>());
    return function_(inputs);
  }
  std::string device() const override { return "cpu"; }
  std::vector<std::vector<int64_t>> input_sizes;
  std::vector<float> max_input;

 private:
  Function function_;
};

v1::ModelConfig Config(const std::string& kind) {
  v1::ModelConfig config;
  config.set_name(kind);
  config.set_backend("torchscript");
  (*config.mutable_parameters())["kind"] = kind;
  auto* input = config.add_inputs();
  if (kind == "nanodet") {
    for (int64_t d : {1, 3, 416, 416}) input->add_shape(d);
  } else {
    for (int64_t d : {1, 512, 512, 3}) input->add_shape(d);
  }
  return config;
}

std::unique_ptr<service::ModelInstance> FakeInstance(const v1::ModelConfig& config,
                                                     FakeRunner::Function function,
                                                     FakeRunner** runner_out) {
  auto runner = std::make_unique<FakeRunner>(std::move(function));
  *runner_out = runner.get();
  service::ModelLoadInfo info;
  info.name = config.name();
  info.config = config;
  auto instance = DetectHandler().CreateInstance(info, std::move(runner));
  EXPECT_TRUE(instance.ok()) << instance.status();
  return instance.ok() ? *std::move(instance) : nullptr;
}

struct Outcome {
  absl::Status status;
  v1::DetectResponse response;
};

Outcome RunOne(service::ModelInstance& instance, const v1::DetectRequest& request) {
  Outcome run;
  service::WorkItem item;
  item.request = &request;
  item.response = &run.response;
  instance.RunBatch({&item});
  run.status = item.status;
  return run;
}

v1::DetectRequest Request(const cv::Mat& image) {
  v1::DetectRequest request;
  auto png = codec::EncodePng(image);
  EXPECT_TRUE(png.ok()) << png.status();
  if (png.ok()) request.mutable_image()->set_data(*png);
  return request;
}

// CenterNet-like: a person covering the middle of the input and a weaker duplicate.
std::vector<at::Tensor> CenterNetOutputs(const std::vector<at::Tensor>& inputs) {
  const int64_t n = inputs[0].size(0);
  at::Tensor detections = torch::zeros({n, 100, 6});
  detections.select(1, 0).copy_(torch::tensor({128.0f, 64.0f, 384.0f, 448.0f, 0.9f, 0.0f}));
  detections.select(1, 1).copy_(torch::tensor({130.0f, 66.0f, 380.0f, 450.0f, 0.6f, 0.0f}));
  detections.select(1, 2).copy_(torch::tensor({0.0f, 0.0f, 51.2f, 51.2f, 0.4f, 17.0f}));
  return {torch::zeros({n, 128, 128, 4}), torch::zeros({n, 128, 128, 80}), detections};
}

TEST(DetectHandlerTest, CenterNetBoxesComeBackInImagePixelsAfterNms) {
  FakeRunner* runner = nullptr;
  v1::ModelConfig config = Config("centernet");
  (*config.mutable_parameters())["fit"] = "stretch";
  auto instance = FakeInstance(config, CenterNetOutputs, &runner);
  cv::Mat image(200, 1000, CV_8UC3, cv::Scalar(255, 255, 255));
  Outcome run = RunOne(*instance, Request(image));
  ASSERT_TRUE(run.status.ok()) << run.status;
  // NHWC 512x512, 0..255 by default.
  EXPECT_EQ(runner->input_sizes[0], (std::vector<int64_t>{1, 512, 512, 3}));
  EXPECT_FLOAT_EQ(runner->max_input[0], 255.0f);
  ASSERT_EQ(run.response.detections_size(), 2);
  const auto& person = run.response.detections(0);
  EXPECT_EQ(person.name(), "person");
  EXPECT_FLOAT_EQ(person.score(), 0.9f);
  EXPECT_NEAR(person.box().x1(), 250, 1e-3);  // stretch: x * 1000/512, y * 200/512
  EXPECT_NEAR(person.box().y1(), 25, 1e-3);
  EXPECT_NEAR(person.box().x2(), 750, 1e-3);
  EXPECT_NEAR(person.box().y2(), 175, 1e-3);
  EXPECT_EQ(run.response.detections(1).name(), "horse");
  EXPECT_EQ(run.response.map().kind(), v1::PRIOR_KIND_DETECTION);
  auto map = codec::Decode(run.response.map().image().data(), {});
  ASSERT_TRUE(map.ok());
  EXPECT_EQ(map->rgb.size(), cv::Size(1000, 200));
  EXPECT_EQ(map->rgb.at<cv::Vec3b>(100, 500), ClassColour(0));
  EXPECT_EQ(map->rgb.at<cv::Vec3b>(190, 990), cv::Vec3b(0, 0, 0));

  // Request options: a higher min_score drops the horse; max_detections 1 keeps the best.
  v1::DetectRequest strict = Request(image);
  strict.set_min_score(0.5f);
  EXPECT_EQ(RunOne(*instance, strict).response.detections_size(), 1);
  v1::DetectRequest loose = Request(image);
  loose.set_iou_threshold(0.99f);
  EXPECT_EQ(RunOne(*instance, loose).response.detections_size(), 3);
  v1::DetectRequest one = Request(image);
  one.set_max_detections(1);
  EXPECT_EQ(RunOne(*instance, one).response.detections_size(), 1);
  const std::vector<std::function<void(v1::DetectRequest&)>> bad_options = {
      [](v1::DetectRequest& r) { r.set_min_score(1.5f); },
      [](v1::DetectRequest& r) { r.set_iou_threshold(-0.1f); },
      [](v1::DetectRequest& r) { r.set_max_detections(-1); }};
  for (const auto& bad : bad_options) {
    v1::DetectRequest request = Request(image);
    bad(request);
    EXPECT_EQ(RunOne(*instance, request).status.code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(DetectHandlerTest, NanoDetTakesNchwAndDecodesTheGflHead) {
  auto nanodet_like = [](const std::vector<at::Tensor>& inputs) {
    std::vector<at::Tensor> outputs;
    for (int cells : {2704, 676, 169}) outputs.push_back(torch::zeros({1, cells, 80}));
    for (int cells : {2704, 676, 169}) outputs.push_back(torch::zeros({1, cells, 44}));
    // Stride 32, cell (x 6, y 6) = 84: centre (208, 208); flat distributions: 5 * 32 = 160.
    outputs[2][0][84][0] = 0.8f;
    return outputs;
  };
  FakeRunner* runner = nullptr;
  auto instance = FakeInstance(Config("nanodet"), nanodet_like, &runner);
  Outcome run = RunOne(*instance, Request(cv::Mat(832, 416, CV_8UC3, cv::Scalar(255, 0, 0))));
  ASSERT_TRUE(run.status.ok()) << run.status;
  EXPECT_EQ(runner->input_sizes[0], (std::vector<int64_t>{1, 3, 416, 416}));
  EXPECT_FLOAT_EQ(runner->max_input[0], 1.0f);  // 0..1 by default
  ASSERT_EQ(run.response.detections_size(), 1);
  const auto& person = run.response.detections(0);
  EXPECT_NEAR(person.box().x1(), 48, 1e-3);
  EXPECT_NEAR(person.box().y1(), 96, 1e-3);  // y doubles: the image is twice as tall
  EXPECT_NEAR(person.box().x2(), 368, 1e-3);
  EXPECT_NEAR(person.box().y2(), 736, 1e-3);
}

TEST(DetectHandlerTest, CreateInstanceChecksTheConfig) {
  DetectHandler handler;
  service::ModelLoadInfo info;
  info.name = "x";
  info.config = Config("centernet");
  EXPECT_EQ(handler.CreateInstance(info, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto fake = [] { return std::make_unique<FakeRunner>(CenterNetOutputs); };
  for (auto [key, value] :
       {std::pair{"kind", "yolo"}, std::pair{"input_range", "-1..1"}, std::pair{"fit", "crop"}}) {
    v1::ModelConfig config = Config("centernet");
    (*config.mutable_parameters())[key] = value;
    info.config = config;
    auto status = handler.CreateInstance(info, fake()).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << key;
    EXPECT_NE(status.message().find(value), std::string::npos) << status;
  }
}

TEST(DetectHandlerTest, BadImagesGiveAResultOrAClearError) {
  FakeRunner* runner = nullptr;
  auto instance = FakeInstance(Config("centernet"), CenterNetOutputs, &runner);
  for (const cv::Mat& image :
       {cv::Mat(50, 40, CV_8UC1, cv::Scalar(200)), cv::Mat(50, 40, CV_8UC4, cv::Scalar(1, 2, 3, 4)),
        cv::Mat(50, 40, CV_16UC1, cv::Scalar(40000)), cv::Mat(1, 1, CV_8UC3, cv::Scalar(9, 9, 9)),
        cv::Mat(100, 10000, CV_8UC3, cv::Scalar(9, 9, 9))}) {
    Outcome run = RunOne(*instance, Request(image));
    ASSERT_TRUE(run.status.ok()) << run.status << " for " << image.cols << "x" << image.rows;
    ASSERT_GE(run.response.detections_size(), 1);
    for (const auto& d : run.response.detections()) {
      EXPECT_GE(d.box().x1(), 0);
      EXPECT_LE(d.box().x2(), image.cols);
      EXPECT_LE(d.box().y2(), image.rows);
    }
    EXPECT_EQ(run.response.map().image().width(), image.cols);
  }
  v1::DetectRequest garbage;
  garbage.mutable_image()->set_data("not an image at all");
  EXPECT_EQ(RunOne(*instance, garbage).status.code(), absl::StatusCode::kInvalidArgument);
}

// ---- Real models and photos (skipped when the model store or samples are missing) ----

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

absl::StatusOr<std::unique_ptr<service::ModelInstance>> LoadReal(const std::string& name) {
  IMGINTERP_ASSIGN_OR_RETURN(
      auto repository, model::ModelRepository::Create({test_support::FamilyRepository("detect")}));
  IMGINTERP_ASSIGN_OR_RETURN(model::ModelVersion version, repository->Resolve(name, 0));
  IMGINTERP_ASSIGN_OR_RETURN(auto runner,
                             model::TorchScriptRunner::Load(version.version_dir + "/model.pt", {}));
  service::ModelLoadInfo info;
  info.name = name;
  info.version = version.version;
  info.config = version.config;
  info.version_dir = version.version_dir;
  return DetectHandler().CreateInstance(info, std::move(runner));
}

Outcome DetectSample(service::ModelInstance& instance, const std::string& file) {
  v1::DetectRequest request;
  request.mutable_image()->set_data(ReadFile(test_support::SamplesDir() + "/" + file));
  Outcome run = RunOne(instance, request);
  for (const auto& d : run.response.detections()) {
    std::cout << file << ": " << d.name() << " " << d.score() << " (" << d.box().x1() << ","
              << d.box().y1() << ")-(" << d.box().x2() << "," << d.box().y2() << ")\n";
  }
  return run;
}

class RealDetectTest : public ::testing::TestWithParam<std::string> {};

TEST_P(RealDetectTest, PersonJpgHasThePersonWhereSheStands) {
  IMGINTERP_REQUIRE_IMPORTED_MODEL("detect", GetParam());
  IMGINTERP_REQUIRE_SAMPLE("person.jpg");
  auto instance = LoadReal(GetParam());
  ASSERT_TRUE(instance.ok()) << instance.status();
  Outcome run = DetectSample(**instance, "person.jpg");
  ASSERT_TRUE(run.status.ok()) << run.status;
  // The person stands at about x 190..275, y 95..380 of the 640x424 photo.
  const v1::Detection* person = nullptr;
  for (const auto& d : run.response.detections()) {
    if (d.name() == "person" && person == nullptr) person = &d;
  }
  ASSERT_NE(person, nullptr);
  const float cx = (person->box().x1() + person->box().x2()) / 2;
  const float cy = (person->box().y1() + person->box().y2()) / 2;
  EXPECT_GT(cx, 180);
  EXPECT_LT(cx, 290);
  EXPECT_GT(cy, 170);
  EXPECT_LT(cy, 310);
  EXPECT_LT(person->box().y1(), 130);
  EXPECT_GT(person->box().y2(), 330);
  EXPECT_LT(person->box().x2() - person->box().x1(), 200);
}

TEST_P(RealDetectTest, AstronautIsExactlyOnePerson) {
  IMGINTERP_REQUIRE_IMPORTED_MODEL("detect", GetParam());
  IMGINTERP_REQUIRE_SAMPLE("astronaut.png");
  auto instance = LoadReal(GetParam());
  ASSERT_TRUE(instance.ok()) << instance.status();
  Outcome run = DetectSample(**instance, "astronaut.png");
  ASSERT_TRUE(run.status.ok()) << run.status;
  int people = 0;
  for (const auto& d : run.response.detections()) people += d.name() == "person" ? 1 : 0;
  EXPECT_EQ(people, 1);
}

INSTANTIATE_TEST_SUITE_P(Models, RealDetectTest, ::testing::Values("centernet", "nanodet"));

}  // namespace
}  // namespace imginterp::detect
