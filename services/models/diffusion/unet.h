// diffusers' UNet2DConditionModel (models/unets/unet_2d_condition.py) for the SD1.x/SD2.x
// architecture: conv_in, time_proj + time_embedding, down_blocks, mid_block
// (UNetMidBlock2DCrossAttn), up_blocks with skip connections, conv_norm_out, conv_out. Parameter
// names equal the published state-dict keys, so a diffusers "unet/" folder loads without renaming.
//
// Thread-safety: as torch::nn::Module; forward() only reads the parameters, so several threads may
// run it at once while nobody loads or moves the module.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/TensorOptions.h>
#include <c10/util/Exception.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "services/models/diffusion/unet_blocks.h"
#include "services/models/diffusion/unet_config.h"
#include "services/models/io/state_dict.h"
#include "services/models/io/tensor_source.h"
#include "services/models/nn/embeddings.h"
#include "services/models/nn/layers.h"

namespace imginterp::diffusion {

class UNet2DConditionModelImpl : public torch::nn::Module {
 public:
  // Builds the module with uninitialised parameters on `options` (device, dtype); on the meta
  // device nothing is allocated. Throws c10::Error for a config that cannot be built (use
  // CreateUNet2DConditionModel to get a Status).
  explicit UNet2DConditionModelImpl(const UNet2DConditionConfig& config,
                                    const c10::TensorOptions& options = {});

  // sample [B, in_channels, H, W]; timestep a scalar, [1] or [B] tensor (integer or floating, any
  // dtype: the embedding is computed in float32 as diffusers does); encoder_hidden_states
  // [B, L, cross_attention_dim]. ControlNet residuals are added as diffusers does: each
  // down_block_additional_residuals[i] to the i-th skip connection (conv_in output first) after the
  // whole down half, and mid_block_additional_residual to the mid block's output. Give both or
  // neither. Returns the noise prediction [B, out_channels, H, W].
  at::Tensor forward(const at::Tensor& sample, const at::Tensor& timestep,
                     const at::Tensor& encoder_hidden_states,
                     const std::vector<at::Tensor>& down_block_additional_residuals = {},
                     const at::Tensor& mid_block_additional_residual = {});

  const UNet2DConditionConfig& config() const { return config_; }
  // Number of skip connections (and so of ControlNet down residuals) the down half produces.
  int64_t NumDownResiduals() const;

  nn::Conv2d conv_in{nullptr};
  nn::Timesteps time_proj{nullptr};
  nn::TimestepEmbedding time_embedding{nullptr};
  torch::nn::ModuleList down_blocks{nullptr};
  UNetMidBlock mid_block{nullptr};
  torch::nn::ModuleList up_blocks{nullptr};
  nn::GroupNorm conv_norm_out{nullptr};
  nn::Conv2d conv_out{nullptr};

 private:
  UNet2DConditionConfig config_;
};
TORCH_MODULE(UNet2DConditionModel);

// Builds the module; INVALID_ARGUMENT (with LibTorch's message) when the config cannot be built.
absl::StatusOr<UNet2DConditionModel> CreateUNet2DConditionModel(
    const UNet2DConditionConfig& config, const c10::TensorOptions& options = {});

// Builds the module and loads it from `weights` (strict by default: every key and shape must
// match). Errors of LoadStateDict and of the source are passed on.
absl::StatusOr<UNet2DConditionModel> LoadUNet2DConditionModel(
    const UNet2DConditionConfig& config, const models::TensorSource& weights,
    const c10::TensorOptions& options = {}, const models::LoadOptions& load = {});

// A diffusers model folder ("unet/"): config.json and
// diffusion_pytorch_model[.variant].safetensors.
absl::StatusOr<UNet2DConditionModel> LoadUNet2DConditionModelFromFolder(
    const std::string& dir, const c10::TensorOptions& options = {}, std::string_view variant = "");

namespace detail {

// Pieces UNet2DConditionModel and ControlNetModel build identically from a config.
nn::Conv2d MakeConvIn(const UNet2DConditionConfig& config, const c10::TensorOptions& options);
nn::Timesteps MakeTimeProj(const UNet2DConditionConfig& config);
nn::TimestepEmbedding MakeTimeEmbedding(const UNet2DConditionConfig& config,
                                        const c10::TensorOptions& options);
torch::nn::ModuleList MakeDownBlocks(const UNet2DConditionConfig& config,
                                     const c10::TensorOptions& options);
UNetMidBlock MakeMidBlock(const UNet2DConditionConfig& config, const c10::TensorOptions& options);

// The time embedding of `timestep` broadcast to `batch`, in `dtype`.
at::Tensor EmbedTimestep(nn::TimestepsImpl& time_proj, nn::TimestepEmbeddingImpl& time_embedding,
                         const at::Tensor& timestep, int64_t batch, const at::Tensor& like);

// Runs the down blocks, returning the skip connections (`first` is the conv_in output, included
// first) and leaving the last state in *sample.
std::vector<at::Tensor> RunDownBlocks(torch::nn::ModuleList& down_blocks, at::Tensor* sample,
                                      const at::Tensor& temb,
                                      const at::Tensor& encoder_hidden_states);

// Runs `build` (which may throw c10::Error) and, when `weights` is given, loads it strictly by
// `load`. `what` names the model in errors.
template <typename Holder, typename Build>
absl::StatusOr<Holder> BuildAndLoad(const char* what, Build build,
                                    const models::TensorSource* weights,
                                    const models::LoadOptions& load) {
  Holder module{nullptr};
  try {
    module = build();
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(std::string("cannot build the ") + what + ": " +
                                      e.what_without_backtrace());
  }
  if (weights != nullptr) {
    absl::Status status = models::LoadStateDict(*module, *weights, load);
    if (!status.ok()) {
      return absl::Status(status.code(), std::string("loading the ") + what + " from " +
                                             weights->Describe() + ": " +
                                             std::string(status.message()));
    }
  }
  return module;
}

}  // namespace detail
}  // namespace imginterp::diffusion
