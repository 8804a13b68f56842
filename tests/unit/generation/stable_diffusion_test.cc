// StableDiffusionPipeline on the tiny random-weight SD1.5 + ControlNet set
// (deploy/models/make_tiny_set.py): the diffusers reference run, seeds, several ControlNets against
// a hand-written loop over the native models, img2img, interpolation, cancellation and errors.
#include "services/models/generation/stable_diffusion.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "services/models/diffusion/controlnet.h"
#include "services/models/diffusion/noise.h"
#include "services/models/diffusion/scheduler.h"
#include "services/models/diffusion/unet.h"
#include "services/models/diffusion/vae.h"
#include "services/models/io/safetensors_file.h"
#include "tests/support/tensor_compare.h"

namespace imginterp::generation {
namespace {

namespace fs = std::filesystem;

const std::string kPipelineDir = IMGINTERP_TINY_PIPELINE_DIR;

// The `controlnet.<kind>` parameters of the tiny model's config.pbtxt.
std::map<std::string, std::string> ControlNetsFromConfig() {
  std::ifstream in(fs::path(kPipelineDir).parent_path() / "config.pbtxt");
  std::stringstream text;
  text << in.rdbuf();
  const std::string config = text.str();
  std::map<std::string, std::string> controlnets;
  const std::regex parameter(R"re(key:\s*"controlnet\.([a-z_]+)"\s*value:\s*"([^"]+)")re");
  for (auto it = std::sregex_iterator(config.begin(), config.end(), parameter);
       it != std::sregex_iterator(); ++it) {
    controlnets[(*it)[1]] = (*it)[2];
  }
  return controlnets;
}

using test_support::MaxAbsDiff;

// A [1, 3, h, w] image in [0, 1] drawn from `seed`.
at::Tensor RandomImage(int height, int width, uint64_t seed) {
  return at::rand({1, 3, height, width}, diffusion::MakeCpuGenerator(seed));
}

class StableDiffusionPipelineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    PipelineLoadOptions options;
    options.controlnets = ControlNetsFromConfig();
    auto loaded = StableDiffusionPipeline::Load(kPipelineDir, options);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    pipeline_ = std::move(loaded).value().release();
  }
  static void TearDownTestSuite() {
    delete pipeline_;
    pipeline_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(pipeline_, nullptr); }

  // A small text-to-image request (64x64 pixels, 8x8 latents).
  static GenerationRequest SmallRequest() {
    GenerationRequest request;
    request.prompt = "a photo of a cat sitting on a wooden table";
    request.negative_prompt = "low quality blurry";
    request.width = 64;
    request.height = 64;
    request.num_inference_steps = 3;
    request.guidance_scale = 7.5;
    request.seed = 42;
    return request;
  }

  static GenerationResult GenerateOrFail(const GenerationRequest& request) {
    auto result = pipeline_->Generate(request);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *std::move(result) : GenerationResult{};
  }

  static StableDiffusionPipeline* pipeline_;
};

StableDiffusionPipeline* StableDiffusionPipelineTest::pipeline_ = nullptr;

TEST_F(StableDiffusionPipelineTest, DescribesTheTinyPipeline) {
  EXPECT_EQ(
      pipeline_->ControlNetKinds(),
      (std::vector<std::string>{"canny", "depth", "lineart", "pose", "scribble", "segmentation"}));
  EXPECT_EQ(pipeline_->vae_scale_factor(), 8);
  EXPECT_EQ(pipeline_->latent_channels(), 4);
  EXPECT_EQ(pipeline_->default_size(), 64);
  EXPECT_EQ(pipeline_->scheduler_class(), "DDIMScheduler");
  EXPECT_GT(pipeline_->parameter_bytes(), 0);
  EXPECT_FALSE(pipeline_->on_cuda() && !torch::cuda::is_available());
  auto embeds = pipeline_->EncodePrompt("a photo of a cat");
  ASSERT_TRUE(embeds.ok()) << embeds.status();
  EXPECT_EQ(embeds->sizes(), (std::vector<int64_t>{1, 77, 32}));
}

TEST_F(StableDiffusionPipelineTest, ReplaysTheDiffusersControlNetPipelineRun) {
  auto io =
      models::SafetensorsFile::Open(std::string(IMGINTERP_REFERENCE_DIR) +
                                    "/diffusion/tiny/tiny_pipeline_controlnet.io.safetensors");
  ASSERT_TRUE(io.ok()) << io.status();
  auto get = [&](const char* name) {
    auto tensor = (*io)->Tensor(name);
    EXPECT_TRUE(tensor.ok()) << tensor.status();
    return tensor.ok() ? *tensor : at::Tensor();
  };
  GenerationRequest request;
  request.prompt_embeds = get("in.prompt_embeds");
  request.negative_prompt_embeds = get("in.negative_prompt_embeds");
  request.latents = get("in.latents");
  request.width = 192;
  request.height = 128;
  request.num_inference_steps = 3;
  request.guidance_scale = 7.5;
  ControlCondition canny;
  canny.kind = "canny";
  canny.image = get("in.controlnet_image");
  canny.conditioning_scale = 1.0;
  request.controls.push_back(canny);

  const GenerationResult result = GenerateOrFail(request);
  ASSERT_TRUE(result.images.defined());
  const double latents_error = MaxAbsDiff(result.latents, get("out.latents"));
  const double image_error = MaxAbsDiff(result.images, get("out.image"));
  std::cout << "[ max error ] generation.latents: " << latents_error << "\n"
            << "[ max error ] generation.image: " << image_error << "\n"
            << "[ timing    ] tiny pipeline, 192x128: "
            << 1e3 * result.timings.denoise_seconds / result.timings.steps_run
            << " ms per step (ControlNet "
            << 1e3 * result.timings.controlnet_seconds / result.timings.steps_run
            << " ms), VAE decode " << 1e3 * result.timings.vae_decode_seconds << " ms" << std::endl;
  EXPECT_LT(latents_error, 1e-4);
  EXPECT_LT(image_error, 1e-4);
  EXPECT_EQ(result.timings.steps_run, 3);
  EXPECT_TRUE(torch::equal(result.initial_latents, request.latents));
  EXPECT_EQ(result.images.scalar_type(), torch::kFloat);
  EXPECT_TRUE(result.images.device().is_cpu());
}

TEST_F(StableDiffusionPipelineTest, SeedsDetermineTheImagesAndImageIUsesSeedPlusI) {
  GenerationRequest request = SmallRequest();
  const GenerationResult first = GenerateOrFail(request);
  const GenerationResult again = GenerateOrFail(request);
  ASSERT_TRUE(first.images.defined() && again.images.defined());
  EXPECT_EQ(first.images.sizes(), (std::vector<int64_t>{1, 3, 64, 64}));
  EXPECT_TRUE(torch::equal(first.images, again.images));

  request.seed = 43;
  const GenerationResult other = GenerateOrFail(request);
  ASSERT_TRUE(other.images.defined());
  EXPECT_GT(MaxAbsDiff(first.images, other.images), 1e-3);

  request.seed = 42;
  request.num_images = 2;
  const GenerationResult pair = GenerateOrFail(request);
  ASSERT_TRUE(pair.images.defined());
  EXPECT_EQ(pair.images.size(0), 2);
  EXPECT_EQ(pair.seeds, (std::vector<uint64_t>{42, 43}));
  EXPECT_TRUE(torch::equal(pair.images[0], first.images[0]));
  EXPECT_TRUE(torch::equal(pair.images[1], other.images[0]));
  auto noise_42 = diffusion::InitialNoise({1, 4, 8, 8}, 42);
  auto noise_43 = diffusion::InitialNoise({1, 4, 8, 8}, 43);
  ASSERT_TRUE(noise_42.ok() && noise_43.ok());
  EXPECT_TRUE(torch::equal(pair.initial_latents, torch::cat({*noise_42, *noise_43})));
  EXPECT_EQ(pair.timings.steps_run, 6);
}

// The native models loaded by the test itself, for hand-written loops.
struct TinyModels {
  diffusion::UNet2DConditionModel unet{nullptr};
  diffusion::ControlNetModel controlnet{nullptr};
  diffusion::AutoencoderKL vae{nullptr};
};

TinyModels LoadTinyModels() {
  TinyModels models;
  auto unet = diffusion::LoadUNet2DConditionModelFromFolder(kPipelineDir + "/unet");
  auto controlnet = diffusion::LoadControlNetModelFromFolder(kPipelineDir + "/controlnet/tiny");
  auto vae = diffusion::LoadAutoencoderKLFromFolder(kPipelineDir + "/vae");
  EXPECT_TRUE(unet.ok()) << unet.status();
  EXPECT_TRUE(controlnet.ok()) << controlnet.status();
  EXPECT_TRUE(vae.ok()) << vae.status();
  if (unet.ok()) models.unet = *unet;
  if (controlnet.ok()) models.controlnet = *controlnet;
  if (vae.ok()) models.vae = *vae;
  return models;
}

TEST_F(StableDiffusionPipelineTest, TwoControlNetsSumTheirResidualsLikeAHandWrittenLoop) {
  GenerationRequest request = SmallRequest();
  request.width = 64;
  request.height = 48;
  ControlCondition canny;
  canny.kind = "canny";
  canny.image = RandomImage(48, 64, 7);
  canny.conditioning_scale = 0.8;
  ControlCondition pose;
  pose.kind = "pose";
  pose.image = RandomImage(48, 64, 8);
  pose.conditioning_scale = 1.3;
  request.controls = {canny, pose};
  const GenerationResult result = GenerateOrFail(request);
  ASSERT_TRUE(result.images.defined());

  TinyModels models = LoadTinyModels();
  ASSERT_TRUE(models.unet && models.controlnet && models.vae);
  auto scheduler =
      diffusion::MakeSchedulerFromFile(kPipelineDir + "/scheduler/scheduler_config.json");
  ASSERT_TRUE(scheduler.ok()) << scheduler.status();
  ASSERT_TRUE((*scheduler)->SetTimesteps(request.num_inference_steps).ok());
  auto positive = pipeline_->EncodePrompt(request.prompt);
  auto negative = pipeline_->EncodePrompt(request.negative_prompt);
  auto noise = diffusion::InitialNoise({1, 4, 6, 8}, request.seed);
  ASSERT_TRUE(positive.ok() && negative.ok() && noise.ok());

  torch::NoGradGuard no_grad;
  const at::Tensor embeds = torch::cat({*negative, *positive});
  at::Tensor latents = *noise * (*scheduler)->InitNoiseSigma();
  for (double t : (*scheduler)->Timesteps()) {
    const at::Tensor timestep = torch::tensor(t, torch::kDouble);
    auto input = (*scheduler)->ScaleModelInput(torch::cat({latents, latents}), t);
    ASSERT_TRUE(input.ok());
    const diffusion::ControlNetOutput a = models.controlnet->forward(
        *input, timestep, embeds, torch::cat({canny.image, canny.image}), canny.conditioning_scale);
    const diffusion::ControlNetOutput b = models.controlnet->forward(
        *input, timestep, embeds, torch::cat({pose.image, pose.image}), pose.conditioning_scale);
    std::vector<at::Tensor> down;
    for (size_t i = 0; i < a.down_block_res_samples.size(); ++i) {
      down.push_back(a.down_block_res_samples[i] + b.down_block_res_samples[i]);
    }
    const at::Tensor mid = a.mid_block_res_sample + b.mid_block_res_sample;
    const auto halves = models.unet->forward(*input, timestep, embeds, down, mid).chunk(2);
    const at::Tensor eps = halves[0] + request.guidance_scale * (halves[1] - halves[0]);
    auto step = (*scheduler)->Step(eps, t, latents);
    ASSERT_TRUE(step.ok()) << step.status();
    latents = step->prev_sample;
  }
  const at::Tensor image =
      (models.vae->Decode(latents / models.vae->scaling_factor()) / 2 + 0.5).clamp(0, 1);
  const double latents_error = MaxAbsDiff(result.latents, latents);
  const double image_error = MaxAbsDiff(result.images, image);
  std::cout << "[ max error ] two ControlNets vs hand loop: latents " << latents_error << ", image "
            << image_error << std::endl;
  EXPECT_LT(latents_error, 1e-5);
  EXPECT_LT(image_error, 1e-5);

  // The second ControlNet matters: dropping it changes the result.
  request.controls = {canny};
  const GenerationResult canny_only = GenerateOrFail(request);
  ASSERT_TRUE(canny_only.images.defined());
  EXPECT_GT(MaxAbsDiff(canny_only.latents, result.latents), 1e-4);
}

TEST_F(StableDiffusionPipelineTest, AControlWithAnEmptyWindowIsNeverApplied) {
  GenerationRequest request = SmallRequest();
  const GenerationResult plain = GenerateOrFail(request);
  ControlCondition canny;
  canny.kind = "canny";
  canny.image = RandomImage(64, 64, 9);
  canny.guidance_end = 0.0;
  request.controls = {canny};
  const GenerationResult windowed = GenerateOrFail(request);
  ASSERT_TRUE(plain.images.defined() && windowed.images.defined());
  EXPECT_TRUE(torch::equal(plain.images, windowed.images));
  // The same condition over the whole run does change the image.
  request.controls[0].guidance_end = 1.0;
  const GenerationResult applied = GenerateOrFail(request);
  ASSERT_TRUE(applied.images.defined());
  EXPECT_GT(MaxAbsDiff(plain.latents, applied.latents), 1e-4);
}

TEST_F(StableDiffusionPipelineTest, ImageToImageSkipsStepsByStrengthAndFollowsTheInitImage) {
  GenerationRequest request = SmallRequest();
  request.width = 96;
  request.height = 64;
  request.num_inference_steps = 10;
  request.strength = 0.5;
  request.init_image = RandomImage(64, 96, 11);
  int total_seen = 0;
  auto result = pipeline_->Generate(request, [&](int, int total) {
    total_seen = total;
    return true;
  });
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->images.sizes(), (std::vector<int64_t>{1, 3, 64, 96}));
  EXPECT_EQ(result->latents.sizes(), (std::vector<int64_t>{1, 4, 8, 12}));
  EXPECT_EQ(result->timings.steps_run, static_cast<int>(10 * 0.5));
  EXPECT_EQ(total_seen, 5);
  EXPECT_GT(result->timings.vae_encode_seconds, 0.0);

