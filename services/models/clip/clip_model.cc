#include "services/models/clip/clip_model.h"

#include <torch/torch.h>

namespace imginterp::clip {

at::Tensor L2Normalize(const at::Tensor& x) { return x / x.norm(2, {-1}, /*keepdim=*/true); }

ClipModelImpl::ClipModelImpl(const ClipConfig& config, const c10::TensorOptions& options)
    : config_(config) {
  logit_scale = register_parameter("logit_scale", torch::empty({}, options));
  text_model = register_module("text_model", ClipTextTransformer(config.text, options));
  vision_model = register_module("vision_model", ClipVisionTransformer(config.vision, options));
  visual_projection =
      register_module("visual_projection",
                      nn::Linear(config.vision.hidden_size, config.projection_dim, false, options));
  text_projection =
      register_module("text_projection",
                      nn::Linear(config.text.hidden_size, config.projection_dim, false, options));
}

ClipModelOutput ClipModelImpl::forward(const at::Tensor& input_ids, const at::Tensor& pixel_values,
                                       const at::Tensor& attention_mask) {
  ClipModelOutput out;
  out.text = text_model->forward(input_ids, attention_mask);
  out.vision = vision_model->forward(pixel_values);
  out.text_features = text_projection->forward(out.text.pooler_output);
  out.image_features = visual_projection->forward(out.vision.pooler_output);
  out.text_embeds = L2Normalize(out.text_features);
  out.image_embeds = L2Normalize(out.image_features);
  out.logits_per_text = torch::matmul(out.text_embeds, out.image_embeds.t()) * logit_scale.exp();
  out.logits_per_image = out.logits_per_text.t();
  return out;
}

at::Tensor ClipModelImpl::GetTextFeatures(const at::Tensor& input_ids,
                                          const at::Tensor& attention_mask) {
  return text_projection->forward(text_model->forward(input_ids, attention_mask).pooler_output);
}

at::Tensor ClipModelImpl::GetImageFeatures(const at::Tensor& pixel_values) {
  return visual_projection->forward(vision_model->forward(pixel_values).pooler_output);
}

void ClipModelImpl::ResetParameters() {
  if (logit_scale.device().is_meta()) return;
  torch::NoGradGuard no_grad;
  logit_scale.fill_(config_.logit_scale_init_value);
}

}  // namespace imginterp::clip
