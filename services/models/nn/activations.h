// Activation functions by the names used in diffusers and transformers configs.
#pragma once

#include <ATen/core/Tensor.h>

#include <string_view>

#include "absl/status/statusor.h"

namespace imginterp::nn {

enum class Activation {
  kSilu,       // "silu", "swish": x * sigmoid(x)
  kGelu,       // "gelu": exact, erf-based
  kGeluTanh,   // "gelu_new", "gelu_pytorch_tanh", "gelu_fast": tanh approximation
  kQuickGelu,  // "quick_gelu": x * sigmoid(1.702 x) (OpenAI CLIP)
  kRelu,       // "relu"
  kMish,       // "mish"
};

// INVALID_ARGUMENT naming the accepted names for anything else.
absl::StatusOr<Activation> ParseActivation(std::string_view name);
std::string_view ActivationName(Activation activation);

at::Tensor Activate(Activation activation, const at::Tensor& x);

}  // namespace imginterp::nn
