// OpProfile: where the time of a LibTorch computation goes, per ATen operator, measured on the
// thread that runs it. While a ScopedOpProfile is alive, every operator that thread dispatches is
// timed through a thread-local RecordFunction callback; an operator's *self* time is its wall time
// minus that of the operators it called (aten::linear's self time excludes the aten::addmm inside
// it), so self times add up to the time spent in operators. Matrix products and convolutions also
// get their FLOPs from their input shapes, which gives each an achieved GFLOP/s.
//
// The native models' split operators (imginterp::linear, imginterp::conv2d, imginterp::attention
// from services/models/nn/cpu_parallel.h) count as one operator each, everything inside them
// included: their ATen calls run on every intra-op thread, and the calling thread alone would
// only see its own share.
//
// Why not the Kineto profiler: Debian's LibTorch has no Python-free way to print a table, and a
// table of self times by operator and by kind (convolution, matmul, softmax, norm, elementwise,
// copy) is what the benchmark needs. Work done inside parallel regions by other threads is
// part of the dispatching operator's wall time, which is what a step costs.
//
// Header without LibTorch so that any benchmark can include it cheaply. Not thread-safe: one
// profile at a time, started and read on one thread.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace imginterp::bench {

struct OpStats {
  int64_t calls = 0;
  double self_seconds = 0;
  double flops = 0;  // only for convolutions and matrix products
};

class OpProfile {
 public:
  // Operator name ("aten::addmm") -> stats, and the total wall time covered by top-level ops.
  std::map<std::string, OpStats> ops;
  double top_level_seconds = 0;
  // Set before recording: key the operators by name and input shapes ("aten::addmm [320]
  // [8192,320] [320,320]") instead of by name.
  bool by_shape = false;

  // Kind of an operator: "convolution", "matmul", "softmax", "norm", "elementwise", "copy/layout",
  // "other".
  static std::string KindOf(const std::string& op);

  // Prints the `top` operators by self time and the split by kind; times are divided by `steps`
  // (per step) and percentages are of `step_seconds` (the measured wall time per step).
  void Print(std::FILE* out, int steps, double step_seconds, int top) const;
};

// Records into `profile` from construction to destruction, on the constructing thread only.
class ScopedOpProfile {
 public:
  explicit ScopedOpProfile(OpProfile* profile);
  ~ScopedOpProfile();
  ScopedOpProfile(const ScopedOpProfile&) = delete;
  ScopedOpProfile& operator=(const ScopedOpProfile&) = delete;

 private:
  uint64_t handle_ = 0;
};

}  // namespace imginterp::bench
