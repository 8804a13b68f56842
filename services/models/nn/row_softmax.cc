#include "services/models/nn/row_softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "services/models/nn/avx2_exp.h"

namespace imginterp::nn {
namespace {

void SoftmaxRowScalar(float* row, int64_t width) {
  float max = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < width; ++i) max = std::max(max, row[i]);
  if (max == -std::numeric_limits<float>::infinity()) max = 0;  // all -inf: let 0/0 give NaN
  double sum = 0;
  for (int64_t i = 0; i < width; ++i) {
    row[i] = std::exp(std::max(row[i] - max, kMinExpArgument));
    sum += row[i];
  }
  const float inverse = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < width; ++i) row[i] *= inverse;
}

#ifdef IMGINTERP_HAS_AVX2_EXP

__attribute__((target("avx2,fma"))) void SoftmaxRowAvx2(float* row, int64_t width) {
  float max = RowMax(row, width);
  if (max == -std::numeric_limits<float>::infinity()) max = 0;  // all -inf: let 0/0 give NaN
  const float sum = ExpShiftedInPlace(row, width, max);
  const int64_t vectorized = width / 8 * 8;
  const __m256 inverse = _mm256_set1_ps(1.0f / sum);
  for (int64_t i = 0; i < vectorized; i += 8) {
    _mm256_storeu_ps(row + i, _mm256_mul_ps(_mm256_loadu_ps(row + i), inverse));
  }
  for (int64_t i = vectorized; i < width; ++i) row[i] *= 1.0f / sum;
}

#endif  // IMGINTERP_HAS_AVX2_EXP

}  // namespace

void SoftmaxRowsInPlace(float* data, int64_t rows, int64_t width) {
#ifdef IMGINTERP_HAS_AVX2_EXP
  if (CpuHasAvx2Fma()) {
    for (int64_t r = 0; r < rows; ++r) SoftmaxRowAvx2(data + r * width, width);
    return;
  }
#endif
  SoftmaxRowsInPlaceScalar(data, rows, width);
}

void SoftmaxRowsInPlaceScalar(float* data, int64_t rows, int64_t width) {
  for (int64_t r = 0; r < rows; ++r) SoftmaxRowScalar(data + r * width, width);
}

}  // namespace imginterp::nn
