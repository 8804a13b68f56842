// unet_bench: seconds per guided denoising step of the full-size SD1.5 UNet (random weights), with
// and without one ControlNet, at 32x32 and 64x64 latents (256^2 and 512^2 images), batch 2
// (classifier-free guidance), 77-token context. Prints a table with seconds per step, peak RSS and
// GFLOP/s (convolution, linear and attention matmul FLOPs counted analytically from the config;
// norms and activations are not counted), and each step's ratio to the figures recorded for the
// reference implementations. --kernels=project,aten times the library's CPU kernels and
// LibTorch's own ops on the same machine; --profile adds a per-operator profile of one step.
//
//   unet_bench [--config_dir=tests/data/reference/diffusion/configs/sd15] [--sizes=32,64]
//              [--steps=2] [--warmup=1] [--threads=0] [--kernels=project] [--controlnet=none,1]
//              [--profile] [--profile_shapes] [--top_ops=15]      (--help describes them)
//
// Recorded reference (diffusers on PyTorch 1.13, 2 cores, fp32): ~2.6-4 s per call at 32x32 and
// ~12-15.5 s at 64x64; peak RSS 3.7 GiB and 6 GiB.
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "benchmarks/diffusion/bench_util.h"
#include "benchmarks/diffusion/op_profile.h"
#include "services/core/common/status_macros.h"
#include "services/models/diffusion/controlnet.h"
#include "services/models/diffusion/unet.h"
#include "services/models/nn/caching_cpu_allocator.h"
#include "services/models/nn/cpu_parallel.h"
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
  std::string kernels_list = "project";  // --kernels as given
  std::vector<nn::CpuKernels> kernels;   // parsed
  std::string controlnet_list = "none,1";
  std::vector<bool> controlnet;  // parsed: false = UNet alone, true = with one ControlNet
  bool profile = false;
  bool profile_shapes = false;
  int top_ops = 15;
};

using bench::PeakRssGiB;

constexpr char kDescription[] =
    "Seconds per guided denoising step (batch 2, 77-token context) of the full-size SD1.5 UNet "
    "with random weights, alone and with one ControlNet, with peak RSS and analytic GFLOP/s. "
    "Needs no model files; run from the repository root.";

// A comma-separated flag value -> its items, each read by `parse` (false: not a valid item).
// InvalidArgument naming the flag, the bad item and `example` when an item is bad or none is given.
template <typename T>
absl::StatusOr<std::vector<T>> ParseList(const std::string& flag, const std::string& list,
                                         const std::string& example,
                                         const std::function<bool(absl::string_view, T*)>& parse) {
  std::vector<T> items;
  for (absl::string_view part : absl::StrSplit(list, ',', absl::SkipWhitespace())) {
    T item{};
    if (!parse(part, &item)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--", flag, "=", list, ": '", part, "' is not valid (e.g. --", flag, "=", example, ")"));
    }
    items.push_back(item);
  }
  if (items.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " is empty (e.g. --", flag, "=", example, ")"));
  }
  return items;
}

// "32,64" -> {32, 64}: latent sizes, each a positive integer.
absl::StatusOr<std::vector<int64_t>> ParseSizes(const std::string& list) {
  return ParseList<int64_t>("sizes", list, "32,64", [](absl::string_view part, int64_t* size) {
    return absl::SimpleAtoi(part, size) && *size > 0;
  });
}

const char* KernelsName(nn::CpuKernels kernels) {
  return kernels == nn::CpuKernels::kAten ? "aten" : "project";
}

// "project,aten" -> the kernel settings to time, in that order.
absl::StatusOr<std::vector<nn::CpuKernels>> ParseKernels(const std::string& list) {
  return ParseList<nn::CpuKernels>(
      "kernels", list, "project,aten", [](absl::string_view part, nn::CpuKernels* kernels) {
        *kernels = part == "aten" ? nn::CpuKernels::kAten : nn::CpuKernels::kProject;
        return part == "aten" || part == "project";
      });
}

// "none,1" -> {false, true}: the UNet alone and with one ControlNet.
absl::StatusOr<std::vector<bool>> ParseControlNet(const std::string& list) {
  return ParseList<bool>("controlnet", list, "none,1", [](absl::string_view part, bool* with) {
    *with = part == "1";
    return part == "none" || part == "1";
  });
}

