#include "services/models/generation/stable_diffusion.h"

#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "services/core/common/status_macros.h"
#include "services/models/clip/clip_loader.h"
#include "services/models/clip/clip_text_model.h"
#include "services/models/clip/clip_tokenizer.h"
#include "services/models/diffusion/controlnet.h"
#include "services/models/diffusion/controlnet_pipeline.h"
#include "services/models/diffusion/noise.h"
#include "services/models/diffusion/scheduler.h"
#include "services/models/diffusion/unet.h"
#include "services/models/diffusion/vae.h"
#include "services/models/io/diffusers_folder.h"

namespace imginterp::generation {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point begin) {
  return std::chrono::duration<double>(Clock::now() - begin).count();
}

absl::Status WithContext(const absl::Status& status, std::string_view context) {
  if (status.ok()) return status;
  return absl::Status(status.code(),
                      absl::StrCat(std::string(context), ": ", std::string(status.message())));
}

std::string ShapeOf(const at::Tensor& t) {
  if (!t.defined()) return "undefined";
  return absl::StrCat("[", absl::StrJoin(t.sizes(), ", "), "]");
}

bool HasShape(const at::Tensor& t, const std::vector<int64_t>& shape) {
  return t.defined() && t.sizes().vec() == shape;
}

std::string ShapeText(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

int64_t ModuleBytes(const torch::nn::Module& module) {
  int64_t bytes = 0;
  for (const at::Tensor& p : module.parameters()) bytes += p.numel() * p.element_size();
  for (const at::Tensor& b : module.buffers()) bytes += b.numel() * b.element_size();
  return bytes;
}

void AddTimings(const GenerationTimings& add, GenerationTimings* sum) {
  sum->text_encoder_seconds += add.text_encoder_seconds;
  sum->denoise_seconds += add.denoise_seconds;
  sum->controlnet_seconds += add.controlnet_seconds;
  sum->vae_decode_seconds += add.vae_decode_seconds;
  sum->vae_encode_seconds += add.vae_encode_seconds;
  sum->steps_run += add.steps_run;
}

// Everything a validated request needs for its denoising runs, on the model device.
struct RunPlan {
  const GenerationRequest* request = nullptr;
  std::vector<diffusion::ControlNetUnit> units;
  at::Tensor prompt_embeds;
  at::Tensor negative_prompt_embeds;  // defined with guidance
  std::vector<int64_t> latent_shape;  // [1, C, h, w]
  // img2img: the image's latent distribution and the first timestep index run.
  std::optional<diffusion::LatentDistribution> init;
  int start_index = 0;
  int steps_per_image = 0;
};

absl::Status CheckComponentClass(const models::DiffusersPipelineFolder& folder,
                                 std::string_view component,
                                 const std::vector<std::string>& supported) {
  IMGINTERP_ASSIGN_OR_RETURN(auto spec, folder.Component(component));
  if (std::find(supported.begin(), supported.end(), spec.class_name) == supported.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("component '", std::string(component), "' is a ", spec.class_name,
                     "; the native pipeline supports: ", absl::StrJoin(supported, ", ")));
  }
  return absl::OkStatus();
}

}  // namespace

struct StableDiffusionPipeline::Impl {
  std::string dir;
  c10::Device device{c10::kCPU};
  std::unique_ptr<clip::ClipTokenizer> tokenizer;
  clip::ClipTextModel text_encoder{nullptr};
  diffusion::UNet2DConditionModel unet{nullptr};
  diffusion::AutoencoderKL vae{nullptr};
  std::string scheduler_json;
  std::string scheduler_class;
  std::map<std::string, diffusion::ControlNetModel> controlnets;  // kind -> model (maybe shared)
  int64_t parameter_bytes = 0;

  c10::TensorOptions ModelOptions() const {
    return c10::TensorOptions().device(device).dtype(at::kFloat);
  }
  int64_t ScaleFactor() const { return vae->config().DownscaleFactor(); }
  int64_t LatentChannels() const { return unet->config().in_channels; }

