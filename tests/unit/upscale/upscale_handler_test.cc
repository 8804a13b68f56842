#include "services/upscale/upscale_handler.h"

#include <torch/torch.h>

#include <chrono>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "gtest/gtest.h"
#include "inference/grpc_service.pb.h"
#include "services/core/model/model_repository.h"
#include "services/core/model/torchscript_runner.h"
#include "services/upscale/tiling.h"
#include "tests/support/assets.h"
#include "tests/unit/upscale/mat_compare.h"

namespace imginterp::upscale {
namespace {

// A stand-in model: nearest-neighbour ×scale on NHWC float, counting its calls.
class NearestRunner final : public model::ModelRunner {
 public:
  NearestRunner(int scale, int* calls) : scale_(scale), calls_(calls) {}
  absl::StatusOr<std::vector<at::Tensor>> Forward(const std::vector<at::Tensor>& inputs) override {
    if (calls_ != nullptr) ++*calls_;
    const at::Tensor& x = inputs.at(0);
    if (x.dim() != 4 || x.size(3) != 3 || x.scalar_type() != torch::kFloat32) {
      return absl::InvalidArgumentError("expected [1,H,W,3] float32");
    }
    return std::vector<at::Tensor>{
        x.repeat_interleave(scale_, 1).repeat_interleave(scale_, 2).contiguous()};
  }
  std::string device() const override { return "cpu"; }

