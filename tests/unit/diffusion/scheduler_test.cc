// Scheduler tests against values derived independently of the implementation.
//
// The SD1.5 noise schedule in closed form: beta_i = (sqrt(0.00085) + i / 999 * (sqrt(0.012) -
// sqrt(0.00085)))^2 for i = 0..999 ("scaled_linear"), alpha_bar_t = prod_{i <= t} (1 - beta_i),
// sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t). The tests compute these in float64; the
// schedulers compute them in float32 exactly as diffusers does, so the two agree to ~1e-5
// relative (the float32 cumulative product over 1000 terms). Update formulas are checked against
// the scheduler's own alpha_bar table, where float32 rounding is the only difference.
#include "services/models/diffusion/scheduler.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "services/models/diffusion/noise.h"
#include "services/models/diffusion/scheduler_ddim.h"
#include "services/models/diffusion/scheduler_dpm_solver.h"
#include "services/models/diffusion/scheduler_euler.h"
#include "services/models/diffusion/scheduler_pndm.h"

namespace imginterp::diffusion {
namespace {

constexpr char kSd15Config[] = IMGINTERP_DIFFUSION_TEST_DATA_DIR "/sd15_scheduler_config.json";
constexpr int kTrain = 1000;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The SD1.5 config with `extra` ("\"key\": value, ...") merged in; later keys win.
std::string Sd15ConfigWith(const std::string& extra) {
  std::string config = ReadFile(kSd15Config);
  if (extra.empty()) return config;
  const size_t brace = config.rfind('}');
  return config.substr(0, brace) + "," + extra + "}";
}

std::unique_ptr<Scheduler> Make(const std::string& name, const std::string& extra = "") {
  auto scheduler = MakeScheduler(Sd15ConfigWith(extra), name);
  EXPECT_TRUE(scheduler.ok()) << scheduler.status();
  return scheduler.ok() ? std::move(*scheduler) : nullptr;
}

std::vector<double> ClosedFormAlphasCumprod() {
  const double b0 = std::sqrt(0.00085);
  const double b1 = std::sqrt(0.012);
  std::vector<double> out(kTrain);
  double product = 1.0;
  for (int i = 0; i < kTrain; ++i) {
    const double root = b0 + (b1 - b0) * i / (kTrain - 1);
    product *= 1.0 - root * root;
    out[i] = product;
  }
  return out;
}

double ClosedFormSigma(double t) {
  static const std::vector<double> alphas = ClosedFormAlphasCumprod();
  auto sigma = [&](int i) { return std::sqrt((1 - alphas[i]) / alphas[i]); };
  const int j = static_cast<int>(std::floor(t));
  if (j >= kTrain - 1) return sigma(kTrain - 1);
  return sigma(j) + (sigma(j + 1) - sigma(j)) * (t - j);
}

// alpha_bar_t as the scheduler holds it (float32), widened.
double AlphaBar(const Scheduler& s, int t) {
  return static_cast<double>(s.AlphasCumprod()[t].item<float>());
}

at::Tensor SmallTensor(uint64_t seed) { return *InitialNoise({1, 2, 2, 3}, seed); }

void ExpectAllNear(const at::Tensor& actual, const at::Tensor& expected, double tolerance) {
  ASSERT_EQ(actual.sizes(), expected.sizes());
  const double diff =
      (actual.to(at::kDouble) - expected.to(at::kDouble)).abs().max().item<double>();
  EXPECT_LE(diff, tolerance);
}

std::vector<double> Range(double first, double step, int count) {
  std::vector<double> out;
  for (int i = 0; i < count; ++i) out.push_back(first + step * i);
  return out;
}

// ------------------------------------------------------------------------------------------
// Factory and config

TEST(MakeSchedulerTest, Sd15ConfigBuildsPndmWithSkippedPrkSteps) {
  auto scheduler = MakeSchedulerFromFile(kSd15Config);
  ASSERT_TRUE(scheduler.ok()) << scheduler.status();
  EXPECT_EQ((*scheduler)->Name(), "PNDMScheduler");
  EXPECT_EQ((*scheduler)->InitNoiseSigma(), 1.0);
}

TEST(MakeSchedulerTest, OverrideNamesAndAliasesChooseTheClass) {
  const std::string config = ReadFile(kSd15Config);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"DDIMScheduler", "DDIMScheduler"},
      {"ddim", "DDIMScheduler"},
      {"plms", "PNDMScheduler"},
      {"EulerDiscreteScheduler", "EulerDiscreteScheduler"},
      {"euler_a", "EulerAncestralDiscreteScheduler"},
      {"dpmpp_2m", "DPMSolverMultistepScheduler"},
      {"dpmpp_2m_karras", "DPMSolverMultistepScheduler"},
  };
  for (const auto& [name, class_name] : cases) {
    auto scheduler = MakeScheduler(config, name);
    ASSERT_TRUE(scheduler.ok()) << name << ": " << scheduler.status();
    EXPECT_EQ((*scheduler)->Name(), class_name) << name;
  }
}