  const GenerationResult again = GenerateOrFail(request);
  ASSERT_TRUE(again.images.defined());
  EXPECT_TRUE(torch::equal(result->images, again.images));

  request.init_image = RandomImage(64, 96, 12);
  const GenerationResult other = GenerateOrFail(request);
  ASSERT_TRUE(other.images.defined());
  EXPECT_GT(MaxAbsDiff(result->images, other.images), 1e-3);
}

TEST_F(StableDiffusionPipelineTest, InterpolationFramesAreSlerpedNoiseAndLerpedPrompts) {
  InterpolationRequest request;
  request.base = SmallRequest();
  request.base.prompt = "a photo of a cat";
  request.base.seed = 1;
  request.seed_b = 2;
  request.prompt_b = "a dog running on the beach";
  request.frames = 3;
  auto result = pipeline_->Interpolate(request);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->images.sizes(), (std::vector<int64_t>{3, 3, 64, 64}));
  EXPECT_EQ(result->t, (std::vector<double>{0.0, 0.5, 1.0}));
  EXPECT_EQ(result->timings.steps_run, 9);

  auto embeds_a = pipeline_->EncodePrompt(request.base.prompt);
  auto embeds_b = pipeline_->EncodePrompt(request.prompt_b);
  auto negative = pipeline_->EncodePrompt(request.base.negative_prompt);
  auto noise_a = diffusion::InitialNoise({1, 4, 8, 8}, 1);
  auto noise_b = diffusion::InitialNoise({1, 4, 8, 8}, 2);
  ASSERT_TRUE(embeds_a.ok() && embeds_b.ok() && negative.ok() && noise_a.ok() && noise_b.ok());
  auto middle_noise = diffusion::SlerpNoise(*noise_a, *noise_b, 0.5);
  ASSERT_TRUE(middle_noise.ok());
  GenerationRequest middle = request.base;
  middle.latents = *middle_noise;
  middle.prompt_embeds = torch::lerp(*embeds_a, *embeds_b, 0.5);
  middle.negative_prompt_embeds = *negative;
  const GenerationResult middle_run = GenerateOrFail(middle);
  ASSERT_TRUE(middle_run.images.defined());
  EXPECT_LT(MaxAbsDiff(result->images[1], middle_run.images[0]), 1e-5);

