// The seam between the serving core and a model family. A family supplies its typed request
// and response messages and, per model version, a ModelInstance; the core does everything
// else: loading, device placement, batching, deadlines, metrics, KServe v2, the NATS worker and
// error mapping. See ../../../../shared/STYLE.md ("a model service is a handler plus a config").
#pragma once

#include <ATen/core/Tensor.h>

#include <any>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/message.h"
#include "imginterp/v1/model_config.pb.h"
#include "services/core/model/model_runner.h"

namespace inference {
class ModelInferRequest;
class ModelInferResponse;
class ModelMetadataResponse;
}  // namespace inference

namespace imginterp::metrics {
class ServingMetrics;
}

namespace imginterp::service {

// One request inside a batch. The core owns it; a ModelInstance fills `response` and sets
// `status` for each item it is given.
struct WorkItem {
  const google::protobuf::Message* request = nullptr;
  google::protobuf::Message* response = nullptr;
  absl::Status status;
  // True once the caller has gone (client cancelled, job cancelled): stop early if long.
  std::function<bool()> cancelled;
  // Reports progress of long work (step of total).
  std::function<void(int step, int total)> progress;
  // Seconds spent per phase, filled by the instance (TensorModel does it itself).
  double preprocess_seconds = 0;
  double inference_seconds = 0;
  double postprocess_seconds = 0;
};

// One loaded model version. Externally synchronized: only its executor thread calls it.
class ModelInstance {
 public:
  virtual ~ModelInstance() = default;
  // Called once after creation, before the model is marked ready.
  virtual absl::Status Warmup() { return absl::OkStatus(); }
  // Runs 1..max_batch_size items; must set every item's status (OK or an error).
  virtual void RunBatch(const std::vector<WorkItem*>& items) = 0;
};

// For families whose work is one forward pass of a TorchScript model: the core batches the
// preprocessed inputs along dim 0, runs the model once and hands each item its slice.
class TensorModel : public ModelInstance {
 public:
  explicit TensorModel(std::unique_ptr<model::ModelRunner> runner);
  ~TensorModel() override;
  void RunBatch(const std::vector<WorkItem*>& items) final;

 protected:
  // Tensors for one request, each with a leading batch dimension of 1. Errors fail only this
  // request (INVALID_ARGUMENT for bad input).
  virtual absl::StatusOr<std::vector<at::Tensor>> Preprocess(
      const google::protobuf::Message& request) = 0;
  // `outputs` are this request's slices (leading dimension 1).
  virtual absl::Status Postprocess(const google::protobuf::Message& request,
                                   const std::vector<at::Tensor>& outputs,
                                   google::protobuf::Message* response) = 0;
  model::ModelRunner& runner() { return *runner_; }
  // What Preprocess worked out for a request and Postprocess needs again (the letterbox of the
  // image, say). Kept for the current batch only: RunBatch forgets it when the batch ends,
  // whether the forward pass succeeded or not. Null when Preprocess stored nothing.
  void SetRequestState(const google::protobuf::Message& request, std::any state) {
    request_states_[&request] = std::move(state);
  }
  const std::any* RequestState(const google::protobuf::Message& request) const {
    auto it = request_states_.find(&request);
    return it == request_states_.end() ? nullptr : &it->second;
  }

 private:
  std::unique_ptr<model::ModelRunner> runner_;
  std::unordered_map<const google::protobuf::Message*, std::any> request_states_;
};

// For families whose work is not a single batched forward pass (classical maps, loops, tiles).
class ExecuteModel : public ModelInstance {
 public:
  void RunBatch(const std::vector<WorkItem*>& items) final;

 protected:
  virtual absl::Status Execute(WorkItem& item) = 0;
};

// What CreateInstance is told about the model version to make.
struct ModelLoadInfo {
  std::string name;
  int64_t version = 1;
  v1::ModelConfig config;
  // Folder of this version ("" for builtin models).
  std::string version_dir;
  // Labels from config.labels_file, if any.
  std::vector<std::string> labels;
  // The service's metrics, for a family's own metric families (ServingMetrics::SetFamilyGauge,
  // ObserveFamilyHistogram). Outlives the instance; null in tests that build instances directly.
  metrics::ServingMetrics* metrics = nullptr;
};

// A model family: stateless apart from its configuration; thread-safe.
class FamilyHandler {
 public:
  virtual ~FamilyHandler() = default;
  // Subject suffix, metric label and binary name part: "edges" -> imginterp-edges.
  virtual std::string family() const = 0;
  // One paragraph for --help.
  virtual std::string description() const = 0;
  // Default instances of the typed request and response (the request has fields
  // `ModelId model` and `Image image`).
  virtual const google::protobuf::Message& request_prototype() const = 0;
  virtual const google::protobuf::Message& response_prototype() const = 0;
  // The request types the family takes from the job bus, each with its response type. Default:
  // request_prototype() answered by response_prototype(). A family with several typed methods
  // (clip: Score, Rank, Embed) lists them all; its ModelInstance tells them apart by type.
  struct BusMethod {
    const google::protobuf::Message* request;
    const google::protobuf::Message* response;
  };
  virtual std::vector<BusMethod> BusMethods() const {
    return {{&request_prototype(), &response_prototype()}};
  }
  // Models built into the service (no repository), with their configuration.
  virtual std::vector<v1::ModelConfig> BuiltinModels() const { return {}; }
  // Whether the service needs a model repository (torchscript models).
  virtual bool uses_repository() const { return false; }
  // Model used when a request names none ("": the first ready model, in name order).
  virtual std::string default_model() const { return ""; }
  // Makes one instance of a model version; `runner` is the loaded TorchScript model for
  // "torchscript" backends and null for builtin ones.
  virtual absl::StatusOr<std::unique_ptr<ModelInstance>> CreateInstance(
      const ModelLoadInfo& info, std::unique_ptr<model::ModelRunner> runner) const = 0;

  // KServe v2: the typed response as output tensors. The request side is generic (an "image"
  // BYTES tensor plus parameters named after request fields, e.g. "top_k" or
  // "canny.low_threshold").
  virtual absl::Status ToKServe(const google::protobuf::Message& response,
                                inference::ModelInferResponse* out) const = 0;
  // KServe v2 metadata: the outputs ToKServe produces.
  virtual void DescribeKServeOutputs(inference::ModelMetadataResponse* metadata) const = 0;
  // KServe v2 metadata: the inputs KServeToTypedRequest reads. Default: one BYTES "image".
  virtual void DescribeKServeInputs(inference::ModelMetadataResponse* metadata) const;
};

}  // namespace imginterp::service
