// exp() and 2^x of eight floats with AVX2/FMA, and the row passes built on them, shared by the
// softmax kernels (row_softmax.cc, attention_kernel.cc). Only for x86 translation units that
// check the CPU at run time (__builtin_cpu_supports) before calling them.
//
// Exp8: x = n ln2 + r with |r| <= ln2/2, exp(r) by a degree-6 polynomial (Horner), and 2^n put
// straight into the exponent bits. Arguments below kMinExpArgument are clamped to it: exp(-87) ~
// 1.6e-38 is still a normal float, so tiny probabilities never become denormals.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define IMGINTERP_HAS_AVX2_EXP 1
#endif

namespace imginterp::nn {

// Lowest argument evaluated, by the portable paths too.
constexpr float kMinExpArgument = -87.0f;

#ifdef IMGINTERP_HAS_AVX2_EXP

__attribute__((target("avx2,fma"))) inline __m256 Exp8(__m256 x) {
  const __m256 log2e = _mm256_set1_ps(1.44269504088896341f);
  const __m256 ln2_hi = _mm256_set1_ps(0.693359375f);  // ln2 split so that n * ln2_hi is exact
  const __m256 ln2_lo = _mm256_set1_ps(-2.12194440e-4f);
  x = _mm256_max_ps(x, _mm256_set1_ps(kMinExpArgument));
  const __m256 n =
      _mm256_round_ps(_mm256_mul_ps(x, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, ln2_hi, x);
  r = _mm256_fnmadd_ps(n, ln2_lo, r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  const __m256 r2 = _mm256_mul_ps(r, r);
  const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), _mm256_set1_ps(1.0f));
  const __m256i exponent =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(exponent));
}

// Lowest argument of Exp2_8: 2^-125 is still a normal float (the same floor as kMinExpArgument's).
constexpr float kMinExp2Argument = -125.0f;

// 2^x of eight floats, for the attention kernel, whose scores are kept in log2 units: x = n + r
// with |r| <= 1/2 and 2^r by a degree-5 polynomial (a weighted least-squares fit on [-1/2, 1/2]),
// within 3e-7 relative (nn.Exp2Of8Floats records the largest error). Cheaper than Exp8: no ln2
// reduction, two terms fewer.
__attribute__((target("avx2,fma"))) inline __m256 Exp2_8(__m256 x) {
  x = _mm256_max_ps(x, _mm256_set1_ps(kMinExp2Argument));
  const __m256 n = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256 r = _mm256_sub_ps(x, n);
  __m256 p = _mm256_set1_ps(1.3276464306e-3f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(9.6755409613e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.5507134646e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(2.4022120237e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(6.9314694405e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0000001192f));
  const __m256i exponent =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(exponent));
}

__attribute__((target("avx2,fma"))) inline float HorizontalMax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
  return _mm_cvtss_f32(m);
}

__attribute__((target("avx2,fma"))) inline float HorizontalSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

// The largest of row[0, width); -inf for an empty row.
__attribute__((target("avx2,fma"))) inline float RowMax(const float* row, int64_t width) {
  const int64_t vectorized = width / 8 * 8;
  __m256 max8 = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t i = 0; i < vectorized; i += 8) max8 = _mm256_max_ps(max8, _mm256_loadu_ps(row + i));
  float max = HorizontalMax(max8);
  for (int64_t i = vectorized; i < width; ++i) max = std::max(max, row[i]);
  return max;
}

// row[i] = b^(row[i] - shift) for i in [0, width), in place, with b = 2 (kBase2) or e; returns
// their sum.
template <bool kBase2>
__attribute__((target("avx2,fma"))) inline float PowShiftedInPlace(float* row, int64_t width,
                                                                   float shift) {
  const int64_t vectorized = width / 8 * 8;
  const __m256 shift8 = _mm256_set1_ps(shift);
  __m256 sum8 = _mm256_setzero_ps();
  for (int64_t i = 0; i < vectorized; i += 8) {
    const __m256 x = _mm256_sub_ps(_mm256_loadu_ps(row + i), shift8);
    const __m256 e = kBase2 ? Exp2_8(x) : Exp8(x);
    _mm256_storeu_ps(row + i, e);
    sum8 = _mm256_add_ps(sum8, e);
  }
  float sum = HorizontalSum(sum8);
  for (int64_t i = vectorized; i < width; ++i) {
    row[i] = kBase2 ? std::exp2(std::max(row[i] - shift, kMinExp2Argument))
                    : std::exp(std::max(row[i] - shift, kMinExpArgument));
    sum += row[i];
  }
  return sum;
}

__attribute__((target("avx2,fma"))) inline float ExpShiftedInPlace(float* row, int64_t width,
                                                                   float shift) {
  return PowShiftedInPlace<false>(row, width, shift);
}

__attribute__((target("avx2,fma"))) inline float Exp2ShiftedInPlace(float* row, int64_t width,
                                                                    float shift) {
  return PowShiftedInPlace<true>(row, width, shift);
}

// True when this CPU runs AVX2 and FMA instructions.
inline bool CpuHasAvx2Fma() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}

#endif  // IMGINTERP_HAS_AVX2_EXP

}  // namespace imginterp::nn
