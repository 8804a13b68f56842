#include "services/core/service/model_host.h"

#include <torch/types.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "services/core/common/logging.h"
#include "services/core/common/status_macros.h"
#include "services/core/metrics/serving_metrics.h"
#include "services/core/model/model_repository.h"
#include "services/core/model/torchscript_runner.h"
#include "services/core/runtime/dynamic_batcher.h"
#include "services/core/service/proto_fields.h"

namespace imginterp::service {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// A dtype for warm-up tensors, from the config's TensorSpec.
torch::Dtype ToTorchDtype(v1::DataType dtype) {
  switch (dtype) {
    case v1::DATA_TYPE_INT32:
      return torch::kInt32;
    case v1::DATA_TYPE_INT64:
      return torch::kInt64;
    case v1::DATA_TYPE_UINT8:
      return torch::kUInt8;
    case v1::DATA_TYPE_FLOAT64:
      return torch::kFloat64;
    default:
      return torch::kFloat32;
  }
}

// One forward pass on zeros shaped like the config's inputs (variable dimensions as 1), so the
// first real request does not pay for lazy initialisation.
absl::Status WarmupRunner(model::ModelRunner& runner, const v1::ModelConfig& config) {
  if (config.inputs().empty()) return absl::OkStatus();
  std::vector<at::Tensor> inputs;
  for (const v1::TensorSpec& spec : config.inputs()) {
    std::vector<int64_t> shape;
    for (int64_t d : spec.shape()) shape.push_back(d < 0 ? 1 : d);
    inputs.push_back(torch::zeros(shape, torch::TensorOptions().dtype(ToTorchDtype(spec.dtype()))));
  }
  auto outputs = runner.Forward(inputs);
  if (!outputs.ok()) {
    return absl::Status(outputs.status().code(),
                        absl::StrCat("warm-up of model '", config.name(),
                                     "' with zeros shaped like config.pbtxt's inputs failed: ",
                                     outputs.status().message()));
  }
  return absl::OkStatus();
}

}  // namespace

struct ModelHost::LoadedModel {
  std::string name;
  int64_t version = 0;
  std::string version_label;
  v1::ModelConfig config;
  std::unique_ptr<ModelInstance> instance;
  // Declared last so it is destroyed first: its Stop() drains queued work into `instance`.
  std::unique_ptr<runtime::DynamicBatcher> batcher;
  ~LoadedModel() {
    if (batcher != nullptr) batcher->Stop();
  }
};

struct ModelHost::Slot {
  std::string name;
  mutable std::mutex mu_;
  std::shared_ptr<LoadedModel> current;            // guarded by mu_
  v1::ModelConfig config;                          // guarded by mu_
  std::vector<int64_t> versions;                   // guarded by mu_
  v1::ModelState state = v1::MODEL_STATE_LOADING;  // guarded by mu_
  std::string reason;                              // guarded by mu_
};

namespace {

// A submission waiting in a model's batcher.
class HostTask final : public runtime::BatchTask {
 public:
  HostTask(Submission submission, std::string model, int64_t version, std::string version_label,
           metrics::ServingMetrics& metrics)
      : submission_(std::move(submission)),
        model_(std::move(model)),
        version_(version),
        version_label_(std::move(version_label)),
        metrics_(metrics) {}

  void Fail(const absl::Status& status) override { Complete(status); }
  bool IsCancelled() const override {
    return submission_.cancelled != nullptr && submission_.cancelled();
  }

  Submission& submission() { return submission_; }

  void Complete(const absl::Status& status) {
    metrics_.RecordRequest(model_, version_label_, status.code(),
                           std::chrono::duration<double>(Clock::now() - enqueued_at).count());
    metrics_.AddInFlight(model_, version_label_, -1);
    if (submission_.done) submission_.done(status, version_);
  }

 private:
  Submission submission_;
  std::string model_;
  int64_t version_;
  std::string version_label_;
  metrics::ServingMetrics& metrics_;
};

}  // namespace

ModelHost::ModelHost(const ModelHostOptions& options, const FamilyHandler& handler,
                     metrics::ServingMetrics& metrics)
    : options_(options), handler_(handler), metrics_(metrics) {}

ModelHost::~ModelHost() { Stop(); }

