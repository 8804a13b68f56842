#include "gateway/job_manager.h"

#include <algorithm>
#include <random>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "gateway/gateway_metrics.h"
#include "gateway/pipeline_registry.h"
#include "services/core/common/logging.h"
#include "services/core/common/status_macros.h"
#include "services/core/jobbus/artifact_store.h"
#include "services/core/jobbus/key_value.h"
#include "services/core/jobbus/task_queue.h"

namespace imginterp::gateway {
namespace {

int64_t ToMillis(absl::Duration duration) {
  return std::max<int64_t>(0, absl::ToInt64Milliseconds(duration));
}

const v1::StageRecord* FindStage(const v1::JobRecord& record, const std::string& name) {
  for (const v1::StageRecord& stage : record.stages()) {
    if (stage.name() == name) return &stage;
  }
  return nullptr;
}

std::string StageNames(const v1::JobRecord& record) {
  std::vector<std::string> names;
  for (const v1::StageRecord& stage : record.stages()) names.push_back(stage.name());
  return absl::StrJoin(names, ", ");
}

}  // namespace

std::string NewJobId() {
  thread_local std::mt19937_64 engine{std::random_device{}()};
  return absl::StrFormat("%016x%016x", engine(), engine());
}

JobManager::JobManager(const JobManagerOptions& options, const PipelineRegistry& pipelines,
                       jobbus::JobStore& jobs, jobbus::ArtifactStore& artifacts,
                       jobbus::KeyValue& idempotency, jobbus::TaskPublisher& publisher,
                       GatewayMetrics* metrics)
    : options_(options),
      pipelines_(pipelines),
      jobs_(jobs),
      artifacts_(artifacts),
      idempotency_(idempotency),
      publisher_(publisher),
      metrics_(metrics) {}

absl::StatusOr<std::unique_ptr<JobManager>> JobManager::Create(
    const JobManagerOptions& options, const PipelineRegistry& pipelines, jobbus::JobStore& jobs,
    jobbus::ArtifactStore& artifacts, jobbus::KeyValue& idempotency,
    jobbus::TaskPublisher& publisher, GatewayMetrics* metrics) {
  if (options.max_image_bytes <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_image_bytes is ", options.max_image_bytes, "; it must be > 0"));
  }
  if (options.default_start_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("the default stage start timeout must be > 0");
  }
  if (options.tick_interval <= absl::ZeroDuration() ||
      options.poll_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("tick_interval and poll_interval must be > 0");
  }
  return std::unique_ptr<JobManager>(
      new JobManager(options, pipelines, jobs, artifacts, idempotency, publisher, metrics));
}

JobManager::~JobManager() { Stop(); }

absl::Status JobManager::Start() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (started_) return absl::FailedPreconditionError("the job manager is already started");
    started_ = true;
  }
  // Watch before listing so that no change between the two is missed.
  IMGINTERP_ASSIGN_OR_RETURN(watcher_, jobs_.Watch("", /*updates_only=*/true));
  IMGINTERP_ASSIGN_OR_RETURN(std::vector<jobbus::VersionedRecord> existing, jobs_.List());
  int recovered = 0;
  for (const jobbus::VersionedRecord& versioned : existing) {
    if (IsTerminal(versioned.record.state())) continue;
    common::ScopedTraceId trace(versioned.record.trace_id());
    Track(versioned.record.job_id(), &versioned.record);
    absl::StatusOr<jobbus::VersionedRecord> advanced = Advance(versioned.record.job_id());
    if (!advanced.ok()) {
      IMGINTERP_LOG(Warning) << "recovering job " << versioned.record.job_id() << ": "
                             << advanced.status();
      continue;
    }
    // Tasks queued before a restart may never have been published; the duplicate window
    // makes publishing them again harmless.
    std::vector<std::string> queued;
    for (const v1::StageRecord& stage : advanced->record.stages()) {
      if (stage.state() == v1::STAGE_STATE_QUEUED) queued.push_back(stage.name());
    }
    PublishStages(advanced->record, queued);
    ++recovered;
  }
  IMGINTERP_LOG(Info) << "job manager started; recovered " << recovered << " unfinished jobs";
  watch_thread_ = std::thread([this] { WatchLoop(); });
  tick_thread_ = std::thread([this] { TickLoop(); });
  return absl::OkStatus();
}

