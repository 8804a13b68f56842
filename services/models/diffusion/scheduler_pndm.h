// PNDM / PLMS (Liu et al. 2022), as diffusers' PNDMScheduler. Stable Diffusion ships it with
// skip_prk_steps = true: pure PLMS, whose first step is a second-order (Heun-like) warm-up that
// calls the model twice at the first timestep pair, hence one more timestep than steps.
#pragma once

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "services/models/diffusion/scheduler.h"

namespace imginterp::diffusion {

struct PNDMOptions {
  NoiseScheduleOptions schedule;
  TimestepSpacing timestep_spacing = TimestepSpacing::kLeading;
  // true: PLMS only; false: 12 Runge-Kutta (PRK) model calls first, then PLMS.
  bool skip_prk_steps = false;
  bool set_alpha_to_one = false;
};

// Thread-compatible; one instance per denoising run (see Scheduler).
class PNDMScheduler final : public Scheduler {
 public:
  static absl::StatusOr<std::unique_ptr<PNDMScheduler>> Create(const PNDMOptions& options);

  std::string_view Name() const override { return "PNDMScheduler"; }
  absl::Status SetTimesteps(int num_inference_steps) override;
  absl::StatusOr<StepResult> Step(const at::Tensor& model_output, double timestep,
                                  const at::Tensor& sample,
                                  const StepOptions& options = {}) override;
  absl::StatusOr<at::Tensor> AddNoise(const at::Tensor& original, const at::Tensor& noise,
                                      double timestep) const override;
  void Reset() override;

 private:
  PNDMScheduler(const PNDMOptions& options, at::Tensor alphas_cumprod);

  at::Tensor StepPrk(const at::Tensor& model_output, int64_t timestep, const at::Tensor& sample);
  at::Tensor StepPlms(const at::Tensor& model_output, int64_t timestep, const at::Tensor& sample);
  at::Tensor PrevSample(const at::Tensor& sample, int64_t timestep, int64_t prev_timestep,
                        const at::Tensor& model_output) const;

  PNDMOptions options_;
  at::Tensor final_alpha_cumprod_;  // float32 scalar
  int num_prk_timesteps_ = 0;
  // Run state, as diffusers names it.
  int counter_ = 0;
  at::Tensor cur_model_output_;  // undefined means 0
  at::Tensor cur_sample_;
  std::vector<at::Tensor> ets_;
};

}  // namespace imginterp::diffusion
