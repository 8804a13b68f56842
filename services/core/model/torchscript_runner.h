// ModelRunner for TorchScript archives (model.pt written by torch.jit.save).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/core/model/model_runner.h"

namespace imginterp::model {

struct TorchScriptOptions {
  // Intra-op threads; Forward calls at::set_num_threads on the calling thread before a pass if the
  // current count differs. 0 or less leaves the count alone.
  int intra_op_threads = 1;
  // Run on CUDA device 0 when torch::cuda::is_available() at load time, else on the CPU.
  bool use_cuda_if_available = true;
};

// Externally synchronized (see ModelRunner): one executor thread calls Forward.
class TorchScriptRunner final : public ModelRunner {
 public:
  // Loads `path` onto the chosen device in eval mode.
  // NOT_FOUND if the file does not exist; INVALID_ARGUMENT "<path> is not a TorchScript archive:
  // <reason>" if LibTorch cannot load it.
  static absl::StatusOr<std::unique_ptr<TorchScriptRunner>> Load(const std::string& path,
                                                                 const TorchScriptOptions& options);
  ~TorchScriptRunner() override;

  // Runs the module's forward() under c10::InferenceMode. Inputs are moved to the device and
  // outputs back to the CPU. INVALID_ARGUMENT with the model's message when it rejects the inputs
  // (for example a shape mismatch); FAILED_PRECONDITION when the model returns something other
  // than tensors (in tuples, lists or dicts).
  absl::StatusOr<std::vector<at::Tensor>> Forward(const std::vector<at::Tensor>& inputs) override;

  std::string device() const override;

 private:
  struct Impl;
  explicit TorchScriptRunner(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
};

}  // namespace imginterp::model
