// In-place softmax over the rows of a dense float matrix, for attention scores on the CPU.
//
// Why not torch::softmax: at a 64x64 SD latent each head's scores are 4096 x 4096, and LibTorch's
// softmax took as long as one of the two matrix products around it (~2.4 ns per score on one
// core here). This one makes three passes over a row while it sits in L1 (max, exp and sum,
// scale) and evaluates exp with an AVX2/FMA polynomial when the CPU has those (checked at run
// time; otherwise std::exp). The polynomial is a degree-6 fit on [-ln2/2, ln2/2] after range
// reduction (row_softmax_test holds both paths within 1e-6 of a float64 softmax); arguments below
// -87 (probabilities under 1e-38 of the row's largest) give 1e-38 instead of a denormal or 0.
//
// Thread-safety: pure function on caller-owned memory.
#pragma once

#include <cstdint>

namespace imginterp::nn {

// rows x width floats, row-major and dense; each row becomes softmax(row).
void SoftmaxRowsInPlace(float* data, int64_t rows, int64_t width);

// The std::exp path SoftmaxRowsInPlace takes on CPUs without AVX2/FMA, exposed so that tests run
// it on any machine.
void SoftmaxRowsInPlaceScalar(float* data, int64_t rows, int64_t width);

}  // namespace imginterp::nn
