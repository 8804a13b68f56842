// Scaled dot-product attention, softmax(Q K^T * scale + mask) V, with a naive path and a
// memory-efficient path that walks the queries in chunks so that the full Lq x Lk score matrix is
// never built. Each query row's softmax is independent of the others, so both paths compute the
// same numbers (up to matmul blocking). PyTorch 1.13 has no fused attention; at a 64x64 SD latent
// the naive self-attention scores are 2 x 8 x 4096 x 4096 floats (1 GiB), which is what the
// chunked path avoids.
//
// On the CPU with several intra-op threads (cpu_parallel.h), ScaledDotProductAttention takes a
// third path for float/double work of 4 MFLOP or more: the (batch entry, head) pairs, and blocks of
// query rows when there are fewer pairs than threads, are shared out between the threads, each
// walking its queries in cache-sized blocks (at most 256 rows, ~2 MiB of scores, and within
// max_score_bytes across the threads). Float32 without a mask also folds the scale into the
// queries and takes the softmax in place (row_softmax.h). PlannedQueryChunk describes the two
// single-threaded paths only.
//
// Thread-safety: pure functions.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>

namespace imginterp::nn {

struct AttentionCoreOptions {
  // Multiplies Q K^T. 0 means 1/sqrt(head_dim).
  double scale = 0.0;
  // Masks key j for query i when j > i (top-left aligned, as torch's is_causal).
  bool causal = false;
  // Queries per chunk for the chunked path. 0 picks the chunk from max_score_bytes.
  int64_t query_chunk_size = 0;
  // The naive path is taken when the whole score matrix (batch x heads x Lq x Lk, in the
  // softmax dtype) fits this many bytes; otherwise the queries are chunked to fit it.
  int64_t max_score_bytes = int64_t{128} << 20;
  // Float32 attention without a mask, split over threads on a CPU with AVX2/FMA, runs in the
  // register-tiled kernel of attention_kernel.h (which ignores the two sizes above: its blocks
  // are cache-sized). false: BLAS products around a softmax, for comparisons and tests.
  bool tiled_kernel = true;
};

// q [B, H, Lq, D], k [B, H, Lk, D], v [B, H, Lk, Dv] -> [B, H, Lq, Dv]. Leading dims may be any
// broadcast-compatible batch dims (at least one). `mask` (optional) broadcasts to
// [B, H, Lq, Lk]: bool (true = attend) or floating (added to the scores, e.g. 0 / -inf).
// Half and bfloat16 inputs take the softmax in float32. Picks the path from `options`. With four
// dims the parallel path returns a view of [B, Lq, H, Dv] memory, so that MergeHeads copies
// nothing: use reshape, not view, on the result.
at::Tensor ScaledDotProductAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                     const std::optional<at::Tensor>& mask = std::nullopt,
                                     const AttentionCoreOptions& options = {});

// The two paths, exposed for tests and benchmarks. ChunkedAttention uses
// options.query_chunk_size (or the size derived from max_score_bytes when 0).
at::Tensor NaiveAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                          const std::optional<at::Tensor>& mask,
                          const AttentionCoreOptions& options = {});
at::Tensor ChunkedAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const std::optional<at::Tensor>& mask,
                            const AttentionCoreOptions& options = {});

// The query chunk ScaledDotProductAttention would use for these shapes; Lq when it would take the
// naive path.
int64_t PlannedQueryChunk(const at::Tensor& q, const at::Tensor& k,
                          const AttentionCoreOptions& options = {});

// [B, L, H*D] -> [B, H, L, D] and back.
at::Tensor SplitHeads(const at::Tensor& x, int64_t heads);
at::Tensor MergeHeads(const at::Tensor& x);

}  // namespace imginterp::nn
