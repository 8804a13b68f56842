#include "benchmarks/diffusion/random_sd15_folder.h"

#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "services/core/common/status_macros.h"
#include "services/models/clip/clip_config.h"
#include "services/models/clip/clip_text_model.h"
#include "services/models/diffusion/controlnet.h"
#include "services/models/diffusion/unet.h"
#include "services/models/diffusion/vae.h"
#include "services/models/io/safetensors_file.h"

namespace imginterp::bench {
namespace {

namespace fs = std::filesystem;

// The published runwayml/stable-diffusion-v1-5 scheduler/scheduler_config.json.
constexpr char kSchedulerConfig[] =
    R"({"_class_name": "PNDMScheduler", "_diffusers_version": "0.6.0",
  "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": false,
  "num_train_timesteps": 1000, "set_alpha_to_one": false, "skip_prk_steps": true,
  "steps_offset": 1, "trained_betas": null})";
constexpr char kModelIndex[] = R"({"_class_name": "StableDiffusionPipeline",
  "_diffusers_version": "0.27.2", "feature_extractor": [null, null], "safety_checker": [null, null],
  "requires_safety_checker": false, "scheduler": ["diffusers", "PNDMScheduler"],
  "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
  "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]})";
constexpr char kCompleteMarker[] = ".complete";

// Fills every parameter with N(0, 0.02) and writes them under their state-dict names, with the
// reference config as config.json.
absl::Status WriteModule(torch::nn::Module& module, const fs::path& dir, const char* weights_name,
                         const std::string& config_path) {
  std::map<std::string, at::Tensor> tensors;
  for (const auto& item : module.named_parameters())
    tensors[item.key()] = item.value().normal_(0, 0.02);
  for (const auto& item : module.named_buffers()) tensors[item.key()] = item.value();
  fs::create_directories(dir);
  IMGINTERP_RETURN_IF_ERROR(models::WriteSafetensors((dir / weights_name).string(), tensors));
  fs::copy_file(config_path, dir / "config.json", fs::copy_options::overwrite_existing);
  return absl::OkStatus();
}

// Builds a module from its reference config with `create` and writes it as WriteModule does.
template <typename Config, typename Create>
absl::Status WriteFromConfig(const std::string& config_path, const fs::path& dir,
                             const char* weights_name, Create create) {
  IMGINTERP_ASSIGN_OR_RETURN(const Config config, Config::FromFile(config_path));
  IMGINTERP_ASSIGN_OR_RETURN(auto model, create(config));
  return WriteModule(*model, dir, weights_name, config_path);
}

}  // namespace

bool RandomSd15FolderIsComplete(const std::string& dir) {
  return fs::exists(fs::path(dir) / kCompleteMarker);
}

absl::Status WriteRandomSd15Folder(const RandomSd15FolderOptions& options) {
  if (!fs::exists(options.tokenizer_dir + "/vocab.json")) {
    return absl::FailedPreconditionError("no tokenizer in " + options.tokenizer_dir +
                                         ": run deploy/models/fetch-models.sh (it writes the tiny "
                                         "tokenizer) or pass --tokenizer_dir");
  }
  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  const fs::path dir = options.dir;
  const std::string configs = options.config_dir + "/";
  constexpr char kWeights[] = "diffusion_pytorch_model.safetensors";
  fs::remove(dir / kCompleteMarker);
  fs::create_directories(dir / "scheduler");
  std::ofstream(dir / "model_index.json") << kModelIndex;
  std::ofstream(dir / "scheduler" / "scheduler_config.json") << kSchedulerConfig;
  fs::create_directories(dir / "tokenizer");
  for (const char* file : {"vocab.json", "merges.txt", "tokenizer_config.json"}) {
    fs::copy_file(fs::path(options.tokenizer_dir) / file, dir / "tokenizer" / file,
                  fs::copy_options::overwrite_existing);
  }
  // One module at a time, so the writer holds at most the UNet in memory.
  IMGINTERP_RETURN_IF_ERROR(WriteFromConfig<clip::ClipTextConfig>(
      configs + "text_encoder.json", dir / "text_encoder", "model.safetensors",
      [](const auto& config) {
        return absl::StatusOr<clip::ClipTextModel>(
            clip::ClipTextModel(config, /*with_projection=*/false));
      }));
  IMGINTERP_RETURN_IF_ERROR(WriteFromConfig<diffusion::AutoencoderKLConfig>(
      configs + "vae.json", dir / "vae", kWeights,
      [](const auto& config) { return diffusion::CreateAutoencoderKL(config); }));
  IMGINTERP_RETURN_IF_ERROR(WriteFromConfig<diffusion::UNet2DConditionConfig>(
      configs + "unet.json", dir / "unet", kWeights,
      [](const auto& config) { return diffusion::CreateUNet2DConditionModel(config); }));
  IMGINTERP_RETURN_IF_ERROR(WriteFromConfig<diffusion::ControlNetConfig>(
      configs + "controlnet_openpose.json", dir / kRandomSd15ControlNetFolder, kWeights,
      [](const auto& config) { return diffusion::CreateControlNetModel(config); }));
  std::ofstream(dir / kCompleteMarker) << "written by generation_bench\n";
  return absl::OkStatus();
}

}  // namespace imginterp::bench
