// Schedule arithmetic shared by the schedulers: the float32 beta/alpha tables, and the handful of
// NumPy routines diffusers computes timesteps and sigmas with, reproduced value for value
// (NumPy 1.x semantics: `round` is round-half-to-even, `linspace` is `start + i * step` with the
// last value pinned, `arange` is `start + i * delta`, `interp` is piecewise linear).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/models/diffusion/scheduler.h"

namespace imginterp::diffusion::detail {

// diffusers' betas -> alphas -> cumprod, all float32 tensors of length num_train_timesteps.
// INVALID_ARGUMENT for a bad train-timestep count or trained_betas of the wrong length.
absl::StatusOr<at::Tensor> MakeAlphasCumprod(const NoiseScheduleOptions& options);

// NumPy `np.round` / `np.rint`: ties go to the even neighbour.
double RoundHalfEven(double x);

// `np.linspace(start, stop, num)` in float64.
std::vector<double> Linspace(double start, double stop, int num);

// `np.arange(start, stop, step)` for a float step.
std::vector<double> Arange(double start, double stop, double step);

// `np.interp(x, np.arange(len(fp)), fp)`.
double Interp(double x, const std::vector<double>& fp);

// The train sigmas sqrt((1 - alpha_bar) / alpha_bar), computed as float32 tensor ops like
// diffusers, returned as float32 values widened to double. Index = train timestep.
std::vector<double> TrainSigmas(const at::Tensor& alphas_cumprod);

// Karras et al. (2022) noise levels between sigma_max and sigma_min (rho = 7), float64.
std::vector<double> KarrasSigmas(double sigma_min, double sigma_max, int num_steps);

// diffusers' `_sigma_to_t`: the fractional train timestep whose sigma is `sigma`, interpolating
// in log space. `log_sigmas` are float32 logs of the train sigmas; the interpolation weight is
// float32 as NumPy 1.x computes it.
double SigmaToT(double sigma, const std::vector<float>& log_sigmas);

// float32 natural logs of the train sigmas (the `log_sigmas` above).
std::vector<float> LogSigmas(const std::vector<double>& train_sigmas);

// Rounds `x` to float32 and widens it back.
inline double ToFloat32(double x) { return static_cast<double>(static_cast<float>(x)); }

// The float32 1-D tensor of `values`.
at::Tensor Float32Tensor(const std::vector<double>& values);

// `timestep` as an integer train timestep in [0, num_train_timesteps); INVALID_ARGUMENT otherwise.
absl::StatusOr<int64_t> TrainTimestep(double timestep, int num_train_timesteps);

// INVALID_ARGUMENT unless 1 <= num_inference_steps <= num_train_timesteps.
absl::Status CheckStepCount(int num_inference_steps, int num_train_timesteps);

// INVALID_ARGUMENT unless `a` and `b` are defined floating-point tensors of the same shape.
absl::Status CheckSameShape(const at::Tensor& a, const char* a_name, const at::Tensor& b,
                            const char* b_name);

// Runs `fn` (returning absl::StatusOr<T> or absl::Status), turning LibTorch exceptions into
// INTERNAL errors that name `what`.
template <typename Fn>
auto CatchTorch(const char* what, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const std::exception& e) {
    return absl::InternalError(std::string(what) + " failed: " + e.what());
  }
}

}  // namespace imginterp::diffusion::detail
