// The model without the server: decode + preprocess and the TorchScript forward
// pass of a classify model, timed in this process, as the baseline the serving
// numbers are compared to.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "benchmarks/load/loadgen/load_runner.h"
#include "benchmarks/load/loadgen/load_summary.h"

namespace imginterp::bench {

struct InProcessOptions {
  // Model repository and model name, as the classify service would be given
  // them.
  std::string model_repository;
  std::string model;
  // Warm-up and measured duration of each timed loop (closed loop; the
  // concurrency is ignored: one thread).
  loadgen::RunOptions timing;
  // Batch size of the comparison forward (the model's max_batch_size is not
  // consulted).
  int large_batch = 8;
};

struct InProcessResult {
  // Codec decode + the classify family's PreprocessImage, one image.
  loadgen::RunStats preprocess;
  // TorchScriptRunner::Forward on the preprocessed tensor, batch 1 and batch
  // `large_batch` (latency per call, i.e. per batch).
  loadgen::RunStats forward_batch1;
  loadgen::RunStats forward_large_batch;
  int large_batch = 0;
  // As the service runs it: max(1, config intra_op_threads), on the CPU.
  int intra_op_threads = 1;
  std::string device;
  // From config.pbtxt, for the report.
  int max_batch_size = 0;
  int64_t max_queue_delay_us = 0;
  std::string input_shape;  // e.g. "1x3x224x224"
};

// Loads the newest version of `options.model` the way the service does (same
// runner options, same preprocessing from config.pbtxt) and times the three
// loops on `image` (encoded bytes). Errors: the repository's NOT_FOUND /
// INVALID_ARGUMENT, the codec's errors for the image, the runner's errors for
// the forward.
absl::StatusOr<InProcessResult> MeasureInProcess(const InProcessOptions& options,
                                                 const std::string& image);

}  // namespace imginterp::bench
