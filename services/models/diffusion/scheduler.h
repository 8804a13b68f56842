// Noise schedulers for latent diffusion, built from a diffusers `scheduler_config.json`.
//
// Each scheduler reproduces the diffusers 0.27 class of the same name: the same timesteps and
// sigmas (computed with the same float32/float64 steps, so they compare equal), the same update
// formulas applied with the same tensor operations in the same order, and the same per-run state
// (step index, multistep history). A denoising loop reads like the diffusers one:
//
//   IMGINTERP_ASSIGN_OR_RETURN(auto scheduler, MakeScheduler(config_json));
//   IMGINTERP_RETURN_IF_ERROR(scheduler->SetTimesteps(20));
//   latents = latents * scheduler->InitNoiseSigma();
//   for (double t : scheduler->Timesteps()) {
//     at::Tensor input = scheduler->ScaleModelInput(latents, t);
//     at::Tensor eps = unet(input, t, ...);
//     IMGINTERP_ASSIGN_OR_RETURN(StepResult r, scheduler->Step(eps, t, latents));
//     latents = r.prev_sample;
//   }
//
// Samples keep the caller's dtype; schedule values (alphas, sigmas) are float32 tensors as in
// diffusers, and timesteps are returned as doubles holding exactly diffusers' int64 or float32
// values.
#pragma once

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace imginterp::diffusion {

enum class BetaSchedule { kLinear, kScaledLinear, kSquaredCosCapV2 };
enum class PredictionType { kEpsilon, kVPrediction, kSample };
enum class TimestepSpacing { kLeading, kTrailing, kLinspace };

// The training noise schedule and the fields every scheduler shares. Defaults are diffusers'
// constructor defaults (not SD1.5's, which its config file sets).
struct NoiseScheduleOptions {
  int num_train_timesteps = 1000;
  double beta_start = 0.0001;
  double beta_end = 0.02;
  BetaSchedule beta_schedule = BetaSchedule::kLinear;
  // When not empty, used instead of beta_start/beta_end/beta_schedule (one per train timestep).
  std::vector<double> trained_betas;
  // Rescale the betas to zero terminal SNR (arXiv 2305.08891); not for PNDM.
  bool rescale_betas_zero_snr = false;
  PredictionType prediction_type = PredictionType::kEpsilon;
  // Added to "leading" timesteps.
  int steps_offset = 0;
};

// The result of one Step(). `pred_original_sample` (the model's estimate of x0) is undefined for
// schedulers that do not compute it (PNDM, DPM-Solver), as in diffusers.
struct StepResult {
  at::Tensor prev_sample;
  at::Tensor pred_original_sample;
};

// Per-call inputs for stochastic steps.
struct StepOptions {
  // DDIM only: the weight of the added noise (0 = deterministic DDIM, 1 = DDPM-like).
  double eta = 0.0;
  // Noise source for ancestral / eta > 0 steps, like diffusers' `generator` (CPU). Euler draws
  // (and discards) one normal tensor per step when given one, as diffusers does, so that a shared
  // generator advances identically.
  std::optional<at::Generator> generator;
  // Alternatively the noise itself, shaped like the model output (DDIM eta > 0, Euler ancestral).
  at::Tensor variance_noise;
};

// The interface of every scheduler. A scheduler holds the state of one denoising run: make one per
// request (they are cheap). Thread-compatible: const methods may run concurrently, everything else
// needs external synchronization.
class Scheduler {
 public:
  virtual ~Scheduler() = default;
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // The diffusers class name, e.g. "DDIMScheduler".
  virtual std::string_view Name() const = 0;

  // Computes the inference timesteps (and sigmas) for `num_inference_steps` steps and resets the
  // run state. INVALID_ARGUMENT when the count is < 1 or > num_train_timesteps.
  virtual absl::Status SetTimesteps(int num_inference_steps) = 0;

  // The timesteps to call the model at, in order (PNDM with skip_prk_steps repeats one, as in
  // diffusers: 21 values for 20 steps). Empty before SetTimesteps().
  const std::vector<double>& Timesteps() const { return timesteps_; }

  // The noise levels sigma_i = sqrt((1 - alpha_bar) / alpha_bar) of each timestep, followed by the
  // final one (0 by default). Empty for schedulers without sigmas (DDIM, PNDM).
  const std::vector<double>& Sigmas() const { return sigmas_; }

  // The standard deviation of the initial noise: multiply N(0, 1) latents by this.
  virtual double InitNoiseSigma() const { return 1.0; }

  // Scales the denoising model's input for timestep `timestep` (identity for DDIM/PNDM/DPM).
  virtual absl::StatusOr<at::Tensor> ScaleModelInput(const at::Tensor& sample, double timestep);

  // One denoising step from `timestep` to the next. FAILED_PRECONDITION before SetTimesteps() or
  // past the last step; INVALID_ARGUMENT for a timestep not in the schedule or mismatched shapes.
  virtual absl::StatusOr<StepResult> Step(const at::Tensor& model_output, double timestep,
                                          const at::Tensor& sample,
                                          const StepOptions& options = {}) = 0;

  // Forward-diffuses `original` to `timestep` with `noise` (img2img / inpainting). For the sigma
  // schedulers the timestep is looked up in Timesteps() unless SetBeginIndex() was called.
  virtual absl::StatusOr<at::Tensor> AddNoise(const at::Tensor& original, const at::Tensor& noise,
                                              double timestep) const = 0;

  // img2img: the index of the first timestep that will be run (diffusers' set_begin_index).
  void SetBeginIndex(int begin_index) { begin_index_ = begin_index; }

  // Forgets the state of the current run (step index, multistep history, begin index) so the same
  // timesteps can be run again.
  virtual void Reset();

  // The schedule the scheduler was built with; alphas_cumprod is float32 [num_train_timesteps].
  const NoiseScheduleOptions& schedule() const { return schedule_; }
  const at::Tensor& AlphasCumprod() const { return alphas_cumprod_; }

 protected:
  // Precondition: `schedule` was validated (MakeBetas succeeded).
  Scheduler(NoiseScheduleOptions schedule, at::Tensor alphas_cumprod);

  // Steps already taken in the current run, resolved like diffusers' _init_step_index.
  absl::StatusOr<int> CurrentStepIndex(double timestep);
  // diffusers' index_for_timestep: the second match when a timestep repeats, else the first;
  // NotFound when absent.
  absl::StatusOr<int> IndexForTimestep(double timestep) const;
  absl::Status CheckReady(const char* what) const;

  NoiseScheduleOptions schedule_;
  at::Tensor alphas_cumprod_;  // float32
  int num_inference_steps_ = 0;
  std::vector<double> timesteps_;
  std::vector<double> sigmas_;
  at::Tensor sigmas_tensor_;  // float32, same values as sigmas_
  std::optional<int> step_index_;
  std::optional<int> begin_index_;
};

// Creates a scheduler from the text of a diffusers `scheduler_config.json`. The class comes from
// `_class_name` unless `override_name` is given (a diffusers class name, or one of the aliases
// "ddim", "pndm", "plms", "euler", "euler_a", "dpmpp_2m", "dpmpp_2m_karras"); as with diffusers'
// `from_config`, keys the chosen class does not know are ignored and missing keys take that
// class's defaults. INVALID_ARGUMENT for malformed JSON, unknown classes or unsupported values.
absl::StatusOr<std::unique_ptr<Scheduler>> MakeScheduler(std::string_view config_json,
                                                         std::string_view override_name = {});

// Reads `path` and calls MakeScheduler(). NOT_FOUND when the file cannot be read.
absl::StatusOr<std::unique_ptr<Scheduler>> MakeSchedulerFromFile(
    const std::string& path, std::string_view override_name = {});

// The names MakeScheduler() accepts as `_class_name`.
std::vector<std::string> SupportedSchedulerClasses();

}  // namespace imginterp::diffusion
