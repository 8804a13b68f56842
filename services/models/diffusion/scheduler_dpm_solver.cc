#include "services/models/diffusion/scheduler_dpm_solver.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "services/core/common/status_macros.h"
#include "services/models/diffusion/scheduler_numerics.h"

namespace imginterp::diffusion {
namespace {

// (alpha_t, sigma_t) of the variance-preserving process at k-diffusion noise level sigma.
std::pair<at::Tensor, at::Tensor> AlphaSigma(const at::Tensor& sigma) {
  at::Tensor alpha_t = at::reciprocal(at::pow(at::pow(sigma, 2) + 1, 0.5));
  at::Tensor sigma_t = sigma * alpha_t;
  return {alpha_t, sigma_t};
}

// The half log-SNR lambda = log(alpha_t) - log(sigma_t).
at::Tensor Lambda(const std::pair<at::Tensor, at::Tensor>& alpha_sigma) {
  return at::log(alpha_sigma.first) - at::log(alpha_sigma.second);
}

}  // namespace

absl::StatusOr<std::unique_ptr<DPMSolverMultistepScheduler>> DPMSolverMultistepScheduler::Create(
    const DPMSolverMultistepOptions& options) {
  if (options.solver_order < 1 || options.solver_order > 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("solver_order is ", options.solver_order, "; it must be 1, 2 or 3"));
  }
  if (options.algorithm_type == DpmAlgorithm::kSdeDpmSolverPlusPlus && options.solver_order == 3) {
    return absl::InvalidArgumentError("sde-dpmsolver++ supports solver_order 1 or 2, not 3");
  }
  return detail::CatchTorch("DPMSolverMultistepScheduler::Create",
                            [&]() -> absl::StatusOr<std::unique_ptr<DPMSolverMultistepScheduler>> {
                              IMGINTERP_ASSIGN_OR_RETURN(
                                  at::Tensor alphas_cumprod,
                                  detail::MakeAlphasCumprod(options.schedule));
                              if (options.schedule.rescale_betas_zero_snr)
                                alphas_cumprod[-1] = std::pow(2.0, -24);
                              return std::unique_ptr<DPMSolverMultistepScheduler>(
                                  new DPMSolverMultistepScheduler(options, alphas_cumprod));
                            });
}

DPMSolverMultistepScheduler::DPMSolverMultistepScheduler(const DPMSolverMultistepOptions& options,
                                                         at::Tensor alphas_cumprod)
    : Scheduler(options.schedule, std::move(alphas_cumprod)), options_(options) {}

void DPMSolverMultistepScheduler::Reset() {
  Scheduler::Reset();
  model_outputs_.assign(options_.solver_order, at::Tensor());
  lower_order_nums_ = 0;
}