void JobManager::Stop() {
  if (stopping_.exchange(true)) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    tick_cv_.notify_all();
  }
  if (watcher_ != nullptr) watcher_->Stop();
  if (watch_thread_.joinable()) watch_thread_.join();
  if (tick_thread_.joinable()) tick_thread_.join();
}

absl::StatusOr<SubmitResult> JobManager::Submit(const v1::JobRequest& request,
                                                const std::string& idempotency_key,
                                                const std::string& trace_id) {
  IMGINTERP_ASSIGN_OR_RETURN(const v1::PipelineSpec* pipeline, pipelines_.Get(request.pipeline()));
  const bool uses_image = PipelineRegistry::UsesJobImage(*pipeline);
  if (request.image().data().empty() && uses_image) {
    return absl::InvalidArgumentError("job.image.data is empty: send the encoded image bytes");
  }
  // Checked before anything is stored: a bad parameter leaves no trace.
  IMGINTERP_ASSIGN_OR_RETURN(std::vector<v1::StageRecord> stages,
                             BuildStageRecords(*pipeline, request.parameters()));
  const int64_t image_bytes = static_cast<int64_t>(request.image().data().size());
  if (image_bytes > options_.max_image_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("job.image.data is ", image_bytes, " bytes; the limit is ",
                     options_.max_image_bytes, " bytes (--max_image_bytes)"));
  }

  SubmitResult result;
  result.job_id = NewJobId();
  std::string hashed_key;
  if (!idempotency_key.empty()) {
    hashed_key = jobbus::Sha256Hex(idempotency_key);
    absl::StatusOr<uint64_t> created = idempotency_.Create(hashed_key, result.job_id);
    if (absl::IsAlreadyExists(created.status())) {
      IMGINTERP_ASSIGN_OR_RETURN(jobbus::KvEntry existing, idempotency_.Get(hashed_key));
      IMGINTERP_LOG(Info) << "idempotency key matched job " << existing.value;
      return SubmitResult{existing.value, false};
    }
    IMGINTERP_RETURN_IF_ERROR(created.status());
  }
  // Undoes the idempotency key if the job cannot be created, so a retry can create it.
  auto release_key = [&](const absl::Status& status) {
    if (!hashed_key.empty()) {
      const absl::Status deleted = idempotency_.Delete(hashed_key);
      if (!deleted.ok()) {
        IMGINTERP_LOG(Warning) << "releasing idempotency key: " << deleted;
      }
    }
    return status;
  };

  const std::string content_type = request.image().media_type().empty()
                                       ? std::string("application/octet-stream")
                                       : request.image().media_type();
  absl::StatusOr<v1::ArtifactRef> input = v1::ArtifactRef();
  if (!request.image().data().empty()) {
    input = artifacts_.Put(result.job_id, "input", content_type, request.image().data());
    if (!input.ok()) return release_key(input.status());
  }

  const absl::Time now = absl::Now();
  v1::JobRecord record;
  record.set_job_id(result.job_id);
  record.set_pipeline(pipeline->name());
  record.set_state(v1::JOB_STATE_QUEUED);
  record.set_idempotency_key(hashed_key);
  record.set_trace_id(trace_id);
  if (!request.image().data().empty()) *record.mutable_input_image() = *std::move(input);
  ToTimestamp(now, record.mutable_created_at());
  ToTimestamp(now, record.mutable_updated_at());
  record.mutable_labels()->insert(request.labels().begin(), request.labels().end());
  record.mutable_parameters()->insert(request.parameters().begin(), request.parameters().end());
  for (v1::StageRecord& stage : stages) *record.add_stages() = std::move(stage);
  absl::StatusOr<uint64_t> created = jobs_.Create(record);
  if (!created.ok()) {
    const absl::Status removed = artifacts_.DeleteJob(result.job_id);
    if (!removed.ok()) {
      IMGINTERP_LOG(Warning) << "removing input artifact: " << removed;
    }
    return release_key(created.status());
  }
  result.created = true;
  IMGINTERP_LOG(Info) << "job " << result.job_id << " created: pipeline " << pipeline->name()
                      << ", " << pipeline->stages_size() << " stages, " << image_bytes
                      << " input bytes";
  // The job exists now: if this first advance fails, the watch loop advances it when it sees
  // the new record, so the caller still gets its id.
  const absl::Status advanced = Advance(result.job_id).status();
  if (!advanced.ok()) {
    IMGINTERP_LOG(Warning) << "advancing new job " << result.job_id << ": " << advanced;
  }
  return result;
}