// The figures recorded in tests/data/reference/diffusion/README.md for this kind of machine
// (2 cores, fp32), per guided step: diffusers (PyTorch 1.13) for the UNet alone, and
// stable-diffusion.cpp with and without a ControlNet. Only 32x32 and 64x64 latents were recorded.
std::string RatioToRecorded(int64_t size, bool with_controlnet, double seconds) {
  struct Recorded {
    double diffusers_low, diffusers_high, sdcpp, sdcpp_controlnet;
  };
  Recorded r{};
  if (size == 32) {
    r = {2.6, 4.0, 3.5, 4.7};
  } else if (size == 64) {
    r = {12.0, 15.5, 21.4, 30.5};
  } else {
    return "(none recorded at this size)";
  }
  if (with_controlnet) {
    return absl::StrFormat("%.2fx sd.cpp+ControlNet (%.1f s)", seconds / r.sdcpp_controlnet,
                           r.sdcpp_controlnet);
  }
  return absl::StrFormat("%.2f-%.2fx diffusers (%.1f-%.1f s), %.2fx sd.cpp (%.1f s)",
                         seconds / r.diffusers_high, seconds / r.diffusers_low, r.diffusers_low,
                         r.diffusers_high, seconds / r.sdcpp, r.sdcpp);
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
  nn::InstallCachingCpuAllocatorFromEnvironment();  // as the generate service does
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
  const auto env = [](const char* name) {
    return std::getenv(name) != nullptr ? std::getenv(name) : "unset";
  };
  std::printf(
      "threads: %d, OPENBLAS_NUM_THREADS=%s, IMGINTERP_CPU_CACHE_MB=%s, UNet built (peak RSS "
      "%.2f GiB)\n",
      torch::get_num_threads(), env("OPENBLAS_NUM_THREADS"), env("IMGINTERP_CPU_CACHE_MB"),
      PeakRssGiB());
  std::printf("%-8s %-10s %-8s %10s %11s %9s %9s  %s\n", "latent", "controlnet", "kernels",
              "s/step", "GFLOP/step", "GFLOP/s", "peakRSS", "vs recorded reference s/step");
  for (bool with_controlnet : flags.controlnet) {
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
      double flops = UNetFlops(*unet_config, size, batch, /*up_half=*/true);
      if (with_controlnet) flops += UNetFlops(cn_config->unet, size, batch, /*up_half=*/false);
      for (nn::CpuKernels kernels : flags.kernels) {
        nn::SetCpuKernels(kernels);
        for (int i = 0; i < flags.warmup; ++i) step();
        const auto start = std::chrono::steady_clock::now();
        for (int i = 0; i < flags.steps; ++i) step();
        const double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() /
            flags.steps;
        std::printf("%-8s %-10s %-8s %10.3f %11.1f %9.2f %7.2fGiB  %s\n",
                    (std::to_string(size) + "x" + std::to_string(size)).c_str(),
                    with_controlnet ? "1" : "none", KernelsName(kernels), seconds, flops / 1e9,
                    flops / 1e9 / seconds, PeakRssGiB(),
                    RatioToRecorded(size, with_controlnet, seconds).c_str());
        std::fflush(stdout);
        if (flags.profile) {
          bench::OpProfile profile;
          profile.by_shape = flags.profile_shapes;
          const auto profile_start = std::chrono::steady_clock::now();
          {
            bench::ScopedOpProfile recording(&profile);
            step();
          }
          const double profiled =
              std::chrono::duration<double>(std::chrono::steady_clock::now() - profile_start)
                  .count();
          std::printf("  per-operator profile of one more step (%.3f s with the profiler on):\n",
                      profiled);
          profile.Print(stdout, 1, profiled, flags.top_ops);
          std::fflush(stdout);
        }
      }
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
  flag_set.Add("kernels", &flags.kernels_list,
               "Comma-separated CPU kernels to time: project (the library's split kernels) and/or "
               "aten (LibTorch's own linear/conv2d/attention ops, as the reference calls them)");
  flag_set.Add("controlnet", &flags.controlnet_list,
               "Comma-separated runs: none (the UNet alone) and/or 1 (with one ControlNet)");
  flag_set.Add("profile", &flags.profile,
               "After the timed steps, time one more step per operator (self time, calls, "
               "GFLOP/s of convolutions and matrix products) and by kind of operator");
  flag_set.Add("profile_shapes", &flags.profile_shapes,
               "With --profile: one row per operator and input shapes instead of per operator");
  flag_set.Add("top_ops", &flags.top_ops, "Operators listed by --profile, slowest first");
  auto check = [&]() -> absl::Status {
    IMGINTERP_RETURN_IF_ERROR(imginterp::bench::CheckAtLeast("steps", flags.steps, 1));
    IMGINTERP_RETURN_IF_ERROR(imginterp::bench::CheckAtLeast("warmup", flags.warmup, 0));
    IMGINTERP_RETURN_IF_ERROR(imginterp::bench::CheckAtLeast("threads", flags.threads, 0));
    IMGINTERP_ASSIGN_OR_RETURN(flags.latent_sizes, imginterp::diffusion::ParseSizes(flags.sizes));
    IMGINTERP_ASSIGN_OR_RETURN(flags.kernels,
                               imginterp::diffusion::ParseKernels(flags.kernels_list));
    IMGINTERP_ASSIGN_OR_RETURN(flags.controlnet,
                               imginterp::diffusion::ParseControlNet(flags.controlnet_list));
    return absl::OkStatus();
  };
  if (auto exit_code =
          imginterp::bench::ParseFlagsOrExitCode(flag_set, "unet_bench", argc, argv, check)) {
    return *exit_code;
  }
  return imginterp::diffusion::Run(flags);
}