absl::Status DPMSolverMultistepScheduler::SetTimesteps(int num_inference_steps) {
  const int train = schedule_.num_train_timesteps;
  IMGINTERP_RETURN_IF_ERROR(detail::CheckStepCount(num_inference_steps, train));
  return detail::CatchTorch("DPMSolverMultistepScheduler::SetTimesteps", [&]() -> absl::Status {
    // Drop the noisiest timesteps whose lambda is below lambda_min_clipped.
    const at::Tensor lambda_t =
        at::log(at::sqrt(alphas_cumprod_)) - at::log(at::sqrt(1 - alphas_cumprod_));
    const at::Tensor ascending = at::flip(lambda_t, {0}).contiguous();
    const float clip = static_cast<float>(options_.lambda_min_clipped);
    const float* lambdas = ascending.data_ptr<float>();
    const int clipped_idx =
        static_cast<int>(std::lower_bound(lambdas, lambdas + train, clip) - lambdas);
    const int last_timestep = train - clipped_idx;
    if (last_timestep < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("lambda_min_clipped ", options_.lambda_min_clipped, " leaves no timesteps"));
    }

    std::vector<double> timesteps;
    switch (options_.timestep_spacing) {
      case TimestepSpacing::kLinspace: {
        const std::vector<double> values =
            detail::Linspace(0, last_timestep - 1, num_inference_steps + 1);
        for (int i = num_inference_steps; i >= 1; --i) {
          timesteps.push_back(detail::RoundHalfEven(values[i]));
        }
        break;
      }
      case TimestepSpacing::kLeading: {
        const int step_ratio = last_timestep / (num_inference_steps + 1);
        for (int i = num_inference_steps; i >= 1; --i) {
          timesteps.push_back(static_cast<double>(i) * step_ratio + schedule_.steps_offset);
        }
        break;
      }
      case TimestepSpacing::kTrailing: {
        const double step_ratio = static_cast<double>(train) / num_inference_steps;
        for (double t : detail::Arange(last_timestep, 0, -step_ratio)) {
          timesteps.push_back(detail::RoundHalfEven(t) - 1);
        }
        break;
      }
    }

    const std::vector<double> train_sigmas = detail::TrainSigmas(alphas_cumprod_);
    std::vector<double> sigmas;
    if (options_.use_karras_sigmas || options_.use_lu_lambdas) {
      if (options_.use_karras_sigmas) {
        sigmas =
            detail::KarrasSigmas(train_sigmas.front(), train_sigmas.back(), num_inference_steps);
      } else {
        // Uniform in log sigma between the schedule's ends (diffusers' _convert_to_lu).
        const double lambda_min = std::log(static_cast<float>(train_sigmas.front()));
        const double lambda_max = std::log(static_cast<float>(train_sigmas.back()));
        for (double r : detail::Linspace(0, 1, num_inference_steps)) {
          sigmas.push_back(std::exp(lambda_max + r * (lambda_min - lambda_max)));
        }
      }
      const std::vector<float> log_sigmas = detail::LogSigmas(train_sigmas);
      timesteps.clear();
      for (double s : sigmas) {
        timesteps.push_back(detail::RoundHalfEven(detail::SigmaToT(s, log_sigmas)));
      }
    } else {
      for (double t : timesteps) sigmas.push_back(detail::Interp(t, train_sigmas));
    }
    sigmas.push_back(options_.final_sigmas_type == FinalSigmas::kSigmaMin ? train_sigmas.front()
                                                                          : 0.0);
    for (double& s : sigmas) s = detail::ToFloat32(s);

    num_inference_steps_ = static_cast<int>(timesteps.size());
    timesteps_ = std::move(timesteps);
    sigmas_ = std::move(sigmas);
    sigmas_tensor_ = detail::Float32Tensor(sigmas_);
    Reset();
    return absl::OkStatus();
  });
}

at::Tensor DPMSolverMultistepScheduler::ConvertModelOutput(const at::Tensor& model_output,
                                                           const at::Tensor& sample) const {
  // DPM-Solver++ works on the data prediction x0.
  switch (schedule_.prediction_type) {
    case PredictionType::kSample:
      return model_output;
    case PredictionType::kEpsilon: {
      const auto [alpha_t, sigma_t] = AlphaSigma(sigmas_tensor_[*step_index_]);
      return (sample - sigma_t * model_output) / alpha_t;
    }
    case PredictionType::kVPrediction: {
      const auto [alpha_t, sigma_t] = AlphaSigma(sigmas_tensor_[*step_index_]);
      return alpha_t * sample - sigma_t * model_output;
    }
  }
  return model_output;
}

at::Tensor DPMSolverMultistepScheduler::FirstOrderUpdate(const at::Tensor& x0,
                                                         const at::Tensor& sample,
                                                         const at::Tensor& noise) const {
  const int i = *step_index_;
  const auto t = AlphaSigma(sigmas_tensor_[i + 1]);
  const auto s = AlphaSigma(sigmas_tensor_[i]);
  const at::Tensor& alpha_t = t.first;
  const at::Tensor& sigma_t = t.second;
  const at::Tensor& sigma_s = s.second;
  const at::Tensor h = Lambda(t) - Lambda(s);
  if (options_.algorithm_type == DpmAlgorithm::kDpmSolverPlusPlus) {
    return sigma_t / sigma_s * sample - alpha_t * (at::exp(-h) - 1.0) * x0;
  }
  return sigma_t / sigma_s * at::exp(-h) * sample + alpha_t * (1 - at::exp(h * -2.0)) * x0 +
         sigma_t * at::sqrt(1.0 - at::exp(h * -2)) * noise;
}

