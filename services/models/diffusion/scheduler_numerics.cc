#include "services/models/diffusion/scheduler_numerics.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cfenv>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace imginterp::diffusion::detail {
namespace {

std::string ToString(at::IntArrayRef sizes) {
  std::string out = "[";
  for (size_t i = 0; i < sizes.size(); ++i) absl::StrAppend(&out, i ? "x" : "", sizes[i]);
  return out + "]";
}

// The squaredcos_cap_v2 betas: 1 - alpha_bar(t2) / alpha_bar(t1) capped at 0.999, in float64,
// then stored as float32 (diffusers' betas_for_alpha_bar).
at::Tensor CosineBetas(int num_train_timesteps) {
  auto alpha_bar = [](double t) {
    const double c = std::cos((t + 0.008) / 1.008 * M_PI / 2);
    return c * c;
  };
  std::vector<double> betas(num_train_timesteps);
  for (int i = 0; i < num_train_timesteps; ++i) {
    const double t1 = static_cast<double>(i) / num_train_timesteps;
    const double t2 = static_cast<double>(i + 1) / num_train_timesteps;
    betas[i] = std::min(1 - alpha_bar(t2) / alpha_bar(t1), 0.999);
  }
  return Float32Tensor(betas);
}

// Algorithm 1 of "Common Diffusion Noise Schedules and Sample Steps Are Flawed", float32.
at::Tensor RescaleZeroTerminalSnr(const at::Tensor& betas) {
  at::Tensor alphas = 1.0 - betas;
  at::Tensor alphas_cumprod = at::cumprod(alphas, 0);
  at::Tensor alphas_bar_sqrt = alphas_cumprod.sqrt();
  at::Tensor sqrt_0 = alphas_bar_sqrt[0].clone();
  at::Tensor sqrt_last = alphas_bar_sqrt[-1].clone();
  alphas_bar_sqrt -= sqrt_last;
  alphas_bar_sqrt *= sqrt_0 / (sqrt_0 - sqrt_last);
  at::Tensor alphas_bar = at::pow(alphas_bar_sqrt, 2);
  const int64_t n = alphas_bar.size(0);
  at::Tensor ratios = alphas_bar.slice(0, 1, n) / alphas_bar.slice(0, 0, n - 1);
  return 1 - at::cat({alphas_bar.slice(0, 0, 1), ratios});
}

}  // namespace

at::Tensor Float32Tensor(const std::vector<double>& values) {
  at::Tensor out = at::empty({static_cast<int64_t>(values.size())}, at::kFloat);
  float* data = out.data_ptr<float>();
  for (size_t i = 0; i < values.size(); ++i) data[i] = static_cast<float>(values[i]);
  return out;
}

absl::StatusOr<at::Tensor> MakeAlphasCumprod(const NoiseScheduleOptions& options) {
  const int n = options.num_train_timesteps;
  if (n < 2 || n > 100000) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_train_timesteps is ", n, "; it must be in [2, 100000]"));
  }
  at::Tensor betas;
  if (!options.trained_betas.empty()) {
    if (static_cast<int>(options.trained_betas.size()) != n) {
      return absl::InvalidArgumentError(absl::StrCat("trained_betas has ",
                                                     options.trained_betas.size(),
                                                     " values; num_train_timesteps is ", n));
    }
    betas = Float32Tensor(options.trained_betas);
  } else {
    switch (options.beta_schedule) {
      case BetaSchedule::kLinear:
        betas = at::linspace(options.beta_start, options.beta_end, n, at::kFloat);
        break;
      case BetaSchedule::kScaledLinear:
        betas = at::pow(at::linspace(std::pow(options.beta_start, 0.5),
                                     std::pow(options.beta_end, 0.5), n, at::kFloat),
                        2);
        break;
      case BetaSchedule::kSquaredCosCapV2:
        betas = CosineBetas(n);
        break;
    }
  }
  if (options.rescale_betas_zero_snr) betas = RescaleZeroTerminalSnr(betas);
  at::Tensor alphas = 1.0 - betas;
  at::Tensor alphas_cumprod = at::cumprod(alphas, 0);
  // With a zero terminal SNR the last alpha_bar is 0 and its sigma infinite; diffusers' sigma
  // schedulers nudge it to 2^-24. The alpha-based ones (DDIM) keep 0 and never divide by it.
  return alphas_cumprod;
}

absl::StatusOr<int64_t> TrainTimestep(double timestep, int num_train_timesteps) {
  if (!(timestep >= 0 && timestep < num_train_timesteps) || std::floor(timestep) != timestep) {
    return absl::InvalidArgumentError(absl::StrCat(
        "timestep ", timestep, " is not an integer in [0, ", num_train_timesteps, ")"));
  }
  return static_cast<int64_t>(timestep);
}

