// unet_bench: seconds per guided denoising step of the full-size SD1.5 UNet (random weights), with
// and without one ControlNet, at 32x32 and 64x64 latents (256^2 and 512^2 images), batch 2
// (classifier-free guidance), 77-token context. Prints a table with seconds per step, peak RSS and
// GFLOP/s (convolution, linear and attention matmul FLOPs counted analytically from the config;
// norms and activations are not counted).
//
//   unet_bench [--config_dir=tests/data/reference/diffusion/configs/sd15] [--sizes=32,64]
//              [--steps=2] [--warmup=1] [--threads=0]      (--help describes them)
//
// Reference (diffusers on PyTorch 1.13, 2 cores, fp32): ~2.6-4 s per call at 32x32 and
// ~12-15.5 s at 64x64; peak RSS 3.7 GiB and 6 GiB.
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "benchmarks/diffusion/bench_util.h"
#include "services/core/common/status_macros.h"
#include "services/models/diffusion/controlnet.h"
#include "services/models/diffusion/unet.h"
#include "services/models/nn/layers.h"

namespace imginterp::diffusion {
namespace {

struct Flags {
  std::string config_dir = "tests/data/reference/diffusion/configs/sd15";
  std::string sizes = "32,64";        // --sizes as given
  std::vector<int64_t> latent_sizes;  // parsed from `sizes` after the flags are read
  int steps = 2;
  int warmup = 1;
  int threads = 0;
};

using bench::PeakRssGiB;

constexpr char kDescription[] =
    "Seconds per guided denoising step (batch 2, 77-token context) of the full-size SD1.5 UNet "
    "with random weights, alone and with one ControlNet, with peak RSS and analytic GFLOP/s. "
    "Needs no model files; run from the repository root.";

// "32,64" -> {32, 64}: latent sizes, each a positive integer.
absl::StatusOr<std::vector<int64_t>> ParseSizes(const std::string& list) {
  std::vector<int64_t> sizes;
  for (absl::string_view part : absl::StrSplit(list, ',', absl::SkipWhitespace())) {
    int64_t size = 0;
    if (!absl::SimpleAtoi(part, &size) || size <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--sizes=", list, ": '", part, "' is not a positive latent size (e.g. --sizes=32,64)"));
    }
    sizes.push_back(size);
  }
  if (sizes.empty()) return absl::InvalidArgumentError("--sizes is empty (e.g. --sizes=32,64)");
  return sizes;
}

// FLOPs of the down half + mid block (shared by UNet and ControlNet) or of the up half.
struct FlopCounter {
  int64_t batch;
  int64_t context;
  int64_t context_dim;
  double flops = 0;

