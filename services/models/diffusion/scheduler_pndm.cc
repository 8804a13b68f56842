#include "services/models/diffusion/scheduler_pndm.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "services/core/common/status_macros.h"
#include "services/models/diffusion/scheduler_numerics.h"

namespace imginterp::diffusion {
namespace {
constexpr int kPndmOrder = 4;
}  // namespace

absl::StatusOr<std::unique_ptr<PNDMScheduler>> PNDMScheduler::Create(const PNDMOptions& options) {
  if (options.schedule.rescale_betas_zero_snr) {
    return absl::InvalidArgumentError("PNDMScheduler does not support rescale_betas_zero_snr");
  }
  if (options.schedule.prediction_type == PredictionType::kSample) {
    return absl::InvalidArgumentError(
        "PNDMScheduler supports prediction_type epsilon or v_prediction, not sample");
  }
  return detail::CatchTorch(
      "PNDMScheduler::Create", [&]() -> absl::StatusOr<std::unique_ptr<PNDMScheduler>> {
        IMGINTERP_ASSIGN_OR_RETURN(at::Tensor alphas_cumprod,
                                   detail::MakeAlphasCumprod(options.schedule));
        return std::unique_ptr<PNDMScheduler>(new PNDMScheduler(options, alphas_cumprod));
      });
}

PNDMScheduler::PNDMScheduler(const PNDMOptions& options, at::Tensor alphas_cumprod)
    : Scheduler(options.schedule, std::move(alphas_cumprod)), options_(options) {
  final_alpha_cumprod_ =
      options.set_alpha_to_one ? at::scalar_tensor(1.0, at::kFloat) : alphas_cumprod_[0];
}

absl::Status PNDMScheduler::SetTimesteps(int num_inference_steps) {
  const int train = schedule_.num_train_timesteps;
  IMGINTERP_RETURN_IF_ERROR(detail::CheckStepCount(num_inference_steps, train));
  // The base timesteps in ascending order.
  std::vector<double> base;
  switch (options_.timestep_spacing) {
    case TimestepSpacing::kLinspace:
      for (double t : detail::Linspace(0, train - 1, num_inference_steps)) {
        base.push_back(detail::RoundHalfEven(t));
      }
      break;
    case TimestepSpacing::kLeading: {
      const int step_ratio = train / num_inference_steps;
      for (int i = 0; i < num_inference_steps; ++i) {
        base.push_back(static_cast<double>(i) * step_ratio + schedule_.steps_offset);
      }
      break;
    }
    case TimestepSpacing::kTrailing: {
      const double step_ratio = static_cast<double>(train) / num_inference_steps;
      for (double t : detail::Arange(train, 0, -step_ratio)) {
        base.insert(base.begin(), detail::RoundHalfEven(t) - 1);
      }
      break;
    }
  }
  const int n = static_cast<int>(base.size());
  std::vector<double> prk;
  std::vector<double> plms;
  if (options_.skip_prk_steps) {
    // All but the last, the second-to-last again, then the last; descending. The repeat is the
    // PLMS warm-up: the first step is evaluated twice (a Heun-like correction).
    plms.assign(base.begin(), base.end() - 1);
    if (n >= 2) plms.push_back(base[n - 2]);
    plms.push_back(base[n - 1]);
    std::reverse(plms.begin(), plms.end());
  } else {
    // Four Runge-Kutta steps over the last kPndmOrder timesteps, each evaluated at t, t - h/2
    // (twice) and t - h, written out as diffusers builds them.
    const int half = train / num_inference_steps / 2;
    std::vector<double> pairs;
    for (int i = std::max(0, n - kPndmOrder); i < n; ++i) {
      pairs.push_back(base[i]);
      pairs.push_back(base[i] + half);
    }
    if (!pairs.empty()) pairs.pop_back();
    std::vector<double> doubled;
    for (double t : pairs) doubled.insert(doubled.end(), {t, t});
    if (doubled.size() >= 2) prk.assign(doubled.begin() + 1, doubled.end() - 1);
    std::reverse(prk.begin(), prk.end());
    if (n > 3) plms.assign(base.begin(), base.end() - 3);
    std::reverse(plms.begin(), plms.end());
  }
  num_inference_steps_ = num_inference_steps;
  num_prk_timesteps_ = static_cast<int>(prk.size());
  timesteps_ = prk;
  timesteps_.insert(timesteps_.end(), plms.begin(), plms.end());
  Reset();
  return absl::OkStatus();
}

void PNDMScheduler::Reset() {
  Scheduler::Reset();
  counter_ = 0;
  cur_model_output_ = at::Tensor();
  cur_sample_ = at::Tensor();
  ets_.clear();
}

absl::StatusOr<StepResult> PNDMScheduler::Step(const at::Tensor& model_output, double timestep,
                                               const at::Tensor& sample,
                                               const StepOptions& /*options*/) {
  IMGINTERP_RETURN_IF_ERROR(CheckReady("Step"));
  IMGINTERP_RETURN_IF_ERROR(detail::CheckSameShape(model_output, "model_output", sample, "sample"));
  IMGINTERP_ASSIGN_OR_RETURN(const int64_t t,
                             detail::TrainTimestep(timestep, schedule_.num_train_timesteps));
  if (counter_ >= static_cast<int>(timesteps_.size())) {
    return absl::FailedPreconditionError(
        absl::StrCat("PNDMScheduler has already taken all ", timesteps_.size(),
                     " steps; call SetTimesteps() or Reset() to start another run"));
  }
  return detail::CatchTorch("PNDMScheduler::Step", [&]() -> absl::StatusOr<StepResult> {
    StepResult result;
    if (counter_ < num_prk_timesteps_ && !options_.skip_prk_steps) {
      result.prev_sample = StepPrk(model_output, t, sample);
    } else {
      result.prev_sample = StepPlms(model_output, t, sample);
    }
    return result;
  });
}

at::Tensor PNDMScheduler::StepPrk(const at::Tensor& model_output, int64_t timestep,
                                  const at::Tensor& sample) {
  const int64_t diff_to_prev =
      counter_ % 2 ? 0 : schedule_.num_train_timesteps / num_inference_steps_ / 2;
  const int64_t prev_timestep = timestep - diff_to_prev;
  timestep = static_cast<int64_t>(timesteps_[counter_ / 4 * 4]);

  at::Tensor output = model_output;
  switch (counter_ % 4) {
    case 0:
      cur_model_output_ = cur_model_output_.defined() ? cur_model_output_ + model_output * (1.0 / 6)
                                                      : model_output * (1.0 / 6);
      ets_.push_back(model_output);
      cur_sample_ = sample;
      break;
    case 1:
    case 2:
      cur_model_output_ = cur_model_output_ + model_output * (1.0 / 3);
      break;
    case 3:
      output = cur_model_output_ + model_output * (1.0 / 6);
      cur_model_output_ = at::Tensor();
      break;
  }
  const at::Tensor& cur_sample = cur_sample_.defined() ? cur_sample_ : sample;
  at::Tensor prev_sample = PrevSample(cur_sample, timestep, prev_timestep, output);
  ++counter_;
  return prev_sample;
}

at::Tensor PNDMScheduler::StepPlms(const at::Tensor& model_output, int64_t timestep,
                                   const at::Tensor& sample) {
  const int64_t step = schedule_.num_train_timesteps / num_inference_steps_;
  int64_t prev_timestep = timestep - step;
  if (counter_ != 1) {
    if (ets_.size() > 3) ets_.erase(ets_.begin(), ets_.end() - 3);
    ets_.push_back(model_output);
  } else {
    // The warm-up's second call: same target, evaluated from the first timestep.
    prev_timestep = timestep;
    timestep = timestep + step;
  }

  at::Tensor output;
  at::Tensor x = sample;
  const size_t n = ets_.size();
  if (n == 1 && counter_ == 0) {
    output = model_output;
    cur_sample_ = sample;
  } else if (n == 1 && counter_ == 1) {
    output = (model_output + ets_[n - 1]) / 2;
    x = cur_sample_;
    cur_sample_ = at::Tensor();
  } else if (n == 2) {
    output = (3 * ets_[n - 1] - ets_[n - 2]) / 2;
  } else if (n == 3) {
    output = (23 * ets_[n - 1] - 16 * ets_[n - 2] + 5 * ets_[n - 3]) / 12;
  } else {
    output =
        (1.0 / 24) * (55 * ets_[n - 1] - 59 * ets_[n - 2] + 37 * ets_[n - 3] - 9 * ets_[n - 4]);
  }
  at::Tensor prev_sample = PrevSample(x, timestep, prev_timestep, output);
  ++counter_;
  return prev_sample;
}

at::Tensor PNDMScheduler::PrevSample(const at::Tensor& sample, int64_t timestep,
                                     int64_t prev_timestep, const at::Tensor& model_output) const {
  // Formula (9) of the PNDM paper.
  const at::Tensor alpha_prod_t = alphas_cumprod_[timestep];
  const at::Tensor alpha_prod_t_prev =
      prev_timestep >= 0 ? alphas_cumprod_[prev_timestep] : final_alpha_cumprod_;
  const at::Tensor beta_prod_t = 1 - alpha_prod_t;
  const at::Tensor beta_prod_t_prev = 1 - alpha_prod_t_prev;

  at::Tensor eps = model_output;
  if (schedule_.prediction_type == PredictionType::kVPrediction) {
    eps = at::pow(alpha_prod_t, 0.5) * model_output + at::pow(beta_prod_t, 0.5) * sample;
  }
  const at::Tensor sample_coeff = at::pow(alpha_prod_t_prev / alpha_prod_t, 0.5);
  const at::Tensor model_output_denom_coeff =
      alpha_prod_t * at::pow(beta_prod_t_prev, 0.5) +
      at::pow(alpha_prod_t * beta_prod_t * alpha_prod_t_prev, 0.5);
  return sample_coeff * sample -
         (alpha_prod_t_prev - alpha_prod_t) * eps / model_output_denom_coeff;
}

absl::StatusOr<at::Tensor> PNDMScheduler::AddNoise(const at::Tensor& original,
                                                   const at::Tensor& noise, double timestep) const {
  IMGINTERP_RETURN_IF_ERROR(detail::CheckSameShape(original, "original", noise, "noise"));
  IMGINTERP_ASSIGN_OR_RETURN(const int64_t t,
                             detail::TrainTimestep(timestep, schedule_.num_train_timesteps));
  return detail::CatchTorch("PNDMScheduler::AddNoise", [&]() -> absl::StatusOr<at::Tensor> {
    const at::Tensor alphas_cumprod = alphas_cumprod_.to(original.scalar_type());
    const at::Tensor sqrt_alpha_prod = at::pow(alphas_cumprod[t], 0.5);
    const at::Tensor sqrt_one_minus_alpha_prod = at::pow(1 - alphas_cumprod[t], 0.5);
    return sqrt_alpha_prod * original + sqrt_one_minus_alpha_prod * noise;
  });
}

}  // namespace imginterp::diffusion
