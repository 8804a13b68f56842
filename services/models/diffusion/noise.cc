#include "services/models/diffusion/noise.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "absl/strings/str_cat.h"

namespace imginterp::diffusion {

at::Generator MakeCpuGenerator(uint64_t seed) { return at::detail::createCPUGenerator(seed); }

absl::StatusOr<at::Tensor> InitialNoise(const std::vector<int64_t>& shape, uint64_t seed,
                                        at::ScalarType dtype) {
  if (shape.empty()) return absl::InvalidArgumentError("noise shape is empty");
  for (int64_t d : shape) {
    if (d <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("noise shape has a dimension of ", d, "; all must be >= 1"));
    }
  }
  if (!at::isFloatingType(dtype)) {
    return absl::InvalidArgumentError(
        absl::StrCat("noise dtype ", c10::toString(dtype), " is not a floating-point type"));
  }
  try {
    at::Generator generator = MakeCpuGenerator(seed);
    // Always draw in float32: the sampler's output (and how many random numbers it consumes)
    // depends on the dtype, and the reference draws float32.
    at::Tensor noise = at::randn(shape, generator, at::TensorOptions().dtype(at::kFloat));
    return dtype == at::kFloat ? noise : noise.to(dtype);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("drawing seeded noise failed: ", e.what()));
  }
}

absl::StatusOr<at::Tensor> SlerpNoise(const at::Tensor& a, const at::Tensor& b, double t,
                                      double dot_threshold) {
  if (!a.defined() || !b.defined()) return absl::InvalidArgumentError("slerp input is undefined");
  if (!a.sizes().equals(b.sizes()) || a.scalar_type() != b.scalar_type() || a.dim() == 0) {
    return absl::InvalidArgumentError(
        "slerp inputs must have the same non-scalar shape and the same dtype");
  }
  if (!a.is_floating_point()) {
    return absl::InvalidArgumentError("slerp inputs must be floating-point tensors");
  }
  if (!(t >= 0.0 && t <= 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat("slerp t is ", t, "; it must be in [0, 1]"));
  }
  try {
    const int64_t batch = a.size(0);
    const at::Tensor a64 = a.to(at::kDouble).reshape({batch, -1});
    const at::Tensor b64 = b.to(at::kDouble).reshape({batch, -1});
    at::Tensor out = at::empty_like(a64);
    for (int64_t i = 0; i < batch; ++i) {
      const at::Tensor x = a64[i];
      const at::Tensor y = b64[i];
      const double norms = x.norm().item<double>() * y.norm().item<double>();
      const double dot = norms > 0 ? (x * y).sum().item<double>() / norms : 1.0;
      if (std::abs(dot) > dot_threshold) {
        out[i].copy_(x + (y - x) * t);
        continue;
      }
      const double theta = std::acos(dot);
      const double sin_theta = std::sin(theta);
      const double s0 = std::sin((1 - t) * theta) / sin_theta;
      const double s1 = std::sin(t * theta) / sin_theta;
      out[i].copy_(x * s0 + y * s1);
    }
    return out.reshape(a.sizes()).to(a.scalar_type());
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("slerp failed: ", e.what()));
  }
}

}  // namespace imginterp::diffusion
