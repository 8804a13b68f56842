// Leaf layers whose parameters carry the exact names of the published PyTorch checkpoints
// ("weight", "bias"). Unlike torch::nn's layers they are created uninitialised on the device and
// dtype of `options`, so that a model about to be loaded from a checkpoint costs no random
// initialisation and a model built on the meta device allocates nothing (key-table tests of
// full-size models). Call ResetParameters(module) to get PyTorch's default initialisation.
//
// Thread-safety: a module may run forward() from several threads at once as long as nobody
// changes its parameters (load, to(), ResetParameters) meanwhile.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/TensorOptions.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>

namespace imginterp::nn {

// A module with its own default initialisation. ResetParameters(root) calls it on every such
// module of a tree.
class Resettable {
 public:
  virtual ~Resettable() = default;
  virtual void ResetParameters() = 0;
};

// Initialises every Resettable module of `root` (root included) with PyTorch's defaults, drawing
// from the global generator. Parameters on the meta device are left alone.
void ResetParameters(torch::nn::Module& root);

// y = x W^T + b; "weight" [out, in], "bias" [out].
class LinearImpl : public torch::nn::Module, public Resettable {
 public:
  LinearImpl(int64_t in_features, int64_t out_features, bool bias = true,
             const c10::TensorOptions& options = {});
  at::Tensor forward(const at::Tensor& input);
  void ResetParameters() override;

  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }

  at::Tensor weight;
  at::Tensor bias;  // undefined without bias

 private:
  int64_t in_features_;
  int64_t out_features_;
};
TORCH_MODULE(Linear);

struct Conv2dOptions {
  int64_t in_channels = 0;
  int64_t out_channels = 0;
  int64_t kernel_size = 3;
  int64_t stride = 1;
  int64_t padding = 0;
  int64_t groups = 1;
  bool bias = true;
};

// 2-D convolution with square kernel, stride and zero padding; "weight" [out, in/groups, k, k].
class Conv2dImpl : public torch::nn::Module, public Resettable {
 public:
  explicit Conv2dImpl(const Conv2dOptions& conv, const c10::TensorOptions& options = {});
  at::Tensor forward(const at::Tensor& input);
  void ResetParameters() override;
  const Conv2dOptions& conv_options() const { return conv_; }

  at::Tensor weight;
  at::Tensor bias;  // undefined without bias

 private:
  Conv2dOptions conv_;
};
TORCH_MODULE(Conv2d);

// GroupNorm over [N, C, ...]; affine "weight"/"bias" [C].
class GroupNormImpl : public torch::nn::Module, public Resettable {
 public:
  GroupNormImpl(int64_t num_groups, int64_t num_channels, double eps = 1e-5, bool affine = true,
                const c10::TensorOptions& options = {});
  at::Tensor forward(const at::Tensor& input);
  void ResetParameters() override;

  at::Tensor weight;
  at::Tensor bias;

 private:
  int64_t num_groups_;
  int64_t num_channels_;
  double eps_;
};
TORCH_MODULE(GroupNorm);

// LayerNorm over the last dimension; "weight"/"bias" [dim] when elementwise_affine.
class LayerNormImpl : public torch::nn::Module, public Resettable {
 public:
  LayerNormImpl(int64_t dim, double eps = 1e-5, bool elementwise_affine = true,
                const c10::TensorOptions& options = {});
  at::Tensor forward(const at::Tensor& input);
  void ResetParameters() override;

  at::Tensor weight;
  at::Tensor bias;

 private:
  int64_t dim_;
  double eps_;
};
TORCH_MODULE(LayerNorm);

// Lookup table; "weight" [num_embeddings, dim].
class EmbeddingImpl : public torch::nn::Module, public Resettable {
 public:
  EmbeddingImpl(int64_t num_embeddings, int64_t embedding_dim,
                const c10::TensorOptions& options = {});
  at::Tensor forward(const at::Tensor& indices);
  void ResetParameters() override;

  at::Tensor weight;

 private:
  int64_t num_embeddings_;
  int64_t embedding_dim_;
};
TORCH_MODULE(Embedding);

// A parameterless placeholder that keeps the published numbering of a ModuleList (dropout slots
// such as "ff.net.1" or "to_out.1"). Returns its input.
class PlaceholderImpl : public torch::nn::Module {
 public:
  at::Tensor forward(const at::Tensor& input) { return input; }
};
TORCH_MODULE(Placeholder);

}  // namespace imginterp::nn
