#include "services/models/nn/attention_core.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>

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