absl::StatusOr<std::unique_ptr<ModelHost>> ModelHost::Create(const ModelHostOptions& options,
                                                             const FamilyHandler& handler,
                                                             metrics::ServingMetrics& metrics) {
  std::unique_ptr<ModelHost> host(new ModelHost(options, handler, metrics));
  if (handler.uses_repository()) {
    if (options.repository_root.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the ", handler.family(), " service needs a model repository: set --model_repository"));
    }
    IMGINTERP_ASSIGN_OR_RETURN(host->repository_,
                               model::ModelRepository::Create({options.repository_root}));
  }
  return host;
}

absl::Status ModelHost::LoadInto(Slot& slot, const v1::ModelConfig& config, int64_t version,
                                 const std::string& version_dir) {
  const auto start = Clock::now();
  ModelLoadInfo info;
  info.name = config.name();
  info.version = version;
  info.config = config;
  info.version_dir = version_dir;
  info.metrics = &metrics_;
  // Before the handler loads: it may already record family metrics, which carry the backend.
  metrics_.SetModelBackend(config.name(), std::to_string(version), config.backend());
  std::unique_ptr<model::ModelRunner> runner;
  if (config.backend() == "torchscript") {
    model::TorchScriptOptions runner_options;
    runner_options.intra_op_threads = std::max(1, config.intra_op_threads());
    runner_options.use_cuda_if_available = options_.use_cuda_if_available;
    IMGINTERP_ASSIGN_OR_RETURN(
        runner, model::TorchScriptRunner::Load(version_dir + "/model.pt", runner_options));
    IMGINTERP_RETURN_IF_ERROR(WarmupRunner(*runner, config));
  }
  if (repository_ != nullptr && !config.labels_file().empty()) {
    IMGINTERP_ASSIGN_OR_RETURN(model::ModelVersion resolved,
                               repository_->Resolve(config.name(), version));
    IMGINTERP_ASSIGN_OR_RETURN(info.labels, repository_->ReadLabels(resolved));
  }
  IMGINTERP_ASSIGN_OR_RETURN(std::unique_ptr<ModelInstance> instance,
                             handler_.CreateInstance(info, std::move(runner)));
  IMGINTERP_RETURN_IF_ERROR(instance->Warmup());

  auto loaded = std::make_shared<LoadedModel>();
  loaded->name = config.name();
  loaded->version = version;
  loaded->version_label = std::to_string(version);
  loaded->config = config;
  loaded->instance = std::move(instance);
  runtime::BatcherOptions batcher_options;
  batcher_options.name = config.name();
  batcher_options.max_batch_size = std::max(1, config.max_batch_size());
  batcher_options.max_queue_delay_us = config.max_queue_delay_us();
  batcher_options.max_queue_size =
      config.max_queue_size() > 0 ? config.max_queue_size() : options_.default_max_queue_size;
  LoadedModel* raw = loaded.get();
  metrics::ServingMetrics* metrics = &metrics_;
  auto execute = [raw, metrics](std::vector<std::unique_ptr<runtime::BatchTask>> batch) {
    const auto batch_start = Clock::now();
    std::vector<WorkItem> items(batch.size());
    std::vector<WorkItem*> pointers;
    for (size_t i = 0; i < batch.size(); ++i) {
      auto& submission = static_cast<HostTask*>(batch[i].get())->submission();
      items[i].request = submission.request;
      items[i].response = submission.response;
      items[i].cancelled = submission.cancelled;
      items[i].progress = submission.progress;
      pointers.push_back(&items[i]);
      metrics->RecordPhase(
          raw->name, raw->version_label, metrics::Phase::kQueue,
          std::chrono::duration<double>(batch_start - batch[i]->enqueued_at).count());
    }
    metrics->RecordBatch(raw->name, raw->version_label, static_cast<int>(batch.size()));
    try {
      raw->instance->RunBatch(pointers);
    } catch (const std::exception& e) {
      for (WorkItem& item : items) {
        item.status =
            absl::InternalError(absl::StrCat("model '", raw->name, "' failed: ", e.what()));
      }
    }
    for (size_t i = 0; i < batch.size(); ++i) {
      metrics->RecordPhase(raw->name, raw->version_label, metrics::Phase::kPreprocess,
                           items[i].preprocess_seconds);
      metrics->RecordPhase(raw->name, raw->version_label, metrics::Phase::kInference,
                           items[i].inference_seconds);
      metrics->RecordPhase(raw->name, raw->version_label, metrics::Phase::kPostprocess,
                           items[i].postprocess_seconds);
      // Every answer names the model and version that produced it.
      if (items[i].status.ok()) SetModelRef(items[i].response, {raw->name, raw->version});
      static_cast<HostTask*>(batch[i].get())->Complete(items[i].status);
    }
  };
  IMGINTERP_ASSIGN_OR_RETURN(loaded->batcher,
                             runtime::DynamicBatcher::Create(batcher_options, execute));
  const double seconds = SecondsSince(start);
  metrics_.SetModelLoadSeconds(config.name(), loaded->version_label, seconds);
  IMGINTERP_LOG(Info) << handler_.family() << ": model '" << config.name() << "' version "
                      << version << " ready in " << seconds << " s (max_batch_size "
                      << batcher_options.max_batch_size << ")";
  std::shared_ptr<LoadedModel> previous;
  {
    std::lock_guard<std::mutex> lock(slot.mu_);
    previous = std::move(slot.current);
    slot.current = std::move(loaded);
    slot.config = config;
    slot.state = v1::MODEL_STATE_READY;
    slot.reason.clear();
  }
  // `previous` drains its queue here, outside the slot's lock.
  return absl::OkStatus();
}

