// Embeddings: diffusers' sinusoidal timestep embedding (get_timestep_embedding, Timesteps),
// TimestepEmbedding (linear_1, act, linear_2), and the ViT patch embedding of CLIP's vision tower
// (class_embedding, patch_embedding, position_embedding).
//
// Thread-safety: as torch::nn::Module; forward() only reads the parameters.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/TensorOptions.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>

#include "services/models/nn/activations.h"
#include "services/models/nn/layers.h"

namespace imginterp::nn {

// diffusers' get_timestep_embedding: for a 1-D tensor of N (possibly fractional) timesteps,
// half = dim / 2, freq_i = exp(-ln(max_period) * i / (half - downscale_freq_shift)),
// e = scale * t * freq, [sin(e), cos(e)] (or [cos, sin] with flip_sin_to_cos), zero-padded to
// `dim` when odd. Computed in float32 as diffusers does, whatever the timesteps' dtype; cast the
// result to the model dtype. Returns [N, dim].
at::Tensor GetTimestepEmbedding(const at::Tensor& timesteps, int64_t embedding_dim,
                                bool flip_sin_to_cos = false, double downscale_freq_shift = 1.0,
                                double scale = 1.0, double max_period = 10000.0);

struct TimestepsOptions {
  int64_t num_channels = 320;
  bool flip_sin_to_cos = true;
  double downscale_freq_shift = 0.0;
  double scale = 1.0;
};

// diffusers' `Timesteps` (no parameters): GetTimestepEmbedding with fixed settings.
class TimestepsImpl : public torch::nn::Module {
 public:
  explicit TimestepsImpl(const TimestepsOptions& timesteps) : timesteps_(timesteps) {}
  at::Tensor forward(const at::Tensor& timesteps);

 private:
  TimestepsOptions timesteps_;
};
TORCH_MODULE(Timesteps);

// diffusers' `TimestepEmbedding`: linear_1 (in -> time_embed_dim), act, linear_2
// (time_embed_dim -> out_dim or time_embed_dim).
class TimestepEmbeddingImpl : public torch::nn::Module {
 public:
  TimestepEmbeddingImpl(int64_t in_channels, int64_t time_embed_dim,
                        Activation act = Activation::kSilu, int64_t out_dim = 0,
                        const c10::TensorOptions& options = {});
  at::Tensor forward(const at::Tensor& sample);

  Linear linear_1{nullptr};
  Linear linear_2{nullptr};

 private:
  Activation act_;
};
TORCH_MODULE(TimestepEmbedding);

struct VitEmbeddingsOptions {
  int64_t hidden_size = 768;
  int64_t image_size = 224;
  int64_t patch_size = 32;
  int64_t num_channels = 3;
};

// CLIP's vision embeddings (transformers' CLIPVisionEmbeddings): patch_embedding (conv
// kernel = stride = patch, no bias), class_embedding [hidden] prepended, plus
// position_embedding over 1 + (image/patch)^2 positions. The position ids are not a buffer (the
// published checkpoints do not store them).
class VitEmbeddingsImpl : public torch::nn::Module, public Resettable {
 public:
  explicit VitEmbeddingsImpl(const VitEmbeddingsOptions& vit,
                             const c10::TensorOptions& options = {});
  // pixel_values [B, C, image, image] -> [B, 1 + patches, hidden]. The input is cast to the
  // weights' dtype.
  at::Tensor forward(const at::Tensor& pixel_values);
  void ResetParameters() override;
  int64_t num_positions() const { return num_positions_; }

  at::Tensor class_embedding;
  Conv2d patch_embedding{nullptr};
  Embedding position_embedding{nullptr};

 private:
  VitEmbeddingsOptions vit_;
  int64_t num_positions_;
};
TORCH_MODULE(VitEmbeddings);

}  // namespace imginterp::nn
