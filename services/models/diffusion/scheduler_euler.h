// Euler and Euler-ancestral samplers (Karras et al. 2022, k-diffusion), as diffusers'
// EulerDiscreteScheduler and EulerAncestralDiscreteScheduler.
#pragma once

#include <memory>
#include <optional>

#include "absl/status/statusor.h"
#include "services/models/diffusion/scheduler.h"

namespace imginterp::diffusion {

enum class SigmaInterpolation { kLinear, kLogLinear };

struct EulerOptions {
  NoiseScheduleOptions schedule;
  TimestepSpacing timestep_spacing = TimestepSpacing::kLinspace;
  SigmaInterpolation interpolation_type = SigmaInterpolation::kLinear;
  // Karras noise levels between sigma_min and sigma_max (defaults: the schedule's own ends).
  bool use_karras_sigmas = false;
  std::optional<double> sigma_min;
  std::optional<double> sigma_max;
};

struct EulerAncestralOptions {
  NoiseScheduleOptions schedule;
  TimestepSpacing timestep_spacing = TimestepSpacing::kLinspace;
};

// Shared sigma bookkeeping: input scaling, step index, AddNoise. Thread-compatible.
class SigmaScheduler : public Scheduler {
 public:
  double InitNoiseSigma() const override;
  absl::StatusOr<at::Tensor> ScaleModelInput(const at::Tensor& sample, double timestep) override;
  absl::StatusOr<at::Tensor> AddNoise(const at::Tensor& original, const at::Tensor& noise,
                                      double timestep) const override;

 protected:
  SigmaScheduler(NoiseScheduleOptions schedule, at::Tensor alphas_cumprod, TimestepSpacing spacing);
  // float32 timesteps for `spacing` (diffusers' Euler variant of the spacing rules).
  std::vector<double> SpacedTimesteps(int num_inference_steps) const;
  void SetSchedule(std::vector<double> timesteps, std::vector<double> sigmas);

  TimestepSpacing spacing_;
};

// Thread-compatible; one instance per denoising run (see Scheduler).
class EulerDiscreteScheduler final : public SigmaScheduler {
 public:
  static absl::StatusOr<std::unique_ptr<EulerDiscreteScheduler>> Create(
      const EulerOptions& options);

  std::string_view Name() const override { return "EulerDiscreteScheduler"; }
  absl::Status SetTimesteps(int num_inference_steps) override;
  absl::StatusOr<StepResult> Step(const at::Tensor& model_output, double timestep,
                                  const at::Tensor& sample,
                                  const StepOptions& options = {}) override;

 private:
  EulerDiscreteScheduler(const EulerOptions& options, at::Tensor alphas_cumprod);
  EulerOptions options_;
};

// Thread-compatible; one instance per denoising run (see Scheduler). Each step adds fresh noise
// from StepOptions::generator (or StepOptions::variance_noise); without either it fails.
class EulerAncestralDiscreteScheduler final : public SigmaScheduler {
 public:
  static absl::StatusOr<std::unique_ptr<EulerAncestralDiscreteScheduler>> Create(
      const EulerAncestralOptions& options);

  std::string_view Name() const override { return "EulerAncestralDiscreteScheduler"; }
  absl::Status SetTimesteps(int num_inference_steps) override;
  absl::StatusOr<StepResult> Step(const at::Tensor& model_output, double timestep,
                                  const at::Tensor& sample,
                                  const StepOptions& options = {}) override;

 private:
  EulerAncestralDiscreteScheduler(const EulerAncestralOptions& options, at::Tensor alphas_cumprod);
  EulerAncestralOptions options_;
};

}  // namespace imginterp::diffusion
