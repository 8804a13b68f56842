// Seeded starting noise and latent interpolation.
//
// A seed means the same noise here as in the reference implementation: InitialNoise(shape, seed)
// returns exactly what `torch.randn(shape, generator=torch.Generator().manual_seed(seed))` returns
// on CPU in float32 (LibTorch's CPU generator is the same Mersenne Twister with the same normal
// sampler), then casts it to the requested dtype.
#pragma once

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace imginterp::diffusion {

// A fresh CPU generator seeded like `torch.Generator().manual_seed(seed)`. The generator is
// externally synchronized; give each request its own.
at::Generator MakeCpuGenerator(uint64_t seed);

// float32 N(0, 1) noise of `shape` drawn from a fresh generator seeded with `seed`, cast to
// `dtype` (a floating type). INVALID_ARGUMENT for a negative or empty shape or a non-float dtype.
absl::StatusOr<at::Tensor> InitialNoise(const std::vector<int64_t>& shape, uint64_t seed,
                                        at::ScalarType dtype = at::kFloat);

// Spherical linear interpolation between two noise latents of the same shape: t = 0 gives `a`,
// t = 1 gives `b`, and intermediate values keep the norm of Gaussian noise (plain lerp shrinks
// it, which makes images blurry). Each item along dim 0 is interpolated on its own; where a pair
// is nearly parallel (|cos| > dot_threshold) it falls back to linear interpolation. Computed in
// float64, returned in a's dtype. INVALID_ARGUMENT for mismatched shapes/dtypes or t outside
// [0, 1].
absl::StatusOr<at::Tensor> SlerpNoise(const at::Tensor& a, const at::Tensor& b, double t,
                                      double dot_threshold = 0.9995);

}  // namespace imginterp::diffusion