  // [1, L, D] on the model device. May throw c10::Error.
  at::Tensor EncodeText(std::string_view text) {
    const clip::ClipTokens tokens = tokenizer->Encode(text);
    const at::Tensor ids =
        torch::tensor(tokens.input_ids, torch::TensorOptions().dtype(at::kLong)).unsqueeze(0);
    return text_encoder->forward(ids.to(device)).last_hidden_state;
  }

  absl::StatusOr<std::unique_ptr<diffusion::Scheduler>> NewScheduler(const std::string& name,
                                                                     int steps) const {
    auto scheduler = diffusion::MakeScheduler(scheduler_json, name);
    if (!scheduler.ok()) return WithContext(scheduler.status(), "scheduler");
    IMGINTERP_RETURN_IF_ERROR(
        WithContext((*scheduler)->SetTimesteps(steps), "num_inference_steps"));
    return scheduler;
  }

  std::string KindList() const {
    std::vector<std::string> kinds;
    for (const auto& [kind, model] : controlnets) kinds.push_back(kind);
    return kinds.empty() ? "none" : absl::StrJoin(kinds, ", ");
  }

  static absl::StatusOr<std::unique_ptr<Impl>> Load(const std::string& dir,
                                                    const PipelineLoadOptions& options);
  absl::Status Validate(const GenerationRequest& r) const;
  absl::StatusOr<RunPlan> Prepare(const GenerationRequest& r, GenerationTimings* timings);
  absl::StatusOr<GenerationResult> Run(const RunPlan& plan, const diffusion::DenoiseCallback& step);
};

