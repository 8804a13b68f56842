// The ControlNet denoising loop replays diffusers' StableDiffusionControlNetPipeline on the tiny
// UNet/ControlNet/VAE (tiny_pipeline_controlnet.io: DDIM, 3 steps, guidance 7.5, conditioning
// scale 1.0, VAE scaling 0.18215) from the recorded latents and prompt embeddings, reproducing the
// final latents and the image.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "services/models/diffusion/controlnet.h"
#include "services/models/diffusion/controlnet_pipeline.h"
#include "services/models/diffusion/scheduler.h"
#include "services/models/diffusion/unet.h"
#include "services/models/diffusion/vae.h"
#include "tests/unit/diffusion/models_test_util.h"

namespace imginterp::diffusion {
namespace {

using testing::DtypeParity;
using testing::Get;
using testing::OpenOrFail;
using testing::TinyDir;

// The scheduler the reference pipeline ran (its __metadata__ note).
constexpr char kDdimConfig[] = R"({
  "_class_name": "DDIMScheduler", "beta_start": 0.00085, "beta_end": 0.012,
  "beta_schedule": "scaled_linear", "steps_offset": 1, "set_alpha_to_one": false,
  "clip_sample": false, "num_train_timesteps": 1000})";

class PipelineReplay : public DtypeParity {
 protected:
  void SetUp() override {
    auto unet_config = UNet2DConditionConfig::FromFile(TinyDir() + "tiny_unet.config.json");
    auto cn_config = ControlNetConfig::FromFile(TinyDir() + "tiny_controlnet.config.json");
    auto vae_config = AutoencoderKLConfig::FromFile(TinyDir() + "tiny_vae.config.json");
    ASSERT_TRUE(unet_config.ok() && cn_config.ok() && vae_config.ok());
    auto unet_weights = OpenOrFail(TinyDir() + "tiny_unet.weights.safetensors");
    auto cn_weights = OpenOrFail(TinyDir() + "tiny_controlnet.weights.safetensors");
    auto vae_weights = OpenOrFail(TinyDir() + "tiny_vae.weights.safetensors");
    io_ = OpenOrFail(TinyDir() + "tiny_pipeline_controlnet.io.safetensors");
    ASSERT_TRUE(unet_weights && cn_weights && vae_weights && io_);
    auto unet = LoadUNet2DConditionModel(*unet_config, *unet_weights, Options());
    auto controlnet = LoadControlNetModel(*cn_config, *cn_weights, Options());
    auto vae = LoadAutoencoderKL(*vae_config, *vae_weights, Options());
    ASSERT_TRUE(unet.ok()) << unet.status();
    ASSERT_TRUE(controlnet.ok()) << controlnet.status();
    ASSERT_TRUE(vae.ok()) << vae.status();
    unet_ = *unet;
    controlnet_ = *controlnet;
    vae_ = *vae;
  }

  DenoiseInputs Inputs() const {
    DenoiseInputs inputs;
    inputs.latents = Get(*io_, "in.latents");
    inputs.prompt_embeds = Get(*io_, "in.prompt_embeds");
    inputs.negative_prompt_embeds = Get(*io_, "in.negative_prompt_embeds");
    return inputs;
  }

  std::vector<ControlNetUnit> Units() {
    ControlNetUnit unit;
    unit.model = controlnet_.get();
    unit.image = Get(*io_, "in.controlnet_image");
    unit.conditioning_scale = 1.0;
    return {unit};
  }

  std::unique_ptr<models::SafetensorsFile> io_;
  UNet2DConditionModel unet_{nullptr};
  ControlNetModel controlnet_{nullptr};
  AutoencoderKL vae_{nullptr};
};

