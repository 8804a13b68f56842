#include "services/models/nn/cpu_parallel.h"

#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>
#include <ATen/core/grad_mode.h>
#include <ATen/record_function.h>
#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <string>
#include <type_traits>
#include <vector>

#include "services/models/nn/avx2_exp.h"  // CpuHasAvx2Fma, IMGINTERP_HAS_AVX2_EXP

// at::parallel_for is a template: with LibTorch's OpenMP backend it is only parallel in code
// compiled with OpenMP (see this library's CMakeLists.txt).
#if AT_PARALLEL_OPENMP && !defined(_OPENMP)
#error "cpu_parallel.cc must be compiled with OpenMP (-fopenmp) to match LibTorch's backend"
#endif

namespace imginterp::nn {
namespace {

// Below this a product takes well under a millisecond on one core, which is the cost scale of
// waking the other threads.
constexpr double kMinParallelFlops = 4e6;

// Scratch buffers reused by the calls made on one thread. Fresh allocations above glibc's mmap
// threshold (32 MiB at most) are new pages that fault on first touch: for the Winograd buffers
// (up to ~300 MB per 16x16 convolution in the UNet) the faults took longer than the arithmetic.
// A thread keeps its largest buffers (for the UNet ~0.3 GB on the calling thread, a few MiB of
// im2col blocks on the others) until it exits. Views returned stay valid until the thread's
// next call for the same slot.
enum ScratchSlot { kWinogradKernels, kWinogradInputs, kWinogradProducts, kIm2ColBlock, kSlots };

at::Tensor Scratch(ScratchSlot slot, int64_t numel, const at::TensorOptions& options) {
  thread_local std::array<at::Tensor, kSlots> buffers;
  at::Tensor& buffer = buffers[slot];
  if (!buffer.defined() || buffer.numel() < numel || buffer.scalar_type() != options.dtype() ||
      buffer.device() != options.device()) {
    buffer = at::Tensor();  // release before allocating the larger one
    buffer = at::empty({numel}, options);
  }
  return buffer.narrow(0, 0, numel);
}

// im2col of output rows [row_begin, row_end) of one image: cols [Cin * k * k, rows * w_out],
// row (c * k + ky) * k + kx holding the input pixel each output pixel sees through kernel tap
// (ky, kx), or 0 in the padding. The order matches a [Cout, Cin, k, k] weight viewed as
// [Cout, Cin * k * k].
template <typename T>
void Im2Col(const T* image, int64_t channels, int64_t h, int64_t w, int64_t k, int64_t stride,
            int64_t padding, int64_t w_out, int64_t row_begin, int64_t row_end, T* cols) {
  const int64_t n = (row_end - row_begin) * w_out;
  for (int64_t c = 0; c < channels; ++c) {
    const T* plane = image + c * h * w;
    for (int64_t ky = 0; ky < k; ++ky) {
      for (int64_t kx = 0; kx < k; ++kx) {
        T* out = cols + ((c * k + ky) * k + kx) * n;
        for (int64_t oy = row_begin; oy < row_end; ++oy, out += w_out) {
          const int64_t iy = oy * stride - padding + ky;
          if (iy < 0 || iy >= h) {
            std::fill(out, out + w_out, T(0));
            continue;
          }
          const T* in = plane + iy * w;
          if (stride == 1) {
            // ix = ox - padding + kx is inside [0, w) for ox in [first, last).
            const int64_t first = std::clamp<int64_t>(padding - kx, 0, w_out);
            const int64_t last = std::clamp<int64_t>(w + padding - kx, first, w_out);
            std::fill(out, out + first, T(0));
            std::copy(in + first - padding + kx, in + last - padding + kx, out + first);
            std::fill(out + last, out + w_out, T(0));
          } else {
            for (int64_t ox = 0; ox < w_out; ++ox) {
              const int64_t ix = ox * stride - padding + kx;
              out[ox] = ix >= 0 && ix < w ? in[ix] : T(0);
            }
          }
        }
      }
    }
  }
}

// Columns (k * k * Cin values each) an im2col block should hold: ~4 MiB, so that the block stays
// in cache between being written and being read by the product.
constexpr int64_t kIm2ColBlockBytes = int64_t{4} << 20;

// Below this many output pixels (all images) the weight, streamed from memory by every product,
// costs more than the arithmetic: the images are convolved in one product per thread, each thread
// taking a share of the output channels, so that the weight is read once.
constexpr int64_t kSmallMapPixels = 2048;

// Winograd F(m x m, 3x3) for 3x3 convolutions with stride 1 and padding 1 (Lavin & Gray, "Fast
// Algorithms for Convolutional Neural Networks", 2015). Each m x m block of outputs ("tile") comes
// from an a x a input patch d (a = m + 2) as Y = A^T [(G g G^T) . (B^T d B)] A, so per tile the
// a * a products U[p] . V[p] (p = a * row + column of the transformed tile) replace 9 m^2
// multiply-adds per channel pair: over all tiles, a^2 BLAS products [Cout, Cin] x [Cin, tiles] do
// the work of 9 m^2 / a^2 as many FLOPs of direct convolution: 2.25x for F(2x2), 4x for F(4x4).
//
// F(2x2)'s transforms only add, subtract and halve, so it rounds like a direct convolution.
// F(4x4)'s constants (up to 8, and 1/24) cost precision: against LibTorch's convolution its float
// error is up to ~1e-5 of the largest output, ~10x F(2x2)'s (nn.CpuParallelConv2d records both),
// inside that test's bound of 1e-4. It is used on the larger maps, where its 1.78x fewer
// multiplications than F(2x2) make the 64x64 maps' convolutions ~25% faster.
//
// U: the kernel transform G g G^T, [a^2, Cout, Cin], recomputed per call: the weights stay in
// their published layout, and keeping U beside them would cost a^2/9 of every 3x3 weight (~3.8 GB
// more for the SD1.5 UNet at a = 4).
//
// Each policy gives the 1-D transforms; the 2-D ones apply them to columns, then rows.
struct WinogradF2 {
  static constexpr int kM = 2;
  static constexpr int kA = 4;
  template <typename T>
  static void Kernel(const T g[3], T out[4]) {  // G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
    out[0] = g[0];
    out[1] = (g[0] + g[1] + g[2]) / 2;
    out[2] = (g[0] - g[1] + g[2]) / 2;
    out[3] = g[2];
  }
  template <typename T>
  static void Input(const T d[4], T out[4]) {  // B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
    out[0] = d[0] - d[2];
    out[1] = d[1] + d[2];
    out[2] = d[2] - d[1];
    out[3] = d[1] - d[3];
  }
  template <typename T>
  static void Output(const T m[4], T out[2]) {  // A^T = [1 1 1 0; 0 1 -1 -1]
    out[0] = m[0] + m[1] + m[2];
    out[1] = m[1] - m[2] - m[3];
  }
};

struct WinogradF4 {
  static constexpr int kM = 4;
  static constexpr int kA = 6;
  // G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
  template <typename T>
  static void Kernel(const T g[3], T out[6]) {
    out[0] = g[0] / 4;
    out[1] = -(g[0] + g[1] + g[2]) / 6;
    out[2] = -(g[0] - g[1] + g[2]) / 6;
    out[3] = g[0] / 24 + g[1] / 12 + g[2] / 6;
    out[4] = g[0] / 24 - g[1] / 12 + g[2] / 6;
    out[5] = g[2];
  }
  // B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
  template <typename T>
  static void Input(const T d[6], T out[6]) {
    out[0] = 4 * d[0] - 5 * d[2] + d[4];
    out[1] = -4 * (d[1] + d[2]) + d[3] + d[4];
    out[2] = 4 * (d[1] - d[2]) - d[3] + d[4];
    out[3] = 2 * (d[3] - d[1]) - d[2] + d[4];
    out[4] = 2 * (d[1] - d[3]) - d[2] + d[4];
    out[5] = 4 * d[1] - 5 * d[3] + d[5];
  }
  // A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
  template <typename T>
  static void Output(const T m[6], T out[4]) {
    out[0] = m[0] + m[1] + m[2] + m[3] + m[4];
    out[1] = m[1] - m[2] + 2 * (m[3] - m[4]);
    out[2] = m[1] + m[2] + 4 * (m[3] + m[4]);
    out[3] = m[1] - m[2] + 8 * (m[3] - m[4]) + m[5];
  }
};

// in [R][C] -> out [R2][C2]: `columns` takes each column's R values to R2, then `rows` each
// row's C values to C2.
template <int R, int C, int R2, int C2, typename T, typename Columns, typename Rows>
void Transform2d(const T in[R][C], T out[R2][C2], Columns columns, Rows rows) {
  T mid[R2][C];
  for (int c = 0; c < C; ++c) {
    T column[R];
    T transformed[R2];
    for (int r = 0; r < R; ++r) column[r] = in[r][c];
    columns(column, transformed);
    for (int r = 0; r < R2; ++r) mid[r][c] = transformed[r];
  }
  for (int r = 0; r < R2; ++r) rows(mid[r], out[r]);
}

#ifdef IMGINTERP_HAS_AVX2_EXP
// AVX2 versions of the transforms for float: eight tiles (or, for kernels, eight input channels)
// at once, one per lane, through the same policy arithmetic on __m256. Tile columns become lanes
// (and back) with shuffles, since a tile row's patches overlap and sit kM floats apart. Callers
// check CpuHasAvx2Fma() first.

// [x0 x2 y0 y2 | x4 x6 y4 y6] (shuffles work within 128-bit halves) to [x0 x2 x4 x6 y0 y2 y4 y6].
__attribute__((target("avx2,fma"))) inline __m256 PairsInOrder(__m256 halves) {
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(halves), _MM_SHUFFLE(3, 1, 2, 0)));
}