absl::StatusOr<jobbus::VersionedRecord> JobManager::Advance(const std::string& job_id) {
  return MutateAndAdvance(job_id, nullptr);
}

absl::StatusOr<jobbus::VersionedRecord> JobManager::MutateAndAdvance(
    const std::string& job_id, const jobbus::JobStore::Mutation& extra) {
  // Mutate may run the function several times; the plan of the last run is the one written.
  AdvancePlan plan;
  IMGINTERP_ASSIGN_OR_RETURN(
      jobbus::VersionedRecord versioned,
      jobs_.Mutate(job_id, [&](v1::JobRecord& record) -> absl::StatusOr<bool> {
        // Read per attempt: a retried write must not stamp a time older than what it read.
        const absl::Time now = absl::Now();
        bool changed = false;
        if (extra) {
          IMGINTERP_ASSIGN_OR_RETURN(changed, extra(record));
        }
        plan = ComputeAdvance(record);
        return ApplyAdvance(plan, now, &record) || changed;
      }));
  if (!plan.changed) return versioned;
  const v1::JobRecord& record = versioned.record;
  if (plan.job_state != v1::JOB_STATE_UNSPECIFIED && IsTerminal(plan.job_state)) {
    IMGINTERP_LOG(Info) << "job " << job_id << " " << JobStateLabel(record.state())
                        << (record.error().message().empty() ? ""
                                                             : ": " + record.error().message());
    if (metrics_ != nullptr) metrics_->JobFinished(record);
  }
  if (!plan.stages_to_queue.empty()) PublishStages(record, plan.stages_to_queue);
  return versioned;
}

void JobManager::PublishStages(const v1::JobRecord& record,
                               const std::vector<std::string>& stages) {
  for (const std::string& name : stages) {
    const v1::StageRecord* stage = FindStage(record, name);
    if (stage == nullptr) continue;
    v1::StageTask task;
    task.set_job_id(record.job_id());
    task.set_stage(stage->name());
    task.set_family(stage->family());
    *task.mutable_request() = stage->request();
    absl::Status published = AddInputImages(record, *stage, &task);
    std::string message;
    if (published.ok()) {
      task.set_trace_id(record.trace_id());
      ToTimestamp(absl::Now(), task.mutable_published_at());
      published = publisher_.Publish(task);
      if (published.ok()) {
        IMGINTERP_LOG(Debug) << "published stage " << name << " of job " << record.job_id()
                             << " to family " << stage->family();
        continue;
      }
      message = absl::StrCat("the gateway could not publish stage '", name,
                             "' to NATS: ", published.message());
    } else {
      message =
          absl::StrCat("stage '", name, "' could not get its input images: ", published.message());
    }
    IMGINTERP_LOG(Error) << "publishing stage " << name << " of job " << record.job_id() << ": "
                         << published;
    const std::string code = absl::StatusCodeToString(published.code());
    const absl::Status failed =
        MutateAndAdvance(record.job_id(), [&](v1::JobRecord& current) -> absl::StatusOr<bool> {
          for (v1::StageRecord& candidate : *current.mutable_stages()) {
            if (candidate.name() != name || candidate.state() != v1::STAGE_STATE_QUEUED) {
              continue;
            }
            candidate.set_state(v1::STAGE_STATE_FAILED);
            candidate.mutable_error()->set_code(code);
            candidate.mutable_error()->set_message(message);
            ToTimestamp(absl::Now(), candidate.mutable_finished_at());
            return true;
          }
          return false;
        }).status();
    if (!failed.ok()) {
      IMGINTERP_LOG(Error) << "recording the publish failure: " << failed;
    }
  }
}

