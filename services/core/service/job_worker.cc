#include "services/core/service/job_worker.h"

#include <unistd.h>

#include <chrono>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/time_util.h"
#include "services/core/common/logging.h"
#include "services/core/common/status_macros.h"
#include "services/core/jobbus/artifact_store.h"
#include "services/core/jobbus/job_store.h"
#include "services/core/jobbus/key_value.h"
#include "services/core/jobbus/nats_connection.h"
#include "services/core/proto_path/proto_path.h"
#include "services/core/service/family_handler.h"
#include "services/core/service/model_host.h"
#include "services/core/service/proto_fields.h"

namespace imginterp::service {
namespace {

// Nanosecond wall time; protobuf 3.21's TimeUtil::GetCurrentTime() has whole seconds only.
google::protobuf::Timestamp Now() {
  return google::protobuf::util::TimeUtil::NanosecondsToTimestamp(
      std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count());
}

bool IsTerminal(v1::StageState state) {
  return state == v1::STAGE_STATE_SUCCEEDED || state == v1::STAGE_STATE_FAILED ||
         state == v1::STAGE_STATE_CANCELLED;
}

bool IsTerminal(v1::JobState state) {
  return state == v1::JOB_STATE_SUCCEEDED || state == v1::JOB_STATE_FAILED ||
         state == v1::JOB_STATE_CANCELLED;
}

v1::StageRecord* FindStage(v1::JobRecord& record, const std::string& name) {
  for (auto& stage : *record.mutable_stages()) {
    if (stage.name() == name) return &stage;
  }
  return nullptr;
}

bool IsRetryable(absl::StatusCode code) {
  return code == absl::StatusCode::kUnavailable || code == absl::StatusCode::kResourceExhausted ||
         code == absl::StatusCode::kAborted;
}

std::string DefaultWorkerId() {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  return absl::StrCat(host, "/", getpid());
}

}  // namespace

struct JobWorker::Running {
  uint64_t id = 0;
  std::unique_ptr<jobbus::TaskDelivery> delivery;
  std::unique_ptr<google::protobuf::Message> request;
  std::unique_ptr<google::protobuf::Message> response;
  std::atomic<bool> cancelled{false};
  // Latest progress (step/total), written into the record by the heartbeat thread.
  std::atomic<float> progress{0};
  float progress_written = 0;
};

JobWorker::JobWorker(jobbus::NatsConnection& connection, const FamilyHandler& handler,
                     ModelHost& host, JobWorkerOptions options)
    : connection_(connection), handler_(handler), host_(host), options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<JobWorker>> JobWorker::Start(jobbus::NatsConnection& connection,
                                                            const FamilyHandler& handler,
                                                            ModelHost& host,
                                                            const JobWorkerOptions& options) {
  JobWorkerOptions resolved = options;
  resolved.consumer.family = handler.family();
  if (resolved.worker_id.empty()) resolved.worker_id = DefaultWorkerId();
  std::unique_ptr<JobWorker> worker(new JobWorker(connection, handler, host, resolved));
  IMGINTERP_ASSIGN_OR_RETURN(worker->jobs_kv_,
                             jobbus::KeyValue::Open(connection, resolved.layout.jobs_bucket));
  IMGINTERP_ASSIGN_OR_RETURN(worker->artifacts_kv_,
                             jobbus::KeyValue::Open(connection, resolved.layout.artifacts_bucket));
  worker->jobs_ = std::make_unique<jobbus::JobStore>(*worker->jobs_kv_);
  const int64_t chunk =
      resolved.layout.chunk_bytes > 0 ? resolved.layout.chunk_bytes : connection.MaxPayload() / 2;
  worker->artifacts_ = std::make_unique<jobbus::ArtifactStore>(
      *worker->artifacts_kv_, std::min(resolved.layout.inline_limit_bytes, chunk), chunk);
  IMGINTERP_ASSIGN_OR_RETURN(
      worker->consumer_,
      jobbus::TaskConsumer::Create(connection, resolved.layout, resolved.consumer));
  JobWorker* raw = worker.get();
  worker->fetch_thread_ = std::thread([raw] { raw->FetchLoop(); });
  worker->completion_thread_ = std::thread([raw] { raw->CompletionLoop(); });
  worker->heartbeat_thread_ = std::thread([raw] { raw->HeartbeatLoop(); });
  IMGINTERP_LOG(Info) << "worker " << resolved.worker_id << " consuming "
                      << resolved.layout.SubjectFor(handler.family()) << " (durable "
                      << resolved.layout.DurableFor(handler.family()) << ", ack wait "
                      << resolved.consumer.ack_wait_ms << " ms)";
  return worker;
}

JobWorker::~JobWorker() { Stop(); }

void JobWorker::Stop() {
  if (stopping_.exchange(true)) return;
  if (fetch_thread_.joinable()) fetch_thread_.join();
  cv_.notify_all();
  for (auto& held : held_) held.join();
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return running_.empty(); });
    completion_stop_ = true;
  }
  cv_.notify_all();
  if (completion_thread_.joinable()) completion_thread_.join();
  if (heartbeat_thread_.joinable()) heartbeat_thread_.join();
}