TEST_P(PipelineReplay, DdimControlNetRunReproducesDiffusersLatentsAndImage) {
  auto scheduler = MakeScheduler(kDdimConfig);
  ASSERT_TRUE(scheduler.ok()) << scheduler.status();
  ASSERT_TRUE((*scheduler)->SetTimesteps(3).ok());
  const torch::Tensor recorded = Get(*io_, "in.timesteps");
  ASSERT_EQ((*scheduler)->Timesteps().size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ((*scheduler)->Timesteps()[i], recorded[i].item<int64_t>()) << "timestep " << i;
  }
  DenoiseOptions options;
  options.guidance_scale = 7.5;
  int callbacks = 0;
  auto latents =
      DenoiseLatents(*unet_, Units(), **scheduler, Inputs(), options, [&](int done, int total) {
        EXPECT_EQ(done, ++callbacks);
        EXPECT_EQ(total, 3);
        return true;
      });
  ASSERT_TRUE(latents.ok()) << latents.status();
  EXPECT_EQ(callbacks, 3);
  EXPECT_EQ(latents->scalar_type(), GetParam());
  testing::ExpectClose(Label("pipeline.latents"), *latents, Get(*io_, "out.latents"));
  auto image = DecodeLatentsToImage(*vae_, *latents);
  ASSERT_TRUE(image.ok()) << image.status();
  testing::ExpectClose(Label("pipeline.image"), *image, Get(*io_, "out.image"));
  EXPECT_GE(image->min().item<double>(), 0.0);
  EXPECT_LE(image->max().item<double>(), 1.0);
}

// Behaviour that does not depend on the dtype runs in float32 only.
using PipelineLoop = PipelineReplay;

TEST_P(PipelineLoop, ControlNetChangesTheResultAndACallbackCanCancel) {
  auto with_cn = MakeScheduler(kDdimConfig);
  auto without_cn = MakeScheduler(kDdimConfig);
  ASSERT_TRUE(with_cn.ok() && without_cn.ok());
  ASSERT_TRUE((*with_cn)->SetTimesteps(3).ok() && (*without_cn)->SetTimesteps(3).ok());
  auto a = DenoiseLatents(*unet_, Units(), **with_cn, Inputs());
  auto b = DenoiseLatents(*unet_, {}, **without_cn, Inputs());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_GT((*a - *b).abs().max().item<double>(), 1e-3);

  auto cancelled_scheduler = MakeScheduler(kDdimConfig);
  ASSERT_TRUE(cancelled_scheduler.ok());
  ASSERT_TRUE((*cancelled_scheduler)->SetTimesteps(3).ok());
  auto cancelled = DenoiseLatents(*unet_, Units(), **cancelled_scheduler, Inputs(), {},
                                  [](int done, int) { return done < 2; });
  EXPECT_EQ(cancelled.status().code(), absl::StatusCode::kCancelled);
}

TEST_P(PipelineLoop, MismatchedInputsAreRejectedNamingThem) {
  auto scheduler = MakeScheduler(kDdimConfig);
  ASSERT_TRUE(scheduler.ok());
  ASSERT_TRUE((*scheduler)->SetTimesteps(3).ok());
  DenoiseInputs inputs = Inputs();
  inputs.negative_prompt_embeds = torch::zeros({1, 77, 16});
  auto result = DenoiseLatents(*unet_, Units(), **scheduler, inputs);
  ASSERT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(result.status().message().find("negative_prompt_embeds"), std::string::npos);
  std::vector<ControlNetUnit> units = Units();
  units[0].image = torch::zeros({1, 3, 64, 64});
  auto wrong_image = DenoiseLatents(*unet_, units, **scheduler, Inputs());
  EXPECT_FALSE(wrong_image.ok());
}

INSTANTIATE_TEST_SUITE_P(Dtypes, PipelineReplay, ::testing::Values(torch::kDouble, torch::kFloat),
                         [](const auto& info) { return std::string(c10::toString(info.param)); });
INSTANTIATE_TEST_SUITE_P(Float, PipelineLoop, ::testing::Values(torch::kFloat),
                         [](const auto& info) { return std::string(c10::toString(info.param)); });

}  // namespace
}  // namespace imginterp::diffusion