// even[i] = s[2i], odd[i] = s[2i + 1] for i < 8.
__attribute__((target("avx2,fma"))) inline void Deinterleave(const float* s, __m256* even,
                                                             __m256* odd) {
  const __m256 a = _mm256_loadu_ps(s);
  const __m256 b = _mm256_loadu_ps(s + 8);
  *even = PairsInOrder(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)));
  *odd = PairsInOrder(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
}

// [s[4i .. 4i + 4) | s[4i + 16 .. 4i + 20)]: groups i and i + 4 of the eight below.
__attribute__((target("avx2,fma"))) inline __m256 GroupPair(const float* s, int i) {
  return _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(s + 4 * i)),
                              _mm_loadu_ps(s + 4 * i + 16), 1);
}

// out[c][i] = s[4i + c] for i < 8 and c < count (2 or 4): the eight 4-float groups transposed.
__attribute__((target("avx2,fma"))) inline void TransposeQuads(const float* s, __m256* out,
                                                               int count) {
  const __m256 r0 = GroupPair(s, 0), r1 = GroupPair(s, 1);
  const __m256 r2 = GroupPair(s, 2), r3 = GroupPair(s, 3);
  const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpacklo_ps(r2, r3);
  out[0] = _mm256_shuffle_ps(t0, t1, _MM_SHUFFLE(1, 0, 1, 0));
  out[1] = _mm256_shuffle_ps(t0, t1, _MM_SHUFFLE(3, 2, 3, 2));
  if (count > 2) {
    const __m256 t2 = _mm256_unpackhi_ps(r0, r1), t3 = _mm256_unpackhi_ps(r2, r3);
    out[2] = _mm256_shuffle_ps(t2, t3, _MM_SHUFFLE(1, 0, 1, 0));
    out[3] = _mm256_shuffle_ps(t2, t3, _MM_SHUFFLE(3, 2, 3, 2));
  }
}

