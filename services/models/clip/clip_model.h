// transformers' CLIPModel: both towers ("text_model", "vision_model"), "visual_projection",
// "text_projection" (no bias) and the scalar "logit_scale" (log of the temperature).
//
// Thread-safety: as torch::nn::Module; forward() only reads the parameters.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/TensorOptions.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "services/models/clip/clip_config.h"
#include "services/models/clip/clip_text_model.h"
#include "services/models/clip/clip_vision_model.h"
#include "services/models/nn/layers.h"

namespace imginterp::clip {

struct ClipModelOutput {
  at::Tensor text_features;     // [T, projection_dim], text_projection(pooler), unnormalised
  at::Tensor image_features;    // [I, projection_dim], visual_projection(pooler), unnormalised
  at::Tensor text_embeds;       // text_features / ||text_features||
  at::Tensor image_embeds;      // image_features / ||image_features||
  at::Tensor logits_per_text;   // [T, I] = exp(logit_scale) * text_embeds @ image_embeds^T
  at::Tensor logits_per_image;  // [I, T], its transpose
  ClipTextOutput text;
  ClipVisionOutput vision;
};

class ClipModelImpl : public torch::nn::Module, public nn::Resettable {
 public:
  explicit ClipModelImpl(const ClipConfig& config, const c10::TensorOptions& options = {});

  ClipModelOutput forward(const at::Tensor& input_ids, const at::Tensor& pixel_values,
                          const at::Tensor& attention_mask = {});
  // get_text_features / get_image_features (unnormalised projections).
  at::Tensor GetTextFeatures(const at::Tensor& input_ids, const at::Tensor& attention_mask = {});
  at::Tensor GetImageFeatures(const at::Tensor& pixel_values);
  // logit_scale = logit_scale_init_value (the towers are left to nn::ResetParameters).
  void ResetParameters() override;
  const ClipConfig& config() const { return config_; }

  at::Tensor logit_scale;  // 0-d
  ClipTextTransformer text_model{nullptr};
  ClipVisionTransformer vision_model{nullptr};
  nn::Linear visual_projection{nullptr};
  nn::Linear text_projection{nullptr};

 private:
  ClipConfig config_;
};
TORCH_MODULE(ClipModel);

// x / ||x|| along the last dimension (no epsilon, as transformers).
at::Tensor L2Normalize(const at::Tensor& x);

}  // namespace imginterp::clip