TEST(MakeSchedulerTest, RejectsUnknownClassesBadValuesAndMalformedJson) {
  EXPECT_EQ(MakeScheduler(ReadFile(kSd15Config), "LMSDiscreteScheduler").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeScheduler("{\"_class_name\": \"DDIMScheduler\", \"beta_schedule\": \"cubic\"}")
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeScheduler("{\"_class_name\": \"DDIMScheduler\", \"steps_offset\": \"one\"}")
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeScheduler("{\"_class_name\": ").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeScheduler("{\"beta_start\": 0.1}").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeSchedulerFromFile("/nonexistent/scheduler_config.json").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(MakeSchedulerTest, SetTimestepsRejectsStepCountsOutsideTheTrainingRange) {
  auto scheduler = Make("ddim");
  EXPECT_EQ(scheduler->SetTimesteps(0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(scheduler->SetTimesteps(1001).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(scheduler->SetTimesteps(1000).ok());
}

TEST(NoiseScheduleTest, AlphasCumprodMatchTheClosedFormScaledLinearSchedule) {
  auto scheduler = Make("ddim");
  const std::vector<double> expected = ClosedFormAlphasCumprod();
  for (int t : {0, 1, 100, 500, 901, 951, 999}) {
    EXPECT_NEAR(AlphaBar(*scheduler, t), expected[t], expected[t] * 2e-5) << "t = " << t;
  }
  // alpha_bar_0 = 1 - beta_0 = 1 - 0.00085 exactly (to float32).
  EXPECT_EQ(scheduler->AlphasCumprod()[0].item<float>(), 1.0f - 0.00085f);
}

TEST(NoiseScheduleTest, LinearAndCosineBetasFollowTheirDefinitions) {
  auto linear =
      MakeScheduler(R"({"_class_name": "DDIMScheduler", "beta_start": 0.0001, "beta_end": 0.02})");
  ASSERT_TRUE(linear.ok()) << linear.status();
  // alpha_bar_1 = (1 - beta_0)(1 - beta_1), beta_1 = 0.0001 + 0.0199 / 999.
  EXPECT_NEAR(AlphaBar(**linear, 1), (1 - 0.0001) * (1 - (0.0001 + 0.0199 / 999)), 1e-7);

  auto cosine =
      MakeScheduler(R"({"_class_name": "DDIMScheduler", "beta_schedule": "squaredcos_cap_v2"})");
  ASSERT_TRUE(cosine.ok()) << cosine.status();
  // alpha_bar_t = f((t + 1) / T) / f(0) with f(u) = cos((u + 0.008) / 1.008 * pi / 2)^2 (the
  // 0.999 cap only affects the last betas).
  auto f = [](double u) { return std::pow(std::cos((u + 0.008) / 1.008 * M_PI / 2), 2); };
  for (int t : {0, 10, 500, 900}) {
    EXPECT_NEAR(AlphaBar(**cosine, t), f((t + 1) / 1000.0) / f(0), 2e-6) << "t = " << t;
  }
}

// ------------------------------------------------------------------------------------------
// DDIM

TEST(DDIMSchedulerTest, Sd15LeadingTimestepsAt20StepsAre951DownTo1) {
  // "leading": step_ratio = 1000 // 20 = 50, timesteps = [19, 18, ..., 0] * 50 + steps_offset 1.
  auto scheduler = Make("DDIMScheduler");
  ASSERT_TRUE(scheduler->SetTimesteps(20).ok());
  EXPECT_EQ(scheduler->Timesteps(), Range(951, -50, 20));
  EXPECT_TRUE(scheduler->Sigmas().empty());
  EXPECT_EQ(scheduler->InitNoiseSigma(), 1.0);
}

TEST(DDIMSchedulerTest, TrailingAndLinspaceSpacings) {
  // "trailing": round(arange(1000, 0, -50)) - 1 = 999, 949, ..., 49.
  auto trailing = Make("DDIMScheduler", R"("timestep_spacing": "trailing")");
  ASSERT_TRUE(trailing->SetTimesteps(20).ok());
  EXPECT_EQ(trailing->Timesteps(), Range(999, -50, 20));
  // "linspace": round-half-even(linspace(0, 999, 20)) reversed; 999 * k / 19 rounded.
  auto linspace = Make("DDIMScheduler", R"("timestep_spacing": "linspace")");
  ASSERT_TRUE(linspace->SetTimesteps(20).ok());
  const std::vector<double> expected = {999, 946, 894, 841, 789, 736, 684, 631, 578, 526,
                                        473, 421, 368, 315, 263, 210, 158, 105, 53,  0};
  EXPECT_EQ(linspace->Timesteps(), expected);
}

// One deterministic DDIM update (eta = 0) from t to prev_t, in float64 from the given alphas:
// x0 = (x - sqrt(1 - a_t) eps) / sqrt(a_t); x_prev = sqrt(a_prev) x0 + sqrt(1 - a_prev) eps.
at::Tensor DdimEpsilonUpdate(const at::Tensor& x, const at::Tensor& eps, double a_t,
                             double a_prev) {
  const at::Tensor x64 = x.to(at::kDouble);
  const at::Tensor e64 = eps.to(at::kDouble);
  const at::Tensor x0 = (x64 - std::sqrt(1 - a_t) * e64) / std::sqrt(a_t);
  return std::sqrt(a_prev) * x0 + std::sqrt(1 - a_prev) * e64;
}

TEST(DDIMSchedulerTest, TwoEpsilonStepsFollowTheDdimUpdate) {
  auto scheduler = Make("DDIMScheduler");
  ASSERT_TRUE(scheduler->SetTimesteps(20).ok());
  at::Tensor x = SmallTensor(1);
  // t = 951 -> 901 -> 851.
  const at::Tensor eps1 = SmallTensor(2);
  auto r1 = scheduler->Step(eps1, 951, x);
  ASSERT_TRUE(r1.ok()) << r1.status();
  const at::Tensor expected1 =
      DdimEpsilonUpdate(x, eps1, AlphaBar(*scheduler, 951), AlphaBar(*scheduler, 901));
  ExpectAllNear(r1->prev_sample, expected1, 2e-6);
  ExpectAllNear(r1->pred_original_sample,
                (x.to(at::kDouble) - std::sqrt(1 - AlphaBar(*scheduler, 951)) * eps1) /
                    std::sqrt(AlphaBar(*scheduler, 951)),
                2e-5);
  EXPECT_EQ(r1->prev_sample.scalar_type(), at::kFloat);

  const at::Tensor eps2 = SmallTensor(3);
  auto r2 = scheduler->Step(eps2, 901, r1->prev_sample);
  ASSERT_TRUE(r2.ok()) << r2.status();
  ExpectAllNear(r2->prev_sample,
                DdimEpsilonUpdate(r1->prev_sample, eps2, AlphaBar(*scheduler, 901),
                                  AlphaBar(*scheduler, 851)),
                2e-6);
}

TEST(DDIMSchedulerTest, LastStepUsesAlphaBarZeroUnlessSetAlphaToOne) {
  // From t = 1 the previous timestep is -49 < 0: alpha_prev is alpha_bar_0 (SD1.5,
  // set_alpha_to_one false) or 1 (set_alpha_to_one true, which returns x0 exactly).
  const at::Tensor x = SmallTensor(4);
  const at::Tensor eps = SmallTensor(5);
  auto sd15 = Make("DDIMScheduler");
  ASSERT_TRUE(sd15->SetTimesteps(20).ok());
  auto r = sd15->Step(eps, 1, x);
  ASSERT_TRUE(r.ok()) << r.status();
  ExpectAllNear(r->prev_sample, DdimEpsilonUpdate(x, eps, AlphaBar(*sd15, 1), AlphaBar(*sd15, 0)),
                2e-6);

  auto to_one = Make("DDIMScheduler", R"("set_alpha_to_one": true)");
  ASSERT_TRUE(to_one->SetTimesteps(20).ok());
  auto r_one = to_one->Step(eps, 1, x);
  ASSERT_TRUE(r_one.ok()) << r_one.status();
  ExpectAllNear(r_one->prev_sample, r_one->pred_original_sample, 1e-7);
}

TEST(DDIMSchedulerTest, TwoVPredictionStepsFollowTheDdimUpdate) {
  // v = sqrt(a_t) eps - sqrt(1 - a_t) x0, so x0 = sqrt(a_t) x - sqrt(1 - a_t) v and
  // eps = sqrt(a_t) v + sqrt(1 - a_t) x.
  auto scheduler = Make("DDIMScheduler", R"("prediction_type": "v_prediction")");
  ASSERT_TRUE(scheduler->SetTimesteps(20).ok());
  at::Tensor x = SmallTensor(6);
  for (auto [t, prev] : {std::pair{951, 901}, std::pair{901, 851}}) {
    const at::Tensor v = SmallTensor(7 + t);
    const double a_t = AlphaBar(*scheduler, t);
    const double a_prev = AlphaBar(*scheduler, prev);
    const at::Tensor x64 = x.to(at::kDouble);
    const at::Tensor v64 = v.to(at::kDouble);
    const at::Tensor x0 = std::sqrt(a_t) * x64 - std::sqrt(1 - a_t) * v64;
    const at::Tensor eps = std::sqrt(a_t) * v64 + std::sqrt(1 - a_t) * x64;
    auto r = scheduler->Step(v, t, x);
    ASSERT_TRUE(r.ok()) << r.status();
    ExpectAllNear(r->pred_original_sample, x0, 2e-6);
    ExpectAllNear(r->prev_sample, std::sqrt(a_prev) * x0 + std::sqrt(1 - a_prev) * eps, 2e-6);
    x = r->prev_sample;
  }
}

TEST(DDIMSchedulerTest, ClipSampleClampsThePredictedOriginal) {
  auto scheduler = Make("DDIMScheduler", R"("clip_sample": true, "clip_sample_range": 0.5)");
  ASSERT_TRUE(scheduler->SetTimesteps(20).ok());
  auto r = scheduler->Step(SmallTensor(8) * 3, 951, SmallTensor(9));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_LE(r->pred_original_sample.abs().max().item<float>(), 0.5f);
}

TEST(DDIMSchedulerTest, EtaAddsScaledNoiseFromTheGivenVarianceNoise) {
  // sigma_t = eta * sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev));
  // x_prev = sqrt(a_prev) x0 + sqrt(1 - a_prev - sigma_t^2) eps + sigma_t z.
  auto scheduler = Make("DDIMScheduler");
  ASSERT_TRUE(scheduler->SetTimesteps(20).ok());
  const at::Tensor x = SmallTensor(10);
  const at::Tensor eps = SmallTensor(11);
  const at::Tensor z = SmallTensor(12);
  StepOptions options;
  options.eta = 1.0;
  options.variance_noise = z;
  auto r = scheduler->Step(eps, 951, x, options);
  ASSERT_TRUE(r.ok()) << r.status();
  const double a_t = AlphaBar(*scheduler, 951);
  const double a_prev = AlphaBar(*scheduler, 901);
  const double sigma = std::sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev));
  const at::Tensor x0 = (x.to(at::kDouble) - std::sqrt(1 - a_t) * eps) / std::sqrt(a_t);
  ExpectAllNear(r->prev_sample,
                std::sqrt(a_prev) * x0 + std::sqrt(1 - a_prev - sigma * sigma) * eps + sigma * z,
                5e-6);
  StepOptions no_noise;
  no_noise.eta = 1.0;
  EXPECT_EQ(scheduler->Step(eps, 951, x, no_noise).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(DDIMSchedulerTest, AddNoiseMixesSignalAndNoiseByAlphaBar) {
  auto scheduler = Make("DDIMScheduler");
  const at::Tensor x0 = SmallTensor(13);
  const at::Tensor noise = SmallTensor(14);
  auto noisy = scheduler->AddNoise(x0, noise, 501);
  ASSERT_TRUE(noisy.ok()) << noisy.status();
  const double a = AlphaBar(*scheduler, 501);
  ExpectAllNear(*noisy, std::sqrt(a) * x0.to(at::kDouble) + std::sqrt(1 - a) * noise, 1e-6);
  EXPECT_EQ(scheduler->AddNoise(x0, noise, 1000).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(scheduler->AddNoise(x0, noise, 10.5).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(DDIMSchedulerTest, KeepsTheSampleDtype) {
  auto scheduler = Make("DDIMScheduler");
  ASSERT_TRUE(scheduler->SetTimesteps(20).ok());
  auto r = scheduler->Step(SmallTensor(15).to(at::kDouble), 951, SmallTensor(16).to(at::kDouble));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->prev_sample.scalar_type(), at::kDouble);
}

TEST(DDIMSchedulerTest, StepBeforeSetTimestepsOrWithMismatchedShapesFails) {
  auto scheduler = Make("DDIMScheduler");
  EXPECT_EQ(scheduler->Step(SmallTensor(1), 951, SmallTensor(2)).status().code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(scheduler->SetTimesteps(20).ok());
  EXPECT_EQ(scheduler->Step(SmallTensor(1), 951, *InitialNoise({1, 2, 2, 4}, 1)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// ------------------------------------------------------------------------------------------
// PNDM / PLMS

TEST(PNDMSchedulerTest, Sd15PlmsTimestepsRepeatTheFirstStepForTheWarmUp) {
  // skip_prk_steps: base = [1, 51, ..., 951]; PLMS = base[:-1] + base[-2:-1] + base[-1:],
  // reversed: 951, 901, 901, 851, ..., 51, 1 (21 model calls for 20 steps).
  auto scheduler = MakeSchedulerFromFile(kSd15Config);
  ASSERT_TRUE(scheduler.ok());
  ASSERT_TRUE((*scheduler)->SetTimesteps(20).ok());
  std::vector<double> expected = {951, 901};
  for (double t : Range(901, -50, 19)) expected.push_back(t);
  EXPECT_EQ((*scheduler)->Timesteps(), expected);
}

TEST(PNDMSchedulerTest, PrkTimestepsWithoutSkipping) {
  // base = [1, 51, ..., 951], half step 25: the last 4 base timesteps, each with its midpoint,
  // [801, 826, 851, 876, 901, 926, 951, 976]; drop the last, double each, trim one at each end
  // and reverse; then PLMS over base[:-3] reversed (801 ... 1).
  auto scheduler = Make("PNDMScheduler", R"("skip_prk_steps": false)");
  ASSERT_TRUE(scheduler->SetTimesteps(20).ok());
  std::vector<double> expected = {951, 926, 926, 901, 901, 876, 876, 851, 851, 826, 826, 801};
  for (double t : Range(801, -50, 17)) expected.push_back(t);
  EXPECT_EQ(scheduler->Timesteps(), expected);
}

// PNDM's transfer from t to prev with an effective epsilon e (formula (9) of the PNDM paper):
// x_prev = sqrt(a_prev / a_t) x - (a_prev - a_t) e / (a_t sqrt(1 - a_prev) +
//          sqrt(a_t (1 - a_t) a_prev)).
at::Tensor PndmTransfer(const at::Tensor& x, const at::Tensor& e, double a_t, double a_prev) {
  const double denom = a_t * std::sqrt(1 - a_prev) + std::sqrt(a_t * (1 - a_t) * a_prev);
  return std::sqrt(a_prev / a_t) * x.to(at::kDouble) - (a_prev - a_t) * e.to(at::kDouble) / denom;
}

TEST(PNDMSchedulerTest, PlmsWarmUpThenSecondOrderFollowTheTrace) {
  auto scheduler = Make("PNDMScheduler");
  ASSERT_TRUE(scheduler->SetTimesteps(20).ok());
  const at::Tensor x = SmallTensor(20);
  const at::Tensor e1 = SmallTensor(21);
  const at::Tensor e2 = SmallTensor(22);
  const at::Tensor e3 = SmallTensor(23);
  auto a = [&](int t) { return AlphaBar(*scheduler, t); };

  // Call 1 at 951: a plain transfer 951 -> 901 with e1.
  auto r1 = scheduler->Step(e1, 951, x);
  ASSERT_TRUE(r1.ok()) << r1.status();
  ExpectAllNear(r1->prev_sample, PndmTransfer(x, e1, a(951), a(901)), 2e-6);
  EXPECT_FALSE(r1->pred_original_sample.defined());

  // Call 2 at 901 (the repeat): restart from x at 951 with the average (e1 + e2) / 2.
  auto r2 = scheduler->Step(e2, 901, r1->prev_sample);
  ASSERT_TRUE(r2.ok()) << r2.status();
  const at::Tensor x901 = PndmTransfer(x, (e1 + e2) / 2, a(951), a(901));
  ExpectAllNear(r2->prev_sample, x901, 2e-6);

  // Call 3 at 901: second-order Adams-Bashforth (3 e3 - e1) / 2 (the history holds e1, e3).
  auto r3 = scheduler->Step(e3, 901, r2->prev_sample);
  ASSERT_TRUE(r3.ok()) << r3.status();
  ExpectAllNear(r3->prev_sample, PndmTransfer(r2->prev_sample, (3 * e3 - e1) / 2, a(901), a(851)),
                2e-6);
}

TEST(PNDMSchedulerTest, VPredictionConvertsToEpsilonFirst) {
  // eps = sqrt(a_t) v + sqrt(1 - a_t) x, then the same transfer.
  auto scheduler = Make("PNDMScheduler", R"("prediction_type": "v_prediction")");
  ASSERT_TRUE(scheduler->SetTimesteps(20).ok());
  const at::Tensor x = SmallTensor(24);
  const at::Tensor v = SmallTensor(25);
  const double a_t = AlphaBar(*scheduler, 951);
  const double a_prev = AlphaBar(*scheduler, 901);
  auto r = scheduler->Step(v, 951, x);
  ASSERT_TRUE(r.ok()) << r.status();
  const at::Tensor eps = std::sqrt(a_t) * v.to(at::kDouble) + std::sqrt(1 - a_t) * x;
  ExpectAllNear(r->prev_sample, PndmTransfer(x, eps, a_t, a_prev), 2e-6);
}

TEST(PNDMSchedulerTest, FullRunOnConstantNoiseReachesTheDdimEndPoint) {
  // With a constant epsilon every linear multistep combination is that epsilon, and the
  // transfer is exact for it: a 20-step PLMS run from x_951 lands where one DDIM jump does.
  auto scheduler = Make("PNDMScheduler");
  ASSERT_TRUE(scheduler->SetTimesteps(20).ok());
  const at::Tensor eps = SmallTensor(26);
  at::Tensor x = SmallTensor(27);
  const at::Tensor start = x;
  for (double t : scheduler->Timesteps()) {
    auto r = scheduler->Step(eps, t, x);
    ASSERT_TRUE(r.ok()) << r.status();
    x = r->prev_sample;
  }
  ExpectAllNear(
      x, DdimEpsilonUpdate(start, eps, AlphaBar(*scheduler, 951), AlphaBar(*scheduler, 0)), 2e-5);
  // All steps are taken; another needs SetTimesteps() or Reset().
  EXPECT_EQ(scheduler->Step(eps, 1, x).status().code(), absl::StatusCode::kFailedPrecondition);
  scheduler->Reset();
  EXPECT_TRUE(scheduler->Step(eps, 951, start).ok());
}

TEST(PNDMSchedulerTest, AddNoiseMatchesDdim) {
  auto pndm = Make("PNDMScheduler");
  auto ddim = Make("DDIMScheduler");
  auto a = pndm->AddNoise(SmallTensor(28), SmallTensor(29), 751);
  auto b = ddim->AddNoise(SmallTensor(28), SmallTensor(29), 751);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(at::equal(*a, *b));
}

// ------------------------------------------------------------------------------------------
// Euler and Euler ancestral

// The SD1.5 config has no timestep_spacing, so Euler uses its default "linspace": float32
// linspace(0, 999, 20) reversed, i.e. 999 * k / 19 for k = 19 .. 0.
std::vector<double> EulerSd15Timesteps() {
  std::vector<double> out;
  for (int k = 19; k >= 0; --k) out.push_back(static_cast<float>(999.0 * k / 19));
  return out;
}

TEST(EulerDiscreteSchedulerTest, Sd15TimestepsAndSigmasAt20Steps) {
  auto scheduler = Make("EulerDiscreteScheduler");
  ASSERT_TRUE(scheduler->SetTimesteps(20).ok());
  EXPECT_EQ(scheduler->Timesteps(), EulerSd15Timesteps());
  EXPECT_FLOAT_EQ(scheduler->Timesteps()[1], 946.42108f);
  const std::vector<double>& sigmas = scheduler->Sigmas();
  ASSERT_EQ(sigmas.size(), 21u);
  // sigma(t) interpolated linearly between integer train timesteps, then a final 0.
  for (int i = 0; i < 20; ++i) {
    const double expected = ClosedFormSigma(scheduler->Timesteps()[i]);
    EXPECT_NEAR(sigmas[i], expected, expected * 3e-5) << "i = " << i;
  }
  EXPECT_EQ(sigmas[20], 0.0);
  EXPECT_NEAR(sigmas[0], 14.614641, 2e-4);
  EXPECT_NEAR(sigmas[19], 0.0291672, 1e-6);
  // linspace spacing: the initial noise is scaled by the largest sigma.
  EXPECT_EQ(scheduler->InitNoiseSigma(), sigmas[0]);
}

TEST(EulerDiscreteSchedulerTest, LeadingSpacingScalesInitialNoiseBySqrtSigmaSquaredPlusOne) {
  auto scheduler = Make("EulerDiscreteScheduler", R"("timestep_spacing": "leading")");
  ASSERT_TRUE(scheduler->SetTimesteps(20).ok());
  EXPECT_EQ(scheduler->Timesteps(), Range(951, -50, 20));
  const double s = scheduler->Sigmas()[0];
  EXPECT_NEAR(scheduler->InitNoiseSigma(), std::sqrt(s * s + 1), 1e-5);
}

TEST(EulerDiscreteSchedulerTest, ScaleModelInputDividesBySqrtSigmaSquaredPlusOne) {
  auto scheduler = Make("EulerDiscreteScheduler");
  ASSERT_TRUE(scheduler->SetTimesteps(20).ok());
  const at::Tensor x = SmallTensor(30);
  const double t = scheduler->Timesteps()[0];
  auto scaled = scheduler->ScaleModelInput(x, t);
  ASSERT_TRUE(scaled.ok()) << scaled.status();
  const double s = scheduler->Sigmas()[0];
  ExpectAllNear(*scaled, x.to(at::kDouble) / std::sqrt(s * s + 1), 1e-6);
  // A new run finds its position from the timestep, which must be one of the schedule's.
  scheduler->Reset();
  EXPECT_EQ(scheduler->ScaleModelInput(x, 123.0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(EulerDiscreteSchedulerTest, TwoEpsilonStepsFollowTheEulerUpdate) {
  // x0 = x - sigma_i eps; x_next = x + (x - x0) / sigma_i * (sigma_{i+1} - sigma_i)
  //                              = x + eps * (sigma_{i+1} - sigma_i).
  auto scheduler = Make("EulerDiscreteScheduler");
  ASSERT_TRUE(scheduler->SetTimesteps(20).ok());
  const std::vector<double>& s = scheduler->Sigmas();
  at::Tensor x = SmallTensor(31) * s[0];
  for (int i = 0; i < 2; ++i) {
    const at::Tensor eps = SmallTensor(32 + i);
    ASSERT_TRUE(scheduler->ScaleModelInput(x, scheduler->Timesteps()[i]).ok());
    auto r = scheduler->Step(eps, scheduler->Timesteps()[i], x);
    ASSERT_TRUE(r.ok()) << r.status();
    ExpectAllNear(r->pred_original_sample, x.to(at::kDouble) - s[i] * eps, 1e-5);
    ExpectAllNear(r->prev_sample, x.to(at::kDouble) + eps * (s[i + 1] - s[i]), 1e-5);
    x = r->prev_sample;
  }
}

TEST(EulerDiscreteSchedulerTest, TwoVPredictionStepsFollowTheEulerUpdate) {
  // x0 = -sigma / sqrt(sigma^2 + 1) v + x / (sigma^2 + 1).
  auto scheduler = Make("EulerDiscreteScheduler", R"("prediction_type": "v_prediction")");
  ASSERT_TRUE(scheduler->SetTimesteps(20).ok());
  const std::vector<double>& s = scheduler->Sigmas();
  at::Tensor x = SmallTensor(34) * s[0];
  for (int i = 0; i < 2; ++i) {
    const at::Tensor v = SmallTensor(35 + i);
    const at::Tensor x64 = x.to(at::kDouble);
    const at::Tensor x0 = -s[i] / std::sqrt(s[i] * s[i] + 1) * v + x64 / (s[i] * s[i] + 1);
    auto r = scheduler->Step(v, scheduler->Timesteps()[i], x);
    ASSERT_TRUE(r.ok()) << r.status();
    ExpectAllNear(r->pred_original_sample, x0, 1e-5);
    ExpectAllNear(r->prev_sample, x64 + (x64 - x0) / s[i] * (s[i + 1] - s[i]), 2e-5);
    x = r->prev_sample;
  }
}

TEST(EulerDiscreteSchedulerTest, KarrasSigmasAndTheirTimesteps) {
  // sigma_k = (sigma_max^(1/7) + k / 19 (sigma_min^(1/7) - sigma_max^(1/7)))^7 between the
  // schedule's ends (at t = 999 and t = 0); each timestep is the fractional train timestep whose
  // log sigma is the interpolated log sigma_k (float32).
  auto scheduler = Make("EulerDiscreteScheduler", R"("use_karras_sigmas": true)");
  ASSERT_TRUE(scheduler->SetTimesteps(20).ok());
  const double sigma_max = ClosedFormSigma(999);
  const double sigma_min = ClosedFormSigma(0);
  const std::vector<double>& sigmas = scheduler->Sigmas();
  ASSERT_EQ(sigmas.size(), 21u);
  for (int k = 0; k < 20; ++k) {
    const double root = std::pow(sigma_max, 1 / 7.0) +
                        k / 19.0 * (std::pow(sigma_min, 1 / 7.0) - std::pow(sigma_max, 1 / 7.0));
    const double expected = std::pow(root, 7);
    EXPECT_NEAR(sigmas[k], expected, expected * 3e-5) << "k = " << k;
  }
  EXPECT_EQ(sigmas[20], 0.0);
  // Fractional timesteps from the float64 closed form (log-sigma interpolation), to 0.01.
  const std::vector<double> expected_t = {999.0,    961.7327, 921.0419, 876.3136, 826.7903,
                                          771.5516, 709.5293, 639.6141, 560.9746, 473.7479,
                                          380.1306, 285.3163, 197.0794, 123.3943, 69.2563,
                                          34.6970,  15.4813,  5.9917,   1.7829,   0.0};
  ASSERT_EQ(scheduler->Timesteps().size(), 20u);
  for (int k = 0; k < 20; ++k) {
    EXPECT_NEAR(scheduler->Timesteps()[k], expected_t[k], 0.01) << "k = " << k;
  }
}

TEST(EulerDiscreteSchedulerTest, AddNoiseAddsSigmaTimesNoise) {
  auto scheduler = Make("EulerDiscreteScheduler");
  ASSERT_TRUE(scheduler->SetTimesteps(20).ok());
  const at::Tensor x0 = SmallTensor(37);
  const at::Tensor noise = SmallTensor(38);
  const double t = scheduler->Timesteps()[5];
  auto noisy = scheduler->AddNoise(x0, noise, t);
  ASSERT_TRUE(noisy.ok()) << noisy.status();
  ExpectAllNear(*noisy, x0.to(at::kDouble) + noise * scheduler->Sigmas()[5], 1e-6);
  // img2img: with a begin index the timestep's position is taken from it.
  scheduler->SetBeginIndex(7);
  auto from_begin = scheduler->AddNoise(x0, noise, 0.0);
  ASSERT_TRUE(from_begin.ok()) << from_begin.status();
  ExpectAllNear(*from_begin, x0.to(at::kDouble) + noise * scheduler->Sigmas()[7], 1e-6);
}

TEST(EulerAncestralDiscreteSchedulerTest, SameScheduleAsEuler) {
  auto scheduler = Make("EulerAncestralDiscreteScheduler");
  auto euler = Make("EulerDiscreteScheduler");
  ASSERT_TRUE(scheduler->SetTimesteps(20).ok());
  ASSERT_TRUE(euler->SetTimesteps(20).ok());
  EXPECT_EQ(scheduler->Timesteps(), EulerSd15Timesteps());
  EXPECT_EQ(scheduler->Sigmas(), euler->Sigmas());
  EXPECT_EQ(scheduler->InitNoiseSigma(), euler->InitNoiseSigma());
}

TEST(EulerAncestralDiscreteSchedulerTest, TwoStepsSplitIntoDeterministicAndFreshNoise) {
  // sigma_up = sqrt(s1^2 (s0^2 - s1^2) / s0^2), sigma_down = sqrt(s1^2 - sigma_up^2);
  // x_next = x + (x - x0) / s0 * (sigma_down - s0) + z sigma_up.
  for (const char* prediction : {"epsilon", "v_prediction"}) {
    SCOPED_TRACE(prediction);
    auto scheduler = Make("EulerAncestralDiscreteScheduler",
                          std::string("\"prediction_type\": \"") + prediction + "\"");
    ASSERT_TRUE(scheduler->SetTimesteps(20).ok());
    const std::vector<double>& s = scheduler->Sigmas();
    at::Tensor x = SmallTensor(39) * s[0];
    for (int i = 0; i < 2; ++i) {
      const at::Tensor out = SmallTensor(40 + i);
      const at::Tensor z = SmallTensor(50 + i);
      const at::Tensor x64 = x.to(at::kDouble);
      const at::Tensor x0 =
          std::string(prediction) == "epsilon"
              ? x64 - s[i] * out
              : -s[i] / std::sqrt(s[i] * s[i] + 1) * out + x64 / (s[i] * s[i] + 1);
      const double up =
          std::sqrt(s[i + 1] * s[i + 1] * (s[i] * s[i] - s[i + 1] * s[i + 1]) / (s[i] * s[i]));
      const double down = std::sqrt(s[i + 1] * s[i + 1] - up * up);
      StepOptions options;
      options.variance_noise = z;
      auto r = scheduler->Step(out, scheduler->Timesteps()[i], x, options);
      ASSERT_TRUE(r.ok()) << r.status();
      ExpectAllNear(r->prev_sample, x64 + (x64 - x0) / s[i] * (down - s[i]) + z * up, 3e-5);
      x = r->prev_sample;
    }
  }
}

TEST(EulerAncestralDiscreteSchedulerTest, DrawsStepNoiseFromTheGenerator) {
  auto a = Make("euler_a");
  auto b = Make("euler_a");
  ASSERT_TRUE(a->SetTimesteps(10).ok());
  ASSERT_TRUE(b->SetTimesteps(10).ok());
  const at::Tensor x = SmallTensor(60);
  const at::Tensor eps = SmallTensor(61);
  StepOptions from_generator;
  from_generator.generator = MakeCpuGenerator(5);
  StepOptions from_noise;
  from_noise.variance_noise = *InitialNoise({1, 2, 2, 3}, 5);
  auto ra = a->Step(eps, a->Timesteps()[0], x, from_generator);
  auto rb = b->Step(eps, b->Timesteps()[0], x, from_noise);
  ASSERT_TRUE(ra.ok() && rb.ok());
  EXPECT_TRUE(at::equal(ra->prev_sample, rb->prev_sample));
  EXPECT_EQ(a->Step(eps, a->Timesteps()[1], x).status().code(), absl::StatusCode::kInvalidArgument);
}

// ------------------------------------------------------------------------------------------
// DPM-Solver++ (2M)

TEST(DPMSolverMultistepSchedulerTest, Sd15TimestepsAndSigmasAt20Steps) {
  // "linspace": round-half-even(linspace(0, 999, 21)) reversed, without the final 0;
  // 49.95 k for k = 20 .. 1 (499.5 rounds to 500).
  auto scheduler = Make("DPMSolverMultistepScheduler");
  ASSERT_TRUE(scheduler->SetTimesteps(20).ok());
  const std::vector<double> expected = {999, 949, 899, 849, 799, 749, 699, 649, 599, 549,
                                        500, 450, 400, 350, 300, 250, 200, 150, 100, 50};
  EXPECT_EQ(scheduler->Timesteps(), expected);
  ASSERT_EQ(scheduler->Sigmas().size(), 21u);
  for (int i = 0; i < 20; ++i) {
    const double sigma = ClosedFormSigma(expected[i]);
    EXPECT_NEAR(scheduler->Sigmas()[i], sigma, sigma * 3e-5) << "i = " << i;
  }
  EXPECT_EQ(scheduler->Sigmas()[20], 0.0);
  EXPECT_EQ(scheduler->InitNoiseSigma(), 1.0);
}

TEST(DPMSolverMultistepSchedulerTest, KarrasSigmasAndRoundedTimesteps) {
  // Karras sigmas between sigma(0) and sigma(999) as for Euler, timesteps rounded to integers.
  auto scheduler = Make("dpmpp_2m_karras");
  ASSERT_TRUE(scheduler->SetTimesteps(20).ok());
  const std::vector<double> expected_t = {999, 962, 921, 876, 827, 772, 710, 640, 561, 474,
                                          380, 285, 197, 123, 69,  35,  15,  6,   2,   0};
  EXPECT_EQ(scheduler->Timesteps(), expected_t);
  EXPECT_NEAR(scheduler->Sigmas()[0], 14.614641, 2e-4);
  EXPECT_NEAR(scheduler->Sigmas()[10], 1.0907859, 3e-5);
  EXPECT_NEAR(scheduler->Sigmas()[19], 0.0291672, 1e-6);
  EXPECT_EQ(scheduler->Sigmas()[20], 0.0);
}

// alpha_t = 1 / sqrt(sigma^2 + 1), sigma_t = sigma alpha_t, lambda = log(alpha_t / sigma_t).
struct Vp {
  double alpha, sigma, lambda;
};
Vp VpOf(double s) {
  const double alpha = 1 / std::sqrt(s * s + 1);
  return {alpha, s * alpha, std::log(1 / s)};
}

TEST(DPMSolverMultistepSchedulerTest, FirstStepIsFirstOrderSecondIsTwoM) {
  for (const char* prediction : {"epsilon", "v_prediction"}) {
    SCOPED_TRACE(prediction);
    const bool eps_mode = std::string(prediction) == "epsilon";
    auto scheduler = Make("DPMSolverMultistepScheduler",
                          std::string("\"prediction_type\": \"") + prediction + "\"");
    ASSERT_TRUE(scheduler->SetTimesteps(20).ok());
    const std::vector<double>& s = scheduler->Sigmas();
    const at::Tensor x = SmallTensor(70);
    auto data_prediction = [&](const at::Tensor& out, const at::Tensor& sample, int i) {
      const Vp vp = VpOf(s[i]);
      const at::Tensor x64 = sample.to(at::kDouble);
      return eps_mode ? (x64 - vp.sigma * out) / vp.alpha : vp.alpha * x64 - vp.sigma * out;
    };

    // Step 1 (DPM-Solver++ 1 = DDIM in x0 form): x1 = sigma_1/sigma_0 x - alpha_1 (e^-h - 1) x0.
    const at::Tensor out0 = SmallTensor(71);
    const at::Tensor m0 = data_prediction(out0, x, 0);
    const Vp v0 = VpOf(s[0]);
    const Vp v1 = VpOf(s[1]);
    const double h1 = v1.lambda - v0.lambda;
    auto r1 = scheduler->Step(out0, 999, x);
    ASSERT_TRUE(r1.ok()) << r1.status();
    const at::Tensor x1 = v1.sigma / v0.sigma * x.to(at::kDouble) - v1.alpha * std::expm1(-h1) * m0;
    ExpectAllNear(r1->prev_sample, x1, 2e-5);

    // Step 2 (2M, midpoint): D1 = (m1 - m0) h / h_0;
    // x2 = sigma_2/sigma_1 x1 - alpha_2 (e^-h - 1) m1 - 0.5 alpha_2 (e^-h - 1) D1.
    const at::Tensor out1 = SmallTensor(72);
    const at::Tensor m1 = data_prediction(out1, r1->prev_sample, 1);
    const Vp v2 = VpOf(s[2]);
    const double h = v2.lambda - v1.lambda;
    const double h0 = v1.lambda - v0.lambda;
    const at::Tensor d1 = (m1 - m0) * (h / h0);
    auto r2 = scheduler->Step(out1, 949, r1->prev_sample);
    ASSERT_TRUE(r2.ok()) << r2.status();
    const at::Tensor x2 = v2.sigma / v1.sigma * r1->prev_sample.to(at::kDouble) -
                          v2.alpha * std::expm1(-h) * m1 - 0.5 * v2.alpha * std::expm1(-h) * d1;
    ExpectAllNear(r2->prev_sample, x2, 3e-5);
  }
}

TEST(DPMSolverMultistepSchedulerTest, FinalStepToSigmaZeroReturnsTheDataPrediction) {
  // final_sigmas_type "zero": the last step is first order with sigma_next = 0, which gives x0.
  auto scheduler = Make("DPMSolverMultistepScheduler");
  ASSERT_TRUE(scheduler->SetTimesteps(5).ok());
  at::Tensor x = SmallTensor(80) * 14.6f;
  at::Tensor x0;
  const std::vector<double> timesteps = scheduler->Timesteps();
  for (size_t i = 0; i < timesteps.size(); ++i) {
    const at::Tensor eps = SmallTensor(81 + i);
    if (i + 1 == timesteps.size()) {
      const Vp vp = VpOf(scheduler->Sigmas()[i]);
      x0 = (x.to(at::kDouble) - vp.sigma * eps) / vp.alpha;
    }
    auto r = scheduler->Step(eps, timesteps[i], x);
    ASSERT_TRUE(r.ok()) << r.status();
    x = r->prev_sample;
  }
  ExpectAllNear(x, x0, 1e-4);
  EXPECT_EQ(scheduler->Step(x, timesteps.back(), x).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(DPMSolverMultistepSchedulerTest, AddNoiseUsesTheVariancePreservingForm) {
  // x_t = alpha_t x0 + sigma_t noise with alpha_t = 1 / sqrt(sigma^2 + 1).
  auto scheduler = Make("DPMSolverMultistepScheduler");
  ASSERT_TRUE(scheduler->SetTimesteps(20).ok());
  const at::Tensor x0 = SmallTensor(90);
  const at::Tensor noise = SmallTensor(91);
  auto noisy = scheduler->AddNoise(x0, noise, 500);
  ASSERT_TRUE(noisy.ok()) << noisy.status();
  const Vp vp = VpOf(scheduler->Sigmas()[10]);
  ExpectAllNear(*noisy, vp.alpha * x0.to(at::kDouble) + vp.sigma * noise, 1e-6);
  // Same as DDIM's sqrt(alpha_bar) mix at that timestep.
  auto ddim = Make("DDIMScheduler")->AddNoise(x0, noise, 500);
  ASSERT_TRUE(ddim.ok());
  ExpectAllNear(*noisy, *ddim, 1e-6);
}

}  // namespace
}  // namespace imginterp::diffusion
