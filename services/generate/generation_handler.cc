#include "services/generate/generation_handler.h"

#include <ATen/Parallel.h>
#include <torch/types.h>

#include <chrono>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "inference/grpc_service.pb.h"
#include "services/core/codec/tensor_convert.h"
#include "services/core/common/logging.h"
#include "services/core/common/status_macros.h"
#include "services/core/metrics/serving_metrics.h"
#include "services/generate/generate_request.h"
#include "services/generate/mp4_encode.h"
#include "services/models/nn/caching_cpu_allocator.h"

namespace imginterp::generate {
namespace {

using Clock = std::chrono::steady_clock;

constexpr char kControlNetPrefix[] = "controlnet.";
constexpr int kDefaultFrames = 8;
constexpr int kDefaultFps = 8;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

absl::StatusOr<int64_t> PositiveParameter(const v1::ModelConfig& config, const std::string& key,
                                          int64_t fallback, int64_t high) {
  auto it = config.parameters().find(key);
  if (it == config.parameters().end()) return fallback;
  int64_t value = 0;
  if (!absl::SimpleAtoi(it->second, &value) || value < 1 || value > high) {
    return absl::InvalidArgumentError(
        absl::StrCat("config.pbtxt of '", config.name(), "': parameter ", key,
                     " must be an integer in 1..", high, "; got \"", it->second, "\""));
  }
  return value;
}

// One [1, 3, H, W] float image in [0, 1] as an RGB PNG.
absl::Status ToPng(const at::Tensor& image, v1::Image* out) {
  IMGINTERP_ASSIGN_OR_RETURN(cv::Mat rgb, codec::TensorToMat(image));
  IMGINTERP_ASSIGN_OR_RETURN(std::string png, codec::EncodePng(rgb));
  out->set_data(std::move(png));
  out->set_media_type("image/png");
  out->set_width(rgb.cols);
  out->set_height(rgb.rows);
  return absl::OkStatus();
}

void FillTiming(const generation::GenerationTimings& timings, double total_seconds,
                v1::ImageTiming* out) {
  out->set_text_encoder_seconds(timings.text_encoder_seconds);
  out->set_denoise_seconds(timings.denoise_seconds);
  out->set_controlnet_seconds(timings.controlnet_seconds);
  out->set_vae_encode_seconds(timings.vae_encode_seconds);
  out->set_vae_decode_seconds(timings.vae_decode_seconds);
  out->set_total_seconds(total_seconds);
  out->set_steps(timings.steps_run);
}

class StableDiffusionModel final : public service::ExecuteModel {
 public:
  StableDiffusionModel(std::unique_ptr<generation::StableDiffusionPipeline> pipeline,
                       const service::ModelLoadInfo& info, GenerateModelConfig config,
                       GenerateOptions options)
      : pipeline_(std::move(pipeline)),
        name_(info.name),
        version_(std::to_string(info.version)),
        metrics_(info.metrics),
        config_(std::move(config)),
        options_(options) {
    facts_.control_kinds = pipeline_->ControlNetKinds();
    facts_.default_size = pipeline_->default_size();
    facts_.vae_scale_factor = pipeline_->vae_scale_factor();
    facts_.latent_channels = pipeline_->latent_channels();
    if (metrics_ != nullptr) {
      metrics_->SetFamilyGauge("imginterp_generate_model_memory_bytes",
                               "Bytes of the loaded weights of a generation model (UNet, VAE, "
                               "text encoder, ControlNets).",
                               name_, version_, static_cast<double>(pipeline_->parameter_bytes()));
    }
  }

 protected:
  absl::Status Execute(service::WorkItem& item) override {
    UseConfiguredThreads();
    if (item.request->GetDescriptor() == v1::InterpolateRequest::descriptor()) {
      return Interpolate(item, static_cast<const v1::InterpolateRequest&>(*item.request),
                         static_cast<v1::InterpolateResponse&>(*item.response));
    }
    return Generate(item, static_cast<const v1::GenerateRequest&>(*item.request),
                    static_cast<v1::GenerateResponse&>(*item.response));
  }