// lanes[c][i] = s[kM i + c] for the kA columns c of eight adjacent patches starting at s.
template <typename W>
__attribute__((target("avx2,fma"))) inline void GatherPatchRow(const float* s, __m256* lanes) {
  if constexpr (W::kM == 2) {
    Deinterleave(s, &lanes[0], &lanes[1]);
    Deinterleave(s + 2, &lanes[2], &lanes[3]);
  } else {
    static_assert(W::kM == 4 && W::kA == 6);
    TransposeQuads(s, lanes, 4);
    TransposeQuads(s + 4, lanes + 4, 2);
  }
}

// row[kM i + c] = lanes[c][i]: one output row of eight adjacent tiles.
template <typename W>
__attribute__((target("avx2,fma"))) inline void ScatterTileRow(const __m256* lanes, float* row) {
  if constexpr (W::kM == 2) {
    const __m256 lo = _mm256_unpacklo_ps(lanes[0], lanes[1]);  // tiles 0, 1 | 4, 5
    const __m256 hi = _mm256_unpackhi_ps(lanes[0], lanes[1]);  // tiles 2, 3 | 6, 7
    _mm256_storeu_ps(row, _mm256_permute2f128_ps(lo, hi, 0x20));
    _mm256_storeu_ps(row + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
  } else {
    static_assert(W::kM == 4);
    const __m256 t0 = _mm256_unpacklo_ps(lanes[0], lanes[1]);
    const __m256 t1 = _mm256_unpacklo_ps(lanes[2], lanes[3]);
    const __m256 t2 = _mm256_unpackhi_ps(lanes[0], lanes[1]);
    const __m256 t3 = _mm256_unpackhi_ps(lanes[2], lanes[3]);
    const __m256 u0 = _mm256_shuffle_ps(t0, t1, _MM_SHUFFLE(1, 0, 1, 0));  // tile 0 | tile 4
    const __m256 u1 = _mm256_shuffle_ps(t0, t1, _MM_SHUFFLE(3, 2, 3, 2));  // tile 1 | tile 5
    const __m256 u2 = _mm256_shuffle_ps(t2, t3, _MM_SHUFFLE(1, 0, 1, 0));  // tile 2 | tile 6
    const __m256 u3 = _mm256_shuffle_ps(t2, t3, _MM_SHUFFLE(3, 2, 3, 2));  // tile 3 | tile 7
    _mm256_storeu_ps(row, _mm256_permute2f128_ps(u0, u1, 0x20));
    _mm256_storeu_ps(row + 8, _mm256_permute2f128_ps(u2, u3, 0x20));
    _mm256_storeu_ps(row + 16, _mm256_permute2f128_ps(u0, u1, 0x31));
    _mm256_storeu_ps(row + 24, _mm256_permute2f128_ps(u2, u3, 0x31));
  }
}

// The kernel transform of eight adjacent input channels: taps[j * cin] holds tap j of the
// first; out[p * plane] gets point p of the first.
template <typename W>
__attribute__((target("avx2,fma"))) void KernelLanes(const float* taps, int64_t cin, float* out,
                                                     int64_t plane) {
  constexpr int kA = W::kA;
  __m256 g[3][3];
  for (int j = 0; j < 9; ++j) g[j / 3][j % 3] = _mm256_loadu_ps(taps + j * cin);
  __m256 transformed[kA][kA];
  Transform2d<3, 3, kA, kA>(g, transformed, W::template Kernel<__m256>, W::template Kernel<__m256>);
  for (int p = 0; p < kA * kA; ++p) _mm256_storeu_ps(out + p * plane, transformed[p / kA][p % kA]);
}

// The input transform of eight adjacent tiles: patch_rows[r] + x is row r of the first tile's
// patch; out[p * plane] gets point p of the first tile.
template <typename W>
__attribute__((target("avx2,fma"))) void InputLanes(const float* const* patch_rows, int64_t x,
                                                    float* out, int64_t plane) {
  constexpr int kA = W::kA;
  __m256 d[kA][kA];
  for (int r = 0; r < kA; ++r) GatherPatchRow<W>(patch_rows[r] + x, d[r]);
  __m256 transformed[kA][kA];
  Transform2d<kA, kA, kA, kA>(d, transformed, W::template Input<__m256>, W::template Input<__m256>);
  for (int p = 0; p < kA * kA; ++p) _mm256_storeu_ps(out + p * plane, transformed[p / kA][p % kA]);
}

// The output transform (+ bias) of eight adjacent whole tiles: in[p * plane] holds point p of the
// first; its top-left output is at y, rows `w` floats apart.
template <typename W>
__attribute__((target("avx2,fma"))) void OutputLanes(const float* in, int64_t plane, float bias,
                                                     float* y, int64_t w) {
  constexpr int kM = W::kM, kA = W::kA;
  __m256 m[kA][kA];
  for (int p = 0; p < kA * kA; ++p) m[p / kA][p % kA] = _mm256_loadu_ps(in + p * plane);
  __m256 tile[kM][kM];
  Transform2d<kA, kA, kM, kM>(m, tile, W::template Output<__m256>, W::template Output<__m256>);
  const __m256 b = _mm256_set1_ps(bias);
  for (int r = 0; r < kM; ++r) {
    for (int c = 0; c < kM; ++c) tile[r][c] = _mm256_add_ps(tile[r][c], b);
    ScatterTileRow<W>(tile[r], y + r * w);
  }
}

// Whether the float transforms take the lanes above.
template <typename T>
bool WinogradLanes() {
  return std::is_same_v<T, float> && CpuHasAvx2Fma();
}
#else
template <typename T>
bool WinogradLanes() {
  return false;
}
#endif  // IMGINTERP_HAS_AVX2_EXP

template <typename W, typename T>
void WinogradKernels(const T* g, int64_t cout, int64_t cin, T* u, int64_t blocks) {
  constexpr int kA = W::kA;
  const int64_t plane = cout * cin;
  const bool lanes = WinogradLanes<T>();
  ForEachBlock(cout, blocks, [&](int64_t begin, int64_t end) {
    // One output channel's taps regrouped as [9][Cin], so that the transform below runs over
    // adjacent input channels with unit strides everywhere: eight per AVX2 lane group for float,
    // and the compiler vectorises the rest; the scalar version, one 3x3 kernel at a time, was 4%
    // of a 512x512 UNet run's perf samples.
    std::vector<T> taps(9 * cin);
    for (int64_t co = begin; co < end; ++co) {
      const T* kernels = g + co * cin * 9;
      for (int64_t ci = 0; ci < cin; ++ci) {
        for (int j = 0; j < 9; ++j) taps[j * cin + ci] = kernels[ci * 9 + j];
      }
      const T* k = taps.data();
      T* out = u + co * cin;
      int64_t ci = 0;
#ifdef IMGINTERP_HAS_AVX2_EXP
      if constexpr (std::is_same_v<T, float>) {
        if (lanes) {
          for (; ci + 8 <= cin; ci += 8) KernelLanes<W>(k + ci, cin, out + ci, plane);
        }
      }
#endif
#pragma GCC ivdep  // taps and u never overlap
      for (; ci < cin; ++ci) {
        T kernel[3][3];
        for (int j = 0; j < 9; ++j) kernel[j / 3][j % 3] = k[j * cin + ci];
        T transformed[kA][kA];
        Transform2d<3, 3, kA, kA>(kernel, transformed, W::template Kernel<T>,
                                  W::template Kernel<T>);
        for (int p = 0; p < kA * kA; ++p) out[p * plane + ci] = transformed[p / kA][p % kA];
      }
    }
  });
}

// Tiles of one convolution with m x m tiles: tile t = (image * tiles_y + ty) * tiles_x + tx covers
// outputs [m ty, m ty + m) x [m tx, m tx + m) and reads inputs [m ty - 1, m ty + m + 1) x (the
// same for x).
struct WinogradTiles {
  int64_t h, w, tiles_y, tiles_x;
};

// Calls fn(i, image, ty, tx_begin, tx_end) for each row of tiles that overlaps tiles
// [first, first + count), with i the position of (image, ty, tx_begin) in that range.
template <typename Fn>
void ForEachTileRow(const WinogradTiles& tiles, int64_t first, int64_t count, Fn&& fn) {
  const int64_t per_image = tiles.tiles_y * tiles.tiles_x;
  for (int64_t t = first; t < first + count;) {
    const int64_t image = t / per_image;
    const int64_t ty = t % per_image / tiles.tiles_x;
    const int64_t tx_begin = t % tiles.tiles_x;
    const int64_t tx_end = std::min(tiles.tiles_x, tx_begin + (first + count - t));
    fn(t - first, image, ty, tx_begin, tx_end);
    t += tx_end - tx_begin;
  }
}

// V: the input transform B^T d B of tiles [first, first + count), [a^2, Cin, count].
template <typename W, typename T>
void WinogradInputs(const T* x, int64_t cin, const WinogradTiles& tiles, int64_t first,
                    int64_t count, T* v, int64_t blocks) {
  constexpr int kM = W::kM, kA = W::kA;
  const int64_t plane = cin * count;
  const int64_t h = tiles.h, w = tiles.w;
  // A tile row's kA input rows, each copied behind the padding's zero column and followed by
  // zeros, so that every patch (and the eight-tile gathers, which read up to 36 floats from
  // a group's first patch) reads inside the copy without bounds checks.
  const int64_t padded_width = kM * tiles.tiles_x + 2 * kA + 8;
  const bool lanes = WinogradLanes<T>();
  ForEachBlock(cin, blocks, [&](int64_t begin, int64_t end) {
    std::vector<T> padded(kA * padded_width);
    for (int64_t ci = begin; ci < end; ++ci) {
      ForEachTileRow(tiles, first, count,
                     [&](int64_t i0, int64_t image, int64_t ty, int64_t tx_begin, int64_t tx_end) {
                       const T* channel = x + (image * cin + ci) * h * w;
                       const T* rows[kA];
                       for (int r = 0; r < kA; ++r) {
                         T* row = padded.data() + r * padded_width;
                         const int64_t iy = kM * ty - 1 + r;
                         std::fill(row, row + padded_width, T(0));
                         if (iy >= 0 && iy < h)
                           std::copy(channel + iy * w, channel + iy * w + w, row + 1);
                         rows[r] = row;
                       }
                       T* out = v + ci * count + i0;  // tile tx at out[tx - tx_begin]
                       int64_t tx = tx_begin;
#ifdef IMGINTERP_HAS_AVX2_EXP
                       if constexpr (std::is_same_v<T, float>) {
                         if (lanes) {
                           for (; tx + 8 <= tx_end; tx += 8) {
                             InputLanes<W>(rows, kM * tx, out + (tx - tx_begin), plane);
                           }
                         }
                       }
#endif
                       for (; tx < tx_end; ++tx) {
                         T d[kA][kA];
                         for (int r = 0; r < kA; ++r) {
                           for (int c = 0; c < kA; ++c) d[r][c] = rows[r][kM * tx + c];
                         }
                         T transformed[kA][kA];
                         Transform2d<kA, kA, kA, kA>(d, transformed, W::template Input<T>,
                                                     W::template Input<T>);
                         for (int p = 0; p < kA * kA; ++p) {
                           out[tx - tx_begin + p * plane] = transformed[p / kA][p % kA];
                         }
                       }
                     });
    }
  });
}

// The output transform A^T m A (+ bias) of M [a^2, Cout, count] into y [N, Cout, H, W].
template <typename W, typename T>
void WinogradOutputs(const T* m, const T* bias, int64_t cout, const WinogradTiles& tiles,
                     int64_t first, int64_t count, T* y, int64_t blocks) {
  constexpr int kM = W::kM, kA = W::kA;
  const int64_t plane = cout * count;
  const int64_t h = tiles.h, w = tiles.w;
  const bool lanes = WinogradLanes<T>();
  ForEachBlock(cout, blocks, [&](int64_t begin, int64_t end) {
    for (int64_t co = begin; co < end; ++co) {
      const T b = bias != nullptr ? bias[co] : T(0);
      ForEachTileRow(
          tiles, first, count,
          [&](int64_t i0, int64_t image, int64_t ty, int64_t tx_begin, int64_t tx_end) {
            T* channel = y + (image * cout + co) * h * w;
            const int64_t rows = std::min<int64_t>(kM, h - kM * ty);
            const T* in = m + co * count + i0;  // tile tx at in[tx - tx_begin]
            int64_t tx = tx_begin;
#ifdef IMGINTERP_HAS_AVX2_EXP
            if constexpr (std::is_same_v<T, float>) {
              // Whole tiles only: eight full tile columns inside the map.
              if (lanes && rows == kM) {
                for (; tx + 8 <= tx_end && kM * (tx + 8) <= w; tx += 8) {
                  OutputLanes<W>(in + (tx - tx_begin), plane, b, channel + kM * (ty * w + tx), w);
                }
              }
            }
#endif
            for (; tx < tx_end; ++tx) {
              T mm[kA][kA];
              for (int p = 0; p < kA * kA; ++p) {
                mm[p / kA][p % kA] = in[tx - tx_begin + p * plane];
              }
              T tile[kM][kM];
              Transform2d<kA, kA, kM, kM>(mm, tile, W::template Output<T>, W::template Output<T>);
              const int64_t columns = std::min<int64_t>(kM, w - kM * tx);
              for (int64_t r = 0; r < rows; ++r) {
                T* row = channel + (kM * ty + r) * w + kM * tx;
                for (int64_t c = 0; c < columns; ++c) row[c] = tile[r][c] + b;
              }
            }
          });
    }
  });
}

// Winograd pays off once there are enough tiles to amortise the kernel transform and to keep the
// a^2 products efficient: F(2x2) from 128 tiles (a 16x16 map at batch 2; the SD1.5 UNet's 8x8 maps
// stay direct), F(4x4) from 512 (64x64 at batch 2). Its kernel transform is 4x the weight, so at
// 32x32 with 1280 channels it took longer than F(2x2) (175 against 246 GFLOP/s direct-equivalent).
constexpr int64_t kWinogradMinTiles = 128;
constexpr int64_t kWinogradF4MinTiles = 512;
constexpr int64_t kWinogradMinChannels = 32;
// Tiles per pass, so that V and M ([a^2, C, tiles] each) stay within ~96 MiB (a 512x512 VAE map
// would otherwise need GiBs).
constexpr int64_t kWinogradPassBytes = int64_t{96} << 20;

int64_t WinogradTileCount(int64_t n, int64_t h, int64_t w, int64_t m) {
  return n * ((h + m - 1) / m) * ((w + m - 1) / m);
}

template <typename W>
at::Tensor WinogradConv3x3(const at::Tensor& input, const at::Tensor& weight,
                           const at::Tensor& bias, int64_t blocks) {
  constexpr int64_t kM = W::kM, kPoints = W::kA * W::kA;
  const int64_t n = input.size(0), cin = input.size(1), h = input.size(2), w = input.size(3);
  const int64_t cout = weight.size(0);
  const WinogradTiles tiles{h, w, (h + kM - 1) / kM, (w + kM - 1) / kM};
  const int64_t total = n * tiles.tiles_y * tiles.tiles_x;
  const int64_t tile_bytes = kPoints * (cin + cout) * input.element_size();
  const int64_t pass = std::clamp<int64_t>(kWinogradPassBytes / tile_bytes, 1, total);
  at::Tensor out = at::empty({n, cout, h, w}, input.options());
  const at::Tensor u =
      Scratch(kWinogradKernels, kPoints * cout * cin, input.options()).view({kPoints, cout, cin});
  const at::Tensor v = Scratch(kWinogradInputs, kPoints * cin * pass, input.options());
  const at::Tensor m = Scratch(kWinogradProducts, kPoints * cout * pass, input.options());
  const at::Tensor g = weight.contiguous();
  const at::Tensor b = bias.defined() ? bias.contiguous() : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "WinogradConv3x3", [&] {
    WinogradKernels<W>(g.data_ptr<scalar_t>(), cout, cin, u.data_ptr<scalar_t>(), blocks);
    for (int64_t first = 0; first < total; first += pass) {
      const int64_t count = std::min(pass, total - first);
      // Dense [a^2, C, count] views of the buffers' start (the last pass may be shorter).
      const at::Tensor v_pass = v.narrow(0, 0, kPoints * cin * count).view({kPoints, cin, count});
      at::Tensor m_pass = m.narrow(0, 0, kPoints * cout * count).view({kPoints, cout, count});
      WinogradInputs<W>(input.data_ptr<scalar_t>(), cin, tiles, first, count,
                        v_pass.data_ptr<scalar_t>(), blocks);
      ForEachBlock(kPoints, blocks, [&](int64_t begin, int64_t end) {
        for (int64_t p = begin; p < end; ++p) {
          at::Tensor m_p = m_pass[p];
          at::mm_out(m_p, u[p], v_pass[p]);
        }
      });
      WinogradOutputs<W>(m_pass.data_ptr<scalar_t>(),
                         b.defined() ? b.data_ptr<scalar_t>() : nullptr, cout, tiles, first, count,
                         out.data_ptr<scalar_t>(), blocks);
    }
  });
  return out;
}