absl::Status ModelHost::LoadAll() {
  std::vector<std::string> failures;
  auto slot_for = [&](const std::string& name) -> Slot& {
    std::lock_guard<std::mutex> lock(mu_);
    auto& slot = slots_[name];
    if (slot == nullptr) {
      slot = std::make_unique<Slot>();
      slot->name = name;
    }
    return *slot;
  };
  auto mark_failed = [&](Slot& slot, const absl::Status& status) {
    IMGINTERP_LOG(Error) << handler_.family() << ": model '" << slot.name
                         << "' is unavailable: " << status.message();
    failures.push_back(absl::StrCat(slot.name, ": ", status.message()));
    std::lock_guard<std::mutex> lock(slot.mu_);
    if (slot.current == nullptr) {
      slot.state = v1::MODEL_STATE_UNAVAILABLE;
      slot.reason = std::string(status.message());
    }
  };
  for (const v1::ModelConfig& config : handler_.BuiltinModels()) {
    Slot& slot = slot_for(config.name());
    {
      std::lock_guard<std::mutex> lock(slot.mu_);
      slot.versions = {1};
    }
    if (auto s = LoadInto(slot, config, 1, ""); !s.ok()) mark_failed(slot, s);
  }
  if (repository_ != nullptr) {
    IMGINTERP_ASSIGN_OR_RETURN(std::vector<std::string> names, repository_->ListModels());
    if (names.empty()) {
      failures.push_back(absl::StrCat("the model repository ", repository_->root(),
                                      " holds no model (expected <model>/config.pbtxt)"));
    }
    for (const std::string& name : names) {
      Slot& slot = slot_for(name);
      auto resolved = repository_->Resolve(name, 0);
      if (!resolved.ok()) {
        mark_failed(slot, resolved.status());
        continue;
      }
      {
        std::lock_guard<std::mutex> lock(slot.mu_);
        slot.versions = resolved->available_versions;
        slot.config = resolved->config;
      }
      if (auto s = LoadInto(slot, resolved->config, resolved->version, resolved->version_dir);
          !s.ok()) {
        mark_failed(slot, s);
      }
    }
  }
  if (!AnyReady()) {
    return absl::FailedPreconditionError(
        absl::StrCat("no model of the ", handler_.family(),
                     " service could be loaded: ", absl::StrJoin(failures, "; ")));
  }
  return absl::OkStatus();
}

absl::Status ModelHost::Reload() {
  if (repository_ == nullptr) return absl::OkStatus();
  IMGINTERP_ASSIGN_OR_RETURN(std::vector<std::string> names, repository_->ListModels());
  absl::Status first_error;
  for (const std::string& name : names) {
    Slot* slot;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto& entry = slots_[name];
      if (entry == nullptr) {
        entry = std::make_unique<Slot>();
        entry->name = name;
      }
      slot = entry.get();
    }
    auto resolved = repository_->Resolve(name, 0);
    if (!resolved.ok()) {
      if (first_error.ok()) first_error = resolved.status();
      continue;
    }
    int64_t serving = 0;
    {
      std::lock_guard<std::mutex> lock(slot->mu_);
      slot->versions = resolved->available_versions;
      if (slot->current != nullptr) serving = slot->current->version;
    }
    if (serving == resolved->version) continue;
    IMGINTERP_LOG(Info) << handler_.family() << ": reloading '" << name << "' version " << serving
                        << " -> " << resolved->version;
    if (auto s = LoadInto(*slot, resolved->config, resolved->version, resolved->version_dir);
        !s.ok() && first_error.ok()) {
      first_error = s;
    }
  }
  return first_error;
}