absl::Status StableDiffusionPipeline::Impl::Validate(const GenerationRequest& r) const {
  const int64_t f = ScaleFactor();
  for (const auto& [name, value] : {std::pair{"width", r.width}, std::pair{"height", r.height}}) {
    if (value <= 0 || value % f != 0) {
      return absl::InvalidArgumentError(absl::StrCat(name, " is ", value,
                                                     "; it must be a positive ", "multiple of ", f,
                                                     " (the VAE scale factor)"));
    }
  }
  if (r.num_inference_steps < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_inference_steps is ", r.num_inference_steps, "; it must be at least 1"));
  }
  if (r.num_images < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_images is ", r.num_images, "; it must be at least 1"));
  }
  if (!std::isfinite(r.guidance_scale)) {
    return absl::InvalidArgumentError("guidance_scale must be a finite number");
  }
  if (!(r.eta >= 0 && r.eta <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat("eta is ", r.eta, "; it must be in [0, 1]"));
  }
  const int64_t h = r.height / f;
  const int64_t w = r.width / f;
  const std::vector<int64_t> image_shape = {1, 3, r.height, r.width};
  if (r.init_image.defined()) {
    if (!HasShape(r.init_image, image_shape)) {
      return absl::InvalidArgumentError(absl::StrCat("init_image is ", ShapeOf(r.init_image),
                                                     "; it must be ", ShapeText(image_shape),
                                                     " (RGB at the output size)"));
    }
    if (!(r.strength > 0 && r.strength <= 1)) {
      return absl::InvalidArgumentError(
          absl::StrCat("strength is ", r.strength, "; it must be in (0, 1]"));
    }
    if (static_cast<int>(r.num_inference_steps * r.strength) < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("strength ", r.strength, " with ", r.num_inference_steps,
                       " steps runs no denoising step (int(steps * strength) is 0); raise either"));
    }
  }
  const std::vector<int64_t> latent_shape = {r.num_images, LatentChannels(), h, w};
  if (r.latents.defined() && !HasShape(r.latents, latent_shape)) {
    return absl::InvalidArgumentError(
        absl::StrCat("latents are ", ShapeOf(r.latents), "; they must be ", ShapeText(latent_shape),
                     " (num_images, channels, height/", f, ", width/", f, ")"));
  }
  const int64_t dim = unet->config().cross_attention_dim;
  auto check_embeds = [&](const at::Tensor& e, const char* name) -> absl::Status {
    if (e.defined() && (e.dim() != 3 || e.size(0) != 1 || e.size(1) < 1 || e.size(2) != dim)) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, " are ", ShapeOf(e), "; they must be [1, L, ", dim, "]"));
    }
    return absl::OkStatus();
  };
  IMGINTERP_RETURN_IF_ERROR(check_embeds(r.prompt_embeds, "prompt_embeds"));
  IMGINTERP_RETURN_IF_ERROR(check_embeds(r.negative_prompt_embeds, "negative_prompt_embeds"));
  for (size_t i = 0; i < r.controls.size(); ++i) {
    const ControlCondition& c = r.controls[i];
    const std::string what = absl::StrCat("controls[", i, "] (", c.kind, ")");
    auto it = controlnets.find(c.kind);
    if (it == controlnets.end()) {
      return absl::NotFoundError(absl::StrCat("no ControlNet for control kind '", c.kind,
                                              "'; this pipeline has: ", KindList()));
    }
    const std::vector<int64_t> control_shape = {1, it->second->config().conditioning_channels,
                                                r.height, r.width};
    if (!HasShape(c.image, control_shape)) {
      return absl::InvalidArgumentError(absl::StrCat(what, " image is ", ShapeOf(c.image),
                                                     "; it must be ", ShapeText(control_shape),
                                                     " (the output size)"));
    }
    if (!std::isfinite(c.conditioning_scale)) {
      return absl::InvalidArgumentError(absl::StrCat(what, " conditioning_scale is not finite"));
    }
    if (!(c.guidance_start >= 0 && c.guidance_start <= c.guidance_end && c.guidance_end <= 1)) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " guidance window [", c.guidance_start, ", ", c.guidance_end,
                       "] must satisfy 0 <= guidance_start <= guidance_end <= 1"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<RunPlan> StableDiffusionPipeline::Impl::Prepare(const GenerationRequest& r,
                                                               GenerationTimings* timings) {
  IMGINTERP_RETURN_IF_ERROR(Validate(r));
  RunPlan plan;
  plan.request = &r;
  const int64_t f = ScaleFactor();
  plan.latent_shape = {1, LatentChannels(), r.height / f, r.width / f};
  IMGINTERP_ASSIGN_OR_RETURN(auto scheduler, NewScheduler(r.scheduler, r.num_inference_steps));
  const int num_timesteps = static_cast<int>(scheduler->Timesteps().size());
  if (r.init_image.defined()) {
    // diffusers' get_timesteps (every supported scheduler has order 1).
    const int init_steps =
        std::min(static_cast<int>(r.num_inference_steps * r.strength), r.num_inference_steps);
    plan.start_index = std::max(r.num_inference_steps - init_steps, 0);
  }
  plan.steps_per_image = num_timesteps - plan.start_index;

  const c10::TensorOptions options = ModelOptions();
  const bool guidance = r.guidance_scale > 1.0;
  Clock::time_point begin = Clock::now();
  bool encoded = false;
  if (r.prompt_embeds.defined()) {
    plan.prompt_embeds = r.prompt_embeds.to(options);
  } else {
    plan.prompt_embeds = EncodeText(r.prompt);
    encoded = true;
  }
  if (guidance) {
    if (r.negative_prompt_embeds.defined()) {
      plan.negative_prompt_embeds = r.negative_prompt_embeds.to(options);
    } else {
      plan.negative_prompt_embeds = EncodeText(r.negative_prompt);
      encoded = true;
    }
    if (plan.negative_prompt_embeds.sizes() != plan.prompt_embeds.sizes()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "negative_prompt_embeds ", ShapeOf(plan.negative_prompt_embeds), " and prompt_embeds ",
          ShapeOf(plan.prompt_embeds), " must have the same shape"));
    }
  }
  if (encoded) timings->text_encoder_seconds += SecondsSince(begin);

  for (const ControlCondition& c : r.controls) {
    diffusion::ControlNetUnit unit;
    unit.model = controlnets.at(c.kind).get();
    unit.image = c.image.to(options);
    unit.conditioning_scale = c.conditioning_scale;
    unit.guidance_start = c.guidance_start;
    unit.guidance_end = c.guidance_end;
    plan.units.push_back(std::move(unit));
  }
  if (r.init_image.defined()) {
    begin = Clock::now();
    plan.init = vae->Encode(r.init_image.to(options) * 2 - 1);
    timings->vae_encode_seconds += SecondsSince(begin);
  }
  return plan;
}

