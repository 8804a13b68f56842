#include "services/models/nn/attention_core.h"

#include <ATen/record_function.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "services/models/nn/attention_kernel.h"
#include "services/models/nn/cpu_parallel.h"
#include "services/models/nn/row_softmax.h"

namespace imginterp::nn {
namespace {

bool IsReduced(c10::ScalarType t) { return t == at::kHalf || t == at::kBFloat16; }

double Scale(const at::Tensor& q, const AttentionCoreOptions& options) {
  return options.scale != 0.0 ? options.scale : 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
}

// Attention of the query rows [start, start + len) of q against all keys.
at::Tensor AttendRows(const at::Tensor& q, const at::Tensor& k_t, const at::Tensor& v,
                      const std::optional<at::Tensor>& mask, int64_t start, int64_t len, int64_t lq,
                      double scale, bool causal) {
  const at::Tensor q_rows = len == lq ? q : q.narrow(-2, start, len);
  at::Tensor scores = torch::matmul(q_rows, k_t);
  if (IsReduced(scores.scalar_type())) scores = scores.to(at::kFloat);
  scores.mul_(scale);
  if (mask.has_value() && mask->defined()) {
    at::Tensor m = *mask;
    if (m.dim() >= 2 && m.size(-2) == lq && len != lq) m = m.narrow(-2, start, len);
    if (m.scalar_type() == at::kBool) {
      scores = scores.masked_fill(m.logical_not(), -std::numeric_limits<double>::infinity());
    } else {
      scores = scores + m.to(scores.scalar_type());
    }
  }
  if (causal) {
    const int64_t lk = k_t.size(-1);
    auto index_options = torch::TensorOptions().dtype(at::kLong).device(q.device());
    at::Tensor rows = torch::arange(start, start + len, index_options).unsqueeze(1);
    at::Tensor cols = torch::arange(lk, index_options).unsqueeze(0);
    scores = scores.masked_fill(cols > rows, -std::numeric_limits<double>::infinity());
  }
  at::Tensor probs = torch::softmax(scores, -1);
  return torch::matmul(probs.to(v.scalar_type()), v);
}

int64_t ScoreElementBytes(const at::Tensor& q) {
  return IsReduced(q.scalar_type()) ? 4 : static_cast<int64_t>(q.element_size());
}

// Elements of one query row of scores across all batch dims: prod(batch dims) * Lk.
int64_t RowElements(const at::Tensor& q, const at::Tensor& k) {
  int64_t batch = 1;
  for (int64_t d = 0; d < q.dim() - 2; ++d) {
    batch *= std::max(q.size(d), d < k.dim() - 2 ? k.size(d) : 1);
  }
  return batch * k.size(-2);
}

int64_t ChunkFromBudget(const at::Tensor& q, const at::Tensor& k,
                        const AttentionCoreOptions& options) {
  const int64_t row_bytes = std::max<int64_t>(1, RowElements(q, k) * ScoreElementBytes(q));
  return std::max<int64_t>(1, options.max_score_bytes / row_bytes);
}

// The slice of `t` for one entry of the batch shape (all dims of q but the last two), indexed by
// `index`. Dims align from the right as in broadcasting: dims of size 1 and batch dims that `t`
// lacks (a mask without them) stay broadcast.
at::Tensor SelectBatchEntry(const at::Tensor& t, const std::vector<int64_t>& index) {
  const int64_t batch_dims = static_cast<int64_t>(index.size());
  const int64_t offset = batch_dims + 2 - t.dim();  // q's dims that t lacks, on the left
  at::Tensor r = t;
  int64_t removed = 0;
  for (int64_t d = 0; d < batch_dims; ++d) {
    const int64_t td = d - offset;
    if (td < 0) continue;
    const int64_t current = td - removed;
    r = r.select(current, r.size(current) == 1 ? 0 : index[d]);
    ++removed;
  }
  return r;
}

// Attention with its work, (batch entry, block of query rows), spread over `blocks` intra-op
// threads; each thread runs the single-threaded products of its items. Rows are split too when
// there are fewer batch entries than threads (the VAE's one-head attention). The score budget is
// shared by the threads.
at::Tensor ParallelAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                             const std::optional<at::Tensor>& mask,
                             const AttentionCoreOptions& options, int64_t blocks) {
  RECORD_FUNCTION("imginterp::attention", std::vector<c10::IValue>({q, k, v}));
  const int64_t batch_dims = q.dim() - 2;
  std::vector<int64_t> batch_shape(batch_dims);
  int64_t entries = 1;
  for (int64_t d = 0; d < batch_dims; ++d) {
    batch_shape[d] = std::max({q.size(d), k.size(d), v.size(d)});
    entries *= batch_shape[d];
  }
  const int64_t lq = q.size(-2);
  const int64_t row_parts = std::min(lq, entries >= blocks ? 1 : (blocks + entries - 1) / entries);
  // [B, H, Lq, Dv] as a view of [B, Lq, H, Dv] memory: the caller's MergeHeads (transpose(1, 2),
  // reshape to [B, Lq, H * Dv]) then needs no copy, which took ~1% of a UNet step. Every path
  // below writes rows through strides.
  at::Tensor out;
  if (batch_dims == 2) {
    out = torch::empty({batch_shape[0], lq, batch_shape[1], v.size(-1)}, v.options())
              .permute({0, 2, 1, 3});
  } else {
    std::vector<int64_t> out_shape = batch_shape;
    out_shape.push_back(lq);
    out_shape.push_back(v.size(-1));
    out = torch::empty(out_shape, v.options());
  }
  const double scale = Scale(q, options);
  // Each thread walks its queries in blocks whose scores stay in cache (~2 MiB, at most 256 rows):
  // at a 64x64 latent one head's 4096 x 4096 scores are 64 MiB, and writing them out, reading them
  // for the softmax and again for the product with V made one call 2-3x slower than blocks of
  // 128 rows (measured on one core with OpenBLAS).
  const int64_t row_bytes = std::max<int64_t>(1, k.size(-2) * ScoreElementBytes(q));
  const int64_t budget_rows = std::max<int64_t>(1, options.max_score_bytes / blocks / row_bytes);
  const int64_t cache_rows = std::clamp<int64_t>((int64_t{2} << 20) / row_bytes, 16, 256);
  const int64_t chunk =
      options.query_chunk_size > 0 ? options.query_chunk_size : std::min(budget_rows, cache_rows);
  const std::optional<at::Tensor> no_mask;
  // Without a mask, float32 attention takes a fused path: the register-tiled kernel of
  // attention_kernel.h where the CPU has AVX2/FMA and rows are dense, else BLAS products around an
  // in-place softmax (row_softmax.h).
  const bool fused =
      q.scalar_type() == at::kFloat && !options.causal && !(mask.has_value() && mask->defined());
  const bool tiled = fused && options.tiled_kernel && HeadAttentionKernel::Supported() &&
                     q.stride(-1) == 1 && k.stride(-1) == 1 && v.stride(-1) == 1;
  ForEachBlock(entries * row_parts, blocks, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> index(batch_dims);
    for (int64_t item = begin; item < end; ++item) {
      int64_t rest = item / row_parts;
      for (int64_t d = batch_dims - 1; d >= 0; --d) {
        index[d] = rest % batch_shape[d];
        rest /= batch_shape[d];
      }
      const int64_t part = item % row_parts;
      const int64_t first = part * lq / row_parts;
      const int64_t last = (part + 1) * lq / row_parts;
      const at::Tensor q_entry = SelectBatchEntry(q, index);
      const at::Tensor k_t = SelectBatchEntry(k, index).transpose(-2, -1);
      const at::Tensor v_entry = SelectBatchEntry(v, index);
      std::optional<at::Tensor> mask_entry;
      if (mask.has_value() && mask->defined()) mask_entry = SelectBatchEntry(*mask, index);
      at::Tensor out_entry = SelectBatchEntry(out, index);
      if (tiled) {
        thread_local HeadAttentionKernel kernel;
        const at::Tensor k_entry = SelectBatchEntry(k, index);
        kernel.SetKeysValues(k_entry.data_ptr<float>(), k_entry.stride(0),
                             v_entry.data_ptr<float>(), v_entry.stride(0), k_entry.size(0),
                             k_entry.size(1), v_entry.size(1));
        kernel.Attend(q_entry.data_ptr<float>() + first * q_entry.stride(0), q_entry.stride(0),
                      last - first, static_cast<float>(scale),
                      out_entry.data_ptr<float>() + first * out_entry.stride(0),
                      out_entry.stride(0));
        continue;
      }
      if (fused) {
        // Scale folded into the queries, softmax in place, products written straight into out.
        const at::Tensor q_rows = q_entry.narrow(-2, first, last - first) * scale;
        for (int64_t start = first; start < last; start += chunk) {
          const int64_t len = std::min(chunk, last - start);
          at::Tensor scores = at::empty({len, k_t.size(-1)}, q.options());
          at::mm_out(scores, q_rows.narrow(0, start - first, len), k_t);
          SoftmaxRowsInPlace(scores.data_ptr<float>(), len, scores.size(1));
          at::Tensor out_rows = out_entry.narrow(-2, start, len);
          at::mm_out(out_rows, scores, v_entry);
        }
        continue;
      }
      for (int64_t start = first; start < last; start += chunk) {
        const int64_t len = std::min(chunk, last - start);
        out_entry.narrow(-2, start, len)
            .copy_(AttendRows(q_entry, k_t, v_entry, mask_entry.has_value() ? mask_entry : no_mask,
                              start, len, lq, scale, options.causal));
      }
    }
  });
  return out;
}

}  // namespace

