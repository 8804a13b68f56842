// Matrix products, convolutions and (through attention_core) attention spread over LibTorch's
// intra-op threads on the CPU.
//
// Why: the services run OpenBLAS with one thread (OPENBLAS_NUM_THREADS=1), because its own pool
// and LibTorch's OpenMP pool spinning on the same cores made some calls 3x slower. That leaves
// every ATen matrix product (linear, matmul, bmm) on one core; in the SD1.5 UNet they were ~40%
// of a step at ~55 GFLOP/s, and oneDNN's convolutions reached ~60 GFLOP/s on two threads (20 on
// the small maps, where it reorders a large weight on every call). Here a product is cut into one
// block of rows, output features or batch entries per intra-op thread, and each thread calls the
// single-threaded BLAS on its block inside one OpenMP region; convolutions become such products
// (im2col, or Winograd F(2x2, 3x3) / F(4x4, 3x3) for 3x3 layers on larger maps).
//
// Results agree with ATen's to float rounding (products may be blocked differently; Winograd
// reorders the sums), except F(4x4), whose float error is ~10x F(2x2)'s (~1e-5 of the largest
// output; cpu_parallel.cc says why it is still used). Off the CPU, for dtypes other
// than float/double, inside a parallel region, with one thread, when autograd must record the
// op, or for products too small to pay for a fork, the functions call the plain ATen op.
//
// Memory: a thread keeps its largest scratch buffers (Winograd transforms, im2col blocks) for
// the next call instead of faulting fresh pages in every time, ~0.3 GB on a thread running the
// SD1.5 UNet; the services run models on a few long-lived executor threads.
//
// Thread-safety: safe to call from several threads (scratch buffers are per thread).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <initializer_list>

namespace imginterp::nn {

// Which CPU kernels the layers use: the project's split kernels below, or LibTorch's own ops
// (torch::linear, torch::conv2d, unsplit attention) as the reference implementation calls them,
// for comparisons and as a way out should a kernel misbehave on some machine. The default comes
// from the environment variable IMGINTERP_CPU_KERNELS ("aten" or "project"; unset: project).
enum class CpuKernels { kProject, kAten };
void SetCpuKernels(CpuKernels kernels);
CpuKernels GetCpuKernels();

// How many blocks a CPU product of `flops` on tensors like `like` is split into: the intra-op
// thread count, or 1 when splitting does not apply (see above), the kernels are kAten, or
// autograd would have to record the product (grad mode on and `like` or one of `operands`
// requires grad).
int64_t ParallelBlocks(const at::Tensor& like, double flops,
                       std::initializer_list<at::Tensor> operands = {});

// Calls fn(begin, end) on contiguous ranges of about n / blocks covering [0, n) exactly once,
// spread over the intra-op threads (inline when blocks <= 1); with fewer threads than blocks a
// thread runs several ranges. The ranges see the caller's thread-local state (grad mode,
// inference mode). Exceptions thrown by fn are rethrown here.
void ForEachBlock(int64_t n, int64_t blocks, const std::function<void(int64_t, int64_t)>& fn);

// torch::linear(x, weight, bias): x [..., in], weight [out, in], bias [out] or undefined.
at::Tensor ParallelLinear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);

// torch::conv2d(x, weight, bias, stride, padding) with square kernel, stride and zero padding,
// dilation 1 and one group: x [N, Cin, H, W], weight [Cout, Cin, k, k], bias [Cout] or
// undefined. On the CPU it runs as BLAS products split over the intra-op threads: for 3x3 /
// stride 1 / padding 1 layers with at least 32 channels in and out, Winograd F(4x4, 3x3) with 512
// or more 4x4 output tiles (a 64x64 map at batch 2), else F(2x2, 3x3) with 128 or more 2x2 tiles
// (16x16 at batch 2); otherwise im2col. Anything else (a weight whose channels
// differ from x's, i.e. groups) goes to torch::conv2d with one group, which rejects it.
at::Tensor ParallelConv2d(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                          int64_t stride, int64_t padding);

}  // namespace imginterp::nn
