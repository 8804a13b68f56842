#include "services/models/nn/attention_kernel.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <new>

#include "services/models/nn/avx2_exp.h"

namespace imginterp::nn {
namespace {

// Query rows per block: 8 score tiles of 6 rows (and whole output tiles of 6 or 4 rows). A
// block's scores for one chunk of keys (48 x 256 floats at head size 40, 48 KiB) and the chunk's
// packed keys and values stay in L2.
constexpr int64_t kTileRows = 6;
constexpr int64_t kBlockRows = 8 * kTileRows;

// Registers of 8 values in the next value panel when `remaining` registers' worth of columns are
// left: panels of 3 (4-row tiles) and 2 (6-row tiles) keep 12 accumulators with the fewest loads
// per multiply-add; head size 40 is 24 + 16. (One 40-wide panel with 2-row tiles was 10% slower:
// the compiler reloads the panel for each row.)
int64_t PanelRegisters(int64_t remaining) {
  if (remaining <= 2) return remaining;
  return remaining == 4 ? 2 : 3;
}

int64_t RoundUp(int64_t n, int64_t multiple) { return (n + multiple - 1) / multiple * multiple; }

}  // namespace

float* HeadAttentionKernel::Floats::Reserve(int64_t n) {
  if (n > capacity_) {
    const size_t bytes = static_cast<size_t>(RoundUp(n * static_cast<int64_t>(sizeof(float)), 64));
    data_.reset(static_cast<float*>(std::aligned_alloc(64, bytes)));
    if (!data_) throw std::bad_alloc();
    capacity_ = n;
  }
  return data_.get();
}

#ifdef IMGINTERP_HAS_AVX2_EXP
namespace {

// scores[r][0..16) = q[r] . keys of one panel, for R rows of q (d floats each, adjacent rows).
// Two accumulators per row: 12 of the 16 ymm registers at R = 6.
template <int R>
__attribute__((target("avx2,fma"))) void ScoresTile(const float* q, int64_t d, const float* panel,
                                                    float* scores, int64_t scores_stride,
                                                    float* row_max) {
  __m256 c0[R];
  __m256 c1[R];
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) c0[r] = c1[r] = _mm256_setzero_ps();
  for (int64_t i = 0; i < d; ++i) {
    const __m256 b0 = _mm256_load_ps(panel + 16 * i);
    const __m256 b1 = _mm256_load_ps(panel + 16 * i + 8);
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      const __m256 a = _mm256_broadcast_ss(q + r * d + i);
      c0[r] = _mm256_fmadd_ps(a, b0, c0[r]);
      c1[r] = _mm256_fmadd_ps(a, b1, c1[r]);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
    _mm256_storeu_ps(scores + r * scores_stride, c0[r]);
    _mm256_storeu_ps(scores + r * scores_stride + 8, c1[r]);
  }
  if (row_max != nullptr) {
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      row_max[r] = std::max(row_max[r], HorizontalMax(_mm256_max_ps(c0[r], c1[r])));
    }
  }
}

// acc[r][0..8 * V) += sum over j < keys of p[r][j] * panel[j][0..8 * V), for R rows; tiles keep
// R * V <= 12 accumulators, so that the V panel registers and a broadcast fit beside them.
template <int R, int V>
__attribute__((target("avx2,fma"))) void OutputTile(const float* p, int64_t p_stride,
                                                    const float* panel, int64_t keys, float* acc,
                                                    int64_t acc_stride) {
  __m256 c[R][V];
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 3
    for (int x = 0; x < V; ++x) c[r][x] = _mm256_loadu_ps(acc + r * acc_stride + 8 * x);
  }
  for (int64_t j = 0; j < keys; ++j) {
    __m256 b[V];
#pragma GCC unroll 3
    for (int x = 0; x < V; ++x) b[x] = _mm256_load_ps(panel + j * 8 * V + 8 * x);
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      const __m256 a = _mm256_broadcast_ss(p + r * p_stride + j);
#pragma GCC unroll 3
      for (int x = 0; x < V; ++x) c[r][x] = _mm256_fmadd_ps(a, b[x], c[r][x]);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 3
    for (int x = 0; x < V; ++x) _mm256_storeu_ps(acc + r * acc_stride + 8 * x, c[r][x]);
  }
}

