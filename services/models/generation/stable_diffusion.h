// Stable Diffusion 1.x generation on the native models: a diffusers pipeline folder (tokenizer,
// CLIP text encoder, UNet, VAE, scheduler) plus any number of ControlNets, one per prior kind.
// Text-to-image and image-to-image with classifier-free guidance and several ControlNets at once
// (residuals summed as diffusers' MultiControlNetModel does), N images per request, any scheduler,
// and latent interpolation between two seeds and two prompts. Semantics follow diffusers 0.27's
// StableDiffusionControlNetPipeline and StableDiffusionControlNetImg2ImgPipeline.
//
// Seeds: image i of a request starts from InitialNoise([1, C, h, w], seed + i) (what
// `torch.randn(shape, generator=torch.Generator().manual_seed(seed + i))` draws), and images are
// denoised one at a time, so image i of N equals a single-image run with seed + i, and the same
// request, seed and intra-op thread count give bit-identical results.
//
// Thread-safety: Load() results are immutable model weights plus per-call state, but LibTorch
// modules are not meant for concurrent forward passes sharing autograd state; one caller at a
// time per pipeline (the serving core gives each model instance one executor thread).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace imginterp::generation {

struct PipelineLoadOptions {
  // Prior kind ("canny", "pose", "depth", "segmentation", ...) -> ControlNet folder (diffusers
  // layout: config.json + diffusion_pytorch_model.safetensors). Relative paths are resolved
  // against the pipeline folder. Kinds naming the same folder share one loaded model.
  std::map<std::string, std::string> controlnets;
  // Run on CUDA when LibTorch has it (the weights are moved there once); CPU otherwise.
  bool use_cuda_if_available = true;
};

// One ControlNet applied to a run.
struct ControlCondition {
  // Prior kind; selects the ControlNet (NOT_FOUND lists the kinds the pipeline has).
  std::string kind;
  // [1, 3, height, width] float32 in [0, 1], RGB, already at the output size.
  at::Tensor image;
  double conditioning_scale = 1.0;
  // Fraction of the steps during which this ControlNet is applied: step i (of n) uses it when
  // i / n >= guidance_start and (i + 1) / n <= guidance_end, as diffusers' controlnet_keep.
  double guidance_start = 0.0;
  double guidance_end = 1.0;
};

struct GenerationRequest {
  std::string prompt;
  std::string negative_prompt;
  // Advanced: [1, 77, D] embeddings used instead of the prompt texts when defined.
  at::Tensor prompt_embeds;
  at::Tensor negative_prompt_embeds;
  // Output size in pixels: multiples of the VAE scale factor (8), both > 0.
  int width = 512;
  int height = 512;
  int num_inference_steps = 20;
  // <= 1 disables classifier-free guidance (one UNet pass per step).
  double guidance_scale = 7.5;
  // "" = the folder's scheduler_config.json class; else a diffusers class name or alias accepted
  // by diffusion::MakeScheduler ("ddim", "pndm", "euler", "euler_a", "dpmpp_2m", ...).
  std::string scheduler;
  // DDIM's eta (0: deterministic).
  double eta = 0.0;
  uint64_t seed = 0;
  int num_images = 1;
  // Advanced: initial latents [num_images, C, h, w] used instead of seeded noise (txt2img: N(0,1)
  // noise, scaled by the scheduler's init sigma here; img2img: the noise added to the image).
  at::Tensor latents;
  // img2img when defined: [1, 3, height, width] float32 in [0, 1] RGB. The VAE encodes it
  // (latent sampled with the image's generator, as diffusers' retrieve_latents), and the first
  // int(steps * strength) steps are skipped.
  at::Tensor init_image;
  double strength = 0.8;
  std::vector<ControlCondition> controls;
  // diffusers' guess_mode: ControlNets see only the conditional half, residuals scaled by
  // logspace(-1, 0).
  bool guess_mode = false;
};