  GenerationRequest start = request.base;
  GenerationRequest end = request.base;
  end.prompt = request.prompt_b;
  end.seed = request.seed_b;
  const GenerationResult start_run = GenerateOrFail(start);
  const GenerationResult end_run = GenerateOrFail(end);
  ASSERT_TRUE(start_run.images.defined() && end_run.images.defined());
  EXPECT_LT(MaxAbsDiff(result->images[0], start_run.images[0]), 1e-5);
  EXPECT_LT(MaxAbsDiff(result->images[2], end_run.images[0]), 1e-5);
  // The middle frame is neither endpoint.
  EXPECT_GT(MaxAbsDiff(result->images[1], result->images[0]), 1e-3);
  EXPECT_GT(MaxAbsDiff(result->images[1], result->images[2]), 1e-3);
}

TEST_F(StableDiffusionPipelineTest, AProgressCallbackReturningFalseCancels) {
  GenerationRequest request = SmallRequest();
  int calls = 0;
  auto cancelled = pipeline_->Generate(request, [&](int, int) {
    ++calls;
    return false;
  });
  EXPECT_EQ(cancelled.status().code(), absl::StatusCode::kCancelled) << cancelled.status();
  EXPECT_EQ(calls, 1);
}

TEST_F(StableDiffusionPipelineTest, ProgressCountsEveryStepOfEveryImage) {
  GenerationRequest request = SmallRequest();
  request.num_images = 2;
  std::vector<std::pair<int, int>> calls;
  auto result = pipeline_->Generate(request, [&](int done, int total) {
    calls.emplace_back(done, total);
    return true;
  });
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(calls.size(), 6u);
  for (size_t i = 0; i < calls.size(); ++i) {
    EXPECT_EQ(calls[i].first, static_cast<int>(i) + 1);
    EXPECT_EQ(calls[i].second, 3 * 2);
  }
}