at::Tensor DPMSolverMultistepScheduler::SecondOrderUpdate(const at::Tensor& sample,
                                                          const at::Tensor& noise) const {
  const int i = *step_index_;
  const auto t = AlphaSigma(sigmas_tensor_[i + 1]);
  const auto s0 = AlphaSigma(sigmas_tensor_[i]);
  const auto s1 = AlphaSigma(sigmas_tensor_[i - 1]);
  const at::Tensor& alpha_t = t.first;
  const at::Tensor& sigma_t = t.second;
  const at::Tensor& sigma_s0 = s0.second;
  const at::Tensor lambda_t = Lambda(t);
  const at::Tensor lambda_s0 = Lambda(s0);
  const at::Tensor lambda_s1 = Lambda(s1);
  const size_t n = model_outputs_.size();
  const at::Tensor& m0 = model_outputs_[n - 1];
  const at::Tensor& m1 = model_outputs_[n - 2];
  const at::Tensor h = lambda_t - lambda_s0;
  const at::Tensor h_0 = lambda_s0 - lambda_s1;
  const at::Tensor r0 = h_0 / h;
  const at::Tensor& d0 = m0;
  const at::Tensor d1 = at::reciprocal(r0) * 1.0 * (m0 - m1);
  const bool midpoint = options_.solver_type == DpmSolverType::kMidpoint;
  if (options_.algorithm_type == DpmAlgorithm::kDpmSolverPlusPlus) {
    if (midpoint) {
      return sigma_t / sigma_s0 * sample - alpha_t * (at::exp(-h) - 1.0) * d0 -
             (alpha_t * (at::exp(-h) - 1.0)) * 0.5 * d1;
    }
    return sigma_t / sigma_s0 * sample - alpha_t * (at::exp(-h) - 1.0) * d0 +
           alpha_t * ((at::exp(-h) - 1.0) / h + 1.0) * d1;
  }
  const at::Tensor noise_term = sigma_t * at::sqrt(1.0 - at::exp(h * -2)) * noise;
  if (midpoint) {
    return sigma_t / sigma_s0 * at::exp(-h) * sample + alpha_t * (1 - at::exp(h * -2.0)) * d0 +
           (alpha_t * (1 - at::exp(h * -2.0))) * 0.5 * d1 + noise_term;
  }
  return sigma_t / sigma_s0 * at::exp(-h) * sample + alpha_t * (1 - at::exp(h * -2.0)) * d0 +
         alpha_t * ((1.0 - at::exp(h * -2.0)) / (h * -2.0) + 1.0) * d1 + noise_term;
}

at::Tensor DPMSolverMultistepScheduler::ThirdOrderUpdate(const at::Tensor& sample) const {
  const int i = *step_index_;
  const auto t = AlphaSigma(sigmas_tensor_[i + 1]);
  const auto s0 = AlphaSigma(sigmas_tensor_[i]);
  const auto s1 = AlphaSigma(sigmas_tensor_[i - 1]);
  const auto s2 = AlphaSigma(sigmas_tensor_[i - 2]);
  const at::Tensor& alpha_t = t.first;
  const at::Tensor& sigma_t = t.second;
  const at::Tensor& sigma_s0 = s0.second;
  const at::Tensor lambda_t = Lambda(t);
  const at::Tensor lambda_s0 = Lambda(s0);
  const at::Tensor lambda_s1 = Lambda(s1);
  const at::Tensor lambda_s2 = Lambda(s2);
  const size_t n = model_outputs_.size();
  const at::Tensor& m0 = model_outputs_[n - 1];
  const at::Tensor& m1 = model_outputs_[n - 2];
  const at::Tensor& m2 = model_outputs_[n - 3];
  const at::Tensor h = lambda_t - lambda_s0;
  const at::Tensor h_0 = lambda_s0 - lambda_s1;
  const at::Tensor h_1 = lambda_s1 - lambda_s2;
  const at::Tensor r0 = h_0 / h;
  const at::Tensor r1 = h_1 / h;
  const at::Tensor& d0 = m0;
  const at::Tensor d1_0 = at::reciprocal(r0) * 1.0 * (m0 - m1);
  const at::Tensor d1_1 = at::reciprocal(r1) * 1.0 * (m1 - m2);
  const at::Tensor d1 = d1_0 + r0 / (r0 + r1) * (d1_0 - d1_1);
  const at::Tensor d2 = at::reciprocal(r0 + r1) * 1.0 * (d1_0 - d1_1);
  return sigma_t / sigma_s0 * sample - alpha_t * (at::exp(-h) - 1.0) * d0 +
         alpha_t * ((at::exp(-h) - 1.0) / h + 1.0) * d1 -
         alpha_t * ((at::exp(-h) - 1.0 + h) / at::pow(h, 2) - 0.5) * d2;
}