struct GenerationTimings {
  double text_encoder_seconds = 0;
  double denoise_seconds = 0;     // all steps, all images
  double controlnet_seconds = 0;  // the ControlNet share of denoise_seconds
  double vae_decode_seconds = 0;
  double vae_encode_seconds = 0;  // img2img
  int steps_run = 0;              // UNet steps actually run, all images
};

struct GenerationResult {
  // [num_images, 3, height, width] float32 in [0, 1], on the CPU.
  at::Tensor images;
  // Final latents before decoding, [num_images, C, h, w] float32, CPU.
  at::Tensor latents;
  // The starting noise of each image (before any scaling), [num_images, C, h, w] float32, CPU.
  at::Tensor initial_latents;
  std::vector<uint64_t> seeds;  // seed + i per image
  GenerationTimings timings;
};

// Called after every denoising step: (steps done, total steps over all images/frames). Return false
// to cancel: the run stops before the next step and fails with CANCELLED.
using ProgressCallback = std::function<bool(int done, int total)>;

struct InterpolationRequest {
  // Prompt, controls, size, steps, scheduler... of every frame. Its seed and prompt are the start
  // point; num_images, latents and init_image must be unset/1.
  GenerationRequest base;
  // End point: seed_b, and prompt_b ("" = the same prompt) or prompt_embeds_b.
  uint64_t seed_b = 1;
  std::string prompt_b;
  at::Tensor prompt_embeds_b;
  // Frames including both endpoints, >= 2. Frame k uses t = k / (frames - 1): initial latents
  // SlerpNoise(z_a, z_b, t) and prompt embeddings lerp(e_a, e_b, t); the negative prompt and the
  // ControlNet conditions stay fixed across frames.
  int frames = 8;
};

struct InterpolationResult {
  // [frames, 3, height, width] float32 in [0, 1], CPU.
  at::Tensor images;
  std::vector<double> t;  // per frame
  GenerationTimings timings;
};

class StableDiffusionPipeline {
 public:
  // Loads `dir` (model_index.json with tokenizer, text_encoder, unet, vae, scheduler) and the
  // ControlNets. NOT_FOUND names a missing folder/file (and which component needs it);
  // INVALID_ARGUMENT for configs the native models do not support or weights that do not match.
  static absl::StatusOr<std::unique_ptr<StableDiffusionPipeline>> Load(
      const std::string& dir, const PipelineLoadOptions& options = {});
  ~StableDiffusionPipeline();
  StableDiffusionPipeline(const StableDiffusionPipeline&) = delete;
  StableDiffusionPipeline& operator=(const StableDiffusionPipeline&) = delete;

  // CLIP text embeddings [1, 77, D] (last hidden state, as SD1.x uses), float32, CPU.
  absl::StatusOr<at::Tensor> EncodePrompt(std::string_view prompt);

  // INVALID_ARGUMENT for bad sizes, steps, strength, unknown scheduler, shapes of advanced
  // inputs; NOT_FOUND for an unknown control kind; CANCELLED from the callback.
  absl::StatusOr<GenerationResult> Generate(const GenerationRequest& request,
                                            const ProgressCallback& progress = nullptr);
  absl::StatusOr<InterpolationResult> Interpolate(const InterpolationRequest& request,
                                                  const ProgressCallback& progress = nullptr);

  // Prior kinds with a ControlNet, sorted.
  std::vector<std::string> ControlNetKinds() const;
  int vae_scale_factor() const;         // 8 for SD1.x
  int latent_channels() const;          // 4
  int default_size() const;             // unet sample_size * vae_scale_factor (512 for SD1.5)
  std::string scheduler_class() const;  // the folder's default scheduler
  // Bytes of all loaded weights (UNet, VAE, text encoder, ControlNets).
  int64_t parameter_bytes() const;
  bool on_cuda() const;

 private:
  struct Impl;
  explicit StableDiffusionPipeline(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace imginterp::generation