CpuKernels KernelsFromEnvironment() {
  const char* value = std::getenv("IMGINTERP_CPU_KERNELS");
  return value != nullptr && std::string(value) == "aten" ? CpuKernels::kAten
                                                          : CpuKernels::kProject;
}

std::atomic<CpuKernels>& KernelSetting() {
  static std::atomic<CpuKernels> setting{KernelsFromEnvironment()};
  return setting;
}

}  // namespace

void SetCpuKernels(CpuKernels kernels) { KernelSetting().store(kernels); }

CpuKernels GetCpuKernels() { return KernelSetting().load(); }

int64_t ParallelBlocks(const at::Tensor& like, double flops,
                       std::initializer_list<at::Tensor> operands) {
  if (GetCpuKernels() == CpuKernels::kAten) return 1;
  // The split kernels write into out= views, which autograd cannot record: with gradients
  // wanted, LibTorch's own ops run.
  if (at::GradMode::is_enabled()) {
    if (like.requires_grad()) return 1;
    for (const at::Tensor& t : operands) {
      if (t.defined() && t.requires_grad()) return 1;
    }
  }
  if (!like.defined() || !like.device().is_cpu()) return 1;
  const auto dtype = like.scalar_type();
  if (dtype != at::kFloat && dtype != at::kDouble) return 1;
  if (at::in_parallel_region() || flops < kMinParallelFlops) return 1;
  return std::max<int64_t>(1, at::get_num_threads());
}

