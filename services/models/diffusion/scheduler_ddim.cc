#include "services/models/diffusion/scheduler_ddim.h"

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "services/core/common/status_macros.h"
#include "services/models/diffusion/scheduler_numerics.h"

namespace imginterp::diffusion {

absl::StatusOr<std::unique_ptr<DDIMScheduler>> DDIMScheduler::Create(const DDIMOptions& options) {
  return detail::CatchTorch(
      "DDIMScheduler::Create", [&]() -> absl::StatusOr<std::unique_ptr<DDIMScheduler>> {
        IMGINTERP_ASSIGN_OR_RETURN(at::Tensor alphas_cumprod,
                                   detail::MakeAlphasCumprod(options.schedule));
        return std::unique_ptr<DDIMScheduler>(new DDIMScheduler(options, alphas_cumprod));
      });
}

DDIMScheduler::DDIMScheduler(const DDIMOptions& options, at::Tensor alphas_cumprod)
    : Scheduler(options.schedule, std::move(alphas_cumprod)), options_(options) {
  final_alpha_cumprod_ =
      options.set_alpha_to_one ? at::scalar_tensor(1.0, at::kFloat) : alphas_cumprod_[0];
}

absl::Status DDIMScheduler::SetTimesteps(int num_inference_steps) {
  const int train = schedule_.num_train_timesteps;
  IMGINTERP_RETURN_IF_ERROR(detail::CheckStepCount(num_inference_steps, train));
  std::vector<double> timesteps;
  switch (options_.timestep_spacing) {
    case TimestepSpacing::kLinspace:
      for (double t : detail::Linspace(0, train - 1, num_inference_steps)) {
        timesteps.insert(timesteps.begin(), detail::RoundHalfEven(t));
      }
      break;
    case TimestepSpacing::kLeading: {
      const int step_ratio = train / num_inference_steps;
      for (int i = num_inference_steps - 1; i >= 0; --i) {
        timesteps.push_back(static_cast<double>(i) * step_ratio + schedule_.steps_offset);
      }
      break;
    }
    case TimestepSpacing::kTrailing: {
      const double step_ratio = static_cast<double>(train) / num_inference_steps;
      for (double t : detail::Arange(train, 0, -step_ratio)) {
        timesteps.push_back(detail::RoundHalfEven(t) - 1);
      }
      break;
    }
  }
  num_inference_steps_ = num_inference_steps;
  timesteps_ = std::move(timesteps);
  Reset();
  return absl::OkStatus();
}

absl::StatusOr<StepResult> DDIMScheduler::Step(const at::Tensor& model_output, double timestep,
                                               const at::Tensor& sample,
                                               const StepOptions& options) {
  IMGINTERP_RETURN_IF_ERROR(CheckReady("Step"));
  IMGINTERP_RETURN_IF_ERROR(detail::CheckSameShape(model_output, "model_output", sample, "sample"));
  const int train = schedule_.num_train_timesteps;
  IMGINTERP_ASSIGN_OR_RETURN(const int64_t t, detail::TrainTimestep(timestep, train));
  if (options.eta < 0) {
    return absl::InvalidArgumentError(absl::StrCat("eta is ", options.eta, "; it must be >= 0"));
  }
  return detail::CatchTorch("DDIMScheduler::Step", [&]() -> absl::StatusOr<StepResult> {
    // Formula (12) of the DDIM paper with the names diffusers uses.
    const int64_t prev_t = t - train / num_inference_steps_;
    const at::Tensor alpha_prod_t = alphas_cumprod_[t];
    const at::Tensor alpha_prod_t_prev =
        prev_t >= 0 ? alphas_cumprod_[prev_t] : final_alpha_cumprod_;
    const at::Tensor beta_prod_t = 1 - alpha_prod_t;

    at::Tensor pred_original_sample;
    at::Tensor pred_epsilon;
    switch (schedule_.prediction_type) {
      case PredictionType::kEpsilon:
        pred_original_sample =
            (sample - at::pow(beta_prod_t, 0.5) * model_output) / at::pow(alpha_prod_t, 0.5);
        pred_epsilon = model_output;
        break;
      case PredictionType::kSample:
        pred_original_sample = model_output;
        pred_epsilon = (sample - at::pow(alpha_prod_t, 0.5) * pred_original_sample) /
                       at::pow(beta_prod_t, 0.5);
        break;
      case PredictionType::kVPrediction:
        pred_original_sample =
            at::pow(alpha_prod_t, 0.5) * sample - at::pow(beta_prod_t, 0.5) * model_output;
        pred_epsilon =
            at::pow(alpha_prod_t, 0.5) * model_output + at::pow(beta_prod_t, 0.5) * sample;
        break;
    }
    if (options_.clip_sample) {
      pred_original_sample =
          pred_original_sample.clamp(-options_.clip_sample_range, options_.clip_sample_range);
    }

    // sigma_t of the paper, scaled by eta.
    const at::Tensor beta_prod_t_prev = 1 - alpha_prod_t_prev;
    const at::Tensor variance =
        (beta_prod_t_prev / beta_prod_t) * (1 - alpha_prod_t / alpha_prod_t_prev);
    const at::Tensor std_dev_t = at::pow(variance, 0.5) * options.eta;

    const at::Tensor pred_sample_direction =
        at::pow(1 - alpha_prod_t_prev - at::pow(std_dev_t, 2), 0.5) * pred_epsilon;
    at::Tensor prev_sample =
        at::pow(alpha_prod_t_prev, 0.5) * pred_original_sample + pred_sample_direction;

    if (options.eta > 0) {
      at::Tensor noise = options.variance_noise;
      if (noise.defined() && options.generator.has_value()) {
        return absl::InvalidArgumentError(
            "give either a generator or variance_noise for a DDIM step with eta > 0, not both");
      }
      if (!noise.defined()) {
        if (!options.generator.has_value()) {
          return absl::InvalidArgumentError(
              "a DDIM step with eta > 0 needs a generator or variance_noise");
        }
        noise = at::randn(model_output.sizes(), *options.generator, model_output.options());
      }
      IMGINTERP_RETURN_IF_ERROR(
          detail::CheckSameShape(noise, "variance_noise", model_output, "model_output"));
      prev_sample = prev_sample + std_dev_t * noise;
    }
    return StepResult{prev_sample, pred_original_sample};
  });
}

absl::StatusOr<at::Tensor> DDIMScheduler::AddNoise(const at::Tensor& original,
                                                   const at::Tensor& noise, double timestep) const {
  IMGINTERP_RETURN_IF_ERROR(detail::CheckSameShape(original, "original", noise, "noise"));
  IMGINTERP_ASSIGN_OR_RETURN(const int64_t t,
                             detail::TrainTimestep(timestep, schedule_.num_train_timesteps));
  return detail::CatchTorch("DDIMScheduler::AddNoise", [&]() -> absl::StatusOr<at::Tensor> {
    // x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, in the sample's dtype.
    const at::Tensor alphas_cumprod = alphas_cumprod_.to(original.scalar_type());
    const at::Tensor sqrt_alpha_prod = at::pow(alphas_cumprod[t], 0.5);
    const at::Tensor sqrt_one_minus_alpha_prod = at::pow(1 - alphas_cumprod[t], 0.5);
    return sqrt_alpha_prod * original + sqrt_one_minus_alpha_prod * noise;
  });
}

}  // namespace imginterp::diffusion