 private:
  // As TorchScriptRunner does: the pool is process-wide, so set it for each run.
  void UseConfiguredThreads() const {
    const int threads = config_.intra_op_threads;
    if (threads > 0 && at::get_num_threads() != threads) at::set_num_threads(threads);
  }

  // Images are run one at a time (image i = a one-image run with seed + i), so each has its own
  // timing and progress names the image.
  absl::Status Generate(service::WorkItem& item, const v1::GenerateRequest& request,
                        v1::GenerateResponse& response) {
    const auto start = Clock::now();
    IMGINTERP_ASSIGN_OR_RETURN(generation::GenerationRequest all,
                               ToGenerationRequest(request, facts_, config_, options_.limits));
    item.preprocess_seconds = SecondsSince(start);
    const int count = all.num_images;
    std::vector<at::Tensor> images, latents, initial_latents;
    const auto run_start = Clock::now();
    double encode_seconds = 0;
    for (int i = 0; i < count; ++i) {
      const auto image_start = Clock::now();
      generation::GenerationRequest one = all;
      one.num_images = 1;
      one.seed = all.seed + static_cast<uint64_t>(i);
      if (all.latents.defined()) one.latents = all.latents.narrow(0, i, 1);
      auto progress = [&item, i, count](int done, int total) {
        if (item.progress) item.progress(i * total + done, total * count);
        return !(item.cancelled && item.cancelled());
      };
      IMGINTERP_ASSIGN_OR_RETURN(generation::GenerationResult result,
                                 pipeline_->Generate(one, progress));
      const auto encode_start = Clock::now();
      IMGINTERP_RETURN_IF_ERROR(ToPng(result.images.narrow(0, 0, 1), response.add_images()));
      encode_seconds += SecondsSince(encode_start);
      response.add_seeds(one.seed);
      FillTiming(result.timings, SecondsSince(image_start), response.add_timings());
      RecordSteps(result.timings);
      if (request.return_tensors()) {
        images.push_back(result.images);
        latents.push_back(result.latents);
        initial_latents.push_back(result.initial_latents);
      }
    }
    const double run_seconds = SecondsSince(run_start);
    item.postprocess_seconds = encode_seconds;
    item.inference_seconds = run_seconds - encode_seconds;
    if (request.return_tensors()) {
      auto* tensors = response.mutable_tensors();
      *tensors->mutable_images() = codec::ToProto(torch::cat(images), "images");
      *tensors->mutable_latents() = codec::ToProto(torch::cat(latents), "latents");
      *tensors->mutable_initial_latents() =
          codec::ToProto(torch::cat(initial_latents), "initial_latents");
    }
    response.set_scheduler(all.scheduler.empty() ? pipeline_->scheduler_class() : all.scheduler);
    if (metrics_ != nullptr && run_seconds > 0) {
      metrics_->SetFamilyGauge("imginterp_generate_images_per_second",
                               "Images per second of the last finished generation request.", name_,
                               version_, count / run_seconds);
    }
    return absl::OkStatus();
  }