void JobWorker::FetchLoop() {
  int consecutive_errors = 0;
  while (!stopping_.load()) {
    int capacity;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(200), [&] {
        return static_cast<int>(running_.size()) < options_.max_in_flight || stopping_.load();
      });
      capacity = options_.max_in_flight - static_cast<int>(running_.size());
    }
    if (stopping_.load()) break;
    if (capacity <= 0) continue;
    auto batch = consumer_->Fetch(std::min(capacity, options_.fetch_batch), 500);
    if (!batch.ok()) {
      if (consecutive_errors++ % 20 == 0) {
        IMGINTERP_LOG(Warning) << "fetching tasks failed: " << batch.status();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      continue;
    }
    consecutive_errors = 0;
    for (auto& delivery : *batch) Begin(std::move(delivery));
  }
}

void JobWorker::Begin(std::unique_ptr<jobbus::TaskDelivery> delivery) {
  const v1::StageTask& task = delivery->task();
  common::ScopedTraceId trace(task.trace_id());
  const std::string stage_name = task.stage();
  bool skip = false;
  auto marked = jobs_->Mutate(task.job_id(), [&](v1::JobRecord& record) -> absl::StatusOr<bool> {
    skip = false;
    v1::StageRecord* stage = FindStage(record, stage_name);
    if (stage == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("job ", record.job_id(), " has no stage '", stage_name, "'"));
    }
    if (IsTerminal(stage->state())) {
      skip = true;  // A duplicate delivery of a stage that already has its result.
      return false;
    }
    const auto now = Now();
    if (record.cancel_requested() || IsTerminal(record.state())) {
      skip = true;
      stage->set_state(v1::STAGE_STATE_CANCELLED);
      *stage->mutable_finished_at() = now;
      return true;
    }
    stage->set_state(v1::STAGE_STATE_RUNNING);
    stage->set_worker(options_.worker_id);
    stage->set_attempts(stage->attempts() + 1);
    stage->set_progress(0);
    stage->clear_message();
    *stage->mutable_started_at() = now;
    *record.mutable_updated_at() = now;
    return true;
  });
  if (!marked.ok()) {
    if (absl::IsNotFound(marked.status())) {
      IMGINTERP_LOG(Info) << "job " << task.job_id() << " no longer exists; dropping its task";
      delivery->Ack().IgnoreError();
    } else if (absl::IsInvalidArgument(marked.status())) {
      IMGINTERP_LOG(Warning) << "dropping task: " << marked.status();
      delivery->Term().IgnoreError();
    } else {
      IMGINTERP_LOG(Warning) << "cannot mark stage running, retrying later: " << marked.status();
      delivery->Nak(1000).IgnoreError();
    }
    return;
  }
  if (skip) {
    delivery->Ack().IgnoreError();
    return;
  }
  IMGINTERP_LOG(Info) << "stage '" << stage_name << "' of job " << task.job_id()
                      << " started (delivery " << delivery->delivery_count() << ")";

  auto running = std::make_shared<Running>();
  running->delivery = std::move(delivery);
  // The family's bus method whose request type the task carries (the first one if none).
  const std::vector<FamilyHandler::BusMethod> methods = handler_.BusMethods();
  const FamilyHandler::BusMethod* method = &methods.front();
  const std::string& type_url = task.request().type_url();
  for (const FamilyHandler::BusMethod& candidate : methods) {
    if (absl::EndsWith(type_url, "/" + candidate.request->GetTypeName())) method = &candidate;
  }
  running->request.reset(method->request->New());
  running->response.reset(method->response->New());
  {
    std::lock_guard<std::mutex> lock(mu_);
    running->id = next_id_++;
    running_[running->id] = running;
  }
  const v1::StageTask& t = running->delivery->task();
  if (!t.request().UnpackTo(running->request.get())) {
    std::vector<std::string> types;
    for (const FamilyHandler::BusMethod& m : methods) types.push_back(m.request->GetTypeName());
    Finish(running, absl::InvalidArgumentError(absl::StrCat(
                        "the task's request is ", t.request().type_url(), "; the ",
                        handler_.family(), " family takes ", absl::StrJoin(types, ", "))));
    return;
  }
  if (t.has_image()) {
    auto bytes = artifacts_->Get(t.job_id(), t.image());
    if (!bytes.ok()) {
      Finish(running, bytes.status());
      return;
    }
    if (auto s = SetImage(running->request.get(), *bytes, t.image().content_type()); !s.ok()) {
      Finish(running, s);
      return;
    }
  }
  for (const v1::TaskImage& input : t.images()) {
    auto bytes = artifacts_->Get(t.job_id(), input.image());
    if (!bytes.ok()) {
      Finish(running, bytes.status());
      return;
    }
    v1::Image image;
    image.set_data(*std::move(bytes));
    if (auto s = proto_path::PutImage(running->request.get(), input.to(), image); !s.ok()) {
      Finish(running, s);
      return;
    }
  }
  const ModelRef ref = GetModelRef(*running->request);
  Submission submission;
  submission.model = ref.name;
  submission.version = ref.version;
  submission.request = running->request.get();
  submission.response = running->response.get();
  submission.cancelled = [running] { return running->cancelled.load(); };
  submission.progress = [running](int step, int total) {
    if (total > 0) running->progress.store(static_cast<float>(step) / total);
  };
  submission.done = [this, running](const absl::Status& status, int64_t) {
    Finish(running, status);
  };
  if (options_.hold_before_run_ms <= 0) {
    host_.Submit(std::move(submission));
    return;
  }
  // Test seam: the task stays RUNNING on this worker (with heartbeats) for a while first.
  std::lock_guard<std::mutex> lock(mu_);
  held_.emplace_back([this, submission = std::move(submission)]() mutable {
    {
      std::unique_lock<std::mutex> wait_lock(mu_);
      cv_.wait_for(wait_lock, std::chrono::milliseconds(options_.hold_before_run_ms),
                   [&] { return stopping_.load(); });
    }
    host_.Submit(std::move(submission));
  });
}