absl::Status JobManager::AddInputImages(const v1::JobRecord& record, const v1::StageRecord& stage,
                                        v1::StageTask* task) {
  if (stage.inputs().empty() && stage.image_from().empty()) {
    *task->mutable_image() = record.input_image();
    return absl::OkStatus();
  }
  // Images from earlier results become artifacts of their own, "input-<stage>-<n>" (stage names
  // are KV tokens), so no task message carries image bytes past the server's max_payload.
  int stored = 0;
  auto from_result = [&](const std::string& from) -> absl::StatusOr<std::vector<v1::ArtifactRef>> {
    IMGINTERP_ASSIGN_OR_RETURN(InputSource source, ParseInputSource(from));
    const v1::StageRecord* producer = FindStage(record, source.stage);
    if (producer == nullptr || producer->state() != v1::STAGE_STATE_SUCCEEDED) {
      return absl::FailedPreconditionError(
          absl::StrCat("stage '", source.stage, "' has no result in this job"));
    }
    IMGINTERP_ASSIGN_OR_RETURN(std::string result,
                               FetchArtifact(record.job_id(), producer->result()));
    IMGINTERP_ASSIGN_OR_RETURN(
        std::vector<std::string> images,
        ExtractImages(producer->result().content_type(), result, source.field_path));
    std::vector<v1::ArtifactRef> refs;
    for (const std::string& image : images) {
      IMGINTERP_ASSIGN_OR_RETURN(
          v1::ArtifactRef ref,
          artifacts_.Put(record.job_id(), absl::StrCat("input-", stage.name(), "-", stored++),
                         "application/octet-stream", image));
      refs.push_back(std::move(ref));
    }
    return refs;
  };
  // Errors name the input as the pipeline file spells it.
  auto named = [](const char* what, const std::string& from, const absl::Status& status) {
    return absl::Status(status.code(), absl::StrCat(what, " '", from, "': ", status.message()));
  };
  if (!stage.image_from().empty()) {
    absl::StatusOr<std::vector<v1::ArtifactRef>> refs = from_result(stage.image_from());
    if (!refs.ok()) return named("image_from", stage.image_from(), refs.status());
    if (refs->size() != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("image_from '", stage.image_from(), "' gives ", refs->size(),
                       " images; it takes one (inputs can take several)"));
    }
    *task->mutable_image() = std::move(refs->front());
    return absl::OkStatus();
  }
  for (const v1::StageInput& input : stage.inputs()) {
    if (input.from() == "job.image") {
      if (!record.has_input_image()) {
        return absl::FailedPreconditionError("the job has no input image");
      }
      v1::TaskImage* image = task->add_images();
      image->set_to(input.to());
      *image->mutable_image() = record.input_image();
      continue;
    }
    absl::StatusOr<std::vector<v1::ArtifactRef>> refs = from_result(input.from());
    if (!refs.ok()) return named("input", input.from(), refs.status());
    for (v1::ArtifactRef& ref : *refs) {
      v1::TaskImage* image = task->add_images();
      image->set_to(input.to());
      *image->mutable_image() = std::move(ref);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<jobbus::VersionedRecord> JobManager::Get(const std::string& job_id) {
  if (job_id.empty()) return absl::InvalidArgumentError("job_id is empty");
  return jobs_.Get(job_id);
}

absl::StatusOr<jobbus::VersionedRecord> JobManager::Cancel(const std::string& job_id) {
  IMGINTERP_ASSIGN_OR_RETURN(jobbus::VersionedRecord current, Get(job_id));
  if (IsTerminal(current.record.state())) return current;
  return MutateAndAdvance(job_id, [](v1::JobRecord& record) -> absl::StatusOr<bool> {
    if (IsTerminal(record.state()) || record.cancel_requested()) return false;
    record.set_cancel_requested(true);
    return true;
  });
}

absl::StatusOr<std::vector<jobbus::VersionedRecord>> JobManager::List(
    const std::vector<v1::JobState>& states, int limit) {
  if (limit <= 0) limit = 100;
  const std::set<v1::JobState> wanted(states.begin(), states.end());
  IMGINTERP_ASSIGN_OR_RETURN(std::vector<jobbus::VersionedRecord> all, jobs_.List());
  std::vector<jobbus::VersionedRecord> selected;
  for (jobbus::VersionedRecord& versioned : all) {
    if (wanted.empty() || wanted.count(versioned.record.state()) > 0) {
      selected.push_back(std::move(versioned));
    }
  }
  std::sort(selected.begin(), selected.end(),
            [](const jobbus::VersionedRecord& a, const jobbus::VersionedRecord& b) {
              return FromTimestamp(a.record.created_at()) > FromTimestamp(b.record.created_at());
            });
  if (static_cast<int>(selected.size()) > limit) selected.resize(limit);
  return selected;
}

absl::Status JobManager::Delete(const std::string& job_id) {
  IMGINTERP_ASSIGN_OR_RETURN(jobbus::VersionedRecord current, Get(job_id));
  IMGINTERP_RETURN_IF_ERROR(jobs_.Delete(job_id));
  IMGINTERP_RETURN_IF_ERROR(artifacts_.DeleteJob(job_id));
  if (!current.record.idempotency_key().empty()) {
    const absl::Status deleted = idempotency_.Delete(current.record.idempotency_key());
    if (!deleted.ok() && !absl::IsNotFound(deleted)) return deleted;
  }
  IMGINTERP_LOG(Info) << "job " << job_id << " deleted";
  return absl::OkStatus();
}

absl::StatusOr<jobbus::VersionedRecord> JobManager::WaitForTerminal(const std::string& job_id,
                                                                    absl::Time deadline,
                                                                    const CancelledFn& cancelled) {
  absl::StatusOr<jobbus::VersionedRecord> last;
  const absl::Status watched = Watch(
      job_id,
      [&](const jobbus::VersionedRecord& versioned) {
        last = versioned;
        return absl::Now() < deadline;
      },
      [&] { return absl::Now() >= deadline || (cancelled && cancelled()); });
  if (last.ok() && IsTerminal(last->record.state())) return last;
  if (absl::Now() >= deadline) {
    return absl::DeadlineExceededError(absl::StrCat(
        "job ", job_id, " did not finish before the call's deadline; it keeps running: ",
        "follow it with GetJob or WatchJob"));
  }
  IMGINTERP_RETURN_IF_ERROR(watched);
  IMGINTERP_RETURN_IF_ERROR(last.status());
  return absl::InternalError(absl::StrCat("watching job ", job_id, " ended before it finished"));
}

absl::Status JobManager::Watch(
    const std::string& job_id,
    const std::function<bool(const jobbus::VersionedRecord&)>& on_revision,
    const CancelledFn& cancelled) {
  IMGINTERP_RETURN_IF_ERROR(Get(job_id).status());
  IMGINTERP_ASSIGN_OR_RETURN(std::unique_ptr<jobbus::KvWatcher> watcher, jobs_.Watch(job_id));
  uint64_t last_revision = 0;
  while (true) {
    if (cancelled && cancelled()) return absl::CancelledError("the watch was cancelled");
    if (stopping_) return absl::UnavailableError("the gateway is shutting down; watch again");
    IMGINTERP_ASSIGN_OR_RETURN(std::optional<jobbus::KvEntry> entry,
                               watcher->Next(ToMillis(options_.poll_interval)));
    if (!entry.has_value() || entry->revision <= last_revision) continue;
    last_revision = entry->revision;
    IMGINTERP_ASSIGN_OR_RETURN(
        std::optional<jobbus::VersionedRecord> versioned,
        jobbus::JobStore::Decode(entry->value, entry->revision, entry->deleted));
    if (!versioned.has_value()) {
      return absl::NotFoundError(absl::StrCat("job ", job_id, " was deleted"));
    }
    if (!on_revision(*versioned)) return absl::OkStatus();
    if (IsTerminal(versioned->record.state())) return absl::OkStatus();
  }
}

absl::StatusOr<ResultPayload> JobManager::FetchResult(const std::string& job_id,
                                                      const std::string& stage_name) {
  IMGINTERP_ASSIGN_OR_RETURN(jobbus::VersionedRecord versioned, Get(job_id));
  const v1::StageRecord* stage = FindStage(versioned.record, stage_name);
  if (stage == nullptr) {
    return absl::NotFoundError(absl::StrCat("job ", job_id, " has no stage '", stage_name,
                                            "'; its stages: ", StageNames(versioned.record)));
  }
  if (stage->state() != v1::STAGE_STATE_SUCCEEDED) {
    return absl::FailedPreconditionError(absl::StrCat("stage '", stage_name, "' of job ", job_id,
                                                      " is ", v1::StageState_Name(stage->state()),
                                                      "; results exist only for SUCCEEDED stages"));
  }
  ResultPayload payload;
  payload.content_type = stage->result().content_type();
  IMGINTERP_ASSIGN_OR_RETURN(payload.data, FetchArtifact(job_id, stage->result()));
  return payload;
}

absl::StatusOr<std::string> JobManager::FetchArtifact(const std::string& job_id,
                                                      const v1::ArtifactRef& ref) {
  return artifacts_.Get(job_id, ref);
}

StartTimeouts JobManager::TimeoutsFor(const v1::JobRecord& record) const {
  StartTimeouts timeouts;
  timeouts.default_timeout = options_.default_start_timeout;
  if (const v1::PipelineSpec* pipeline = pipelines_.Find(record.pipeline())) {
    for (const v1::StageSpec& stage : pipeline->stages()) {
      if (stage.start_timeout_seconds() > 0) {
        timeouts.per_stage[stage.name()] = absl::Seconds(stage.start_timeout_seconds());
      }
    }
  }
  return timeouts;
}

void JobManager::CheckStartTimeouts(absl::Time now) {
  std::vector<std::string> expired;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [job_id, record] : active_) {
      if (!FindUnstartedStages(record, now, TimeoutsFor(record)).empty()) {
        expired.push_back(job_id);
      }
    }
  }
  for (const std::string& job_id : expired) {
    absl::StatusOr<jobbus::VersionedRecord> current = jobs_.Get(job_id);
    if (!current.ok()) continue;
    common::ScopedTraceId trace(current->record.trace_id());
    const StartTimeouts timeouts = TimeoutsFor(current->record);
    // Compare-and-set: if a worker started the stage meanwhile, nothing is failed.
    const absl::Status status =
        MutateAndAdvance(job_id, [&](v1::JobRecord& record) -> absl::StatusOr<bool> {
          return FailUnstartedStages(now, timeouts, &record);
        }).status();
    if (!status.ok()) {
      IMGINTERP_LOG(Warning) << "failing unstarted stages of job " << job_id << ": " << status;
    }
  }
}