  absl::Status Interpolate(service::WorkItem& item, const v1::InterpolateRequest& request,
                           v1::InterpolateResponse& response) {
    const auto start = Clock::now();
    const v1::GenerateRequest& base = request.base();
    if (base.num_images() > 1 || base.has_init_image() || base.has_initial_latents()) {
      return absl::InvalidArgumentError(
          "base.num_images, base.init_image and base.initial_latents must be unset for "
          "interpolation (every frame is one image from interpolated noise)");
    }
    generation::InterpolationRequest interpolation;
    IMGINTERP_ASSIGN_OR_RETURN(
        interpolation.base, ToGenerationRequest(base, facts_, config_, options_.limits, "base."));
    interpolation.seed_b = request.seed_b();
    interpolation.prompt_b = request.prompt_b();
    interpolation.frames = request.frames() == 0 ? kDefaultFrames : request.frames();
    if (interpolation.frames < 2 || interpolation.frames > config_.max_frames) {
      return absl::OutOfRangeError(absl::StrCat("frames must be in 2..", config_.max_frames,
                                                " (config parameter max_frames); got ",
                                                interpolation.frames));
    }
    const int fps = request.fps() == 0 ? kDefaultFps : request.fps();
    if (fps < 1 || fps > 120) {
      return absl::InvalidArgumentError(absl::StrCat("fps must be in 1..120; got ", fps));
    }
    item.preprocess_seconds = SecondsSince(start);
    const auto run_start = Clock::now();
    auto progress = [&item](int done, int total) {
      if (item.progress) item.progress(done, total);
      return !(item.cancelled && item.cancelled());
    };
    IMGINTERP_ASSIGN_OR_RETURN(generation::InterpolationResult result,
                               pipeline_->Interpolate(interpolation, progress));
    item.inference_seconds = SecondsSince(run_start);
    const auto encode_start = Clock::now();
    std::vector<cv::Mat> frames;
    for (int64_t k = 0; k < result.images.size(0); ++k) {
      IMGINTERP_ASSIGN_OR_RETURN(cv::Mat rgb, codec::TensorToMat(result.images.narrow(0, k, 1)));
      IMGINTERP_ASSIGN_OR_RETURN(std::string png, codec::EncodePng(rgb));
      v1::Image* frame = response.add_frames();
      frame->set_data(std::move(png));
      frame->set_media_type("image/png");
      frame->set_width(rgb.cols);
      frame->set_height(rgb.rows);
      frames.push_back(std::move(rgb));
    }
    for (double t : result.t) response.add_t(t);
    auto video = EncodeMp4(frames, fps);
    if (video.ok()) {
      response.set_video(*std::move(video));
    } else {
      // The frames are the result; the video is a convenience.
      response.set_video_note(
          absl::StrCat("no MP4: ", video.status().message(), "; the frames are returned as PNGs"));
    }
    item.postprocess_seconds = SecondsSince(encode_start);
    FillTiming(result.timings, SecondsSince(start), response.mutable_timing());
    RecordSteps(result.timings);
    return absl::OkStatus();
  }

  void RecordSteps(const generation::GenerationTimings& timings) {
    if (metrics_ == nullptr || timings.steps_run == 0 || timings.denoise_seconds <= 0) return;
    const double per_step = timings.denoise_seconds / timings.steps_run;
    metrics_->ObserveFamilyHistogram(
        "imginterp_generate_step_seconds",
        "Time of one denoising step (UNet, ControlNets, scheduler), in seconds.",
        metrics::ServingMetrics::LatencyBuckets(), name_, version_, per_step);
    metrics_->SetFamilyGauge("imginterp_generate_steps_per_second",
                             "Denoising steps per second of the last generated image.", name_,
                             version_, 1.0 / per_step);
  }

  std::unique_ptr<generation::StableDiffusionPipeline> pipeline_;
  const std::string name_;
  const std::string version_;
  metrics::ServingMetrics* const metrics_;
  const GenerateModelConfig config_;
  const GenerateOptions options_;
  PipelineFacts facts_;
};

}  // namespace

absl::StatusOr<GenerateModelConfig> ParseGenerateModelConfig(const v1::ModelConfig& config) {
  GenerateModelConfig out;
  for (const auto& [key, value] : config.parameters()) {
    if (!absl::StartsWith(key, kControlNetPrefix)) continue;
    const std::string kind = key.substr(sizeof(kControlNetPrefix) - 1);
    if (kind.empty() || value.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("config.pbtxt of '", config.name(), "': parameter \"", key,
                       "\" needs a prior kind after \"controlnet.\" and a folder as value"));
    }
    out.controlnets[kind] = value;
  }
  IMGINTERP_ASSIGN_OR_RETURN(int64_t max_steps,
                             PositiveParameter(config, "max_steps", out.max_steps, 10000));
  IMGINTERP_ASSIGN_OR_RETURN(int64_t max_images,
                             PositiveParameter(config, "max_images", out.max_images, 1024));
  IMGINTERP_ASSIGN_OR_RETURN(
      out.max_pixels, PositiveParameter(config, "max_pixels", out.max_pixels, int64_t{1} << 30));
  IMGINTERP_ASSIGN_OR_RETURN(int64_t max_frames,
                             PositiveParameter(config, "max_frames", out.max_frames, 10000));
  out.max_steps = static_cast<int>(max_steps);
  out.max_images = static_cast<int>(max_images);
  out.max_frames = static_cast<int>(max_frames);
  out.intra_op_threads = config.intra_op_threads();
  return out;
}