 private:
  const int scale_;
  int* calls_;
};

service::ModelLoadInfo Info(const std::string& name, int scale) {
  service::ModelLoadInfo info;
  info.name = name;
  info.config.set_name(name);
  info.config.set_backend("torchscript");
  auto& parameters = *info.config.mutable_parameters();
  parameters["kind"] = "esrgan";
  parameters["scale"] = std::to_string(scale);
  parameters["tile_size"] = "64";
  parameters["tile_overlap"] = "8";
  return info;
}

std::unique_ptr<service::ModelInstance> FakeInstance(int scale, int* calls = nullptr,
                                                     UpscaleOptions options = {}) {
  UpscaleHandler handler(options);
  auto instance = handler.CreateInstance(Info("esrgan-slim-x" + std::to_string(scale), scale),
                                         std::make_unique<NearestRunner>(scale, calls));
  EXPECT_TRUE(instance.ok()) << instance.status();
  return instance.ok() ? *std::move(instance) : nullptr;
}

struct Outcome {
  absl::Status status;
  v1::UpscaleResponse response;
  std::vector<std::pair<int, int>> progress;
};

Outcome RunUpscale(service::ModelInstance& instance, const std::string& encoded, int tile_size = 0,
                   int tile_overlap = 0, std::function<bool()> cancelled = nullptr) {
  v1::UpscaleRequest request;
  request.mutable_image()->set_data(encoded);
  request.set_tile_size(tile_size);
  request.set_tile_overlap(tile_overlap);
  Outcome outcome;
  service::WorkItem item;
  item.request = &request;
  item.response = &outcome.response;
  item.cancelled = std::move(cancelled);
  item.progress = [&](int done, int total) { outcome.progress.emplace_back(done, total); };
  instance.RunBatch({&item});
  outcome.status = item.status;
  return outcome;
}

cv::Mat DecodeAny(const std::string& png) {
  std::vector<uint8_t> bytes(png.begin(), png.end());
  return cv::imdecode(bytes, cv::IMREAD_UNCHANGED);
}

std::string Encode(const cv::Mat& mat) {
  std::vector<uint8_t> bytes;
  cv::imencode(".png", mat, bytes);
  return std::string(bytes.begin(), bytes.end());
}

cv::Mat RandomBgr(int width, int height) {
  cv::Mat bgr(height, width, CV_8UC3);
  cv::RNG rng(width * 31 + height);
  rng.fill(bgr, cv::RNG::UNIFORM, 0, 256);
  return bgr;
}

using test_util::MaxDifference;

TEST(ParseEsrganConfigTest, ReadsScaleAndTileDefaultsFromParameters) {
  auto config = ParseEsrganConfig("esrgan-slim-x3", Info("esrgan-slim-x3", 3).config);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->scale, 3);
  EXPECT_EQ(config->tiles.tile_size, 64);
  EXPECT_EQ(config->tiles.tile_overlap, 8);
}

TEST(ParseEsrganConfigTest, FallsBackToTheNameAndRejectsBadValues) {
  v1::ModelConfig bare;
  auto from_name = ParseEsrganConfig("esrgan-slim-x8", bare);
  ASSERT_TRUE(from_name.ok()) << from_name.status();
  EXPECT_EQ(from_name->scale, 8);
  EXPECT_EQ(from_name->tiles.tile_size, 128);
  EXPECT_EQ(ParseEsrganConfig("mystery", bare).status().code(), absl::StatusCode::kInvalidArgument);
  v1::ModelConfig bad = Info("x", 4).config;
  (*bad.mutable_parameters())["tile_overlap"] = "64";
  auto status = ParseEsrganConfig("x", bad).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("tile_overlap"), std::string::npos) << status;
  v1::ModelConfig wrong_kind = Info("x", 4).config;
  (*wrong_kind.mutable_parameters())["kind"] = "selfie";
  EXPECT_EQ(ParseEsrganConfig("x", wrong_kind).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(MaxTileSizeTest, BoundsOneTilesActivationPerScale) {
  const int64_t budget = int64_t{256} << 20;
  EXPECT_EQ(MaxTileSize(2, budget), 1182);
  EXPECT_EQ(MaxTileSize(4, budget), 295);
  EXPECT_EQ(MaxTileSize(8, budget), 73);
}

TEST(UpscaleHandlerTest, ServesEsrganSlimX4ByDefaultAndNeedsTorchScript) {
  UpscaleHandler handler;
  EXPECT_EQ(handler.family(), "upscale");
  EXPECT_EQ(handler.default_model(), "esrgan-slim-x4");
  EXPECT_TRUE(handler.uses_repository());
  EXPECT_EQ(handler.CreateInstance(Info("esrgan-slim-x4", 4), nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(UpscaleHandlerTest, ReturnsAnRgbPngOfScaleTimesTheSizeWithTileCount) {
  int calls = 0;
  auto instance = FakeInstance(3, &calls);
  const cv::Mat bgr = RandomBgr(150, 100);
  Outcome outcome = RunUpscale(*instance, Encode(bgr));
  ASSERT_TRUE(outcome.status.ok()) << outcome.status;
  EXPECT_EQ(outcome.response.scale(), 3);
  EXPECT_EQ(outcome.response.image().media_type(), "image/png");
  EXPECT_EQ(outcome.response.image().width(), 450);
  EXPECT_EQ(outcome.response.image().height(), 300);
  // 64-pixel tiles sharing 8: 3 columns x 2 rows.
  EXPECT_EQ(outcome.response.tiles(), 6);
  EXPECT_EQ(calls, 6);
  EXPECT_EQ(outcome.progress.back(), std::make_pair(6, 6));
  const cv::Mat png = DecodeAny(outcome.response.image().data());
  ASSERT_EQ(png.type(), CV_8UC3);
  cv::Mat expected;
  cv::resize(bgr, expected, cv::Size(450, 300), 0, 0, cv::INTER_NEAREST);
  EXPECT_EQ(MaxDifference(png, expected), 0);
}

TEST(UpscaleHandlerTest, RequestTileSizeAndOverlapOverrideTheConfig) {
  auto instance = FakeInstance(2);
  Outcome outcome = RunUpscale(*instance, Encode(RandomBgr(100, 100)), 32, 4);
  ASSERT_TRUE(outcome.status.ok()) << outcome.status;
  EXPECT_EQ(outcome.response.tiles(), 4 * 4);  // ceil((100 - 4) / 28) = 4 a side.
}

TEST(UpscaleHandlerTest, RejectsTileSizesOutsideTheBoundsNamingThem) {
  auto instance = FakeInstance(8);
  const std::string image = Encode(RandomBgr(40, 40));
  Outcome too_big = RunUpscale(*instance, image, 128);
  EXPECT_EQ(too_big.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(too_big.status.message().find("16..73"), std::string::npos) << too_big.status;
  EXPECT_EQ(RunUpscale(*instance, image, 8).status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunUpscale(*instance, image, 32, 16).status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunUpscale(*instance, image, 32, -1).status.code(), absl::StatusCode::kInvalidArgument);
}

TEST(UpscaleHandlerTest, ConfiguredTileSizeAboveTheMemoryBoundIsLowered) {
  service::ModelLoadInfo info = Info("esrgan-slim-x8", 8);
  (*info.config.mutable_parameters())["tile_size"] = "128";
  auto instance =
      UpscaleHandler().CreateInstance(info, std::make_unique<NearestRunner>(8, nullptr));
  ASSERT_TRUE(instance.ok()) << instance.status();
  // 146 pixels: two 73-pixel tiles would not overlap, so three tiles a side.
  Outcome outcome = RunUpscale(**instance, Encode(RandomBgr(146, 10)));
  ASSERT_TRUE(outcome.status.ok()) << outcome.status;
  EXPECT_EQ(outcome.response.tiles(), 3);
}

TEST(UpscaleHandlerTest, StopsBetweenTilesWhenTheCallerCancels) {
  int calls = 0;
  auto instance = FakeInstance(2, &calls);
  Outcome* current = nullptr;
  auto cancelled = [&] { return current != nullptr && current->progress.size() >= 2; };
  Outcome outcome;
  current = &outcome;
  v1::UpscaleRequest request;
  request.mutable_image()->set_data(Encode(RandomBgr(200, 200)));
  service::WorkItem item;
  item.request = &request;
  item.response = &outcome.response;
  item.cancelled = cancelled;
  item.progress = [&](int done, int total) { outcome.progress.emplace_back(done, total); };
  instance->RunBatch({&item});
  EXPECT_EQ(item.status.code(), absl::StatusCode::kCancelled) << item.status;
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(outcome.progress, (std::vector<std::pair<int, int>>{{1, 16}, {2, 16}}));
  EXPECT_FALSE(outcome.response.has_image());
}

TEST(UpscaleHandlerTest, OutputsOverTheLimitAreRefusedNamingTheSizes) {
  auto x8 = FakeInstance(8);
  const std::string wide = Encode(RandomBgr(10000, 100));
  Outcome outcome = RunUpscale(*x8, wide);
  EXPECT_EQ(outcome.status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(outcome.status.message().find("10000x100"), std::string::npos) << outcome.status;
  EXPECT_NE(outcome.status.message().find("80000x800"), std::string::npos) << outcome.status;
  EXPECT_NE(outcome.status.message().find("32768"), std::string::npos) << outcome.status;
  // The megapixel limit is configurable.
  UpscaleOptions small;
  small.max_output_pixels = 100 * 100;
  auto limited = FakeInstance(2, nullptr, small);
  Outcome over = RunUpscale(*limited, Encode(RandomBgr(60, 50)));
  EXPECT_EQ(over.status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(over.status.message().find("120x100"), std::string::npos) << over.status;
  EXPECT_TRUE(RunUpscale(*limited, Encode(RandomBgr(50, 50))).status.ok());
}

TEST(UpscaleHandlerTest, AWideThinImageUpscalesWhereTheOutputFits) {
  auto x2 = FakeInstance(2);
  Outcome outcome = RunUpscale(*x2, Encode(RandomBgr(10000, 100)));
  ASSERT_TRUE(outcome.status.ok()) << outcome.status;
  EXPECT_EQ(outcome.response.image().width(), 20000);
  EXPECT_EQ(outcome.response.image().height(), 200);
  EXPECT_EQ(outcome.response.tiles(), 179 * 2);  // ceil((10000 - 8) / 56) columns, 2 rows
}

TEST(UpscaleHandlerTest, GrayRgbaSixteenBitAndOnePixelImagesGiveRgbOutput) {
  auto instance = FakeInstance(4);
  cv::Mat gray(30, 20, CV_8UC1, cv::Scalar(77));
  cv::Mat bgra(30, 20, CV_8UC4, cv::Scalar(10, 20, 30, 128));
  cv::Mat deep(30, 20, CV_16UC3, cv::Scalar(0, 32896, 65535));
  cv::Mat one(1, 1, CV_8UC3, cv::Scalar(1, 2, 3));
  struct Case {
    const char* name;
    cv::Mat image;
    cv::Vec3b expected_bgr;
  };
  for (const auto& c : {Case{"gray", gray, {77, 77, 77}}, Case{"rgba", bgra, {10, 20, 30}},
                        Case{"16-bit", deep, {0, 128, 255}}, Case{"1x1", one, {1, 2, 3}}}) {
    Outcome outcome = RunUpscale(*instance, Encode(c.image));
    ASSERT_TRUE(outcome.status.ok()) << c.name << ": " << outcome.status;
    const cv::Mat png = DecodeAny(outcome.response.image().data());
    ASSERT_EQ(png.type(), CV_8UC3) << c.name;
    EXPECT_EQ(png.cols, 4 * c.image.cols) << c.name;
    EXPECT_EQ(png.rows, 4 * c.image.rows) << c.name;
    EXPECT_EQ(png.at<cv::Vec3b>(png.rows - 1, png.cols - 1), c.expected_bgr) << c.name;
  }
  EXPECT_EQ(RunUpscale(*instance, "not an image").status.code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunUpscale(*instance, "").status.code(), absl::StatusCode::kInvalidArgument);
}

TEST(UpscaleHandlerTest, KServeOutputIsThePngAsBytesWithScaleAndTiles) {
  v1::UpscaleResponse response;
  response.mutable_image()->set_data("png bytes");
  response.set_scale(4);
  response.set_tiles(9);
  inference::ModelInferResponse out;
  ASSERT_TRUE(UpscaleHandler().ToKServe(response, &out).ok());
  ASSERT_EQ(out.outputs_size(), 1);
  EXPECT_EQ(out.outputs(0).name(), "image");
  EXPECT_EQ(out.outputs(0).datatype(), "BYTES");
  EXPECT_EQ(out.outputs(0).contents().bytes_contents(0), "png bytes");
  EXPECT_EQ(out.parameters().at("scale").int64_param(), 4);
  EXPECT_EQ(out.parameters().at("tiles").int64_param(), 9);
  inference::ModelMetadataResponse metadata;
  UpscaleHandler().DescribeKServeOutputs(&metadata);
  ASSERT_EQ(metadata.outputs_size(), 1);
  EXPECT_EQ(metadata.outputs(0).name(), "image");
}

// ---- The real ESRGAN-slim models, when imported into the model store. ----

struct RealModel {
  v1::ModelConfig config;
  std::unique_ptr<model::TorchScriptRunner> runner;
};

absl::StatusOr<RealModel> LoadReal(const std::string& name) {
  auto repository = model::ModelRepository::Create({test_support::FamilyRepository("upscale")});
  if (!repository.ok()) return repository.status();
  auto version = (*repository)->Resolve(name, 0);
  if (!version.ok()) return version.status();
  model::TorchScriptOptions options;
  options.use_cuda_if_available = false;
  options.intra_op_threads = 1;
  auto runner = model::TorchScriptRunner::Load(version->version_dir + "/model.pt", options);
  if (!runner.ok()) return runner.status();
  return RealModel{version->config, *std::move(runner)};
}

// A crop of a real photo, RGB.
cv::Mat PhotoCrop(int side) {
  const cv::Mat bgr = cv::imread(test_support::SamplesDir() + "/person.jpg", cv::IMREAD_COLOR);
  cv::Mat rgb;
  cv::cvtColor(bgr(cv::Rect(200, 100, side, side)), rgb, cv::COLOR_BGR2RGB);
  return rgb;
}

TileUpscaler RunnerUpscaler(model::ModelRunner& runner) {
  return [&runner](const at::Tensor& tile) -> absl::StatusOr<at::Tensor> {
    auto outputs = runner.Forward({tile});
    if (!outputs.ok()) return outputs.status();
    return outputs->at(0);
  };
}

class RealEsrganTest : public testing::TestWithParam<int> {};

// The check: tiled upscaling of a photo equals untiled within 2 grey levels everywhere,
// seams included. The untiled reference runs the whole crop as one tile (x8 uses a 128 crop:
// its 192-channel upsampled activation for 256x256 would take 3 GB).
TEST_P(RealEsrganTest, TiledEqualsUntiledWithinTwoGreyLevelsOnAPhoto) {
  const int scale = GetParam();
  const std::string name = "esrgan-slim-x" + std::to_string(scale);
  IMGINTERP_REQUIRE_IMPORTED_MODEL("upscale", name);
  IMGINTERP_REQUIRE_SAMPLE("person.jpg");
  auto real = LoadReal(name);
  ASSERT_TRUE(real.ok()) << real.status();
  auto parsed = ParseEsrganConfig(name, real->config);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->scale, scale);
  const int overlap = parsed->tiles.tile_overlap;
  const cv::Mat rgb = PhotoCrop(scale == 8 ? 128 : 256);
  const TileUpscaler upscaler = RunnerUpscaler(*real->runner);

  TilingOptions untiled;
  untiled.scale = scale;
  untiled.tile_size = rgb.cols;
  auto reference = UpscaleTiled(rgb, untiled, upscaler);
  ASSERT_TRUE(reference.ok()) << reference.status();
  ASSERT_EQ(reference->tiles, 1);

  const int max_tile = MaxTileSize(scale, UpscaleOptions().max_tile_activation_bytes);
  for (int tile : {64, 128}) {
    if (tile > max_tile || tile >= rgb.cols) continue;
    // Feathering is measured once per scale, for comparison with the hard cut.
    for (int feather : tile == 64 ? std::vector<int>{0, overlap} : std::vector<int>{0}) {
      TilingOptions options;
      options.scale = scale;
      options.tile_size = tile;
      options.overlap = overlap;
      options.feather = feather;
      const auto start = std::chrono::steady_clock::now();
      auto tiled = UpscaleTiled(rgb, options, upscaler);
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count();
      ASSERT_TRUE(tiled.ok()) << tiled.status();
      const double difference = MaxDifference(tiled->rgb, reference->rgb);
      std::cout << "[ esrgan ] x" << scale << " " << rgb.cols << "x" << rgb.rows << " tile " << tile
                << " overlap " << overlap << (feather == 0 ? " hard cut" : " feathered") << ": "
                << tiled->tiles << " tiles, max difference " << difference << " grey levels, "
                << ms / tiled->tiles << " ms per tile\n";
      // The service blends with the hard cut; feathering is measured for comparison.
      if (feather == 0) {
        EXPECT_LE(difference, 2) << "tile " << tile;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Scales, RealEsrganTest, testing::Values(2, 3, 4, 8),
                         [](const auto& info) { return "x" + std::to_string(info.param); });

// The handler end to end on a photo with the real x2 model: an RGB PNG twice the size that looks
// like the photo (a 2x area downscale of it is close to the input).
TEST(RealEsrganHandlerTest, UpscalesAPhotoEndToEnd) {
  IMGINTERP_REQUIRE_IMPORTED_MODEL("upscale", "esrgan-slim-x2");
  IMGINTERP_REQUIRE_SAMPLE("person.jpg");
  auto real = LoadReal("esrgan-slim-x2");
  ASSERT_TRUE(real.ok()) << real.status();
  service::ModelLoadInfo info;
  info.name = "esrgan-slim-x2";
  info.config = real->config;
  auto instance = UpscaleHandler().CreateInstance(info, std::move(real->runner));
  ASSERT_TRUE(instance.ok()) << instance.status();
  cv::Mat bgr;
  cv::cvtColor(PhotoCrop(160), bgr, cv::COLOR_RGB2BGR);
  Outcome outcome = RunUpscale(**instance, Encode(bgr));
  ASSERT_TRUE(outcome.status.ok()) << outcome.status;
  EXPECT_EQ(outcome.response.scale(), 2);
  const cv::Mat png = DecodeAny(outcome.response.image().data());
  ASSERT_EQ(png.type(), CV_8UC3);
  ASSERT_EQ(png.size(), cv::Size(320, 320));
  cv::Mat down;
  cv::resize(png, down, bgr.size(), 0, 0, cv::INTER_AREA);
  cv::Mat diff;
  cv::absdiff(down, bgr, diff);
  EXPECT_LT(cv::mean(diff.reshape(1))[0], 6.0);

  // A 1x1 image runs through the real model too.
  Outcome one = RunUpscale(**instance, Encode(cv::Mat(1, 1, CV_8UC3, cv::Scalar(40, 90, 200))));
  ASSERT_TRUE(one.status.ok()) << one.status;
  EXPECT_EQ(one.response.image().width(), 2);
  EXPECT_EQ(one.response.image().height(), 2);
}

}  // namespace
}  // namespace imginterp::upscale