void ExpectError(const absl::StatusOr<GenerationResult>& result, absl::StatusCode code,
                 const std::vector<std::string>& mentions) {
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), code) << result.status();
  for (const std::string& word : mentions) {
    EXPECT_NE(result.status().message().find(word), std::string::npos)
        << "'" << result.status().message() << "' should mention '" << word << "'";
  }
}

TEST_F(StableDiffusionPipelineTest, RejectsAWidthThatIsNotAMultipleOfEight) {
  GenerationRequest request = SmallRequest();
  request.width = 100;
  ExpectError(pipeline_->Generate(request), absl::StatusCode::kInvalidArgument, {"width", "8"});
}

TEST_F(StableDiffusionPipelineTest, RejectsZeroSteps) {
  GenerationRequest request = SmallRequest();
  request.num_inference_steps = 0;
  ExpectError(pipeline_->Generate(request), absl::StatusCode::kInvalidArgument,
              {"num_inference_steps"});
}

TEST_F(StableDiffusionPipelineTest, UnknownControlKindIsNotFoundAndListsTheKinds) {
  GenerationRequest request = SmallRequest();
  ControlCondition control;
  control.kind = "normal_map";
  control.image = RandomImage(64, 64, 1);
  request.controls = {control};
  ExpectError(pipeline_->Generate(request), absl::StatusCode::kNotFound,
              {"normal_map", "canny", "pose", "segmentation"});
}

