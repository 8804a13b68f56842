#include "services/models/diffusion/scheduler_euler.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "services/core/common/status_macros.h"
#include "services/models/diffusion/scheduler_numerics.h"

namespace imginterp::diffusion {
namespace {

// diffusers' sigma schedulers pin a zero terminal alpha_bar to 2^-24 so the last sigma is finite.
at::Tensor PinZeroTerminalSnr(at::Tensor alphas_cumprod, bool rescaled) {
  if (rescaled) alphas_cumprod[-1] = std::pow(2.0, -24);
  return alphas_cumprod;
}

// x0 predicted from a v-prediction at noise level sigma (the k-diffusion input scaling).
at::Tensor VPredictionToX0(const at::Tensor& model_output, const at::Tensor& sample,
                           const at::Tensor& sigma) {
  return model_output * (-sigma / at::pow(at::pow(sigma, 2) + 1, 0.5)) +
         sample / (at::pow(sigma, 2) + 1);
}

}  // namespace

SigmaScheduler::SigmaScheduler(NoiseScheduleOptions schedule, at::Tensor alphas_cumprod,
                               TimestepSpacing spacing)
    : Scheduler(std::move(schedule), std::move(alphas_cumprod)), spacing_(spacing) {}

std::vector<double> SigmaScheduler::SpacedTimesteps(int num_inference_steps) const {
  const int train = schedule_.num_train_timesteps;
  std::vector<double> timesteps;
  switch (spacing_) {
    case TimestepSpacing::kLinspace:
      // float32 values of 0 .. train - 1, not rounded to integers.
      for (double t : detail::Linspace(0, train - 1, num_inference_steps)) {
        timesteps.insert(timesteps.begin(), detail::ToFloat32(t));
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
  return timesteps;
}

void SigmaScheduler::SetSchedule(std::vector<double> timesteps, std::vector<double> sigmas) {
  for (double& s : sigmas) s = detail::ToFloat32(s);
  timesteps_ = std::move(timesteps);
  sigmas_ = std::move(sigmas);
  sigmas_tensor_ = detail::Float32Tensor(sigmas_);
  Reset();
}

double SigmaScheduler::InitNoiseSigma() const {
  // The largest sigma (float32), or sqrt(sigma^2 + 1) for "leading" spacing, as diffusers.
  const std::vector<double> train_sigmas = detail::TrainSigmas(alphas_cumprod_);
  const std::vector<double>& sigmas = sigmas_.empty() ? train_sigmas : sigmas_;
  const float max_sigma = static_cast<float>(*std::max_element(sigmas.begin(), sigmas.end()));
  if (spacing_ == TimestepSpacing::kLinspace || spacing_ == TimestepSpacing::kTrailing) {
    return max_sigma;
  }
  return std::sqrt(max_sigma * max_sigma + 1.0f);
}

absl::StatusOr<at::Tensor> SigmaScheduler::ScaleModelInput(const at::Tensor& sample,
                                                           double timestep) {
  IMGINTERP_RETURN_IF_ERROR(CheckReady("ScaleModelInput"));
  IMGINTERP_ASSIGN_OR_RETURN(const int index, CurrentStepIndex(timestep));
  return detail::CatchTorch("ScaleModelInput", [&]() -> absl::StatusOr<at::Tensor> {
    const at::Tensor sigma = sigmas_tensor_[index];
    return sample / at::pow(at::pow(sigma, 2) + 1, 0.5);
  });
}

absl::StatusOr<at::Tensor> SigmaScheduler::AddNoise(const at::Tensor& original,
                                                    const at::Tensor& noise,
                                                    double timestep) const {
  IMGINTERP_RETURN_IF_ERROR(CheckReady("AddNoise"));
  IMGINTERP_RETURN_IF_ERROR(detail::CheckSameShape(original, "original", noise, "noise"));
  int index = 0;
  if (!begin_index_.has_value()) {
    IMGINTERP_ASSIGN_OR_RETURN(index, IndexForTimestep(timestep));
  } else {
    index = step_index_.value_or(*begin_index_);
  }
  return detail::CatchTorch("AddNoise", [&]() -> absl::StatusOr<at::Tensor> {
    const at::Tensor sigma = sigmas_tensor_.to(original.scalar_type())[index];
    return original + noise * sigma;
  });
}

// ---------------------------------------------------------------------------------------------
// Euler

absl::StatusOr<std::unique_ptr<EulerDiscreteScheduler>> EulerDiscreteScheduler::Create(
    const EulerOptions& options) {
  return detail::CatchTorch(
      "EulerDiscreteScheduler::Create",
      [&]() -> absl::StatusOr<std::unique_ptr<EulerDiscreteScheduler>> {
        IMGINTERP_ASSIGN_OR_RETURN(at::Tensor alphas_cumprod,
                                   detail::MakeAlphasCumprod(options.schedule));
        alphas_cumprod =
            PinZeroTerminalSnr(alphas_cumprod, options.schedule.rescale_betas_zero_snr);
        return std::unique_ptr<EulerDiscreteScheduler>(
            new EulerDiscreteScheduler(options, alphas_cumprod));
      });
}

EulerDiscreteScheduler::EulerDiscreteScheduler(const EulerOptions& options,
                                               at::Tensor alphas_cumprod)
    : SigmaScheduler(options.schedule, std::move(alphas_cumprod), options.timestep_spacing),
      options_(options) {}

absl::Status EulerDiscreteScheduler::SetTimesteps(int num_inference_steps) {
  IMGINTERP_RETURN_IF_ERROR(
      detail::CheckStepCount(num_inference_steps, schedule_.num_train_timesteps));
  return detail::CatchTorch("EulerDiscreteScheduler::SetTimesteps", [&]() -> absl::Status {
    std::vector<double> timesteps = SpacedTimesteps(num_inference_steps);
    const std::vector<double> train_sigmas = detail::TrainSigmas(alphas_cumprod_);
    std::vector<double> sigmas;
    if (options_.interpolation_type == SigmaInterpolation::kLinear) {
      for (double t : timesteps) sigmas.push_back(detail::Interp(t, train_sigmas));
    } else {
      // Evenly spaced in log sigma, float32, num_inference_steps + 1 values as in diffusers.
      const at::Tensor log_linear =
          at::linspace(static_cast<double>(std::log(static_cast<float>(train_sigmas.back()))),
                       static_cast<double>(std::log(static_cast<float>(train_sigmas.front()))),
                       num_inference_steps + 1, at::kFloat)
              .exp();
      const float* data = log_linear.data_ptr<float>();
      sigmas.assign(data, data + log_linear.numel());
    }
    if (options_.use_karras_sigmas) {
      const double sigma_min = options_.sigma_min.value_or(sigmas.back());
      const double sigma_max = options_.sigma_max.value_or(sigmas.front());
      sigmas = detail::KarrasSigmas(sigma_min, sigma_max, num_inference_steps);
      const std::vector<float> log_sigmas = detail::LogSigmas(train_sigmas);
      timesteps.clear();
      for (double s : sigmas)
        timesteps.push_back(detail::ToFloat32(detail::SigmaToT(s, log_sigmas)));
    }
    sigmas.push_back(0.0);
    num_inference_steps_ = num_inference_steps;
    SetSchedule(std::move(timesteps), std::move(sigmas));
    return absl::OkStatus();
  });
}

absl::StatusOr<StepResult> EulerDiscreteScheduler::Step(const at::Tensor& model_output,
                                                        double timestep, const at::Tensor& sample,
                                                        const StepOptions& options) {
  IMGINTERP_RETURN_IF_ERROR(CheckReady("Step"));
  IMGINTERP_RETURN_IF_ERROR(detail::CheckSameShape(model_output, "model_output", sample, "sample"));
  IMGINTERP_ASSIGN_OR_RETURN(const int index, CurrentStepIndex(timestep));
  return detail::CatchTorch("EulerDiscreteScheduler::Step", [&]() -> absl::StatusOr<StepResult> {
    const at::Tensor x = sample.to(at::kFloat);
    const at::Tensor sigma = sigmas_tensor_[index];
    // diffusers draws the (here unused, s_churn = 0) churn noise on every step; do the same so a
    // shared generator stays in step with the reference.
    if (options.generator.has_value()) {
      (void)at::randn(model_output.sizes(), *options.generator, model_output.options());
    }
    const double gamma = 0.0;
    const at::Tensor sigma_hat = sigma * (gamma + 1);
    at::Tensor pred_original_sample;
    switch (schedule_.prediction_type) {
      case PredictionType::kSample:
        pred_original_sample = model_output;
        break;
      case PredictionType::kEpsilon:
        pred_original_sample = x - sigma_hat * model_output;
        break;
      case PredictionType::kVPrediction:
        pred_original_sample = VPredictionToX0(model_output, x, sigma);
        break;
    }
    // The ODE derivative dx/dsigma, one Euler step to the next sigma.
    const at::Tensor derivative = (x - pred_original_sample) / sigma_hat;
    const at::Tensor dt = sigmas_tensor_[index + 1] - sigma_hat;
    at::Tensor prev_sample = (x + derivative * dt).to(model_output.scalar_type());
    step_index_ = index + 1;
    return StepResult{prev_sample, pred_original_sample};
  });
}

// ---------------------------------------------------------------------------------------------
// Euler ancestral

absl::StatusOr<std::unique_ptr<EulerAncestralDiscreteScheduler>>
EulerAncestralDiscreteScheduler::Create(const EulerAncestralOptions& options) {
  if (options.schedule.prediction_type == PredictionType::kSample) {
    return absl::InvalidArgumentError(
        "EulerAncestralDiscreteScheduler supports prediction_type epsilon or v_prediction, not "
        "sample");
  }
  return detail::CatchTorch(
      "EulerAncestralDiscreteScheduler::Create",
      [&]() -> absl::StatusOr<std::unique_ptr<EulerAncestralDiscreteScheduler>> {
        IMGINTERP_ASSIGN_OR_RETURN(at::Tensor alphas_cumprod,
                                   detail::MakeAlphasCumprod(options.schedule));
        alphas_cumprod =
            PinZeroTerminalSnr(alphas_cumprod, options.schedule.rescale_betas_zero_snr);
        return std::unique_ptr<EulerAncestralDiscreteScheduler>(
            new EulerAncestralDiscreteScheduler(options, alphas_cumprod));
      });
}

EulerAncestralDiscreteScheduler::EulerAncestralDiscreteScheduler(
    const EulerAncestralOptions& options, at::Tensor alphas_cumprod)
    : SigmaScheduler(options.schedule, std::move(alphas_cumprod), options.timestep_spacing),
      options_(options) {}

absl::Status EulerAncestralDiscreteScheduler::SetTimesteps(int num_inference_steps) {
  IMGINTERP_RETURN_IF_ERROR(
      detail::CheckStepCount(num_inference_steps, schedule_.num_train_timesteps));
  return detail::CatchTorch("EulerAncestralDiscreteScheduler::SetTimesteps", [&]() -> absl::Status {
    std::vector<double> timesteps = SpacedTimesteps(num_inference_steps);
    const std::vector<double> train_sigmas = detail::TrainSigmas(alphas_cumprod_);
    std::vector<double> sigmas;
    for (double t : timesteps) {
      sigmas.push_back(detail::Interp(t, train_sigmas));
    }
    sigmas.push_back(0.0);
    num_inference_steps_ = num_inference_steps;
    SetSchedule(std::move(timesteps), std::move(sigmas));
    return absl::OkStatus();
  });
}

absl::StatusOr<StepResult> EulerAncestralDiscreteScheduler::Step(const at::Tensor& model_output,
                                                                 double timestep,
                                                                 const at::Tensor& sample,
                                                                 const StepOptions& options) {
  IMGINTERP_RETURN_IF_ERROR(CheckReady("Step"));
  IMGINTERP_RETURN_IF_ERROR(detail::CheckSameShape(model_output, "model_output", sample, "sample"));
  if (!options.generator.has_value() && !options.variance_noise.defined()) {
    return absl::InvalidArgumentError(
        "EulerAncestralDiscreteScheduler::Step needs a generator or variance_noise");
  }
  if (options.variance_noise.defined()) {
    IMGINTERP_RETURN_IF_ERROR(detail::CheckSameShape(options.variance_noise, "variance_noise",
                                                     model_output, "model_output"));
  }
  IMGINTERP_ASSIGN_OR_RETURN(const int index, CurrentStepIndex(timestep));
  return detail::CatchTorch(
      "EulerAncestralDiscreteScheduler::Step", [&]() -> absl::StatusOr<StepResult> {
        const at::Tensor sigma = sigmas_tensor_[index];
        const at::Tensor x = sample.to(at::kFloat);
        at::Tensor pred_original_sample;
        if (schedule_.prediction_type == PredictionType::kEpsilon) {
          pred_original_sample = x - sigma * model_output;
        } else {
          pred_original_sample = VPredictionToX0(model_output, x, sigma);
        }
        // Split the step to sigma_to into a deterministic part down to sigma_down and fresh noise
        // of size sigma_up (sigma_down^2 + sigma_up^2 = sigma_to^2).
        const at::Tensor sigma_from = sigmas_tensor_[index];
        const at::Tensor sigma_to = sigmas_tensor_[index + 1];
        const at::Tensor sigma_up =
            at::pow(at::pow(sigma_to, 2) * (at::pow(sigma_from, 2) - at::pow(sigma_to, 2)) /
                        at::pow(sigma_from, 2),
                    0.5);
        const at::Tensor sigma_down = at::pow(at::pow(sigma_to, 2) - at::pow(sigma_up, 2), 0.5);
        const at::Tensor derivative = (x - pred_original_sample) / sigma;
        const at::Tensor dt = sigma_down - sigma;
        at::Tensor prev_sample = x + derivative * dt;
        const at::Tensor noise =
            options.variance_noise.defined()
                ? options.variance_noise
                : at::randn(model_output.sizes(), *options.generator, model_output.options());
        prev_sample = (prev_sample + noise * sigma_up).to(model_output.scalar_type());
        step_index_ = index + 1;
        return StepResult{prev_sample, pred_original_sample};
      });
}

}  // namespace imginterp::diffusion