at::Tensor NaiveAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                          const std::optional<at::Tensor>& mask,
                          const AttentionCoreOptions& options) {
  const int64_t lq = q.size(-2);
  return AttendRows(q, k.transpose(-2, -1), v, mask, 0, lq, lq, Scale(q, options), options.causal);
}

at::Tensor ChunkedAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const std::optional<at::Tensor>& mask,
                            const AttentionCoreOptions& options) {
  const int64_t lq = q.size(-2);
  const int64_t chunk =
      options.query_chunk_size > 0 ? options.query_chunk_size : ChunkFromBudget(q, k, options);
  if (chunk >= lq) return NaiveAttention(q, k, v, mask, options);
  const at::Tensor k_t = k.transpose(-2, -1);
  const double scale = Scale(q, options);
  std::vector<int64_t> out_shape = q.sizes().vec();
  for (int64_t d = 0; d < q.dim() - 2; ++d) {
    if (d < v.dim() - 2) out_shape[d] = std::max(q.size(d), v.size(d));
  }
  out_shape.back() = v.size(-1);
  at::Tensor out = torch::empty(out_shape, v.options());
  for (int64_t start = 0; start < lq; start += chunk) {
    const int64_t len = std::min(chunk, lq - start);
    out.narrow(-2, start, len)
        .copy_(AttendRows(q, k_t, v, mask, start, len, lq, scale, options.causal));
  }
  return out;
}

