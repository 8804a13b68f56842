#include "benchmarks/serving/in_process_forward.h"

#include <torch/types.h>

#include <algorithm>
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

// Times `forward` on `inputs` with one thread; a failing pass fails the whole
// measurement.
LoadResult TimeForward(const LoadOptions& timing, model::ModelRunner& runner,
                       const std::vector<at::Tensor>& inputs) {
  LoadOptions one = timing;
  one.concurrency = 1;
  return RunClosedLoop(one, [&](int) { return runner.Forward(inputs).status(); });
}

absl::Status FirstError(const LoadResult& result, const std::string& what) {
  if (result.errors == 0 && result.first_error.empty()) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, " failed: ", result.first_error));
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

  LoadOptions timing = options.timing;
  timing.concurrency = 1;
  result.preprocess = RunClosedLoop(timing, [&](int) { return preprocess().status(); });
  IMGINTERP_RETURN_IF_ERROR(FirstError(result.preprocess, "decode + preprocess"));

  try {
    const std::vector<at::Tensor> batch1 = {input};
    result.forward_batch1 = TimeForward(timing, *runner, batch1);
    IMGINTERP_RETURN_IF_ERROR(FirstError(result.forward_batch1, "forward at batch 1"));

    std::vector<at::Tensor> copies(result.large_batch, input);
    const std::vector<at::Tensor> large = {torch::cat(copies, 0).contiguous()};
    result.forward_large_batch = TimeForward(timing, *runner, large);
    IMGINTERP_RETURN_IF_ERROR(FirstError(result.forward_large_batch,
                                         absl::StrCat("forward at batch ", result.large_batch)));
  } catch (const c10::Error& error) {
    return absl::InternalError(absl::StrCat("LibTorch failed while timing the forward pass: ",
                                            error.what_without_backtrace()));
  }
  return result;
}

}  // namespace imginterp::bench