absl::Status CheckStepCount(int num_inference_steps, int num_train_timesteps) {
  if (num_inference_steps < 1 || num_inference_steps > num_train_timesteps) {
    return absl::InvalidArgumentError(absl::StrCat("num_inference_steps is ", num_inference_steps,
                                                   "; it must be in [1, ", num_train_timesteps,
                                                   "] (num_train_timesteps)"));
  }
  return absl::OkStatus();
}

absl::Status CheckSameShape(const at::Tensor& a, const char* a_name, const at::Tensor& b,
                            const char* b_name) {
  if (!a.defined() || !b.defined()) {
    return absl::InvalidArgumentError(
        absl::StrCat(a.defined() ? b_name : a_name, " is an undefined tensor"));
  }
  if (!a.is_floating_point() || !b.is_floating_point()) {
    return absl::InvalidArgumentError(
        absl::StrCat(a_name, " and ", b_name, " must be floating-point tensors"));
  }
  if (!a.sizes().equals(b.sizes())) {
    return absl::InvalidArgumentError(absl::StrCat(a_name, " has shape ", ToString(a.sizes()),
                                                   " but ", b_name, " has shape ",
                                                   ToString(b.sizes())));
  }
  return absl::OkStatus();
}

double RoundHalfEven(double x) {
  // std::nearbyint rounds in the current mode, which is round-to-nearest-even unless changed.
  const int old_mode = std::fegetround();
  if (old_mode != FE_TONEAREST) std::fesetround(FE_TONEAREST);
  const double r = std::nearbyint(x);
  if (old_mode != FE_TONEAREST) std::fesetround(old_mode);
  return r;
}

std::vector<double> Linspace(double start, double stop, int num) {
  std::vector<double> out;
  if (num <= 0) return out;
  if (num == 1) return {start};
  const double step = (stop - start) / (num - 1);
  out.resize(num);
  for (int i = 0; i < num; ++i) out[i] = static_cast<double>(i) * step + start;
  out[num - 1] = stop;
  return out;
}

std::vector<double> Arange(double start, double stop, double step) {
  std::vector<double> out;
  const double length = std::ceil((stop - start) / step);
  if (!(length > 0)) return out;
  const double delta = (start + step) - start;
  out.resize(static_cast<size_t>(length));
  out[0] = start;
  for (size_t i = 1; i < out.size(); ++i) out[i] = start + static_cast<double>(i) * delta;
  return out;
}

double Interp(double x, const std::vector<double>& fp) {
  const int n = static_cast<int>(fp.size());
  if (x <= 0) return fp[0];  // x == xp[0] also lands on fp[0]
  if (x >= n - 1) return fp[n - 1];
  const int j = static_cast<int>(std::floor(x));
  if (static_cast<double>(j) == x) return fp[j];
  const double slope = (fp[j + 1] - fp[j]) / 1.0;  // xp[j + 1] - xp[j] == 1
  return slope * (x - j) + fp[j];
}

std::vector<double> TrainSigmas(const at::Tensor& alphas_cumprod) {
  at::Tensor sigmas = at::pow((1 - alphas_cumprod) / alphas_cumprod, 0.5).contiguous();
  const float* data = sigmas.data_ptr<float>();
  return std::vector<double>(data, data + sigmas.numel());
}

std::vector<float> LogSigmas(const std::vector<double>& train_sigmas) {
  std::vector<float> out(train_sigmas.size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = std::log(static_cast<float>(train_sigmas[i]));
  return out;
}

std::vector<double> KarrasSigmas(double sigma_min, double sigma_max, int num_steps) {
  constexpr double kRho = 7.0;
  const std::vector<double> ramp = Linspace(0, 1, num_steps);
  const double min_inv_rho = std::pow(sigma_min, 1 / kRho);
  const double max_inv_rho = std::pow(sigma_max, 1 / kRho);
  std::vector<double> out(ramp.size());
  for (size_t i = 0; i < ramp.size(); ++i) {
    out[i] = std::pow(max_inv_rho + ramp[i] * (min_inv_rho - max_inv_rho), kRho);
  }
  return out;
}

double SigmaToT(double sigma, const std::vector<float>& log_sigmas) {
  const double log_sigma = std::log(std::max(sigma, 1e-10));
  const int n = static_cast<int>(log_sigmas.size());
  // The last index whose log sigma is <= log_sigma (log_sigmas ascend), 0 when none is. NumPy 1.x
  // subtracts a float64 scalar from a float32 array in float32.
  const float log_sigma_f = static_cast<float>(log_sigma);
  int low_idx = 0;
  for (int i = 0; i < n; ++i) {
    if (log_sigma_f - log_sigmas[i] >= 0) low_idx = i;
  }
  low_idx = std::min(low_idx, n - 2);
  const int high_idx = low_idx + 1;
  const float low = log_sigmas[low_idx];
  const float high = log_sigmas[high_idx];
  float w = (low - log_sigma_f) / (low - high);
  w = std::clamp(w, 0.0f, 1.0f);
  // float32 times an int64 array widens to float64.
  return static_cast<double>(1.0f - w) * low_idx + static_cast<double>(w) * high_idx;
}

}  // namespace imginterp::diffusion::detail
