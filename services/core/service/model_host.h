// Loads every model of a family (built-in or from the repository), runs each loaded version
// behind its own dynamic batcher and executor thread, and answers which models are ready.
// Both the gRPC paths and the NATS worker submit work here, so they batch together and are
// measured by the same metrics.
//
// Thread-safe. Reload swaps a model's loaded version atomically: requests already queued on
// the old version finish there, new ones go to the new version, nothing is dropped.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "imginterp/v1/common.pb.h"
#include "services/core/service/family_handler.h"

namespace imginterp::metrics {
class ServingMetrics;
}
namespace imginterp::model {
class ModelRepository;
}

namespace imginterp::service {

struct ModelHostOptions {
  // Root of this family's model repository ("" when the family only has built-in models).
  std::string repository_root;
  // Defaults for models whose config leaves batching unset.
  int default_max_queue_size = 64;
  bool use_cuda_if_available = true;
};

// One call to run: the request is borrowed until `done` is called (exactly once, on any
// thread).
struct Submission {
  std::string model;
  int64_t version = 0;
  const google::protobuf::Message* request = nullptr;
  google::protobuf::Message* response = nullptr;
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  std::function<bool()> cancelled;
  std::function<void(int step, int total)> progress;
  // Receives the final status and the version that ran (0 if none did).
  std::function<void(const absl::Status& status, int64_t version)> done;
};

class ModelHost {
 public:
  // `handler` and `metrics` must outlive the host.
  static absl::StatusOr<std::unique_ptr<ModelHost>> Create(const ModelHostOptions& options,
                                                           const FamilyHandler& handler,
                                                           metrics::ServingMetrics& metrics);
  ~ModelHost();
  ModelHost(const ModelHost&) = delete;
  ModelHost& operator=(const ModelHost&) = delete;

  // Loads and warms up every model (blocking). A model that fails to load is marked
  // UNAVAILABLE with the reason and the others still serve. Returns OK if at least one model
  // is ready, FAILED_PRECONDITION listing the reasons otherwise.
  absl::Status LoadAll();
  // Re-reads the repository and loads new versions (and new models) without dropping traffic.
  absl::Status Reload();
  // Runs the submission; `done` reports NOT_FOUND (unknown model or version), UNAVAILABLE
  // (model not ready), RESOURCE_EXHAUSTED (queue full), DEADLINE_EXCEEDED, CANCELLED or the
  // model's own status.
  void Submit(Submission submission);
  // Ready models plus the ones that failed, by name.
  std::vector<v1::ModelInfo> ListModels() const;
  // The model a request without a name goes to ("" if none is ready).
  std::string DefaultModel() const;
  // NOT_FOUND / UNAVAILABLE as for Submit; OK if the model (version) can serve now.
  absl::Status CheckReady(const std::string& model, int64_t version) const;
  bool AnyReady() const;
  // Stops every batcher after draining its queue.
  void Stop();

 private:
  struct LoadedModel;
  struct Slot;
  ModelHost(const ModelHostOptions& options, const FamilyHandler& handler,
            metrics::ServingMetrics& metrics);
  absl::Status LoadInto(Slot& slot, const v1::ModelConfig& config, int64_t version,
                        const std::string& version_dir);
  absl::StatusOr<std::shared_ptr<LoadedModel>> Find(const std::string& model,
                                                    int64_t version) const;

  const ModelHostOptions options_;
  const FamilyHandler& handler_;
  metrics::ServingMetrics& metrics_;
  std::unique_ptr<model::ModelRepository> repository_;

  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<Slot>> slots_;  // guarded by mu_ (the map, not slots)
};

}  // namespace imginterp::service