void JobWorker::Finish(std::shared_ptr<Running> running, absl::Status status) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    finished_.emplace_back(std::move(running), std::move(status));
  }
  cv_.notify_all();
}

void JobWorker::CompletionLoop() {
  while (true) {
    std::pair<std::shared_ptr<Running>, absl::Status> next;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return !finished_.empty() || completion_stop_; });
      if (finished_.empty()) return;
      next = std::move(finished_.front());
      finished_.pop_front();
    }
    Settle(*next.first, next.second);
    {
      std::lock_guard<std::mutex> lock(mu_);
      running_.erase(next.first->id);
    }
    cv_.notify_all();
  }
}

void JobWorker::Settle(Running& running, const absl::Status& status) {
  jobbus::TaskDelivery& delivery = *running.delivery;
  const v1::StageTask& task = delivery.task();
  common::ScopedTraceId trace(task.trace_id());
  const std::string& stage_name = task.stage();
  const auto now = Now();

  if (status.ok()) {
    const std::string type_url =
        "type.googleapis.com/" + running.response->GetDescriptor()->full_name();
    auto ref =
        artifacts_->Put(task.job_id(), stage_name, type_url, running.response->SerializeAsString());
    if (!ref.ok()) {
      IMGINTERP_LOG(Warning) << "cannot store the result of stage '" << stage_name
                             << "', retrying: " << ref.status();
      delivery.Nak(1000).IgnoreError();
      return;
    }
    auto stored = jobs_->Mutate(task.job_id(), [&](v1::JobRecord& record) -> absl::StatusOr<bool> {
      v1::StageRecord* stage = FindStage(record, stage_name);
      if (stage == nullptr || IsTerminal(stage->state())) return false;  // First result won.
      stage->set_state(v1::STAGE_STATE_SUCCEEDED);
      *stage->mutable_result() = *ref;
      stage->set_progress(1);
      stage->clear_message();
      stage->clear_error();
      *stage->mutable_finished_at() = now;
      *record.mutable_updated_at() = now;
      return true;
    });
    if (!stored.ok() && !absl::IsNotFound(stored.status())) {
      IMGINTERP_LOG(Warning) << "cannot record the result of stage '" << stage_name
                             << "', retrying: " << stored.status();
      delivery.Nak(1000).IgnoreError();
      return;
    }
    IMGINTERP_LOG(Info) << "stage '" << stage_name << "' of job " << task.job_id() << " succeeded";
    delivery.Ack().IgnoreError();
    return;
  }

  const bool last_attempt =
      delivery.delivery_count() >= static_cast<uint64_t>(consumer_->max_deliver());
  if (IsRetryable(status.code()) && !last_attempt) {
    const int64_t delay_ms = 1000 * static_cast<int64_t>(delivery.delivery_count());
    IMGINTERP_LOG(Warning) << "stage '" << stage_name << "' attempt " << delivery.delivery_count()
                           << " failed, retrying in " << delay_ms << " ms: " << status;
    jobs_
        ->Mutate(task.job_id(),
                 [&](v1::JobRecord& record) -> absl::StatusOr<bool> {
                   v1::StageRecord* stage = FindStage(record, stage_name);
                   if (stage == nullptr || IsTerminal(stage->state())) return false;
                   stage->set_message(absl::StrCat("attempt ", delivery.delivery_count(),
                                                   " failed (", status.message(), "); retrying"));
                   return true;
                 })
        .IgnoreError();
    delivery.Nak(delay_ms).IgnoreError();
    return;
  }
  const bool cancelled = absl::IsCancelled(status);
  IMGINTERP_LOG(Info) << "stage '" << stage_name << "' of job " << task.job_id()
                      << (cancelled ? " cancelled: " : " failed: ") << status;
  auto recorded = jobs_->Mutate(task.job_id(), [&](v1::JobRecord& record) -> absl::StatusOr<bool> {
    v1::StageRecord* stage = FindStage(record, stage_name);
    if (stage == nullptr || IsTerminal(stage->state())) return false;
    stage->set_state(cancelled ? v1::STAGE_STATE_CANCELLED : v1::STAGE_STATE_FAILED);
    stage->mutable_error()->set_code(absl::StatusCodeToString(status.code()));
    stage->mutable_error()->set_message(std::string(status.message()));
    *stage->mutable_finished_at() = now;
    *record.mutable_updated_at() = now;
    return true;
  });
  if (!recorded.ok() && !absl::IsNotFound(recorded.status())) {
    delivery.Nak(1000).IgnoreError();
    return;
  }
  delivery.Term().IgnoreError();
}