void ForEachBlock(int64_t n, int64_t blocks, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  blocks = std::clamp<int64_t>(blocks, 1, n);
  if (blocks == 1) {
    fn(0, n);
    return;
  }
  // A grain of ceil(n / blocks) makes at::parallel_for hand each thread one range of that size.
  const int64_t grain = (n + blocks - 1) / blocks;
  // OpenMP's workers do not inherit the caller's thread-local state: without it they would run
  // in grad mode (out= ops then refuse parameters that require grad) and outside the caller's
  // inference mode.
  const at::ThreadLocalState caller_state;
  at::parallel_for(0, n, grain, [&](int64_t begin, int64_t end) {
    at::ThreadLocalStateGuard state_guard(caller_state);
    for (int64_t b = begin; b < end; b += grain) fn(b, std::min(end, b + grain));
  });
}

at::Tensor ParallelLinear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  if (!x.defined() || !weight.defined() || x.dim() < 1 || weight.dim() != 2) {
    return torch::linear(x, weight, bias);  // with its message
  }
  const int64_t in = weight.size(1);
  const int64_t out_features = weight.size(0);
  const int64_t rows = in > 0 ? x.numel() / in : 0;
  const int64_t blocks = ParallelBlocks(
      x, 2.0 * static_cast<double>(rows) * static_cast<double>(in) * out_features, {weight, bias});
  if (blocks <= 1 || rows < blocks || x.scalar_type() != weight.scalar_type() || x.size(-1) != in ||
      (bias.defined() && (bias.scalar_type() != x.scalar_type() || bias.dim() != 1 ||
                          bias.size(0) != out_features))) {
    return torch::linear(x, weight, bias);  // including shapes it rejects, with its message
  }
  // The profiler sees the whole split product as one operator (the ATen ops inside are only the
  // calling thread's share).
  RECORD_FUNCTION("imginterp::linear", std::vector<c10::IValue>({x, weight}));
  const at::Tensor x2d = x.reshape({rows, in});
  at::Tensor out = at::empty({rows, out_features}, x.options());
  // Few rows (a 77-token context, an 8x8 feature map): every thread would stream the whole weight
  // matrix, so the threads split the output features (the weight's rows) instead.
  const bool split_features = rows < out_features && rows < 256;
  const int64_t n = split_features ? out_features : rows;
  ForEachBlock(n, blocks, [&](int64_t begin, int64_t end) {
    const int64_t len = end - begin;
    at::Tensor out_block = split_features ? out.narrow(1, begin, len) : out.narrow(0, begin, len);
    const at::Tensor x_block = split_features ? x2d : x2d.narrow(0, begin, len);
    const at::Tensor w_t = split_features ? weight.narrow(0, begin, len).t() : weight.t();
    if (bias.defined()) {
      at::addmm_out(out_block, split_features ? bias.narrow(0, begin, len) : bias, x_block, w_t);
    } else {
      at::mm_out(out_block, x_block, w_t);
    }
  });
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = out_features;
  return out.view(shape);
}

