// One attention head in float32, softmax(scale * q k^T) v, computed tile by tile in registers
// with AVX2/FMA, for the CPU attention in attention_core.cc.
//
// Why: with SD1.5's head size of 40, each score is a sum of only 40 products, and OpenBLAS spent
// most of its time packing operands and writing scores: the 64x64-latent self-attention ran at
// ~30 GFLOP/s per core, a quarter of a step. Its 4096-wide score rows also went out of L2 and back
// three times (product, softmax, product). Here one head's keys and values are packed once into
// panels; each block of query rows walks the keys in chunks whose scores stay in L2, and the
// softmax is taken online (flash-attention style): a running maximum and sum per row, with the
// partial output rescaled whenever the maximum grows. Results match a two-pass softmax to float
// rounding.
//
// Thread-safety: an instance holds the buffers of its calls; use one per thread.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>

namespace imginterp::nn {

class HeadAttentionKernel {
 public:
  // True when this CPU has AVX2 and FMA. Without them nothing else here may be called.
  static bool Supported();

  // Packs one head's keys [keys x d] and values [keys x dv]; the strides are the distances in
  // floats between rows, and the elements of a row are adjacent. keys, d, dv >= 1.
  void SetKeysValues(const float* k, int64_t k_stride, const float* v, int64_t v_stride,
                     int64_t keys, int64_t d, int64_t dv);

  // out[r] = softmax(scale * q[r] . k^T) v for the `rows` rows of q [rows x d] against the keys
  // and values last set; out has rows of dv floats, out_stride apart.
  void Attend(const float* q, int64_t q_stride, int64_t rows, float scale, float* out,
              int64_t out_stride);

 private:
  // A 64-byte aligned float array that only grows; Reserve keeps no contents.
  class Floats {
   public:
    float* Reserve(int64_t n);
    float* data() const { return data_.get(); }

   private:
    struct Free {
      void operator()(float* p) const { std::free(p); }
    };
    std::unique_ptr<float[], Free> data_;
    int64_t capacity_ = 0;
  };

  int64_t keys_ = 0;
  int64_t d_ = 0;
  int64_t dv_ = 0;
  int64_t dv_padded_ = 0;  // dv rounded up to a multiple of 8
  int64_t chunk_ = 0;      // keys per chunk, a multiple of 16
  Floats k_panels_;        // [ceil(keys / 16)][d][16], zero-padded keys
  Floats v_panels_;  // per panel of w (8, 16 or 24) value columns from c0: [keys][w] at keys * c0
  Floats q_block_;   // the scaled query rows of one block, [rows][d]
  Floats scores_;    // [rows][chunk_]
  Floats acc_;       // unnormalised outputs, [rows][dv_padded_]
};

}  // namespace imginterp::nn