void ScoresRows(int64_t rows, const float* q, int64_t d, const float* panel, float* scores,
                int64_t scores_stride, float* row_max) {
  switch (rows) {
    case 1:
      return ScoresTile<1>(q, d, panel, scores, scores_stride, row_max);
    case 2:
      return ScoresTile<2>(q, d, panel, scores, scores_stride, row_max);
    case 3:
      return ScoresTile<3>(q, d, panel, scores, scores_stride, row_max);
    case 4:
      return ScoresTile<4>(q, d, panel, scores, scores_stride, row_max);
    case 5:
      return ScoresTile<5>(q, d, panel, scores, scores_stride, row_max);
    default:
      return ScoresTile<6>(q, d, panel, scores, scores_stride, row_max);
  }
}

// Rows per output tile for a panel of V registers (8 values each).
constexpr int64_t OutputTileRows(int64_t v) { return v <= 2 ? 6 : 4; }

template <int V>
void OutputRows(int64_t rows, const float* p, int64_t p_stride, const float* panel, int64_t keys,
                float* acc, int64_t acc_stride) {
  constexpr int64_t kMax = OutputTileRows(V);
  switch (rows) {
    case 1:
      return OutputTile<1, V>(p, p_stride, panel, keys, acc, acc_stride);
    case 2:
      if constexpr (kMax >= 2) return OutputTile<2, V>(p, p_stride, panel, keys, acc, acc_stride);
      break;
    case 3:
      if constexpr (kMax >= 3) return OutputTile<3, V>(p, p_stride, panel, keys, acc, acc_stride);
      break;
    case 4:
      if constexpr (kMax >= 4) return OutputTile<4, V>(p, p_stride, panel, keys, acc, acc_stride);
      break;
    case 5:
      if constexpr (kMax >= 5) return OutputTile<5, V>(p, p_stride, panel, keys, acc, acc_stride);
      break;
    case 6:
      if constexpr (kMax >= 6) return OutputTile<6, V>(p, p_stride, panel, keys, acc, acc_stride);
      break;
  }
  std::abort();  // more rows than a tile of V registers holds
}

void OutputPanel(int64_t v, int64_t rows, const float* p, int64_t p_stride, const float* panel,
                 int64_t keys, float* acc, int64_t acc_stride) {
  switch (v) {
    case 1:
      return OutputRows<1>(rows, p, p_stride, panel, keys, acc, acc_stride);
    case 2:
      return OutputRows<2>(rows, p, p_stride, panel, keys, acc, acc_stride);
    default:
      return OutputRows<3>(rows, p, p_stride, panel, keys, acc, acc_stride);
  }
}

// One row of a chunk's scores (log2 units) becomes 2^(score - new running max), given the chunk's
// largest score; returns their sum and updates the running max. *rescale gets
// 2^(old max - new max), the factor for what was accumulated before (0 on the first chunk).
__attribute__((target("avx2,fma"))) float Exp2RowOnline(float* row, int64_t width, float chunk_max,
                                                        float* max, float* rescale) {
  const float new_max = std::max(*max, chunk_max);
  *rescale = std::exp2(*max - new_max);  // exp2(-inf) = 0 on the first chunk
  *max = new_max;
  return Exp2ShiftedInPlace(row, width, new_max);
}

}  // namespace

bool HeadAttentionKernel::Supported() { return CpuHasAvx2Fma(); }

void HeadAttentionKernel::SetKeysValues(const float* k, int64_t k_stride, const float* v,
                                        int64_t v_stride, int64_t keys, int64_t d, int64_t dv) {
  keys_ = keys;
  d_ = d;
  dv_ = dv;
  // Chunks of ~64 KiB of keys (and as much of values), at most 256 keys: 256 at head size 40,
  // 32 for the VAE's 512.
  chunk_ = std::clamp<int64_t>(16384 / std::max(d, dv) / 16 * 16, 16, 256);
  const int64_t panels = RoundUp(keys, 16) / 16;
  float* kp = k_panels_.Reserve(panels * d * 16);
  for (int64_t p = 0; p < panels; ++p) {
    float* panel = kp + p * d * 16;
    for (int64_t x = 0; x < 16; ++x) {
      const int64_t key = p * 16 + x;
      for (int64_t i = 0; i < d; ++i) panel[i * 16 + x] = key < keys ? k[key * k_stride + i] : 0.0f;
    }
  }
  dv_padded_ = RoundUp(dv, 8);
  float* vp = v_panels_.Reserve(keys * dv_padded_);
  for (int64_t c0 = 0, width = 0; c0 < dv_padded_; c0 += width) {
    width = 8 * PanelRegisters((dv_padded_ - c0) / 8);
    float* panel = vp + keys * c0;
    for (int64_t j = 0; j < keys; ++j) {
      for (int64_t x = 0; x < width; ++x) {
        panel[j * width + x] = c0 + x < dv ? v[j * v_stride + c0 + x] : 0.0f;
      }
    }
  }
}

