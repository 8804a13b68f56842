// The seam between the runtime and a loaded model: tensors in, tensors out.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace at {
class Tensor;
}  // namespace at

namespace imginterp::model {

// Runs one loaded model. Implementations own the model's weights (and device memory), so they are
// neither copyable nor movable.
//
// Externally synchronized: one executor thread calls Forward; device() may be called from any
// thread.
class ModelRunner {
 public:
  ModelRunner() = default;
  ModelRunner(const ModelRunner&) = delete;
  ModelRunner& operator=(const ModelRunner&) = delete;
  virtual ~ModelRunner() = default;

  // One forward pass. Inputs are CPU tensors in the model's argument order; outputs are CPU
  // tensors, flattened depth-first from a tensor, tuple, list or dict (values in the dict's
  // iteration order, which for TorchScript is insertion order). INVALID_ARGUMENT when the model
  // rejects the inputs (wrong shape or dtype), naming the model's complaint.
  virtual absl::StatusOr<std::vector<at::Tensor>> Forward(
      const std::vector<at::Tensor>& inputs) = 0;

  // The device the model runs on: "cpu" or "cuda:0".
  virtual std::string device() const = 0;
};

}  // namespace imginterp::model