void JobManager::Track(const std::string& job_id, const v1::JobRecord* record) {
  std::lock_guard<std::mutex> lock(mu_);
  if (record == nullptr || IsTerminal(record->state())) {
    active_.erase(job_id);
  } else {
    active_[job_id] = WithoutPayloads(*record);
  }
  if (metrics_ != nullptr) metrics_->SetActiveJobs(static_cast<double>(active_.size()));
}

void JobManager::WatchLoop() {
  while (!stopping_) {
    absl::StatusOr<std::optional<jobbus::KvEntry>> entry =
        watcher_->Next(ToMillis(options_.poll_interval));
    if (!entry.ok()) {
      if (stopping_ || absl::IsCancelled(entry.status())) break;
      IMGINTERP_LOG(Warning) << "watching the jobs bucket: " << entry.status();
      std::unique_lock<std::mutex> lock(mu_);
      tick_cv_.wait_for(lock, std::chrono::milliseconds(500), [this] { return stopping_.load(); });
      continue;
    }
    if (!entry->has_value()) continue;
    const jobbus::KvEntry& kv = **entry;
    absl::StatusOr<std::optional<jobbus::VersionedRecord>> decoded =
        jobbus::JobStore::Decode(kv.value, kv.revision, kv.deleted);
    if (!decoded.ok()) {
      IMGINTERP_LOG(Warning) << "skipping undecodable job record " << kv.key << ": "
                             << decoded.status();
      continue;
    }
    if (!decoded->has_value()) {
      Track(kv.key, nullptr);
      continue;
    }
    const v1::JobRecord& record = (*decoded)->record;
    Track(record.job_id(), &record);
    if (IsTerminal(record.state()) || !ComputeAdvance(record).changed) continue;
    common::ScopedTraceId trace(record.trace_id());
    const absl::Status status = Advance(record.job_id()).status();
    if (!status.ok() && !absl::IsNotFound(status)) {
      IMGINTERP_LOG(Warning) << "advancing job " << record.job_id() << ": " << status;
    }
  }
}

void JobManager::TickLoop() {
  const auto interval =
      std::chrono::milliseconds(std::max<int64_t>(1, ToMillis(options_.tick_interval)));
  while (!stopping_) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      tick_cv_.wait_for(lock, interval, [this] { return stopping_.load(); });
    }
    if (stopping_) break;
    CheckStartTimeouts(absl::Now());
  }
}

}  // namespace imginterp::gateway
