// DPM-Solver++ multistep (Lu et al. 2022), as diffusers' DPMSolverMultistepScheduler. With
// solver_order 2 and algorithm dpmsolver++ this is "DPM++ 2M"; with use_karras_sigmas
// "DPM++ 2M Karras"; sde-dpmsolver++ is "DPM++ 2M SDE".
#pragma once

#include <limits>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "services/models/diffusion/scheduler.h"

namespace imginterp::diffusion {

enum class DpmAlgorithm { kDpmSolverPlusPlus, kSdeDpmSolverPlusPlus };
enum class DpmSolverType { kMidpoint, kHeun };
enum class FinalSigmas { kZero, kSigmaMin };

struct DPMSolverMultistepOptions {
  NoiseScheduleOptions schedule;
  TimestepSpacing timestep_spacing = TimestepSpacing::kLinspace;
  int solver_order = 2;  // 1, 2 or 3
  DpmAlgorithm algorithm_type = DpmAlgorithm::kDpmSolverPlusPlus;
  DpmSolverType solver_type = DpmSolverType::kMidpoint;
  // Use lower-order updates for the last steps when there are fewer than 15 steps.
  bool lower_order_final = true;
  // Always use a first-order (Euler) update for the last step.
  bool euler_at_final = false;
  bool use_karras_sigmas = false;
  // Steps uniform in log-SNR (lambda) instead of in time.
  bool use_lu_lambdas = false;
  FinalSigmas final_sigmas_type = FinalSigmas::kZero;
  // Timesteps whose lambda is below this are not used (-inf = no clipping).
  double lambda_min_clipped = -std::numeric_limits<double>::infinity();
};

// Thread-compatible; one instance per denoising run (see Scheduler).
class DPMSolverMultistepScheduler final : public Scheduler {
 public:
  static absl::StatusOr<std::unique_ptr<DPMSolverMultistepScheduler>> Create(
      const DPMSolverMultistepOptions& options);

  std::string_view Name() const override { return "DPMSolverMultistepScheduler"; }
  absl::Status SetTimesteps(int num_inference_steps) override;
  absl::StatusOr<StepResult> Step(const at::Tensor& model_output, double timestep,
                                  const at::Tensor& sample,
                                  const StepOptions& options = {}) override;
  absl::StatusOr<at::Tensor> AddNoise(const at::Tensor& original, const at::Tensor& noise,
                                      double timestep) const override;
  void Reset() override;

 private:
  DPMSolverMultistepScheduler(const DPMSolverMultistepOptions& options, at::Tensor alphas_cumprod);

  at::Tensor ConvertModelOutput(const at::Tensor& model_output, const at::Tensor& sample) const;
  at::Tensor FirstOrderUpdate(const at::Tensor& x0, const at::Tensor& sample,
                              const at::Tensor& noise) const;
  at::Tensor SecondOrderUpdate(const at::Tensor& sample, const at::Tensor& noise) const;
  at::Tensor ThirdOrderUpdate(const at::Tensor& sample) const;

  DPMSolverMultistepOptions options_;
  // Run state: the last solver_order converted model outputs (oldest first) and how many
  // lower-order steps were taken.
  std::vector<at::Tensor> model_outputs_;
  int lower_order_nums_ = 0;
};

}  // namespace imginterp::diffusion
