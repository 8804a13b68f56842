#include "benchmarks/serving/in_process_forward.h"

#include <torch/types.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "services/classify/classify_handler.h"
#include "services/core/codec/image_codec.h"
#include "services/core/common/status_macros.h"
#include "services/core/model/model_repository.h"
#include "services/core/model/torchscript_runner.h"

namespace imginterp::bench {
namespace {

// Runs `step` in a closed loop on one thread for the timing's warm-up and
// duration; any failure, warm-up included, fails the whole measurement.
absl::StatusOr<loadgen::RunStats> TimeOneThread(const loadgen::RunOptions& timing,
                                                const std::string& what,
                                                const std::function<absl::Status()>& step) {
  loadgen::RunOptions one = timing;
  one.concurrency = 1;
  IMGINTERP_ASSIGN_OR_RETURN(loadgen::RunResult result, loadgen::RunClosedLoop(one, [&](int) {
                               return loadgen::CallResultOf(step());
                             }));
  if (!result.first_error.empty()) {
    return absl::InternalError(absl::StrCat(what, " failed: ", result.first_error));
  }
  return loadgen::SummarizeRun(result);
}

}  // namespace

absl::StatusOr<InProcessResult> MeasureInProcess(const InProcessOptions& options,
                                                 const std::string& image) {
  model::ModelRepository::Options repository_options;
  repository_options.root = options.model_repository;
  IMGINTERP_ASSIGN_OR_RETURN(std::unique_ptr<model::ModelRepository> repository,
                             model::ModelRepository::Create(repository_options));
  IMGINTERP_ASSIGN_OR_RETURN(model::ModelVersion version, repository->Resolve(options.model, 0));
  const v1::ModelConfig& config = version.config;

  InProcessResult result;
  result.large_batch = std::max(1, options.large_batch);
  result.intra_op_threads = std::max(1, config.intra_op_threads());
  result.max_batch_size = config.max_batch_size();
  result.max_queue_delay_us = config.max_queue_delay_us();

  model::TorchScriptOptions runner_options;
  runner_options.intra_op_threads = result.intra_op_threads;
  runner_options.use_cuda_if_available = false;
  IMGINTERP_ASSIGN_OR_RETURN(
      std::unique_ptr<model::TorchScriptRunner> runner,
      model::TorchScriptRunner::Load(version.version_dir + "/model.pt", runner_options));
  result.device = runner->device();

  // Preprocessing exactly as the classify family does it.
  auto preprocess = [&]() -> absl::StatusOr<at::Tensor> {
    IMGINTERP_ASSIGN_OR_RETURN(codec::DecodedImage decoded, codec::Decode(image, {}));
    return classify::PreprocessImage(decoded.rgb, config.preprocessing());
  };
  IMGINTERP_ASSIGN_OR_RETURN(at::Tensor input, preprocess());
  result.input_shape = absl::StrJoin(input.sizes().vec(), "x");

  IMGINTERP_ASSIGN_OR_RETURN(
      result.preprocess,
      TimeOneThread(options.timing, "decode + preprocess", [&] { return preprocess().status(); }));

  try {
    const std::vector<at::Tensor> batch1 = {input};
    IMGINTERP_ASSIGN_OR_RETURN(result.forward_batch1,
                               TimeOneThread(options.timing, "forward at batch 1",
                                             [&] { return runner->Forward(batch1).status(); }));

    std::vector<at::Tensor> copies(result.large_batch, input);
    const std::vector<at::Tensor> large = {torch::cat(copies, 0).contiguous()};
    IMGINTERP_ASSIGN_OR_RETURN(
        result.forward_large_batch,
        TimeOneThread(options.timing, absl::StrCat("forward at batch ", result.large_batch),
                      [&] { return runner->Forward(large).status(); }));
  } catch (const c10::Error& error) {
    return absl::InternalError(absl::StrCat("LibTorch failed while timing the forward pass: ",
                                            error.what_without_backtrace()));
  }
  return result;
}

}  // namespace imginterp::bench