void JobWorker::HeartbeatLoop() {
  using std::chrono::milliseconds;
  // In-progress heartbeats and cancel checks every ack_wait/3; progress reaches the record
  // within a second of being reported.
  const milliseconds heartbeat(std::max<int64_t>(200, options_.consumer.ack_wait_ms / 3));
  const milliseconds tick = std::min(heartbeat, milliseconds(1000));
  auto last_heartbeat = std::chrono::steady_clock::now();
  while (true) {
    std::vector<std::shared_ptr<Running>> running;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, tick, [&] { return completion_stop_; });
      if (completion_stop_) return;
      for (auto& [id, r] : running_) running.push_back(r);
    }
    const auto now = std::chrono::steady_clock::now();
    const bool heartbeat_due = now - last_heartbeat >= heartbeat;
    if (heartbeat_due) last_heartbeat = now;
    for (auto& r : running) {
      if (heartbeat_due) r->delivery->InProgress().IgnoreError();
      const v1::StageTask& task = r->delivery->task();
      const float progress = r->progress.load();
      const bool write_progress = progress > r->progress_written;
      if (!write_progress && !heartbeat_due) continue;
      auto record = jobs_->Mutate(task.job_id(), [&](v1::JobRecord& rec) -> absl::StatusOr<bool> {
        v1::StageRecord* stage = FindStage(rec, task.stage());
        if (stage == nullptr || !write_progress || stage->state() != v1::STAGE_STATE_RUNNING) {
          return false;
        }
        stage->set_progress(progress);
        return true;
      });
      if (record.ok()) {
        r->progress_written = progress;
        if (record->record.cancel_requested()) r->cancelled.store(true);
      }
    }
  }
}

}  // namespace imginterp::service
