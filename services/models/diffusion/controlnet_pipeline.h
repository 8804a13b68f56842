// The denoising loop of diffusers' StableDiffusionControlNetPipeline (pipeline_controlnet.py)
// over already-computed prompt embeddings: classifier-free guidance, any number of ControlNets
// (their residuals summed, each with its own scale and guidance window), guess mode, and the
// final VAE decode to an image in [0, 1]. Text encoding, image preprocessing and the safety checker
// are the caller's.
//
// Thread-safety: free functions; the models are only read, the scheduler is advanced (one
// scheduler per run).
#pragma once

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <functional>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "services/models/diffusion/controlnet.h"
#include "services/models/diffusion/scheduler.h"
#include "services/models/diffusion/unet.h"
#include "services/models/diffusion/vae.h"

namespace imginterp::diffusion {

// One ControlNet and its condition. The model is borrowed: it must outlive the call.
struct ControlNetUnit {
  ControlNetModelImpl* model = nullptr;
  // [1 or B, 3, 8h, 8w] in [0, 1] (diffusers' control image processor does not normalise), RGB.
  at::Tensor image;
  double conditioning_scale = 1.0;
  // Fraction of the steps during which the ControlNet is applied ([0, 1] = always; start == end
  // = never, which is how a caller switches a condition off without changing the run).
  double guidance_start = 0.0;
  double guidance_end = 1.0;
};

struct DenoiseInputs {
  // Initial latents [B, C, h, w] (N(0, 1) noise for text-to-image).
  at::Tensor latents;
  // [B, L, D] for the prompt; negative_prompt_embeds the same shape, required when
  // guidance_scale > 1 (the unconditional half).
  at::Tensor prompt_embeds;
  at::Tensor negative_prompt_embeds;
};

struct DenoiseOptions {
  // Classifier-free guidance weight; <= 1 runs the UNet once per step without guidance.
  double guidance_scale = 7.5;
  // ControlNets see only the conditional half and their residuals are scaled by logspace(-1, 0)
  // (diffusers' guess_mode).
  bool guess_mode = false;
  // Multiply the initial latents by the scheduler's InitNoiseSigma() first (diffusers'
  // prepare_latents does; false when the caller already did, e.g. img2img).
  bool scale_initial_latents = true;
  // Passed to every Scheduler::Step (eta for DDIM, generator for ancestral samplers).
  StepOptions step;
  // The index in the scheduler's Timesteps() of the first step run: img2img starts late
  // (diffusers' t_start). The guidance windows count over the steps actually run.
  int start_index = 0;
};

// Where the time of a denoising run went (seconds, added to).
struct DenoiseTimings {
  double controlnet_seconds = 0;
};

// Called after each step with the number of steps done and the total; return false to stop (the
// loop then fails with CANCELLED).
using DenoiseCallback = std::function<bool(int steps_done, int num_steps)>;

// Runs the timesteps of `scheduler` (SetTimesteps() already called) from options.start_index
// and returns the final latents, as the pipeline does before decoding. `timings`, when given,
// receives the ControlNet share of the time. The latents and embeddings are moved to the
// UNet's dtype and device. INVALID_ARGUMENT for inconsistent shapes (message names the input),
// CANCELLED when the callback says stop, INTERNAL for LibTorch failures; scheduler errors are
// passed on.
absl::StatusOr<at::Tensor> DenoiseLatents(UNet2DConditionModelImpl& unet,
                                          const std::vector<ControlNetUnit>& controlnets,
                                          Scheduler& scheduler, const DenoiseInputs& inputs,
                                          const DenoiseOptions& options = {},
                                          const DenoiseCallback& callback = nullptr,
                                          DenoiseTimings* timings = nullptr);

// vae.Decode(latents / scaling_factor + shift_factor), mapped from [-1, 1] to [0, 1] and clamped:
// [B, 3, 8h, 8w] in the VAE's dtype.
absl::StatusOr<at::Tensor> DecodeLatentsToImage(AutoencoderKLImpl& vae, const at::Tensor& latents);

}  // namespace imginterp::diffusion