void HeadAttentionKernel::Attend(const float* q, int64_t q_stride, int64_t rows, float scale,
                                 float* out, int64_t out_stride) {
  const int64_t d = d_;
  const int64_t chunk = chunk_;
  float* q_block = q_block_.Reserve(kBlockRows * d);
  float* scores = scores_.Reserve(kBlockRows * chunk);
  float* acc = acc_.Reserve(kBlockRows * dv_padded_);
  // Scores in log2 units, so that the softmax's exponentials are powers of two.
  const float log2_scale = scale * 1.44269504088896341f;  // log2(e)
  float max[kBlockRows];
  float sum[kBlockRows];
  float chunk_max[kBlockRows];
  for (int64_t r0 = 0; r0 < rows; r0 += kBlockRows) {
    const int64_t block = std::min(kBlockRows, rows - r0);
    for (int64_t r = 0; r < block; ++r) {
      const float* src = q + (r0 + r) * q_stride;
      for (int64_t i = 0; i < d; ++i) q_block[r * d + i] = src[i] * log2_scale;
      max[r] = -std::numeric_limits<float>::infinity();
      sum[r] = 0.0f;
    }
    std::memset(acc, 0, sizeof(float) * block * dv_padded_);
    for (int64_t c0 = 0; c0 < keys_; c0 += chunk) {
      const int64_t width = std::min(chunk, keys_ - c0);
      // Scores of the chunk; a partial last panel scores its zero padding too, which is never
      // read below.
      std::fill(chunk_max, chunk_max + block, -std::numeric_limits<float>::infinity());
      for (int64_t p = 0; p * 16 < width; ++p) {
        const float* panel = k_panels_.data() + (c0 / 16 + p) * d * 16;
        // A partial last panel's padding scores must not count towards the maximum.
        const bool whole = (p + 1) * 16 <= width;
        for (int64_t g = 0; g < block; g += kTileRows) {
          ScoresRows(std::min(kTileRows, block - g), q_block + g * d, d, panel,
                     scores + g * chunk + p * 16, chunk, whole ? chunk_max + g : nullptr);
        }
        if (!whole) {
          for (int64_t r = 0; r < block; ++r) {
            const float* row = scores + r * chunk;
            for (int64_t j = p * 16; j < width; ++j) chunk_max[r] = std::max(chunk_max[r], row[j]);
          }
        }
      }
      for (int64_t r = 0; r < block; ++r) {
        float rescale = 0.0f;
        const float chunk_sum =
            Exp2RowOnline(scores + r * chunk, width, chunk_max[r], &max[r], &rescale);
        sum[r] = sum[r] * rescale + chunk_sum;
        if (rescale != 1.0f) {
          float* row = acc + r * dv_padded_;
          for (int64_t x = 0; x < dv_padded_; ++x) row[x] *= rescale;
        }
      }
      for (int64_t c = 0, registers = 0; c < dv_padded_; c += 8 * registers) {
        registers = PanelRegisters((dv_padded_ - c) / 8);
        const float* panel = v_panels_.data() + keys_ * c + c0 * 8 * registers;
        const int64_t tile_rows = OutputTileRows(registers);
        for (int64_t g = 0; g < block; g += tile_rows) {
          OutputPanel(registers, std::min(tile_rows, block - g), scores + g * chunk, chunk, panel,
                      width, acc + g * dv_padded_ + c, dv_padded_);
        }
      }
    }
    for (int64_t r = 0; r < block; ++r) {
      const float inverse = 1.0f / sum[r];
      float* dst = out + (r0 + r) * out_stride;
      for (int64_t x = 0; x < dv_; ++x) dst[x] = acc[r * dv_padded_ + x] * inverse;
    }
  }
}

#else  // no AVX2 on this architecture: Supported() is false and callers use their BLAS path

bool HeadAttentionKernel::Supported() { return false; }

void HeadAttentionKernel::SetKeysValues(const float*, int64_t, const float*, int64_t, int64_t,
                                        int64_t, int64_t) {
  std::abort();
}

void HeadAttentionKernel::Attend(const float*, int64_t, int64_t, float, float*, int64_t) {
  std::abort();
}

#endif  // IMGINTERP_HAS_AVX2_EXP

}  // namespace imginterp::nn