absl::StatusOr<GenerationResult> StableDiffusionPipeline::Impl::Run(
    const RunPlan& plan, const diffusion::DenoiseCallback& step) {
  const GenerationRequest& r = *plan.request;
  GenerationResult result;
  std::vector<at::Tensor> images, latents, initial;
  const c10::TensorOptions cpu_float = c10::TensorOptions().dtype(at::kFloat);
  for (int i = 0; i < r.num_images; ++i) {
    const uint64_t seed = r.seed + static_cast<uint64_t>(i);
    result.seeds.push_back(seed);
    // One generator per image, drawn in diffusers' order: (img2img) the posterior sample, then the
    // starting noise, then whatever the scheduler's steps draw.
    at::Generator generator = diffusion::MakeCpuGenerator(seed);
    IMGINTERP_ASSIGN_OR_RETURN(auto scheduler, NewScheduler(r.scheduler, r.num_inference_steps));
    diffusion::DenoiseInputs inputs;
    inputs.prompt_embeds = plan.prompt_embeds;
    inputs.negative_prompt_embeds = plan.negative_prompt_embeds;
    diffusion::DenoiseOptions options;
    options.start_index = plan.start_index;
    options.guidance_scale = r.guidance_scale;
    options.guess_mode = r.guess_mode;
    options.step.eta = r.eta;
    options.step.generator = generator;
    // The latents below are already scaled (txt2img) or noised to the first step (img2img).
    options.scale_initial_latents = false;

    at::Tensor init_latents;
    if (plan.init) {
      const Clock::time_point begin = Clock::now();
      const at::Tensor sample_noise = at::randn(plan.init->mean.sizes(), generator, cpu_float);
      init_latents =
          plan.init->Sample(sample_noise.to(ModelOptions())) * vae->config().scaling_factor;
      result.timings.vae_encode_seconds += SecondsSince(begin);
    }
    const at::Tensor noise = r.latents.defined()
                                 ? r.latents.narrow(0, i, 1).to(cpu_float).contiguous()
                                 : at::randn(plan.latent_shape, generator, cpu_float);
    initial.push_back(noise);
    if (plan.init) {
      scheduler->SetBeginIndex(plan.start_index);
      IMGINTERP_ASSIGN_OR_RETURN(inputs.latents,
                                 scheduler->AddNoise(init_latents, noise.to(ModelOptions()),
                                                     scheduler->Timesteps()[plan.start_index]));
    } else {
      inputs.latents = noise.to(ModelOptions()) * scheduler->InitNoiseSigma();
    }

    Clock::time_point begin = Clock::now();
    diffusion::DenoiseTimings denoise_timings;
    IMGINTERP_ASSIGN_OR_RETURN(at::Tensor final_latents,
                               diffusion::DenoiseLatents(*unet, plan.units, *scheduler, inputs,
                                                         options, step, &denoise_timings));
    result.timings.controlnet_seconds += denoise_timings.controlnet_seconds;
    result.timings.denoise_seconds += SecondsSince(begin);
    result.timings.steps_run += plan.steps_per_image;

    begin = Clock::now();
    IMGINTERP_ASSIGN_OR_RETURN(at::Tensor image,
                               diffusion::DecodeLatentsToImage(*vae, final_latents));
    result.timings.vae_decode_seconds += SecondsSince(begin);
    images.push_back(image.to(torch::kCPU, at::kFloat));
    latents.push_back(final_latents.to(torch::kCPU, at::kFloat));
  }
  result.images = torch::cat(images);
  result.latents = torch::cat(latents);
  result.initial_latents = torch::cat(initial);
  return result;
}

