// The CPU kernels of services/models/nn on the SD1.5 UNet's shapes (64x64 latent, batch 2 as with
// guidance): convolutions by path (Winograd F(4x4) at 64x64, F(2x2) at 32x32 and 16x16, im2col at
// 8x8, 1x1), the split linear layers and the tiled attention. Counters: GFLOP/s of the direct
// computation (a Winograd convolution is credited with the multiply-adds it replaces), so a
// kernel change shows as a rate on one shape instead of a few percent of a noisy UNet step.
//
// Flags: Google Benchmark's (--benchmark_filter=Conv, --benchmark_repetitions=5, ...), and the
// environment variables IMGINTERP_THREADS for LibTorch's intra-op threads (default: every core;
// LibTorch itself may start with one, and the kernels then take their one-thread paths) and
// IMGINTERP_CPU_CACHE_MB for the block cache (caching_cpu_allocator.h), installed as the
// generate service installs it.
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "benchmark/benchmark.h"
#include "services/models/nn/attention_core.h"
#include "services/models/nn/caching_cpu_allocator.h"
#include "services/models/nn/cpu_parallel.h"

namespace imginterp::nn {
namespace {

void SetFlops(benchmark::State& state, double flops_per_iteration) {
  state.counters["GFLOP"] =
      benchmark::Counter(flops_per_iteration * 1e-9 * static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate);
}

// Args: batch, in channels, map size, out channels, kernel size (stride 1, "same" padding).
void BM_Conv2d(benchmark::State& state) {
  const int64_t n = state.range(0), cin = state.range(1), size = state.range(2);
  const int64_t cout = state.range(3), k = state.range(4);
  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  const at::Tensor x = torch::randn({n, cin, size, size});
  const at::Tensor w = torch::randn({cout, cin, k, k}) * 0.02;
  const at::Tensor b = torch::randn({cout});
  for (auto _ : state) benchmark::DoNotOptimize(ParallelConv2d(x, w, b, 1, k / 2));
  SetFlops(state, 2.0 * n * size * size * cout * cin * k * k);
}

// Args: rows, in features, out features.
void BM_Linear(benchmark::State& state) {
  const int64_t rows = state.range(0), in = state.range(1), out = state.range(2);
  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  const at::Tensor x = torch::randn({rows, in});
  const at::Tensor w = torch::randn({out, in}) * 0.02;
  const at::Tensor b = torch::randn({out});
  for (auto _ : state) benchmark::DoNotOptimize(ParallelLinear(x, w, b));
  SetFlops(state, 2.0 * rows * in * out);
}

// Args: batch x heads, query rows, keys, head size. Laid out as the UNet's heads are: [B, L, H*D]
// projections viewed as [B, H, L, D].
void BM_Attention(benchmark::State& state) {
  const int64_t heads = 8, batch = state.range(0) / heads, lq = state.range(1);
  const int64_t lk = state.range(2), d = state.range(3);
  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  auto heads_view = [&](int64_t rows) {
    return torch::randn({batch, rows, heads * d}).view({batch, rows, heads, d}).transpose(1, 2);
  };
  const at::Tensor q = heads_view(lq), k = heads_view(lk), v = heads_view(lk);
  for (auto _ : state) benchmark::DoNotOptimize(ScaledDotProductAttention(q, k, v));
  SetFlops(state, 4.0 * batch * heads * lq * lk * d);
}

// Each distinct shape once, from the UNet's profile at a 64x64 latent (unet_bench --profile
// --profile_shapes); the comment names the path ParallelConv2d takes.
BENCHMARK(BM_Conv2d)
    ->ArgNames({"n", "cin", "size", "cout", "k"})
    ->Args({2, 320, 64, 320, 3})    // Winograd F(4x4)
    ->Args({2, 640, 64, 320, 3})    // Winograd F(4x4)
    ->Args({2, 640, 32, 640, 3})    // Winograd F(2x2)
    ->Args({2, 1280, 32, 1280, 3})  // Winograd F(2x2)
    ->Args({2, 1280, 16, 1280, 3})  // Winograd F(2x2)
    ->Args({2, 2560, 16, 1280, 3})  // Winograd F(2x2)
    ->Args({2, 1280, 8, 1280, 3})   // im2col, all images in one product
    ->Args({2, 320, 64, 320, 1})    // 1x1, bands of rows
    ->Args({2, 1280, 16, 1280, 1})  // 1x1, all images in one product
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_Linear)
    ->ArgNames({"rows", "in", "out"})
    ->Args({8192, 320, 320})
    ->Args({8192, 320, 2560})
    ->Args({8192, 1280, 320})
    ->Args({2048, 640, 5120})
    ->Args({512, 1280, 10240})
    ->Args({154, 768, 1280})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_Attention)
    ->ArgNames({"bh", "lq", "lk", "d"})
    ->Args({16, 4096, 4096, 40})
    ->Args({16, 1024, 1024, 80})
    ->Args({16, 4096, 77, 40})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace imginterp::nn

int main(int argc, char** argv) {
  const char* threads = std::getenv("IMGINTERP_THREADS");
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  torch::set_num_threads(threads != nullptr ? std::atoi(threads) : std::max(1, cores));
  // As the generate service and unet_bench run: without it, every large output is fresh pages.
  imginterp::nn::InstallCachingCpuAllocatorFromEnvironment();
  const char* blas_threads = std::getenv("OPENBLAS_NUM_THREADS");
  std::printf("intra-op threads: %d, OPENBLAS_NUM_THREADS=%s%s\n", torch::get_num_threads(),
              blas_threads != nullptr ? blas_threads : "unset",
              blas_threads != nullptr ? "" : " (set it to 1, as the services run)");
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