TEST_F(StableDiffusionPipelineTest, RejectsAControlImageOfTheWrongSize) {
  GenerationRequest request = SmallRequest();
  ControlCondition control;
  control.kind = "depth";
  control.image = RandomImage(32, 64, 1);
  request.controls = {control};
  ExpectError(pipeline_->Generate(request), absl::StatusCode::kInvalidArgument,
              {"controls[0]", "[1, 3, 64, 64]"});
}

TEST_F(StableDiffusionPipelineTest, RejectsPromptEmbeddingsOfTheWrongShape) {
  GenerationRequest request = SmallRequest();
  request.prompt_embeds = torch::zeros({1, 77, 16});
  ExpectError(pipeline_->Generate(request), absl::StatusCode::kInvalidArgument,
              {"prompt_embeds", "32"});
}

TEST_F(StableDiffusionPipelineTest, RejectsAnUnknownScheduler) {
  GenerationRequest request = SmallRequest();
  request.scheduler = "no_such_sampler";
  ExpectError(pipeline_->Generate(request), absl::StatusCode::kInvalidArgument,
              {"no_such_sampler"});
}

TEST_F(StableDiffusionPipelineTest, AnotherSchedulerByAliasRunsAndChangesTheResult) {
  GenerationRequest request = SmallRequest();
  const GenerationResult ddim = GenerateOrFail(request);
  request.scheduler = "euler";
  const GenerationResult euler = GenerateOrFail(request);
  ASSERT_TRUE(ddim.images.defined() && euler.images.defined());
  EXPECT_GT(MaxAbsDiff(ddim.images, euler.images), 1e-4);

  // An ancestral sampler draws step noise from the image's generator: img2img with it starts at
  // the strength's timestep and is still reproducible by seed.
  request.scheduler = "euler_a";
  request.num_inference_steps = 4;
  request.strength = 0.5;
  request.init_image = RandomImage(64, 64, 13);
  const GenerationResult ancestral = GenerateOrFail(request);
  const GenerationResult ancestral_again = GenerateOrFail(request);
  ASSERT_TRUE(ancestral.images.defined() && ancestral_again.images.defined());
  EXPECT_EQ(ancestral.timings.steps_run, 2);
  EXPECT_TRUE(torch::equal(ancestral.images, ancestral_again.images));
  request.seed += 1;
  const GenerationResult ancestral_other = GenerateOrFail(request);
  ASSERT_TRUE(ancestral_other.images.defined());
  EXPECT_GT(MaxAbsDiff(ancestral.images, ancestral_other.images), 1e-4);
}

TEST(StableDiffusionPipelineLoad, AFolderWithoutUnetIsNotFoundNamingIt) {
  const fs::path copy =
      fs::temp_directory_path() / ("generation_test_no_unet_" + std::to_string(::getpid()));
  fs::remove_all(copy);
  fs::copy(kPipelineDir, copy, fs::copy_options::recursive);
  fs::remove_all(copy / "unet");
  auto loaded = StableDiffusionPipeline::Load(copy.string());
  fs::remove_all(copy);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kNotFound) << loaded.status();
  EXPECT_NE(loaded.status().message().find("unet"), std::string::npos) << loaded.status();
}

}  // namespace
}  // namespace imginterp::generation
