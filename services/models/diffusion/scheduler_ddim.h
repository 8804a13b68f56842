// DDIM (Song et al. 2020), as diffusers' DDIMScheduler.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "services/models/diffusion/scheduler.h"

namespace imginterp::diffusion {

struct DDIMOptions {
  NoiseScheduleOptions schedule;
  TimestepSpacing timestep_spacing = TimestepSpacing::kLeading;
  // Clamp the predicted x0 to [-clip_sample_range, clip_sample_range] (SD1.5 turns this off).
  bool clip_sample = true;
  double clip_sample_range = 1.0;
  // The "previous" alpha_bar of the last step: 1 when true, else alpha_bar[0] (SD1.5: false).
  bool set_alpha_to_one = true;
};

// Thread-compatible; one instance per denoising run (see Scheduler).
class DDIMScheduler final : public Scheduler {
 public:
  static absl::StatusOr<std::unique_ptr<DDIMScheduler>> Create(const DDIMOptions& options);

  std::string_view Name() const override { return "DDIMScheduler"; }
  absl::Status SetTimesteps(int num_inference_steps) override;
  absl::StatusOr<StepResult> Step(const at::Tensor& model_output, double timestep,
                                  const at::Tensor& sample,
                                  const StepOptions& options = {}) override;
  absl::StatusOr<at::Tensor> AddNoise(const at::Tensor& original, const at::Tensor& noise,
                                      double timestep) const override;

 private:
  DDIMScheduler(const DDIMOptions& options, at::Tensor alphas_cumprod);

  DDIMOptions options_;
  at::Tensor final_alpha_cumprod_;  // float32 scalar
};

}  // namespace imginterp::diffusion
