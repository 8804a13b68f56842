#include "services/models/nn/layers.h"

#include <torch/torch.h>

#include <cmath>

#include "services/models/nn/cpu_parallel.h"

namespace imginterp::nn {
namespace {

bool OnMeta(const at::Tensor& t) { return t.defined() && t.device().is_meta(); }

// PyTorch's default for Linear and Conv: kaiming_uniform_(a=sqrt(5)) on the weight, which is
// U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the same bound for the bias.
void UniformFanIn(at::Tensor& weight, at::Tensor& bias, int64_t fan_in) {
  if (OnMeta(weight)) return;
  torch::NoGradGuard no_grad;
  const double bound = fan_in > 0 ? 1.0 / std::sqrt(static_cast<double>(fan_in)) : 0.0;
  weight.uniform_(-bound, bound);
  if (bias.defined()) bias.uniform_(-bound, bound);
}

void OnesZeros(at::Tensor& weight, at::Tensor& bias) {
  torch::NoGradGuard no_grad;
  if (weight.defined() && !OnMeta(weight)) weight.fill_(1.0);
  if (bias.defined() && !OnMeta(bias)) bias.zero_();
}

}  // namespace

void ResetParameters(torch::nn::Module& root) {
  for (const auto& module : root.modules(/*include_self=*/true)) {
    if (auto* resettable = dynamic_cast<Resettable*>(module.get())) resettable->ResetParameters();
  }
}

LinearImpl::LinearImpl(int64_t in_features, int64_t out_features, bool bias,
                       const c10::TensorOptions& options)
    : in_features_(in_features), out_features_(out_features) {
  weight = register_parameter("weight", torch::empty({out_features, in_features}, options));
  if (bias) this->bias = register_parameter("bias", torch::empty({out_features}, options));
}

at::Tensor LinearImpl::forward(const at::Tensor& input) {
  return ParallelLinear(input, weight, bias);
}

void LinearImpl::ResetParameters() { UniformFanIn(weight, bias, in_features_); }

Conv2dImpl::Conv2dImpl(const Conv2dOptions& conv, const c10::TensorOptions& options) : conv_(conv) {
  TORCH_CHECK(conv.groups > 0 && conv.in_channels % conv.groups == 0, "Conv2d: in_channels ",
              conv.in_channels, " is not divisible by groups ", conv.groups);
  weight =
      register_parameter("weight", torch::empty({conv.out_channels, conv.in_channels / conv.groups,
                                                 conv.kernel_size, conv.kernel_size},
                                                options));
  if (conv.bias) bias = register_parameter("bias", torch::empty({conv.out_channels}, options));
}

at::Tensor Conv2dImpl::forward(const at::Tensor& input) {
  if (conv_.groups == 1) return ParallelConv2d(input, weight, bias, conv_.stride, conv_.padding);
  return torch::conv2d(input, weight, bias, {conv_.stride, conv_.stride},
                       {conv_.padding, conv_.padding}, {1, 1}, conv_.groups);
}

void Conv2dImpl::ResetParameters() {
  UniformFanIn(weight, bias,
               conv_.in_channels / conv_.groups * conv_.kernel_size * conv_.kernel_size);
}

GroupNormImpl::GroupNormImpl(int64_t num_groups, int64_t num_channels, double eps, bool affine,
                             const c10::TensorOptions& options)
    : num_groups_(num_groups), num_channels_(num_channels), eps_(eps) {
  TORCH_CHECK(num_groups > 0 && num_channels % num_groups == 0, "GroupNorm: num_channels ",
              num_channels, " is not divisible by num_groups ", num_groups);
  if (affine) {
    weight = register_parameter("weight", torch::empty({num_channels}, options));
    bias = register_parameter("bias", torch::empty({num_channels}, options));
  }
}

at::Tensor GroupNormImpl::forward(const at::Tensor& input) {
  return torch::group_norm(input, num_groups_, weight, bias, eps_);
}

void GroupNormImpl::ResetParameters() { OnesZeros(weight, bias); }

LayerNormImpl::LayerNormImpl(int64_t dim, double eps, bool elementwise_affine,
                             const c10::TensorOptions& options)
    : dim_(dim), eps_(eps) {
  if (elementwise_affine) {
    weight = register_parameter("weight", torch::empty({dim}, options));
    bias = register_parameter("bias", torch::empty({dim}, options));
  }
}

at::Tensor LayerNormImpl::forward(const at::Tensor& input) {
  return torch::layer_norm(input, {dim_}, weight, bias, eps_);
}

void LayerNormImpl::ResetParameters() { OnesZeros(weight, bias); }

EmbeddingImpl::EmbeddingImpl(int64_t num_embeddings, int64_t embedding_dim,
                             const c10::TensorOptions& options)
    : num_embeddings_(num_embeddings), embedding_dim_(embedding_dim) {
  weight = register_parameter("weight", torch::empty({num_embeddings, embedding_dim}, options));
}

at::Tensor EmbeddingImpl::forward(const at::Tensor& indices) {
  return torch::embedding(weight, indices);
}

void EmbeddingImpl::ResetParameters() {
  if (OnMeta(weight)) return;
  torch::NoGradGuard no_grad;
  weight.normal_(0.0, 1.0);
}

}  // namespace imginterp::nn