  void Conv(int64_t h, int64_t w, int64_t in, int64_t out, int64_t k) {
    flops += 2.0 * batch * h * w * in * out * k * k;
  }
  void Resnet(int64_t h, int64_t w, int64_t in, int64_t out) {
    Conv(h, w, in, out, 3);
    Conv(h, w, out, out, 3);
    if (in != out) Conv(h, w, in, out, 1);
  }
  void Transformer(int64_t h, int64_t w, int64_t c, int64_t layers) {
    const double l = static_cast<double>(h * w);
    const double b = static_cast<double>(batch);
    double f = 2 * 2.0 * l * c * c;  // proj_in, proj_out
    for (int64_t i = 0; i < layers; ++i) {
      f += 4 * 2.0 * l * c * c + 2 * 2.0 * l * l * c;  // self-attention
      f += 2 * 2.0 * l * c * c + 2 * 2.0 * context * context_dim * c + 2 * 2.0 * l * context * c;
      f += 2.0 * l * c * 8 * c + 2.0 * l * 4 * c * c;  // GEGLU FF
    }
    flops += b * f;
  }
};

double UNetFlops(const UNet2DConditionConfig& c, int64_t size, int64_t batch, bool up_half) {
  FlopCounter f{batch, 77, c.cross_attention_dim};
  const size_t n = c.block_out_channels.size();
  int64_t s = size;
  f.Conv(s, s, c.in_channels, c.block_out_channels[0], 3);
  int64_t ch = c.block_out_channels[0];
  std::vector<int64_t> skips = {ch};
  for (size_t i = 0; i < n; ++i) {
    const int64_t out = c.block_out_channels[i];
    for (int64_t j = 0; j < c.layers_per_block[i]; ++j) {
      f.Resnet(s, s, ch, out);
      ch = out;
      if (c.down_block_types[i] == DownBlockType::kCrossAttnDownBlock2D) {
        f.Transformer(s, s, ch, c.transformer_layers_per_block[i]);
      }
      skips.push_back(ch);
    }
    if (i + 1 < n) {
      f.Conv(s / 2, s / 2, ch, ch, 3);
      s /= 2;
      skips.push_back(ch);
    }
  }
  f.Resnet(s, s, ch, ch);
  f.Transformer(s, s, ch, c.transformer_layers_per_block.back());
  f.Resnet(s, s, ch, ch);
  if (!up_half) return f.flops;
  for (size_t i = 0; i < n; ++i) {
    const size_t r = n - 1 - i;
    const int64_t out = c.block_out_channels[r];
    for (int64_t j = 0; j <= c.layers_per_block[r]; ++j) {
      const int64_t skip = skips.back();
      skips.pop_back();
      f.Resnet(s, s, ch + skip, out);
      ch = out;
      if (c.up_block_types[i] == UpBlockType::kCrossAttnUpBlock2D) {
        f.Transformer(s, s, ch, c.transformer_layers_per_block[r]);
      }
    }
    if (i + 1 < n) {
      s *= 2;
      f.Conv(s, s, ch, ch, 3);
    }
  }
  f.Conv(s, s, ch, c.out_channels, 3);
  return f.flops;
}

int Run(const Flags& flags) {
  if (flags.threads > 0) torch::set_num_threads(flags.threads);
  auto unet_config = UNet2DConditionConfig::FromFile(flags.config_dir + "/unet.json");
  auto cn_config = ControlNetConfig::FromFile(flags.config_dir + "/controlnet_openpose.json");
  if (!unet_config.ok() || !cn_config.ok()) {
    std::fprintf(stderr, "cannot read configs from %s: %s %s\n", flags.config_dir.c_str(),
                 unet_config.status().ToString().c_str(), cn_config.status().ToString().c_str());
    return 1;
  }
  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  auto unet = CreateUNet2DConditionModel(*unet_config, torch::TensorOptions().dtype(torch::kFloat));
  if (!unet.ok()) {
    std::fprintf(stderr, "%s\n", unet.status().ToString().c_str());
    return 1;
  }
  nn::ResetParameters(**unet);
  std::printf("threads: %d, UNet built (peak RSS %.2f GiB)\n", torch::get_num_threads(),
              PeakRssGiB());
  std::printf("%-8s %-10s %12s %12s %12s %10s\n", "latent", "controlnet", "s/step", "GFLOP/step",
              "GFLOP/s", "peakRSS");
  for (bool with_controlnet : {false, true}) {
    ControlNetModel controlnet{nullptr};
    if (with_controlnet) {
      auto cn = CreateControlNetModel(*cn_config, torch::TensorOptions().dtype(torch::kFloat));
      if (!cn.ok()) {
        std::fprintf(stderr, "%s\n", cn.status().ToString().c_str());
        return 1;
      }
      controlnet = *cn;
      nn::ResetParameters(*controlnet);
    }
    for (int64_t size : flags.latent_sizes) {
      const int64_t batch = 2;
      torch::Tensor sample = torch::randn({batch, 4, size, size});
      torch::Tensor context = torch::randn({batch, 77, unet_config->cross_attention_dim});
      torch::Tensor image = torch::rand({batch, 3, 8 * size, 8 * size});
      torch::Tensor t = torch::tensor(500);
      auto step = [&] {
        if (with_controlnet) {
          ControlNetOutput r = controlnet->forward(sample, t, context, image);
          return unet->get()->forward(sample, t, context, r.down_block_res_samples,
                                      r.mid_block_res_sample);
        }
        return unet->get()->forward(sample, t, context);
      };
      for (int i = 0; i < flags.warmup; ++i) step();
      const auto start = std::chrono::steady_clock::now();
      for (int i = 0; i < flags.steps; ++i) step();
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() /
          flags.steps;
      double flops = UNetFlops(*unet_config, size, batch, /*up_half=*/true);
      if (with_controlnet) flops += UNetFlops(cn_config->unet, size, batch, /*up_half=*/false);
      std::printf("%-8s %-10s %12.3f %12.1f %12.2f %8.2fGiB\n",
                  (std::to_string(size) + "x" + std::to_string(size)).c_str(),
                  with_controlnet ? "1" : "none", seconds, flops / 1e9, flops / 1e9 / seconds,
                  PeakRssGiB());
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace
}  // namespace imginterp::diffusion

int main(int argc, char** argv) {
  using imginterp::diffusion::kDescription;
  imginterp::diffusion::Flags flags;
  imginterp::common::FlagSet flag_set("unet_bench", kDescription);
  flag_set.Add("config_dir", &flags.config_dir,
               "Folder of the sd15 reference configs (unet.json, controlnet_openpose.json)");
  flag_set.Add("sizes", &flags.sizes,
               "Comma-separated latent sizes to time; the image is 8x larger (32: 256x256)");
  flag_set.Add("steps", &flags.steps, "Timed steps per size, averaged (at least 1)");
  flag_set.Add("warmup", &flags.warmup, "Untimed steps per size before the timed ones");
  flag_set.Add("threads", &flags.threads, "LibTorch intra-op threads; 0: LibTorch's default");
  auto check = [&]() -> absl::Status {
    IMGINTERP_RETURN_IF_ERROR(imginterp::bench::CheckAtLeast("steps", flags.steps, 1));
    IMGINTERP_RETURN_IF_ERROR(imginterp::bench::CheckAtLeast("warmup", flags.warmup, 0));
    IMGINTERP_RETURN_IF_ERROR(imginterp::bench::CheckAtLeast("threads", flags.threads, 0));
    IMGINTERP_ASSIGN_OR_RETURN(flags.latent_sizes, imginterp::diffusion::ParseSizes(flags.sizes));
    return absl::OkStatus();
  };
  if (auto exit_code =
          imginterp::bench::ParseFlagsOrExitCode(flag_set, "unet_bench", argc, argv, check)) {
    return *exit_code;
  }
  return imginterp::diffusion::Run(flags);
}
