#include "services/models/diffusion/controlnet_pipeline.h"

#include <torch/torch.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "services/core/common/status_macros.h"

namespace imginterp::diffusion {
namespace {

absl::Status CheckInputs(const UNet2DConditionModelImpl& unet,
                         const std::vector<ControlNetUnit>& controlnets,
                         const DenoiseInputs& inputs, bool guidance) {
  const auto& config = unet.config();
  if (!inputs.latents.defined() || inputs.latents.dim() != 4 ||
      inputs.latents.size(1) != config.in_channels) {
    return absl::InvalidArgumentError(
        absl::StrCat("latents must be [B, ", config.in_channels, ", h, w]"));
  }
  const int64_t batch = inputs.latents.size(0);
  auto check_embeds = [&](const at::Tensor& e, const char* name) -> absl::Status {
    if (!e.defined() || e.dim() != 3 || e.size(0) != batch ||
        e.size(2) != config.cross_attention_dim) {
      return absl::InvalidArgumentError(absl::StrCat(name, " must be [", batch, ", L, ",
                                                     config.cross_attention_dim,
                                                     "] to match the latents"));
    }
    return absl::OkStatus();
  };
  IMGINTERP_RETURN_IF_ERROR(check_embeds(inputs.prompt_embeds, "prompt_embeds"));
  if (guidance) {
    IMGINTERP_RETURN_IF_ERROR(
        check_embeds(inputs.negative_prompt_embeds, "negative_prompt_embeds"));
    if (inputs.negative_prompt_embeds.sizes() != inputs.prompt_embeds.sizes()) {
      return absl::InvalidArgumentError(
          "negative_prompt_embeds and prompt_embeds must have the same shape");
    }
  }
  for (size_t i = 0; i < controlnets.size(); ++i) {
    const ControlNetUnit& unit = controlnets[i];
    if (unit.model == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("controlnet ", i, " has no model"));
    }
    const at::Tensor& image = unit.image;
    if (!image.defined() || image.dim() != 4 || (image.size(0) != 1 && image.size(0) != batch) ||
        image.size(1) != unit.model->config().conditioning_channels) {
      return absl::InvalidArgumentError(
          absl::StrCat("controlnet ", i, " image must be [1 or ", batch, ", ",
                       unit.model->config().conditioning_channels, ", H, W]"));
    }
    if (unit.guidance_start < 0 || unit.guidance_end > 1 ||
        unit.guidance_start > unit.guidance_end) {
      return absl::InvalidArgumentError(absl::StrCat("controlnet ", i, " guidance window [",
                                                     unit.guidance_start, ", ", unit.guidance_end,
                                                     "] must satisfy 0 <= start <= end <= 1"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<at::Tensor> Denoise(UNet2DConditionModelImpl& unet,
                                   const std::vector<ControlNetUnit>& controlnets,
                                   Scheduler& scheduler, const DenoiseInputs& inputs,
                                   const DenoiseOptions& options, const DenoiseCallback& callback,
                                   DenoiseTimings* timings) {
  const bool guidance = options.guidance_scale > 1.0;
  IMGINTERP_RETURN_IF_ERROR(CheckInputs(unet, controlnets, inputs, guidance));
  const std::vector<double>& all_timesteps = scheduler.Timesteps();
  if (all_timesteps.empty()) {
    return absl::FailedPreconditionError("the scheduler has no timesteps; call SetTimesteps()");
  }
  if (options.start_index < 0 || options.start_index >= static_cast<int>(all_timesteps.size())) {
    return absl::InvalidArgumentError(absl::StrCat("start_index ", options.start_index,
                                                   " is outside the scheduler's ",
                                                   all_timesteps.size(), " timesteps"));
  }
  const std::vector<double> timesteps(all_timesteps.begin() + options.start_index,
                                      all_timesteps.end());
  const at::Tensor& weight = unet.conv_in->weight;
  const auto to_model = [&](const at::Tensor& t) {
    return t.to(weight.device(), weight.scalar_type());
  };
  const int64_t batch = inputs.latents.size(0);

  bool guess_mode = options.guess_mode;
  for (const auto& unit : controlnets) {
    guess_mode = guess_mode || unit.model->config().global_pool_conditions;
  }
  const at::Tensor prompt = to_model(inputs.prompt_embeds);
  const at::Tensor unet_embeds =
      guidance ? torch::cat({to_model(inputs.negative_prompt_embeds), prompt}) : prompt;
  // In guess mode (with guidance) the ControlNets see only the conditional half.
  const bool control_cond_only = guess_mode && guidance;
  const at::Tensor control_embeds = control_cond_only ? prompt : unet_embeds;
  std::vector<at::Tensor> control_images;
  for (const auto& unit : controlnets) {
    at::Tensor image = to_model(unit.image);
    if (image.size(0) != batch) image = image.expand({batch, -1, -1, -1});
    if (guidance && !control_cond_only) image = torch::cat({image, image});
    control_images.push_back(image);
  }

  at::Tensor latents = to_model(inputs.latents);
  if (options.scale_initial_latents) latents = latents * scheduler.InitNoiseSigma();
  const int num_steps = static_cast<int>(timesteps.size());
  for (int i = 0; i < num_steps; ++i) {
    const double t = timesteps[i];
    const at::Tensor t_tensor = torch::tensor(t, torch::TensorOptions().dtype(at::kDouble));
    const at::Tensor doubled = guidance ? torch::cat({latents, latents}) : latents;
    IMGINTERP_ASSIGN_OR_RETURN(at::Tensor model_input, scheduler.ScaleModelInput(doubled, t));
    at::Tensor control_input = model_input;
    if (control_cond_only) {
      IMGINTERP_ASSIGN_OR_RETURN(control_input, scheduler.ScaleModelInput(latents, t));
    }

    const auto control_begin = std::chrono::steady_clock::now();
    ControlNetOutput residuals;
    for (size_t c = 0; c < controlnets.size(); ++c) {
      const ControlNetUnit& unit = controlnets[c];
      // diffusers' controlnet_keep: off before guidance_start and after guidance_end.
      const double frac_begin = static_cast<double>(i) / num_steps;
      const double frac_end = static_cast<double>(i + 1) / num_steps;
      if (frac_begin < unit.guidance_start || frac_end > unit.guidance_end) continue;
      ControlNetOutput out =
          unit.model->forward(control_input, t_tensor, control_embeds, control_images[c],
                              unit.conditioning_scale, guess_mode);
      AccumulateControlNetOutput(out, &residuals);
    }
    if (control_cond_only && residuals.mid_block_res_sample.defined()) {
      for (auto& r : residuals.down_block_res_samples) r = torch::cat({torch::zeros_like(r), r});
      residuals.mid_block_res_sample = torch::cat(
          {torch::zeros_like(residuals.mid_block_res_sample), residuals.mid_block_res_sample});
    }
    if (timings != nullptr) {
      timings->controlnet_seconds +=
          std::chrono::duration<double>(std::chrono::steady_clock::now() - control_begin).count();
    }
    at::Tensor noise_pred =
        unet.forward(model_input, t_tensor, unet_embeds, residuals.down_block_res_samples,
                     residuals.mid_block_res_sample);
    if (guidance) {
      auto halves = noise_pred.chunk(2);
      noise_pred = halves[0] + options.guidance_scale * (halves[1] - halves[0]);
    }
    IMGINTERP_ASSIGN_OR_RETURN(StepResult step,
                               scheduler.Step(noise_pred, t, latents, options.step));
    latents = step.prev_sample;
    if (callback && !callback(i + 1, num_steps)) {
      return absl::CancelledError(
          absl::StrCat("denoising cancelled after ", i + 1, " of ", num_steps, " steps"));
    }
  }
  return latents;
}

}  // namespace

absl::StatusOr<at::Tensor> DenoiseLatents(UNet2DConditionModelImpl& unet,
                                          const std::vector<ControlNetUnit>& controlnets,
                                          Scheduler& scheduler, const DenoiseInputs& inputs,
                                          const DenoiseOptions& options,
                                          const DenoiseCallback& callback,
                                          DenoiseTimings* timings) {
  torch::NoGradGuard no_grad;
  try {
    return Denoise(unet, controlnets, scheduler, inputs, options, callback, timings);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("denoising failed: ", e.what_without_backtrace()));
  }
}

absl::StatusOr<at::Tensor> DecodeLatentsToImage(AutoencoderKLImpl& vae, const at::Tensor& latents) {
  torch::NoGradGuard no_grad;
  try {
    const at::Tensor& weight =
        vae.post_quant_conv ? vae.post_quant_conv->weight : vae.decoder->conv_in->weight;
    at::Tensor z = latents.to(weight.device(), weight.scalar_type()) / vae.config().scaling_factor;
    if (vae.config().shift_factor != 0.0) z = z + vae.config().shift_factor;
    const at::Tensor image = vae.Decode(z);
    return (image / 2 + 0.5).clamp(0, 1);
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("VAE decode failed: ", e.what_without_backtrace()));
  }
}

}  // namespace imginterp::diffusion
