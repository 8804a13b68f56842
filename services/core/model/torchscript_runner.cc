#include "services/core/model/torchscript_runner.h"

#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/script.h>

#include <exception>
#include <filesystem>
#include <new>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace imginterp::model {
namespace {

// The part of a LibTorch error a user can act on. A c10::Error's first line is its message, but
// an op failing inside a scripted model is reported as "The following operation failed in the
// TorchScript interpreter." followed by the TorchScript traceback and, last, the op's own
// "RuntimeError: <message>" line; that last line is the useful one.
std::string Reason(const std::string& what) {
  std::vector<absl::string_view> lines = absl::StrSplit(what, '\n', absl::SkipWhitespace());
  if (lines.empty()) return "unknown error";
  if (absl::StartsWith(lines.front(), "The following operation failed in the TorchScript")) {
    for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
      absl::string_view line = absl::StripAsciiWhitespace(*it);
      if (absl::ConsumePrefix(&line, "RuntimeError: ")) return std::string(line);
    }
    return std::string(absl::StripAsciiWhitespace(lines.back()));
  }
  return std::string(absl::StripAsciiWhitespace(lines.front()));
}

std::string Reason(const c10::Error& error) { return Reason(error.what_without_backtrace()); }

// Appends the tensors of `value` depth-first to `out`.
absl::Status Flatten(const c10::IValue& value, std::vector<at::Tensor>* out) {
  if (value.isTensor()) {
    out->push_back(value.toTensor().to(at::kCPU));
  } else if (value.isTuple()) {
    for (const c10::IValue& element : value.toTupleRef().elements()) {
      if (absl::Status status = Flatten(element, out); !status.ok()) return status;
    }
  } else if (value.isTensorList()) {
    for (const at::Tensor& tensor : value.toTensorVector()) out->push_back(tensor.to(at::kCPU));
  } else if (value.isList()) {
    for (const c10::IValue& element : value.toListRef()) {
      if (absl::Status status = Flatten(element, out); !status.ok()) return status;
    }
  } else if (value.isGenericDict()) {
    for (const auto& entry : value.toGenericDict()) {
      if (absl::Status status = Flatten(entry.value(), out); !status.ok()) return status;
    }
  } else {
    return absl::FailedPreconditionError(
        absl::StrCat("the model returned a ", value.tagKind(),
                     "; only tensors, and tuples, lists or dicts of tensors, are supported"));
  }
  return absl::OkStatus();
}

}  // namespace

struct TorchScriptRunner::Impl {
  torch::jit::Module module;
  c10::Device device = c10::Device(c10::kCPU);
  TorchScriptOptions options;
};

TorchScriptRunner::TorchScriptRunner(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

TorchScriptRunner::~TorchScriptRunner() = default;

absl::StatusOr<std::unique_ptr<TorchScriptRunner>> TorchScriptRunner::Load(
    const std::string& path, const TorchScriptOptions& options) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status)) {
    return absl::NotFoundError(absl::StrCat("TorchScript model ", path, " does not exist"));
  }
  if (!std::filesystem::is_regular_file(status)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is not a TorchScript archive: it is not a regular file"));
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  try {
    if (options.use_cuda_if_available && torch::cuda::is_available()) {
      impl->device = c10::Device(c10::kCUDA, 0);
    }
    impl->module = torch::jit::load(path, impl->device);
    impl->module.eval();
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is not a TorchScript archive: ", Reason(e)));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is not a TorchScript archive: ", Reason(e.what())));
  }
  return std::unique_ptr<TorchScriptRunner>(new TorchScriptRunner(std::move(impl)));
}

absl::StatusOr<std::vector<at::Tensor>> TorchScriptRunner::Forward(
    const std::vector<at::Tensor>& inputs) {
  const int threads = impl_->options.intra_op_threads;
  if (threads > 0 && at::get_num_threads() != threads) at::set_num_threads(threads);
  std::vector<at::Tensor> outputs;
  try {
    c10::InferenceMode inference_mode;
    std::vector<c10::IValue> arguments;
    arguments.reserve(inputs.size());
    for (const at::Tensor& input : inputs) arguments.emplace_back(input.to(impl_->device));
    const c10::IValue result = impl_->module.forward(std::move(arguments));
    if (absl::Status status = Flatten(result, &outputs); !status.ok()) return status;
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(absl::StrCat("the model rejected its inputs: ", Reason(e)));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat("out of memory running the model on ",
                                                     device(), " with ", inputs.size(), " inputs"));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("the model rejected its inputs: ", Reason(e.what())));
  }
  return outputs;
}

std::string TorchScriptRunner::device() const { return impl_->device.str(); }

}  // namespace imginterp::model
