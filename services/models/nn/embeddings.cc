#include "services/models/nn/embeddings.h"

#include <torch/torch.h>

#include <cmath>

namespace imginterp::nn {

at::Tensor GetTimestepEmbedding(const at::Tensor& timesteps, int64_t embedding_dim,
                                bool flip_sin_to_cos, double downscale_freq_shift, double scale,
                                double max_period) {
  TORCH_CHECK(timesteps.dim() == 1, "timestep embedding expects a 1-D tensor of timesteps, got ",
              timesteps.sizes());
  const int64_t half = embedding_dim / 2;
  auto f32 = torch::TensorOptions().dtype(at::kFloat).device(timesteps.device());
  at::Tensor exponent = torch::arange(0, half, f32) * (-std::log(max_period));
  exponent = exponent / (static_cast<double>(half) - downscale_freq_shift);
  at::Tensor emb = timesteps.unsqueeze(1).to(at::kFloat) * torch::exp(exponent).unsqueeze(0);
  emb = scale * emb;
  emb = torch::cat({torch::sin(emb), torch::cos(emb)}, -1);
  if (flip_sin_to_cos) {
    emb = torch::cat({emb.narrow(1, half, half), emb.narrow(1, 0, half)}, -1);
  }
  if (embedding_dim % 2 == 1) emb = torch::constant_pad_nd(emb, {0, 1, 0, 0}, 0);
  return emb;
}

at::Tensor TimestepsImpl::forward(const at::Tensor& timesteps) {
  return GetTimestepEmbedding(timesteps, timesteps_.num_channels, timesteps_.flip_sin_to_cos,
                              timesteps_.downscale_freq_shift, timesteps_.scale);
}

TimestepEmbeddingImpl::TimestepEmbeddingImpl(int64_t in_channels, int64_t time_embed_dim,
                                             Activation act, int64_t out_dim,
                                             const c10::TensorOptions& options)
    : act_(act) {
  linear_1 = register_module("linear_1", Linear(in_channels, time_embed_dim, true, options));
  linear_2 = register_module(
      "linear_2", Linear(time_embed_dim, out_dim > 0 ? out_dim : time_embed_dim, true, options));
}

at::Tensor TimestepEmbeddingImpl::forward(const at::Tensor& sample) {
  return linear_2->forward(Activate(act_, linear_1->forward(sample)));
}

VitEmbeddingsImpl::VitEmbeddingsImpl(const VitEmbeddingsOptions& vit,
                                     const c10::TensorOptions& options)
    : vit_(vit) {
  TORCH_CHECK(vit.patch_size > 0 && vit.image_size % vit.patch_size == 0, "ViT: image_size ",
              vit.image_size, " is not a multiple of patch_size ", vit.patch_size);
  const int64_t per_side = vit.image_size / vit.patch_size;
  num_positions_ = per_side * per_side + 1;
  class_embedding = register_parameter("class_embedding", torch::empty({vit.hidden_size}, options));
  patch_embedding = register_module(
      "patch_embedding", Conv2d(Conv2dOptions{vit.num_channels, vit.hidden_size, vit.patch_size,
                                              vit.patch_size, 0, 1, false},
                                options));
  position_embedding =
      register_module("position_embedding", Embedding(num_positions_, vit.hidden_size, options));
}

at::Tensor VitEmbeddingsImpl::forward(const at::Tensor& pixel_values) {
  TORCH_CHECK(pixel_values.dim() == 4 && pixel_values.size(1) == vit_.num_channels &&
                  pixel_values.size(2) == vit_.image_size &&
                  pixel_values.size(3) == vit_.image_size,
              "ViT: pixel_values must be [B, ", vit_.num_channels, ", ", vit_.image_size, ", ",
              vit_.image_size, "], got ", pixel_values.sizes());
  const int64_t b = pixel_values.size(0);
  at::Tensor patches = patch_embedding->forward(pixel_values.to(patch_embedding->weight.dtype()));
  patches = patches.flatten(2).transpose(1, 2);
  at::Tensor cls = class_embedding.view({1, 1, -1}).expand({b, 1, -1});
  at::Tensor embeddings = torch::cat({cls, patches}, 1);
  return embeddings + position_embedding->weight.unsqueeze(0);
}

void VitEmbeddingsImpl::ResetParameters() {
  if (class_embedding.device().is_meta()) return;
  torch::NoGradGuard no_grad;
  class_embedding.normal_(0.0, 1.0);
}

}  // namespace imginterp::nn