StableDiffusionPipeline::StableDiffusionPipeline(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}
StableDiffusionPipeline::~StableDiffusionPipeline() = default;

absl::StatusOr<std::unique_ptr<StableDiffusionPipeline::Impl>> StableDiffusionPipeline::Impl::Load(
    const std::string& dir, const PipelineLoadOptions& options) {
  auto impl = std::make_unique<StableDiffusionPipeline::Impl>();
  impl->dir = dir;
  IMGINTERP_ASSIGN_OR_RETURN(auto folder, models::DiffusersPipelineFolder::Open(dir));
  // Every component folder first, so a missing one fails before seconds of weight loading.
  std::map<std::string, std::string> dirs;
  for (const char* component : {"tokenizer", "text_encoder", "unet", "vae", "scheduler"}) {
    auto component_dir = folder->ComponentDir(component);
    if (!component_dir.ok()) {
      return WithContext(component_dir.status(), absl::StrCat("Stable Diffusion pipeline '", dir,
                                                              "' needs '", component, "'"));
    }
    dirs[component] = *component_dir;
  }
  IMGINTERP_RETURN_IF_ERROR(CheckComponentClass(*folder, "unet", {"UNet2DConditionModel"}));
  IMGINTERP_RETURN_IF_ERROR(CheckComponentClass(*folder, "vae", {"AutoencoderKL"}));
  IMGINTERP_RETURN_IF_ERROR(CheckComponentClass(*folder, "text_encoder", {"CLIPTextModel"}));

  if (options.use_cuda_if_available && torch::cuda::is_available()) {
    impl->device = c10::Device(c10::kCUDA);
  }
  const c10::TensorOptions model_options = impl->ModelOptions();

  IMGINTERP_ASSIGN_OR_RETURN(auto scheduler_config, folder->SchedulerConfig());
  impl->scheduler_json = scheduler_config.dump();
  auto scheduler = diffusion::MakeScheduler(impl->scheduler_json);
  if (!scheduler.ok()) return WithContext(scheduler.status(), "the folder's scheduler");
  impl->scheduler_class = std::string((*scheduler)->Name());

  auto text_encoder = clip::LoadClipTextModelFromFolder(dirs["text_encoder"], model_options);
  if (!text_encoder.ok()) return WithContext(text_encoder.status(), "text_encoder");
  impl->text_encoder = *text_encoder;
  clip::ClipTokenizerOptions tokenizer_options;
  tokenizer_options.max_length =
      std::min<int64_t>(77, impl->text_encoder->config().max_position_embeddings);
  auto tokenizer = clip::ClipTokenizer::FromFolder(dirs["tokenizer"], tokenizer_options);
  if (!tokenizer.ok()) return WithContext(tokenizer.status(), "tokenizer");
  impl->tokenizer = std::move(tokenizer).value();

  auto unet = diffusion::LoadUNet2DConditionModelFromFolder(dirs["unet"], model_options);
  if (!unet.ok()) return WithContext(unet.status(), "unet");
  impl->unet = *unet;
  auto vae = diffusion::LoadAutoencoderKLFromFolder(dirs["vae"], model_options);
  if (!vae.ok()) return WithContext(vae.status(), "vae");
  impl->vae = *vae;

  const auto& unet_config = impl->unet->config();
  if (unet_config.in_channels != impl->vae->config().latent_channels ||
      unet_config.cross_attention_dim != impl->text_encoder->config().hidden_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("components do not fit together: unet in_channels ", unet_config.in_channels,
                     " vs vae latent_channels ", impl->vae->config().latent_channels,
                     ", unet cross_attention_dim ", unet_config.cross_attention_dim,
                     " vs text_encoder hidden_size ", impl->text_encoder->config().hidden_size));
  }
  impl->parameter_bytes =
      ModuleBytes(*impl->text_encoder) + ModuleBytes(*impl->unet) + ModuleBytes(*impl->vae);

  std::map<std::string, diffusion::ControlNetModel> by_folder;
  for (const auto& [kind, path] : options.controlnets) {
    fs::path folder_path(path);
    if (folder_path.is_relative()) folder_path = fs::path(dir) / folder_path;
    const std::string key = folder_path.lexically_normal().string();
    auto it = by_folder.find(key);
    if (it == by_folder.end()) {
      auto model = diffusion::LoadControlNetModelFromFolder(key, model_options);
      if (!model.ok()) {
        return WithContext(model.status(), absl::StrCat("ControlNet for kind '", kind, "'"));
      }
      if ((*model)->config().unet.cross_attention_dim != unet_config.cross_attention_dim ||
          static_cast<int64_t>((*model)->controlnet_down_blocks->size()) !=
              impl->unet->NumDownResiduals()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "ControlNet for kind '", kind, "' ('", key,
            "') does not fit the UNet: ", (*model)->controlnet_down_blocks->size(),
            " down residuals and cross_attention_dim ", (*model)->config().unet.cross_attention_dim,
            " vs ", impl->unet->NumDownResiduals(), " and ", unet_config.cross_attention_dim));
      }
      (*model)->eval();
      impl->parameter_bytes += ModuleBytes(**model);
      it = by_folder.emplace(key, *model).first;
    }
    impl->controlnets.emplace(kind, it->second);
  }
  impl->text_encoder->eval();
  impl->unet->eval();
  impl->vae->eval();
  return impl;
}

