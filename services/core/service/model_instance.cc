#include <torch/types.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "services/core/model/model_runner.h"
#include "services/core/service/family_handler.h"

namespace imginterp::service {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

TensorModel::TensorModel(std::unique_ptr<model::ModelRunner> runner) : runner_(std::move(runner)) {}

TensorModel::~TensorModel() = default;

void TensorModel::RunBatch(const std::vector<WorkItem*>& items) {
  // Request states live for this batch only, however it ends.
  struct ForgetStates {
    std::unordered_map<const google::protobuf::Message*, std::any>& states;
    ~ForgetStates() { states.clear(); }
  } forget{request_states_};
  // Preprocess each request on its own: a bad input fails only its own request.
  std::vector<WorkItem*> ok_items;
  std::vector<std::vector<at::Tensor>> inputs;
  for (WorkItem* item : items) {
    const auto start = Clock::now();
    auto tensors = Preprocess(*item->request);
    item->preprocess_seconds = Since(start);
    if (!tensors.ok()) {
      item->status = tensors.status();
      continue;
    }
    ok_items.push_back(item);
    inputs.push_back(*std::move(tensors));
  }
  if (ok_items.empty()) return;

  std::vector<at::Tensor> batched;
  try {
    for (size_t i = 0; i < inputs.front().size(); ++i) {
      std::vector<at::Tensor> parts;
      for (const auto& request_inputs : inputs) parts.push_back(request_inputs[i]);
      batched.push_back(parts.size() == 1 ? parts.front() : torch::cat(parts, 0));
    }
  } catch (const c10::Error& e) {
    for (WorkItem* item : ok_items) {
      item->status = absl::InternalError(absl::StrCat(
          "requests of one batch have different input shapes: ", e.what_without_backtrace()));
    }
    return;
  }

  const auto infer_start = Clock::now();
  auto outputs = runner_->Forward(batched);
  const double infer_seconds = Since(infer_start);
  for (WorkItem* item : ok_items) item->inference_seconds = infer_seconds;
  if (!outputs.ok()) {
    for (WorkItem* item : ok_items) item->status = outputs.status();
    return;
  }
  for (size_t row = 0; row < ok_items.size(); ++row) {
    WorkItem* item = ok_items[row];
    const auto start = Clock::now();
    std::vector<at::Tensor> slices;
    for (const at::Tensor& output : *outputs) {
      slices.push_back(output.dim() > 0 && output.size(0) == static_cast<int64_t>(ok_items.size())
                           ? output.narrow(0, static_cast<int64_t>(row), 1)
                           : output);
    }
    try {
      item->status = Postprocess(*item->request, slices, item->response);
    } catch (const c10::Error& e) {
      item->status =
          absl::InternalError(absl::StrCat("postprocessing failed: ", e.what_without_backtrace()));
    }
    item->postprocess_seconds = Since(start);
  }
}

void ExecuteModel::RunBatch(const std::vector<WorkItem*>& items) {
  for (WorkItem* item : items) {
    if (item->cancelled && item->cancelled()) {
      item->status = absl::CancelledError("the caller cancelled the request");
      continue;
    }
    const auto start = Clock::now();
    item->status = Execute(*item);
    // An instance that splits its own phases (pre/post-processing around several passes) has
    // set them; otherwise the whole call counts as inference.
    if (item->preprocess_seconds == 0 && item->inference_seconds == 0 &&
        item->postprocess_seconds == 0) {
      item->inference_seconds = Since(start);
    }
  }
}

}  // namespace imginterp::service
