#include "services/segment/segment_handler.h"

#include <torch/types.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <opencv2/imgproc.hpp>
#include <sstream>

#include "gtest/gtest.h"
#include "services/core/codec/tensor_convert.h"
#include "services/core/common/status_macros.h"
#include "services/core/model/model_repository.h"
#include "services/core/model/torchscript_runner.h"
#include "tests/support/assets.h"

namespace imginterp::segment {
namespace {

// A ModelRunner that computes its outputs from the inputs with a function.
class FakeRunner final : public model::ModelRunner {
 public:
  using Function = std::function<std::vector<at::Tensor>(const std::vector<at::Tensor>&)>;
  explicit FakeRunner(Function function) : function_(std::move(function)) {}
  absl::StatusOr<std::vector<at::Tensor>> Forward(const std::vector<at::Tensor>& inputs) override {
    ++calls;
    batch_sizes.push_back(inputs[0].size(0));
    return function_(inputs);
  }
  std::string device() const override { return "cpu"; }
  int calls = 0;
  std::vector<int64_t> batch_sizes;

 private:
  Function function_;
};

// Selfie-like: the person probability is the red channel of the input (0..1), [N,H,W,1].
std::vector<at::Tensor> RedIsPerson(const std::vector<at::Tensor>& inputs) {
  return {inputs[0].narrow(3, 0, 1).contiguous()};
}

v1::ModelConfig Config(const std::string& kind, int height, int width, int max_batch = 1) {
  v1::ModelConfig config;
  config.set_name(kind);
  config.set_backend("torchscript");
  (*config.mutable_parameters())["kind"] = kind;
  auto* input = config.add_inputs();
  input->set_name("input_1");
  for (int64_t d : {-1, height, width, 3}) input->add_shape(d);
  input->set_layout("NHWC");
  config.set_max_batch_size(max_batch);
  return config;
}

std::string Png(const cv::Mat& image) {
  auto png = codec::EncodePng(image);
  EXPECT_TRUE(png.ok()) << png.status();
  return png.ok() ? *png : std::string();
}

// Decodes a PNG from a response to its first channel (masks) or RGB (maps).
cv::Mat DecodeRgb(const std::string& png) {
  auto decoded = codec::Decode(png, {});
  EXPECT_TRUE(decoded.ok()) << decoded.status();
  return decoded.ok() ? decoded->rgb : cv::Mat();
}
cv::Mat DecodeGray(const std::string& png) {
  cv::Mat rgb = DecodeRgb(png);
  cv::Mat gray;
  if (!rgb.empty()) cv::extractChannel(rgb, gray, 0);
  return gray;
}

struct Outcome {
  absl::Status status;
  v1::SegmentResponse response;
};

std::vector<Outcome> RunBatch(service::ModelInstance& instance,
                              const std::vector<v1::SegmentRequest>& requests) {
  std::vector<Outcome> runs(requests.size());
  std::vector<service::WorkItem> items(requests.size());
  std::vector<service::WorkItem*> pointers;
  for (size_t i = 0; i < requests.size(); ++i) {
    items[i].request = &requests[i];
    items[i].response = &runs[i].response;
    pointers.push_back(&items[i]);
  }
  instance.RunBatch(pointers);
  for (size_t i = 0; i < requests.size(); ++i) runs[i].status = items[i].status;
  return runs;
}

Outcome RunOne(service::ModelInstance& instance, const v1::SegmentRequest& request) {
  return RunBatch(instance, {request}).front();
}

v1::SegmentRequest Request(const cv::Mat& image, float threshold = 0) {
  v1::SegmentRequest request;
  request.mutable_image()->set_data(Png(image));
  request.set_threshold(threshold);
  return request;
}

std::unique_ptr<service::ModelInstance> FakeInstance(const v1::ModelConfig& config,
                                                     FakeRunner::Function function,
                                                     FakeRunner** runner_out = nullptr) {
  auto runner = std::make_unique<FakeRunner>(std::move(function));
  if (runner_out != nullptr) *runner_out = runner.get();
  service::ModelLoadInfo info;
  info.name = config.name();
  info.config = config;
  auto instance = SegmentHandler().CreateInstance(info, std::move(runner));
  EXPECT_TRUE(instance.ok()) << instance.status();
  return instance.ok() ? *std::move(instance) : nullptr;
}

TEST(ComputeFitTest, StretchScalesEachSide) {
  const Fit fit = ComputeFit(640, 424, 256, 256, FitMode::kStretch);
  EXPECT_DOUBLE_EQ(fit.scale_x, 256.0 / 640);
  EXPECT_DOUBLE_EQ(fit.scale_y, 256.0 / 424);
  EXPECT_EQ(fit.offset_x, 0);
  EXPECT_EQ(fit.offset_y, 0);
}

TEST(ComputeFitTest, LetterboxKeepsAspectAndCentres) {
  // 640x424 into 256x256: scale 0.4, content 256x170, padding 43 above (86 split evenly).
  const Fit fit = ComputeFit(640, 424, 256, 256, FitMode::kLetterbox);
  EXPECT_DOUBLE_EQ(fit.scale_x, 0.4);
  EXPECT_EQ(fit.content_height, 170);
  EXPECT_DOUBLE_EQ(fit.scale_y, 170.0 / 424);
  EXPECT_EQ(fit.offset_x, 0);
  EXPECT_EQ(fit.offset_y, 43);
}

TEST(FitImageTest, LetterboxPadsWithBlackAroundTheImage) {
  cv::Mat white(100, 200, CV_8UC3, cv::Scalar(255, 255, 255));
  const Fit fit = ComputeFit(200, 100, 64, 64, FitMode::kLetterbox);
  cv::Mat fitted = FitImage(white, fit);
  ASSERT_EQ(fitted.size(), cv::Size(64, 64));
  EXPECT_EQ(fitted.at<cv::Vec3b>(5, 32), cv::Vec3b(0, 0, 0));         // top padding
  EXPECT_EQ(fitted.at<cv::Vec3b>(32, 32), cv::Vec3b(255, 255, 255));  // content
  EXPECT_EQ(fitted.at<cv::Vec3b>(60, 32), cv::Vec3b(0, 0, 0));        // bottom padding
  cv::Mat stretched = FitImage(white, ComputeFit(200, 100, 64, 64, FitMode::kStretch));
  EXPECT_EQ(cv::countNonZero(stretched.reshape(1)), 64 * 64 * 3);
}

TEST(MapToImageTest, StretchUpsamplesBilinearlyToTheImageSize) {
  // Left half 1, right half 0 at model size: the image's left part stays 1, right part 0, and
  // the transition sits at the middle of the image.
  cv::Mat model_map(8, 8, CV_32FC1, cv::Scalar(0));
  model_map(cv::Rect(0, 0, 4, 8)).setTo(1);
  const Fit fit = ComputeFit(80, 40, 8, 8, FitMode::kStretch);
  cv::Mat full = MapToImage(model_map, fit);
  ASSERT_EQ(full.size(), cv::Size(80, 40));
  EXPECT_FLOAT_EQ(full.at<float>(20, 10), 1.0f);
  EXPECT_FLOAT_EQ(full.at<float>(20, 70), 0.0f);
  EXPECT_NEAR(full.at<float>(20, 39), 0.55f, 0.01);  // x+0.5 = 39.5 -> model 3.95 - 0.5
  EXPECT_NEAR(full.at<float>(20, 40), 0.45f, 0.01);
}

TEST(MapToImageTest, LetterboxCutsThePaddingAway) {
  // 200x100 into 64x64: content rows 16..47. Padding rows hold 1, content 0.25: the image
  // must see only the content.
  const Fit fit = ComputeFit(200, 100, 64, 64, FitMode::kLetterbox);
  ASSERT_EQ(fit.offset_y, 16);
  cv::Mat model_map(64, 64, CV_32FC1, cv::Scalar(1));
  model_map(cv::Rect(0, 16, 64, 32)).setTo(0.25);
  cv::Mat full = MapToImage(model_map, fit);
  ASSERT_EQ(full.size(), cv::Size(200, 100));
  double min_value = 0, max_value = 0;
  cv::minMaxLoc(full, &min_value, &max_value);
  EXPECT_FLOAT_EQ(static_cast<float>(min_value), 0.25f);
  EXPECT_FLOAT_EQ(static_cast<float>(max_value), 0.25f);
}

TEST(PersonProbabilityTest, SingleChannelIsTakenAsIs) {
  at::Tensor output = torch::tensor({0.1f, 0.9f, 0.5f, 0.0f}).view({1, 2, 2, 1});
  auto probability = PersonProbability(output);
  ASSERT_TRUE(probability.ok()) << probability.status();
  EXPECT_FLOAT_EQ(probability->at<float>(0, 1), 0.9f);
  EXPECT_FLOAT_EQ(probability->at<float>(1, 0), 0.5f);
}

TEST(PersonProbabilityTest, TwoChannelsAreBackgroundAndPersonLogits) {
  // (background, person) logits: (0, 0) -> 0.5; (0, ln 3) -> 0.75; (2, 0) -> 1/(1+e^2).
  at::Tensor output =
      torch::tensor({0.0f, 0.0f, 0.0f, std::log(3.0f), 2.0f, 0.0f, 5.0f, 5.0f}).view({1, 2, 2, 2});
  auto probability = PersonProbability(output);
  ASSERT_TRUE(probability.ok()) << probability.status();
  EXPECT_NEAR(probability->at<float>(0, 0), 0.5f, 1e-6);
  EXPECT_NEAR(probability->at<float>(0, 1), 0.75f, 1e-6);
  EXPECT_NEAR(probability->at<float>(1, 0), 1 / (1 + std::exp(2.0f)), 1e-6);
  EXPECT_NEAR(probability->at<float>(1, 1), 0.5f, 1e-6);
}

TEST(PersonProbabilityTest, OtherShapesAreInvalidArgument) {
  auto status = PersonProbability(torch::zeros({1, 4, 4, 3})).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("[1,4,4,3]"), std::string::npos) << status;
  EXPECT_EQ(PersonProbability(torch::zeros({4, 4})).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ProbabilityToMaskTest, ScalesToByteAndRounds) {
  cv::Mat probability = (cv::Mat_<float>(1, 4) << 0.0f, 0.5f, 1.0f, 1.5f);
  cv::Mat mask = ProbabilityToMask(probability);
  ASSERT_EQ(mask.type(), CV_8UC1);
  EXPECT_EQ(mask.at<uint8_t>(0, 0), 0);
  EXPECT_EQ(mask.at<uint8_t>(0, 1), 128);
  EXPECT_EQ(mask.at<uint8_t>(0, 2), 255);
  EXPECT_EQ(mask.at<uint8_t>(0, 3), 255);
}

TEST(ColourMapTest, PaintsClassesInPaletteColoursAndBackgroundBlack) {
  EXPECT_EQ(PersonEntry().class_id, 12);
  EXPECT_EQ(PersonEntry().name, "person");
  const std::vector<PaletteEntry> palette = {PersonEntry(), {2, "sky", 6, 230, 230}};
  cv::Mat class_map = (cv::Mat_<int32_t>(1, 4) << kBackground, 0, 1, 7);
  cv::Mat map = ColourMap(class_map, palette);
  ASSERT_EQ(map.type(), CV_8UC3);
  EXPECT_EQ(map.at<cv::Vec3b>(0, 0), cv::Vec3b(0, 0, 0));
  EXPECT_EQ(map.at<cv::Vec3b>(0, 1), cv::Vec3b(150, 5, 61));
  EXPECT_EQ(map.at<cv::Vec3b>(0, 2), cv::Vec3b(6, 230, 230));
  EXPECT_EQ(map.at<cv::Vec3b>(0, 3), cv::Vec3b(0, 0, 0));  // Out of the palette.
}

TEST(DescribeClassesTest, AreaFractionAndBoxPerPresentClass) {
  const std::vector<PaletteEntry> palette = {PersonEntry(), {2, "sky", 6, 230, 230}};
  cv::Mat class_map(10, 20, CV_32SC1, cv::Scalar(kBackground));
  class_map(cv::Rect(3, 2, 5, 4)).setTo(0);  // 20 pixels of 200.
  auto classes = DescribeClasses(class_map, palette);
  ASSERT_EQ(classes.size(), 1u);  // "sky" is absent.
  EXPECT_EQ(classes[0].name(), "person");
  EXPECT_EQ(classes[0].class_id(), 12);
  EXPECT_EQ(classes[0].red(), 150);
  EXPECT_FLOAT_EQ(classes[0].area_fraction(), 0.1f);
  EXPECT_EQ(classes[0].box().x1(), 3);
  EXPECT_EQ(classes[0].box().y1(), 2);
  EXPECT_EQ(classes[0].box().x2(), 8);
  EXPECT_EQ(classes[0].box().y2(), 6);
}

TEST(SegmentHandlerTest, CreateInstanceChecksKindRangeAndFit) {
  SegmentHandler handler;
  service::ModelLoadInfo info;
  info.name = "x";
  info.config = Config("selfie", 256, 256);
  EXPECT_EQ(handler.CreateInstance(info, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto fake = [] { return std::make_unique<FakeRunner>(RedIsPerson); };
  (*info.config.mutable_parameters())["kind"] = "rvm";
  auto status = handler.CreateInstance(info, fake()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("rvm"), std::string::npos);
  (*info.config.mutable_parameters())["kind"] = "meet";
  (*info.config.mutable_parameters())["input_range"] = "-1..1";
  EXPECT_EQ(handler.CreateInstance(info, fake()).status().code(),
            absl::StatusCode::kInvalidArgument);
  (*info.config.mutable_parameters())["input_range"] = "0..1";
  (*info.config.mutable_parameters())["fit"] = "crop";
  EXPECT_EQ(handler.CreateInstance(info, fake()).status().code(),
            absl::StatusCode::kInvalidArgument);
  (*info.config.mutable_parameters())["fit"] = "letterbox";
  EXPECT_TRUE(handler.CreateInstance(info, fake()).ok());
}

TEST(SegmentHandlerTest, MaskMapAndClassesFollowTheModelAtFullResolution) {
  auto instance = FakeInstance(Config("selfie", 32, 32), RedIsPerson);
  // 120x60: the left third is red (person), the rest black.
  cv::Mat image(60, 120, CV_8UC3, cv::Scalar(0, 0, 0));
  image(cv::Rect(0, 0, 40, 60)).setTo(cv::Scalar(255, 0, 0));
  Outcome run = RunOne(*instance, Request(image));
  ASSERT_TRUE(run.status.ok()) << run.status;
  cv::Mat mask = DecodeGray(run.response.mask().data());
  ASSERT_EQ(mask.size(), cv::Size(120, 60));
  EXPECT_EQ(run.response.mask().width(), 120);
  EXPECT_EQ(mask.at<uint8_t>(30, 10), 255);
  EXPECT_EQ(mask.at<uint8_t>(30, 100), 0);
  cv::Mat map = DecodeRgb(run.response.map().image().data());
  EXPECT_EQ(run.response.map().kind(), v1::PRIOR_KIND_SEGMENTATION);
  EXPECT_EQ(run.response.map().method(), "selfie");
  EXPECT_EQ(map.at<cv::Vec3b>(30, 10), cv::Vec3b(150, 5, 61));
  EXPECT_EQ(map.at<cv::Vec3b>(30, 100), cv::Vec3b(0, 0, 0));
  ASSERT_EQ(run.response.classes_size(), 1);
  const auto& person = run.response.classes(0);
  EXPECT_EQ(person.name(), "person");
  EXPECT_NEAR(person.area_fraction(), 1.0 / 3, 0.02);
  EXPECT_EQ(person.box().x1(), 0);
  EXPECT_NEAR(person.box().x2(), 40, 2);
  EXPECT_EQ(person.box().y2(), 60);
}

TEST(SegmentHandlerTest, ThresholdDecidesTheMapAndAnEmptyMaskHasNoClasses) {
  // Probability 0.4 everywhere (red 102/255).
  auto instance = FakeInstance(Config("selfie", 16, 16), RedIsPerson);
  cv::Mat image(20, 20, CV_8UC3, cv::Scalar(102, 0, 0));
  Outcome at_default = RunOne(*instance, Request(image));
  ASSERT_TRUE(at_default.status.ok()) << at_default.status;
  EXPECT_EQ(at_default.response.classes_size(), 0);
  EXPECT_EQ(DecodeGray(at_default.response.mask().data()).at<uint8_t>(10, 10), 102);
  Outcome low = RunOne(*instance, Request(image, 0.3f));
  ASSERT_TRUE(low.status.ok()) << low.status;
  ASSERT_EQ(low.response.classes_size(), 1);
  EXPECT_FLOAT_EQ(low.response.classes(0).area_fraction(), 1.0f);
  for (float bad : {-0.1f, 1.0f, std::nanf("")}) {
    EXPECT_EQ(RunOne(*instance, Request(image, bad)).status.code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

TEST(SegmentHandlerTest, MeetLogitsAndNonSquareInput) {
  // meet: [N,144,256,2] logits; person logit = 10 * (red - 0.5), background 0.
  auto meet_like = [](const std::vector<at::Tensor>& inputs) {
    at::Tensor red = inputs[0].narrow(3, 0, 1);
    return std::vector<at::Tensor>{torch::cat({torch::zeros_like(red), (red - 0.5) * 10}, 3)};
  };
  FakeRunner* runner = nullptr;
  auto instance = FakeInstance(Config("meet", 144, 256), meet_like, &runner);
  cv::Mat image(100, 100, CV_8UC3, cv::Scalar(0, 0, 0));
  image(cv::Rect(50, 0, 50, 100)).setTo(cv::Scalar(255, 0, 0));
  Outcome run = RunOne(*instance, Request(image));
  ASSERT_TRUE(run.status.ok()) << run.status;
  cv::Mat mask = DecodeGray(run.response.mask().data());
  EXPECT_EQ(mask.at<uint8_t>(50, 90), 253);  // sigmoid(5) * 255 = 253.3
  EXPECT_EQ(mask.at<uint8_t>(50, 10), 2);    // sigmoid(-5)
  ASSERT_EQ(run.response.classes_size(), 1);
  EXPECT_NEAR(run.response.classes(0).box().x1(), 50, 1);
}

TEST(SegmentHandlerTest, BatchesRequestsOfDifferentSizesAndMapsEachBack) {
  FakeRunner* runner = nullptr;
  auto instance = FakeInstance(Config("selfie", 32, 32, 4), RedIsPerson, &runner);
  cv::Mat wide(40, 160, CV_8UC3, cv::Scalar(255, 0, 0));
  cv::Mat tall(90, 30, CV_8UC3, cv::Scalar(0, 0, 0));
  auto runs = RunBatch(*instance, {Request(wide), Request(tall), Request(wide)});
  EXPECT_EQ(runner->calls, 1);
  EXPECT_EQ(runner->batch_sizes, (std::vector<int64_t>{3}));
  ASSERT_TRUE(runs[0].status.ok() && runs[1].status.ok() && runs[2].status.ok());
  EXPECT_EQ(DecodeGray(runs[0].response.mask().data()).size(), cv::Size(160, 40));
  EXPECT_EQ(DecodeGray(runs[1].response.mask().data()).size(), cv::Size(30, 90));
  EXPECT_EQ(runs[0].response.classes_size(), 1);
  EXPECT_EQ(runs[1].response.classes_size(), 0);
  EXPECT_EQ(runs[2].response.classes_size(), 1);
}

TEST(SegmentHandlerTest, BadImagesGiveAResultOrAClearError) {
  auto instance = FakeInstance(Config("selfie", 32, 32), RedIsPerson);
  cv::Mat gray(50, 40, CV_8UC1, cv::Scalar(200));
  cv::Mat rgba(50, 40, CV_8UC4, cv::Scalar(255, 0, 0, 10));
  cv::Mat deep(50, 40, CV_16UC1, cv::Scalar(65535));
  for (const cv::Mat& image : {gray, rgba, deep}) {
    Outcome run = RunOne(*instance, Request(image));
    ASSERT_TRUE(run.status.ok()) << run.status;
    EXPECT_EQ(DecodeGray(run.response.mask().data()).size(), cv::Size(40, 50));
  }
  // RGBA: the alpha is dropped, red stays red (person); 16-bit white is red 255 too.
  EXPECT_EQ(RunOne(*instance, Request(rgba)).response.classes_size(), 1);
  EXPECT_EQ(RunOne(*instance, Request(deep)).response.classes_size(), 1);

  cv::Mat one(1, 1, CV_8UC3, cv::Scalar(255, 0, 0));
  Outcome tiny = RunOne(*instance, Request(one));
  ASSERT_TRUE(tiny.status.ok()) << tiny.status;
  EXPECT_EQ(DecodeGray(tiny.response.mask().data()).size(), cv::Size(1, 1));
  ASSERT_EQ(tiny.response.classes_size(), 1);
  EXPECT_FLOAT_EQ(tiny.response.classes(0).area_fraction(), 1.0f);

  cv::Mat strip(100, 10000, CV_8UC3, cv::Scalar(255, 0, 0));
  Outcome long_strip = RunOne(*instance, Request(strip));
  ASSERT_TRUE(long_strip.status.ok()) << long_strip.status;
  EXPECT_EQ(DecodeGray(long_strip.response.mask().data()).size(), cv::Size(10000, 100));

  v1::SegmentRequest garbage;
  garbage.mutable_image()->set_data("not an image");
  EXPECT_EQ(RunOne(*instance, garbage).status.code(), absl::StatusCode::kInvalidArgument);
  v1::SegmentRequest empty;
  EXPECT_EQ(RunOne(*instance, empty).status.code(), absl::StatusCode::kInvalidArgument);
}

TEST(SegmentHandlerTest, LetterboxFitMapsTheMaskBack) {
  v1::ModelConfig config = Config("selfie", 32, 32);
  (*config.mutable_parameters())["fit"] = "letterbox";
  auto instance = FakeInstance(config, RedIsPerson);
  cv::Mat image(50, 200, CV_8UC3, cv::Scalar(0, 0, 0));
  image(cv::Rect(100, 0, 100, 50)).setTo(cv::Scalar(255, 0, 0));
  Outcome run = RunOne(*instance, Request(image));
  ASSERT_TRUE(run.status.ok()) << run.status;
  ASSERT_EQ(run.response.classes_size(), 1);
  EXPECT_NEAR(run.response.classes(0).area_fraction(), 0.5, 0.03);
  EXPECT_EQ(run.response.classes(0).box().y1(), 0);  // Padding rows are not in the image.
  EXPECT_EQ(run.response.classes(0).box().y2(), 50);
}

// ---- Real models and photos (skipped when the model store or samples are missing) ----

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

struct RealModel {
  std::unique_ptr<service::ModelInstance> instance;
  v1::ModelConfig config;
  std::string model_path;
};

absl::StatusOr<RealModel> LoadReal(const std::string& name) {
  IMGINTERP_ASSIGN_OR_RETURN(
      auto repository, model::ModelRepository::Create({test_support::FamilyRepository("segment")}));
  IMGINTERP_ASSIGN_OR_RETURN(model::ModelVersion version, repository->Resolve(name, 0));
  RealModel real;
  real.model_path = version.version_dir + "/model.pt";
  IMGINTERP_ASSIGN_OR_RETURN(auto runner, model::TorchScriptRunner::Load(real.model_path, {}));
  service::ModelLoadInfo info;
  info.name = name;
  info.version = version.version;
  info.config = version.config;
  info.version_dir = version.version_dir;
  real.config = version.config;
  IMGINTERP_ASSIGN_OR_RETURN(real.instance,
                             SegmentHandler().CreateInstance(info, std::move(runner)));
  return real;
}

class RealSegmentTest : public ::testing::TestWithParam<std::string> {};

TEST_P(RealSegmentTest, AstronautIsOnePersonInTheMiddleOfTheMask) {
  IMGINTERP_REQUIRE_IMPORTED_MODEL("segment", GetParam());
  IMGINTERP_REQUIRE_SAMPLE("astronaut.png");
  auto real = LoadReal(GetParam());
  ASSERT_TRUE(real.ok()) << real.status();
  v1::SegmentRequest request;
  request.mutable_image()->set_data(ReadFile(test_support::SamplesDir() + "/astronaut.png"));
  Outcome run = RunOne(*real->instance, request);
  ASSERT_TRUE(run.status.ok()) << run.status;
  ASSERT_EQ(run.response.classes_size(), 1);
  const auto& person = run.response.classes(0);
  cv::Mat mask = DecodeGray(run.response.mask().data());
  ASSERT_EQ(mask.size(), cv::Size(512, 512));
  const cv::Moments moments = cv::moments(mask > 127, true);
  const double cx = moments.m10 / moments.m00;
  const double cy = moments.m01 / moments.m00;
  std::cout << GetParam() << " astronaut: area " << person.area_fraction() << ", box ("
            << person.box().x1() << "," << person.box().y1() << ")-(" << person.box().x2() << ","
            << person.box().y2() << "), centroid (" << cx << "," << cy << ")\n";
  // The astronaut fills the lower left two thirds of the picture (her head near x 200, y 130).
  EXPECT_GT(person.area_fraction(), 0.2);
  EXPECT_LT(person.area_fraction(), 0.75);
  EXPECT_GT(cx, 120);
  EXPECT_LT(cx, 330);
  EXPECT_GT(cy, 180);
  EXPECT_LT(cy, 420);
  // The top right corner (sky, the flag) is background.
  EXPECT_LT(mask.at<uint8_t>(20, 490), 64);
  EXPECT_EQ(cv::countNonZero(mask(cv::Rect(200, 300, 20, 20)) > 127), 400);
}

TEST_P(RealSegmentTest, FullResolutionMaskMatchesTheModelResolutionOutputUpsampled) {
  // The service's mask against the TorchScript output on the same fitted input, upsampled the
  // same way: IoU of the person (probability > 0.5) at full resolution.
  IMGINTERP_REQUIRE_IMPORTED_MODEL("segment", GetParam());
  IMGINTERP_REQUIRE_SAMPLE("person.jpg");
  auto real = LoadReal(GetParam());
  ASSERT_TRUE(real.ok()) << real.status();
  const std::string bytes = ReadFile(test_support::SamplesDir() + "/person.jpg");
  v1::SegmentRequest request;
  request.mutable_image()->set_data(bytes);
  Outcome run = RunOne(*real->instance, request);
  ASSERT_TRUE(run.status.ok()) << run.status;
  cv::Mat service_mask = DecodeGray(run.response.mask().data()) > 127;

  auto image = codec::Decode(bytes, {});
  ASSERT_TRUE(image.ok());
  const auto& shape = real->config.inputs(0).shape();
  const Fit fit = ComputeFit(image->rgb.cols, image->rgb.rows, static_cast<int>(shape[2]),
                             static_cast<int>(shape[1]), FitMode::kStretch);
  at::Tensor input = codec::MatToTensor(FitImage(image->rgb, fit))
                         .to(torch::kFloat32)
                         .div(255.0)
                         .unsqueeze(0)
                         .contiguous();
  auto runner = model::TorchScriptRunner::Load(real->model_path, {});
  ASSERT_TRUE(runner.ok());
  auto outputs = (*runner)->Forward({input});
  ASSERT_TRUE(outputs.ok()) << outputs.status();
  auto probability = PersonProbability((*outputs)[0]);
  ASSERT_TRUE(probability.ok());
  cv::Mat reference = MapToImage(*probability, fit) > 0.5;
  const double intersection = cv::countNonZero(service_mask & reference);
  const double union_count = cv::countNonZero(service_mask | reference);
  ASSERT_GT(union_count, 0);
  std::cout << GetParam() << " person.jpg: person pixels " << union_count << ", IoU "
            << intersection / union_count << "\n";
  EXPECT_GE(intersection / union_count, 0.9);
}

INSTANTIATE_TEST_SUITE_P(Models, RealSegmentTest, ::testing::Values("selfie", "meet"));

}  // namespace
}  // namespace imginterp::segment
