#include "services/models/nn/activations.h"

#include <torch/torch.h>

#include <string>

#include "absl/strings/str_cat.h"

namespace imginterp::nn {

absl::StatusOr<Activation> ParseActivation(std::string_view name) {
  if (name == "silu" || name == "swish") return Activation::kSilu;
  if (name == "gelu") return Activation::kGelu;
  if (name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast" ||
      name == "gelu-approximate") {
    return Activation::kGeluTanh;
  }
  if (name == "quick_gelu") return Activation::kQuickGelu;
  if (name == "relu") return Activation::kRelu;
  if (name == "mish") return Activation::kMish;
  return absl::InvalidArgumentError(
      absl::StrCat("activation \"", std::string(name),
                   "\" is not supported; use one of silu, swish, gelu, gelu_new, "
                   "gelu_pytorch_tanh, gelu_fast, quick_gelu, relu, mish"));
}

std::string_view ActivationName(Activation activation) {
  switch (activation) {
    case Activation::kSilu:
      return "silu";
    case Activation::kGelu:
      return "gelu";
    case Activation::kGeluTanh:
      return "gelu_pytorch_tanh";
    case Activation::kQuickGelu:
      return "quick_gelu";
    case Activation::kRelu:
      return "relu";
    case Activation::kMish:
      return "mish";
  }
  return "unknown";
}

at::Tensor Activate(Activation activation, const at::Tensor& x) {
  switch (activation) {
    case Activation::kSilu:
      return torch::silu(x);
    case Activation::kGelu:
      return torch::gelu(x);
    case Activation::kGeluTanh:
      return torch::gelu(x, "tanh");
    case Activation::kQuickGelu:
      return x * torch::sigmoid(1.702 * x);
    case Activation::kRelu:
      return torch::relu(x);
    case Activation::kMish:
      return torch::mish(x);
  }
  return x;
}

}  // namespace imginterp::nn