std::string GenerationHandler::description() const {
  return "Stable Diffusion 1.5 image generation with ControlNets (diffusers pipeline folders in "
         "the model repository, backend \"native\"): text-to-image, image-to-image, conditioning "
         "images or edited pose keypoints per prior kind, several images per request (seed + i), "
         "streamed progress with cancellation, and seed/prompt interpolation as frames and an "
         "MP4. Limits per model: config parameters max_steps, max_images, max_pixels, max_frames.";
}

absl::StatusOr<std::unique_ptr<service::ModelInstance>> GenerationHandler::CreateInstance(
    const service::ModelLoadInfo& info, std::unique_ptr<model::ModelRunner> runner) const {
  if (runner != nullptr || info.config.backend() != "native" || info.version_dir.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("generate model '", info.name,
                     "' needs backend \"native\" in config.pbtxt and a diffusers pipeline folder "
                     "as its version folder"));
  }
  IMGINTERP_ASSIGN_OR_RETURN(GenerateModelConfig config, ParseGenerateModelConfig(info.config));
  if (config.intra_op_threads > 0) at::set_num_threads(config.intra_op_threads);
  // Denoising steps allocate the same large temporaries again and again; reusing freed blocks
  // saves their page faults (caching_cpu_allocator.h; IMGINTERP_CPU_CACHE_MB sets the budget).
  nn::InstallCachingCpuAllocatorFromEnvironment();
  generation::PipelineLoadOptions load_options;
  load_options.controlnets = config.controlnets;
  auto pipeline = generation::StableDiffusionPipeline::Load(info.version_dir, load_options);
  if (!pipeline.ok()) {
    return absl::Status(pipeline.status().code(),
                        absl::StrCat("generate model '", info.name, "' (", info.version_dir,
                                     "): ", pipeline.status().message()));
  }
  IMGINTERP_LOG(Info) << "generate: model '" << info.name << "' has ControlNets for "
                      << absl::StrJoin((*pipeline)->ControlNetKinds(), ", ") << "; "
                      << ((*pipeline)->parameter_bytes() >> 20) << " MiB of weights";
  return std::make_unique<StableDiffusionModel>(*std::move(pipeline), info, std::move(config),
                                                options_);
}

absl::Status GenerationHandler::ToKServe(const google::protobuf::Message& message,
                                         inference::ModelInferResponse* out) const {
  const auto& response = static_cast<const v1::GenerateResponse&>(message);
  auto* images = out->add_outputs();
  images->set_name("images");
  images->set_datatype("BYTES");
  images->add_shape(response.images_size());
  for (const v1::Image& image : response.images()) {
    images->mutable_contents()->add_bytes_contents(image.data());
  }
  (*out->mutable_parameters())["seeds"].set_string_param(absl::StrJoin(response.seeds(), ","));
  return absl::OkStatus();
}

void GenerationHandler::DescribeKServeOutputs(inference::ModelMetadataResponse* metadata) const {
  auto* images = metadata->add_outputs();
  images->set_name("images");
  images->set_datatype("BYTES");
  images->add_shape(-1);
}

void GenerationHandler::DescribeKServeInputs(inference::ModelMetadataResponse* metadata) const {
  for (const char* name : {"prompt", "negative_prompt", "init_image"}) {
    auto* input = metadata->add_inputs();
    input->set_name(name);
    input->set_datatype("BYTES");
    input->add_shape(1);
  }
}

}  // namespace imginterp::generate