int64_t PlannedQueryChunk(const at::Tensor& q, const at::Tensor& k,
                          const AttentionCoreOptions& options) {
  const int64_t lq = q.size(-2);
  if (options.query_chunk_size > 0) return std::min(options.query_chunk_size, lq);
  return std::min(ChunkFromBudget(q, k, options), lq);
}

at::Tensor ScaledDotProductAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                     const std::optional<at::Tensor>& mask,
                                     const AttentionCoreOptions& options) {
  TORCH_CHECK(q.dim() >= 3 && k.dim() == q.dim() && v.dim() == q.dim(),
              "attention expects q, k, v of the same rank >= 3, got ", q.sizes(), ", ", k.sizes(),
              ", ", v.sizes());
  TORCH_CHECK(q.size(-1) == k.size(-1), "attention: query head size ", q.size(-1),
              " differs from key head size ", k.size(-1));
  TORCH_CHECK(k.size(-2) == v.size(-2), "attention: ", k.size(-2), " keys but ", v.size(-2),
              " values");
  double entries = 1;
  for (int64_t d = 0; d < q.dim() - 2; ++d) {
    entries *= static_cast<double>(std::max({q.size(d), k.size(d), v.size(d)}));
  }
  const double flops = 2.0 * entries * static_cast<double>(q.size(-2)) *
                       static_cast<double>(k.size(-2)) *
                       static_cast<double>(q.size(-1) + v.size(-1));
  const int64_t blocks = ParallelBlocks(q, flops, {k, v, mask.has_value() ? *mask : at::Tensor()});
  if (blocks > 1 && q.scalar_type() == k.scalar_type() && q.scalar_type() == v.scalar_type()) {
    return ParallelAttention(q, k, v, mask, options, blocks);
  }
  if (PlannedQueryChunk(q, k, options) >= q.size(-2)) return NaiveAttention(q, k, v, mask, options);
  return ChunkedAttention(q, k, v, mask, options);
}

at::Tensor SplitHeads(const at::Tensor& x, int64_t heads) {
  const int64_t b = x.size(0);
  const int64_t l = x.size(1);
  TORCH_CHECK(x.size(2) % heads == 0, "attention: width ", x.size(2), " is not divisible by heads ",
              heads);
  return x.view({b, l, heads, x.size(2) / heads}).transpose(1, 2);
}

at::Tensor MergeHeads(const at::Tensor& x) {
  const int64_t b = x.size(0);
  const int64_t h = x.size(1);
  const int64_t l = x.size(2);
  return x.transpose(1, 2).reshape({b, l, h * x.size(3)});
}

}  // namespace imginterp::nn