absl::StatusOr<std::shared_ptr<ModelHost::LoadedModel>> ModelHost::Find(const std::string& model,
                                                                        int64_t version) const {
  const std::string name = model.empty() ? DefaultModel() : model;
  Slot* slot = nullptr;
  std::vector<std::string> names;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = slots_.find(name);
    if (it != slots_.end()) slot = it->second.get();
    for (const auto& [n, s] : slots_) names.push_back(n);
  }
  if (slot == nullptr) {
    if (name.empty()) {
      return absl::UnavailableError(
          absl::StrCat("the ", handler_.family(), " service has no ready model"));
    }
    return absl::NotFoundError(absl::StrCat("model '", name, "' is not served by the ",
                                            handler_.family(),
                                            " service (models: ", absl::StrJoin(names, ", "), ")"));
  }
  std::lock_guard<std::mutex> lock(slot->mu_);
  if (slot->current == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("model '", name, "' is not ready: ",
                     slot->state == v1::MODEL_STATE_LOADING ? "still loading" : slot->reason));
  }
  if (version != 0 && version != slot->current->version) {
    return absl::NotFoundError(absl::StrCat(
        "model '", name, "' version ", version, " is not loaded (serving version ",
        slot->current->version, "; in repository: ", absl::StrJoin(slot->versions, ", "), ")"));
  }
  return slot->current;
}

void ModelHost::Submit(Submission submission) {
  auto found = Find(submission.model, submission.version);
  if (!found.ok()) {
    metrics_.RecordRequest(submission.model.empty() ? "default" : submission.model, "0",
                           found.status().code(), 0.0);
    if (submission.done) submission.done(found.status(), 0);
    return;
  }
  std::shared_ptr<LoadedModel> loaded = *std::move(found);
  const auto deadline = submission.deadline;
  metrics_.AddInFlight(loaded->name, loaded->version_label, 1);
  auto task = std::make_unique<HostTask>(std::move(submission), loaded->name, loaded->version,
                                         loaded->version_label, metrics_);
  task->deadline = deadline;
  // A refusal is reported through the task's Fail, i.e. its `done`.
  loaded->batcher->Submit(std::move(task)).IgnoreError();
}

std::vector<v1::ModelInfo> ModelHost::ListModels() const {
  std::vector<v1::ModelInfo> out;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [name, slot] : slots_) {
    std::lock_guard<std::mutex> slot_lock(slot->mu_);
    v1::ModelInfo info;
    info.set_name(name);
    for (int64_t v : slot->versions) info.add_versions(v);
    info.set_serving_version(slot->current ? slot->current->version : 0);
    info.set_state(slot->state);
    info.set_state_reason(slot->reason);
    info.set_backend(slot->config.backend());
    *info.mutable_inputs() = slot->config.inputs();
    info.set_licence(slot->config.licence());
    info.set_source(slot->config.source());
    info.set_description(slot->config.description());
    out.push_back(std::move(info));
  }
  return out;
}

std::string ModelHost::DefaultModel() const {
  const std::string preferred = handler_.default_model();
  std::lock_guard<std::mutex> lock(mu_);
  if (!preferred.empty() && slots_.count(preferred) != 0) return preferred;
  for (const auto& [name, slot] : slots_) {
    std::lock_guard<std::mutex> slot_lock(slot->mu_);
    if (slot->current != nullptr) return name;
  }
  return "";
}

absl::Status ModelHost::CheckReady(const std::string& model, int64_t version) const {
  return Find(model, version).status();
}

bool ModelHost::AnyReady() const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [name, slot] : slots_) {
    std::lock_guard<std::mutex> slot_lock(slot->mu_);
    if (slot->current != nullptr) return true;
  }
  return false;
}

void ModelHost::Stop() {
  std::vector<std::shared_ptr<LoadedModel>> loaded;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [name, slot] : slots_) {
      std::lock_guard<std::mutex> slot_lock(slot->mu_);
      if (slot->current != nullptr) loaded.push_back(slot->current);
    }
  }
  for (auto& model : loaded) model->batcher->Stop();
}

}  // namespace imginterp::service