at::Tensor ParallelConv2d(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                          int64_t stride, int64_t padding) {
  auto fallback = [&] {
    return torch::conv2d(x, weight, bias, {stride, stride}, {padding, padding});
  };
  if (x.dim() != 4 || weight.dim() != 4 || x.size(1) != weight.size(1) ||
      weight.size(2) != weight.size(3) || x.scalar_type() != weight.scalar_type() ||
      (bias.defined() && (bias.scalar_type() != x.scalar_type() || bias.dim() != 1 ||
                          bias.size(0) != weight.size(0))) ||
      stride < 1 || padding < 0) {
    return fallback();  // including shapes torch::conv2d rejects, with its message
  }
  const int64_t n = x.size(0), cin = x.size(1), h = x.size(2), w = x.size(3);
  const int64_t cout = weight.size(0), k = weight.size(2);
  const int64_t h_out = (h + 2 * padding - k) / stride + 1;
  const int64_t w_out = (w + 2 * padding - k) / stride + 1;
  if (h + 2 * padding < k || w + 2 * padding < k || n == 0) return fallback();
  const int64_t kdim = cin * k * k;
  const double flops = 2.0 * n * h_out * w_out * static_cast<double>(cout) * kdim;
  const int64_t blocks = ParallelBlocks(x, flops, {weight, bias});
  if (blocks <= 1) return fallback();
  RECORD_FUNCTION("imginterp::conv2d", std::vector<c10::IValue>({x, weight, stride, padding}));
  const at::Tensor input = x.contiguous();
  if (k == 3 && stride == 1 && padding == 1 && cin >= kWinogradMinChannels &&
      cout >= kWinogradMinChannels) {
    if (WinogradTileCount(n, h, w, WinogradF4::kM) >= kWinogradF4MinTiles) {
      return WinogradConv3x3<WinogradF4>(input, weight, bias, blocks);
    }
    if (WinogradTileCount(n, h, w, WinogradF2::kM) >= kWinogradMinTiles) {
      return WinogradConv3x3<WinogradF2>(input, weight, bias, blocks);
    }
  }
  const at::Tensor w2d = weight.reshape({cout, kdim});
  const at::Tensor bias_column = bias.defined() ? bias.reshape({cout, 1}) : at::Tensor();
  at::Tensor out = at::empty({n, cout, h_out, w_out}, x.options());
  const bool pointwise = k == 1 && stride == 1 && padding == 0;  // the image is its own im2col
  const int64_t pixels = h_out * w_out;

  // out_block = w_block @ cols (+ bias_block).
  auto product = [&](at::Tensor out_block, const at::Tensor& w_block, const at::Tensor& cols,
                     const at::Tensor& bias_block) {
    if (bias_block.defined()) {
      at::addmm_out(out_block, bias_block, w_block, cols);
    } else {
      at::mm_out(out_block, w_block, cols);
    }
  };

  if (n * pixels < kSmallMapPixels) {
    // All images side by side in one [kdim, n * pixels] im2col; threads split the output channels.
    at::Tensor cols;
    if (pointwise) {
      cols = input.view({n, cin, pixels}).permute({1, 0, 2}).reshape({kdim, n * pixels});
    } else {
      cols = at::empty({kdim, n * pixels}, x.options());
      at::Tensor per_image = at::empty({n, kdim, pixels}, x.options());
      AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "ParallelConv2d", [&] {
        for (int64_t i = 0; i < n; ++i) {
          Im2Col(input[i].data_ptr<scalar_t>(), cin, h, w, k, stride, padding, w_out, 0, h_out,
                 per_image[i].data_ptr<scalar_t>());
        }
      });
      cols.view({kdim, n, pixels}).copy_(per_image.permute({1, 0, 2}));
    }
    at::Tensor all = at::empty({cout, n * pixels}, x.options());
    ForEachBlock(cout, blocks, [&](int64_t begin, int64_t end) {
      const int64_t len = end - begin;
      product(all.narrow(0, begin, len), w2d.narrow(0, begin, len), cols,
              bias_column.defined() ? bias_column.narrow(0, begin, len) : at::Tensor());
    });
    out.view({n, cout, pixels}).copy_(all.view({cout, n, pixels}).permute({1, 0, 2}));
    return out;
  }

  // Larger maps: one item per (image, band of output rows), each with its own cached im2col block.
  const int64_t row_bytes = std::max<int64_t>(1, kdim * w_out * x.element_size());
  const int64_t band_rows = std::clamp<int64_t>(kIm2ColBlockBytes / row_bytes, 1, h_out);
  const int64_t bands = (h_out + band_rows - 1) / band_rows;
  ForEachBlock(n * bands, blocks, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t image = item / bands;
      const int64_t row_begin = (item % bands) * band_rows;
      const int64_t row_end = std::min(h_out, row_begin + band_rows);
      const int64_t columns = (row_end - row_begin) * w_out;
      at::Tensor out_block = out[image].view({cout, pixels}).narrow(1, row_begin * w_out, columns);
      at::Tensor block_cols;
      if (pointwise) {
        block_cols = input[image].view({cin, pixels}).narrow(1, row_begin * w_out, columns);
      } else {
        block_cols = Scratch(kIm2ColBlock, kdim * columns, x.options()).view({kdim, columns});
        AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "ParallelConv2d", [&] {
          Im2Col(input[image].data_ptr<scalar_t>(), cin, h, w, k, stride, padding, w_out, row_begin,
                 row_end, block_cols.data_ptr<scalar_t>());
        });
      }
      product(out_block, w2d, block_cols, bias_column);
    }
  });
  return out;
}

}  // namespace imginterp::nn