absl::StatusOr<std::unique_ptr<StableDiffusionPipeline>> StableDiffusionPipeline::Load(
    const std::string& dir, const PipelineLoadOptions& options) {
  torch::NoGradGuard no_grad;
  try {
    IMGINTERP_ASSIGN_OR_RETURN(auto impl, Impl::Load(dir, options));
    return std::unique_ptr<StableDiffusionPipeline>(new StableDiffusionPipeline(std::move(impl)));
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("loading the pipeline '", dir, "' failed: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("loading the pipeline '", dir, "' failed: ", e.what()));
  }
}

absl::StatusOr<at::Tensor> StableDiffusionPipeline::EncodePrompt(std::string_view prompt) {
  torch::NoGradGuard no_grad;
  try {
    return impl_->EncodeText(prompt).to(torch::kCPU, at::kFloat);
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("encoding the prompt failed: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("encoding the prompt failed: ", e.what()));
  }
}

absl::StatusOr<GenerationResult> StableDiffusionPipeline::Generate(
    const GenerationRequest& request, const ProgressCallback& progress) {
  torch::NoGradGuard no_grad;
  try {
    GenerationTimings prepare_timings;
    IMGINTERP_ASSIGN_OR_RETURN(RunPlan plan, impl_->Prepare(request, &prepare_timings));
    const int total = plan.steps_per_image * request.num_images;
    int done = 0;
    IMGINTERP_ASSIGN_OR_RETURN(GenerationResult result, impl_->Run(plan, [&](int, int) {
      ++done;
      return !progress || progress(done, total);
    }));
    AddTimings(prepare_timings, &result.timings);
    return result;
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("generation failed: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("generation failed: ", e.what()));
  }
}

absl::StatusOr<InterpolationResult> StableDiffusionPipeline::Interpolate(
    const InterpolationRequest& request, const ProgressCallback& progress) {
  const GenerationRequest& base = request.base;
  if (request.frames < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("frames is ", request.frames, "; it must be at least 2 (both endpoints)"));
  }
  if (base.num_images != 1 || base.latents.defined() || base.init_image.defined()) {
    return absl::InvalidArgumentError(
        "interpolation frames are single text-to-image runs: leave base.num_images at 1 and "
        "base.latents and base.init_image unset");
  }
  torch::NoGradGuard no_grad;
  try {
    IMGINTERP_RETURN_IF_ERROR(impl_->Validate(base));
    InterpolationResult result;
    Clock::time_point begin = Clock::now();
    bool encoded = false;
    at::Tensor embeds_a = base.prompt_embeds;
    if (!embeds_a.defined()) {
      embeds_a = impl_->EncodeText(base.prompt);
      encoded = true;
    }
    embeds_a = embeds_a.to(torch::kCPU, at::kFloat);
    at::Tensor embeds_b = request.prompt_embeds_b;
    if (!embeds_b.defined()) {
      embeds_b = request.prompt_b.empty() ? embeds_a : impl_->EncodeText(request.prompt_b);
      encoded = encoded || !request.prompt_b.empty();
    }
    embeds_b = embeds_b.to(torch::kCPU, at::kFloat);
    if (embeds_b.sizes() != embeds_a.sizes()) {
      return absl::InvalidArgumentError(absl::StrCat("prompt_embeds_b are ", ShapeOf(embeds_b),
                                                     "; they must match the start point's ",
                                                     ShapeOf(embeds_a)));
    }
    GenerationRequest frame = base;
    if (base.guidance_scale > 1.0 && !frame.negative_prompt_embeds.defined()) {
      frame.negative_prompt_embeds = impl_->EncodeText(base.negative_prompt).to(torch::kCPU);
      encoded = true;
    }
    if (encoded) result.timings.text_encoder_seconds += SecondsSince(begin);

    const int64_t f = impl_->ScaleFactor();
    const std::vector<int64_t> shape = {1, impl_->LatentChannels(), base.height / f,
                                        base.width / f};
    IMGINTERP_ASSIGN_OR_RETURN(at::Tensor noise_a, diffusion::InitialNoise(shape, base.seed));
    IMGINTERP_ASSIGN_OR_RETURN(at::Tensor noise_b, diffusion::InitialNoise(shape, request.seed_b));

    std::vector<at::Tensor> images;
    int done = 0;
    int total = 0;
    for (int k = 0; k < request.frames; ++k) {
      const double t = static_cast<double>(k) / (request.frames - 1);
      result.t.push_back(t);
      // The endpoints are exactly the endpoint runs.
      if (k == 0) {
        frame.latents = noise_a;
        frame.prompt_embeds = embeds_a;
      } else if (k == request.frames - 1) {
        frame.latents = noise_b;
        frame.prompt_embeds = embeds_b;
      } else {
        IMGINTERP_ASSIGN_OR_RETURN(frame.latents, diffusion::SlerpNoise(noise_a, noise_b, t));
        frame.prompt_embeds = torch::lerp(embeds_a, embeds_b, t);
      }
      GenerationTimings prepare_timings;
      IMGINTERP_ASSIGN_OR_RETURN(RunPlan plan, impl_->Prepare(frame, &prepare_timings));
      total = plan.steps_per_image * request.frames;
      IMGINTERP_ASSIGN_OR_RETURN(GenerationResult frame_result, impl_->Run(plan, [&](int, int) {
        ++done;
        return !progress || progress(done, total);
      }));
      AddTimings(prepare_timings, &result.timings);
      AddTimings(frame_result.timings, &result.timings);
      images.push_back(frame_result.images);
    }
    result.images = torch::cat(images);
    return result;
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("interpolation failed: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("interpolation failed: ", e.what()));
  }
}

std::vector<std::string> StableDiffusionPipeline::ControlNetKinds() const {
  std::vector<std::string> kinds;
  for (const auto& [kind, model] : impl_->controlnets) kinds.push_back(kind);
  return kinds;  // std::map keeps them sorted
}

int StableDiffusionPipeline::vae_scale_factor() const {
  return static_cast<int>(impl_->ScaleFactor());
}
int StableDiffusionPipeline::latent_channels() const {
  return static_cast<int>(impl_->LatentChannels());
}
int StableDiffusionPipeline::default_size() const {
  return static_cast<int>(impl_->unet->config().sample_size * impl_->ScaleFactor());
}
std::string StableDiffusionPipeline::scheduler_class() const { return impl_->scheduler_class; }
int64_t StableDiffusionPipeline::parameter_bytes() const { return impl_->parameter_bytes; }
bool StableDiffusionPipeline::on_cuda() const { return impl_->device.is_cuda(); }

}  // namespace imginterp::generation
