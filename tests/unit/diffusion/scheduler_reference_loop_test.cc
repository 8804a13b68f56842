// Whole denoising loops compared with the results diffusers 0.27.2 publishes for its own scheduler
// tests (tests/schedulers/test_scheduler_*.py there: the sum and mean of |sample| after a
// 10-step loop, with the tolerances used there: 1e-2 on sums, 1e-3 on means). The loop drives
// each scheduler with a toy "model" that returns sample * t / (t + 1), starting from a fixed
// ramp of values; only the numbers are taken from diffusers.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <string>

#include "services/models/diffusion/noise.h"
#include "services/models/diffusion/scheduler.h"

namespace imginterp::diffusion {
namespace {

// 0, 1, ..., 767 laid out as [3, 8, 8, 4], divided by 768, then moved to [4, 3, 8, 8].
at::Tensor Ramp(bool descending) {
  at::Tensor values = at::arange(768, at::kLong);
  if (descending) values = values.flip(-1);
  return (values.reshape({3, 8, 8, 4}) / 768).permute({3, 0, 1, 2});
}
at::Tensor DeterministicSample() { return Ramp(false); }
at::Tensor DeterministicNoise() { return Ramp(true); }

at::Tensor ToyModel(const at::Tensor& sample, double t) {
  const at::Tensor tt = at::full({1, 1, 1, 1}, t, sample.options());
  return sample * tt / (tt + 1);
}

std::unique_ptr<Scheduler> MakeFromConfig(const std::string& class_name,
                                          const std::string& config) {
  auto scheduler = MakeScheduler("{\"_class_name\": \"" + class_name + "\", " + config + "}");
  EXPECT_TRUE(scheduler.ok()) << scheduler.status();
  return scheduler.ok() ? std::move(*scheduler) : nullptr;
}

struct Loop {
  std::string class_name;
  std::string config;
  bool scale_input = false;    // the sigma schedulers' loop: scale, then step on the scaled
  bool use_generator = false;  // a generator seeded with 0 passed to every step
  int noise_from_step = -1;    // >= 0: img2img-style start, AddNoise at that step
};

at::Tensor RunLoop(const Loop& loop) {
  auto scheduler = MakeFromConfig(loop.class_name, loop.config);
  if (scheduler == nullptr) return at::Tensor();
  EXPECT_TRUE(scheduler->SetTimesteps(10).ok());
  at::Tensor sample = DeterministicSample() * scheduler->InitNoiseSigma();
  std::vector<double> timesteps = scheduler->Timesteps();
  if (loop.noise_from_step >= 0) {
    timesteps.erase(timesteps.begin(), timesteps.begin() + loop.noise_from_step);
    auto noisy = scheduler->AddNoise(sample, DeterministicNoise(), timesteps.front());
    EXPECT_TRUE(noisy.ok()) << noisy.status();
    sample = *noisy;
  }
  StepOptions options;
  if (loop.use_generator) options.generator = MakeCpuGenerator(0);
  for (double t : timesteps) {
    if (loop.scale_input) {
      auto scaled = scheduler->ScaleModelInput(sample, t);
      EXPECT_TRUE(scaled.ok()) << scaled.status();
      sample = *scaled;
    }
    auto result = scheduler->Step(ToyModel(sample, t), t, sample, options);
    EXPECT_TRUE(result.ok()) << result.status();
    if (!result.ok()) return at::Tensor();
    sample = result->prev_sample;
  }
  return sample;
}

void ExpectSumAndMean(const at::Tensor& sample, double sum, double mean) {
  ASSERT_TRUE(sample.defined());
  EXPECT_NEAR(sample.abs().sum().item<double>(), sum, 1e-2);
  EXPECT_NEAR(sample.abs().mean().item<double>(), mean, 1e-3);
}

void ExpectMean(const at::Tensor& sample, double mean) {
  ASSERT_TRUE(sample.defined());
  EXPECT_NEAR(sample.abs().mean().item<double>(), mean, 1e-3);
}

constexpr char kLinear[] =
    R"("num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02, )"
    R"("beta_schedule": "linear")";
constexpr char kLinear1100[] =
    R"("num_train_timesteps": 1100, "beta_start": 0.0001, "beta_end": 0.02, )"
    R"("beta_schedule": "linear")";

TEST(DiffusersReferenceLoopTest, Ddim) {
  const std::string base = std::string(kLinear) + R"(, "clip_sample": true)";
  ExpectSumAndMean(RunLoop({"DDIMScheduler", base}), 172.0067, 0.223967);
  ExpectSumAndMean(RunLoop({"DDIMScheduler", base + R"(, "prediction_type": "v_prediction")"}),
                   52.5302, 0.0684);
  // beta_start 0.01 makes alpha_bar_0 = 0.99, so set_alpha_to_one visibly matters.
  const std::string beta01 = R"("beta_start": 0.01, "beta_end": 0.02, "clip_sample": true)";
  ExpectSumAndMean(RunLoop({"DDIMScheduler", beta01 + R"(, "set_alpha_to_one": true)"}), 149.8295,
                   0.1951);
  ExpectSumAndMean(RunLoop({"DDIMScheduler", beta01 + R"(, "set_alpha_to_one": false)"}), 149.0784,
                   0.1941);
  ExpectSumAndMean(RunLoop({"DDIMScheduler", base, false, false, 8}), 354.5418, 0.4616);
}

TEST(DiffusersReferenceLoopTest, PndmWithRungeKuttaWarmUp) {
  ExpectSumAndMean(RunLoop({"PNDMScheduler", kLinear}), 198.1318, 0.2580);
  ExpectSumAndMean(
      RunLoop({"PNDMScheduler", std::string(kLinear) + R"(, "prediction_type": "v_prediction")"}),
      67.3986, 0.0878);
  const std::string beta01 = R"("beta_start": 0.01, "beta_end": 0.02)";
  ExpectSumAndMean(RunLoop({"PNDMScheduler", beta01 + R"(, "set_alpha_to_one": true)"}), 230.0399,
                   0.2995);
  ExpectSumAndMean(RunLoop({"PNDMScheduler", beta01 + R"(, "set_alpha_to_one": false)"}), 186.9482,
                   0.2434);
}

TEST(DiffusersReferenceLoopTest, Euler) {
  ExpectSumAndMean(RunLoop({"EulerDiscreteScheduler", kLinear1100, true, true}), 10.0807, 0.0131);
  ExpectSumAndMean(
      RunLoop({"EulerDiscreteScheduler",
               std::string(kLinear1100) + R"(, "prediction_type": "v_prediction")", true, true}),
      0.0002, 2.2676e-06);
  ExpectSumAndMean(
      RunLoop({"EulerDiscreteScheduler",
               std::string(kLinear1100) + R"(, "use_karras_sigmas": true)", true, true}),
      124.52299499511719, 0.16213932633399963);
  ExpectSumAndMean(RunLoop({"EulerDiscreteScheduler", kLinear1100, true, true, 8}), 57062.9297,
                   74.3007);
}

TEST(DiffusersReferenceLoopTest, EulerAncestralDrawsTheSameNoiseAsTorch) {
  ExpectSumAndMean(RunLoop({"EulerAncestralDiscreteScheduler", kLinear1100, true, true}), 152.3192,
                   0.1983);
  ExpectSumAndMean(
      RunLoop({"EulerAncestralDiscreteScheduler",
               std::string(kLinear1100) + R"(, "prediction_type": "v_prediction")", true, true}),
      108.4439, 0.1412);
  ExpectSumAndMean(RunLoop({"EulerAncestralDiscreteScheduler", kLinear1100, true, true, 8}),
                   56163.0508, 73.1290);
}

TEST(DiffusersReferenceLoopTest, DpmSolverPlusPlus2M) {
  const std::string base = std::string(kLinear) +
                           R"(, "solver_order": 2, "algorithm_type": "dpmsolver++", )"
                           R"("solver_type": "midpoint", "lower_order_final": false, )"
                           R"("final_sigmas_type": "sigma_min")";
  ExpectMean(RunLoop({"DPMSolverMultistepScheduler", base}), 0.3301);
  const std::string v = base + R"(, "prediction_type": "v_prediction")";
  ExpectMean(RunLoop({"DPMSolverMultistepScheduler", v}), 0.2251);
  ExpectMean(RunLoop({"DPMSolverMultistepScheduler", v + R"(, "use_karras_sigmas": true)"}),
             0.2096);
  ExpectMean(RunLoop({"DPMSolverMultistepScheduler", v + R"(, "use_lu_lambdas": true)"}), 0.1554);
  ExpectSumAndMean(RunLoop({"DPMSolverMultistepScheduler", base, false, false, 5}), 318.4111,
                   0.4146);
}

}  // namespace
}  // namespace imginterp::diffusion
