// diffusers' ControlNetModel (models/controlnet.py): the UNet's conv_in, time embedding, down half
// and mid block, plus controlnet_cond_embedding (a small conv net from the condition image to the
// latent grid, added after conv_in), one zero 1x1 conv per skip connection
// ("controlnet_down_blocks.N") and one after the mid block ("controlnet_mid_block"). Its outputs
// are the residuals UNet2DConditionModel::forward adds. Parameter names equal the published keys.
//
// Thread-safety: as torch::nn::Module; forward() only reads the parameters.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/TensorOptions.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "services/models/diffusion/unet.h"
#include "services/models/diffusion/unet_blocks.h"
#include "services/models/diffusion/unet_config.h"
#include "services/models/io/state_dict.h"
#include "services/models/io/tensor_source.h"
#include "services/models/nn/embeddings.h"
#include "services/models/nn/layers.h"

namespace imginterp::diffusion {

struct ControlNetOutput {
  std::vector<at::Tensor> down_block_res_samples;  // one per UNet skip connection
  at::Tensor mid_block_res_sample;
};

// Adds `other`'s residuals to `sum` (several ControlNets on one UNet, as diffusers'
// MultiControlNetModel). An empty `sum` becomes a copy of `other`.
void AccumulateControlNetOutput(const ControlNetOutput& other, ControlNetOutput* sum);

// conv_in (condition channels -> out[0]), blocks (pairs of 3x3 convs, the second with stride 2),
// conv_out (-> the UNet's block_out_channels[0]); SiLU after every conv but the last.
class ControlNetConditioningEmbeddingImpl : public torch::nn::Module {
 public:
  ControlNetConditioningEmbeddingImpl(int64_t conditioning_embedding_channels,
                                      const std::vector<int64_t>& block_out_channels,
                                      int64_t conditioning_channels,
                                      const c10::TensorOptions& options = {});
  at::Tensor forward(const at::Tensor& conditioning);

  nn::Conv2d conv_in{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  nn::Conv2d conv_out{nullptr};
};
TORCH_MODULE(ControlNetConditioningEmbedding);

class ControlNetModelImpl : public torch::nn::Module {
 public:
  // Uninitialised parameters on `options`; nothing is allocated on the meta device. Throws
  // c10::Error for a config that cannot be built (CreateControlNetModel gives a Status).
  explicit ControlNetModelImpl(const ControlNetConfig& config,
                               const c10::TensorOptions& options = {});

  // sample [B, in_channels, h, w], timestep as for the UNet, encoder_hidden_states [B, L, D],
  // controlnet_cond [B, conditioning_channels, 8h, 8w] (for SD: the image in [0, 1]).
  // Every residual is multiplied by conditioning_scale; in guess mode (unless the config pools
  // its conditions) residual i of n (the mid one last) is instead multiplied by
  // conditioning_scale * 10^(-1 + i / n), as diffusers' torch.logspace(-1, 0, n + 1).
  ControlNetOutput forward(const at::Tensor& sample, const at::Tensor& timestep,
                           const at::Tensor& encoder_hidden_states,
                           const at::Tensor& controlnet_cond, double conditioning_scale = 1.0,
                           bool guess_mode = false);

  const ControlNetConfig& config() const { return config_; }

  nn::Conv2d conv_in{nullptr};
  nn::Timesteps time_proj{nullptr};
  nn::TimestepEmbedding time_embedding{nullptr};
  ControlNetConditioningEmbedding controlnet_cond_embedding{nullptr};
  torch::nn::ModuleList down_blocks{nullptr};
  torch::nn::ModuleList controlnet_down_blocks{nullptr};
  UNetMidBlock mid_block{nullptr};
  nn::Conv2d controlnet_mid_block{nullptr};

 private:
  ControlNetConfig config_;
};
TORCH_MODULE(ControlNetModel);

// INVALID_ARGUMENT when the config cannot be built.
absl::StatusOr<ControlNetModel> CreateControlNetModel(const ControlNetConfig& config,
                                                      const c10::TensorOptions& options = {});

// Builds and loads strictly (by default) from `weights`.
absl::StatusOr<ControlNetModel> LoadControlNetModel(const ControlNetConfig& config,
                                                    const models::TensorSource& weights,
                                                    const c10::TensorOptions& options = {},
                                                    const models::LoadOptions& load = {});

// A diffusers ControlNet folder: config.json and diffusion_pytorch_model[.variant].safetensors.
absl::StatusOr<ControlNetModel> LoadControlNetModelFromFolder(
    const std::string& dir, const c10::TensorOptions& options = {}, std::string_view variant = "");

}  // namespace imginterp::diffusion