absl::StatusOr<StepResult> DPMSolverMultistepScheduler::Step(const at::Tensor& model_output,
                                                             double timestep,
                                                             const at::Tensor& sample,
                                                             const StepOptions& options) {
  IMGINTERP_RETURN_IF_ERROR(CheckReady("Step"));
  IMGINTERP_RETURN_IF_ERROR(detail::CheckSameShape(model_output, "model_output", sample, "sample"));
  const bool sde = options_.algorithm_type == DpmAlgorithm::kSdeDpmSolverPlusPlus;
  if (sde && !options.generator.has_value() && !options.variance_noise.defined()) {
    return absl::InvalidArgumentError("sde-dpmsolver++ steps need a generator or variance_noise");
  }
  if (!step_index_.has_value() && !begin_index_.has_value()) {
    // diffusers falls back to the last step for a timestep it does not know.
    auto index = IndexForTimestep(timestep);
    step_index_ = index.ok() ? *index : static_cast<int>(timesteps_.size()) - 1;
  }
  IMGINTERP_ASSIGN_OR_RETURN(const int index, CurrentStepIndex(timestep));
  return detail::CatchTorch(
      "DPMSolverMultistepScheduler::Step", [&]() -> absl::StatusOr<StepResult> {
        const int count = static_cast<int>(timesteps_.size());
        const bool short_run = options_.lower_order_final && count < 15;
        const bool lower_order_final =
            index == count - 1 && (options_.euler_at_final || short_run ||
                                   options_.final_sigmas_type == FinalSigmas::kZero);
        const bool lower_order_second = index == count - 2 && short_run;

        const at::Tensor x0 = ConvertModelOutput(model_output, sample);
        std::rotate(model_outputs_.begin(), model_outputs_.begin() + 1, model_outputs_.end());
        model_outputs_.back() = x0;

        const at::Tensor x = sample.to(at::kFloat);
        at::Tensor noise;
        if (sde) {
          noise = options.variance_noise.defined()
                      ? options.variance_noise.to(at::kFloat)
                      : at::randn(model_output.sizes(), *options.generator,
                                  model_output.options().dtype(at::kFloat));
        }
        at::Tensor prev_sample;
        const int order = options_.solver_order;
        if (order == 1 || lower_order_nums_ < 1 || lower_order_final) {
          prev_sample = FirstOrderUpdate(x0, x, noise);
        } else if (order == 2 || lower_order_nums_ < 2 || lower_order_second) {
          prev_sample = SecondOrderUpdate(x, noise);
        } else {
          prev_sample = ThirdOrderUpdate(x);
        }
        if (lower_order_nums_ < order) ++lower_order_nums_;
        step_index_ = index + 1;
        return StepResult{prev_sample.to(x0.scalar_type()), at::Tensor()};
      });
}

absl::StatusOr<at::Tensor> DPMSolverMultistepScheduler::AddNoise(const at::Tensor& original,
                                                                 const at::Tensor& noise,
                                                                 double timestep) const {
  IMGINTERP_RETURN_IF_ERROR(CheckReady("AddNoise"));
  IMGINTERP_RETURN_IF_ERROR(detail::CheckSameShape(original, "original", noise, "noise"));
  int index = 0;
  if (!begin_index_.has_value()) {
    auto found = IndexForTimestep(timestep);
    index = found.ok() ? *found : static_cast<int>(timesteps_.size()) - 1;
  } else {
    index = step_index_.value_or(*begin_index_);
  }
  return detail::CatchTorch("DPMSolverMultistepScheduler::AddNoise",
                            [&]() -> absl::StatusOr<at::Tensor> {
                              const auto [alpha_t, sigma_t] =
                                  AlphaSigma(sigmas_tensor_.to(original.scalar_type())[index]);
                              return alpha_t * original + sigma_t * noise;
                            });
}

}  // namespace imginterp::diffusion
