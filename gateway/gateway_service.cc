#include "gateway/gateway_service.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gateway/job_logic.h"
#include "gateway/job_manager.h"
#include "gateway/pipeline_registry.h"
#include "services/core/common/logging.h"
#include "services/core/common/status_macros.h"
#include "services/core/rpc/grpc_status.h"

namespace imginterp::gateway {
namespace {

// Margin left before the caller's deadline so that DEADLINE_EXCEEDED with the job id reaches
// the caller before gRPC's own deadline fires.
constexpr absl::Duration kDeadlineMargin = absl::Milliseconds(50);

std::string TraceIdFrom(grpc::ServerContext* context) {
  const auto& metadata = context->client_metadata();
  const auto it = metadata.find(kTraceIdMetadata);
  if (it != metadata.end() && !it->second.empty()) {
    return std::string(it->second.data(), it->second.size());
  }
  return common::NewTraceId();
}

v1::Job MakeJob(const jobbus::VersionedRecord& versioned) {
  v1::Job job;
  *job.mutable_record() = WithoutPayloads(versioned.record);
  job.set_revision(versioned.revision);
  job.set_progress(JobProgress(versioned.record));
  return job;
}

}  // namespace

GatewayService::GatewayService(const GatewayServiceOptions& options, JobManager& jobs,
                               const PipelineRegistry& pipelines)
    : options_(options), jobs_(jobs), pipelines_(pipelines) {}

grpc::Status GatewayService::RunPipeline(grpc::ServerContext* context,
                                         const v1::RunPipelineRequest* request,
                                         v1::RunPipelineResponse* response) {
  const std::string trace_id = TraceIdFrom(context);
  common::ScopedTraceId trace(trace_id);
  context->AddInitialMetadata(kTraceIdMetadata, trace_id);
  absl::StatusOr<SubmitResult> submitted = jobs_.Submit(request->job(), "", trace_id);
  if (!submitted.ok()) return rpc::ToGrpcStatus(submitted.status());

  absl::Time deadline = absl::Now() + options_.sync_timeout;
  if (context->deadline() != std::chrono::system_clock::time_point::max()) {
    deadline = std::min(deadline, absl::FromChrono(context->deadline()) - kDeadlineMargin);
  }
  absl::StatusOr<jobbus::VersionedRecord> finished = jobs_.WaitForTerminal(
      submitted->job_id, deadline, [context] { return context->IsCancelled(); });
  if (!finished.ok()) return rpc::ToGrpcStatus(finished.status());

  const v1::JobRecord& record = finished->record;
  response->set_job_id(record.job_id());
  response->set_state(record.state());
  if (record.has_error()) *response->mutable_error() = record.error();
  for (const v1::StageRecord& stage : record.stages()) {
    v1::StageResult* result = response->add_results();
    result->set_stage(stage.name());
    result->set_family(stage.family());
    result->set_state(stage.state());
    if (stage.has_error()) *result->mutable_error() = stage.error();
    result->set_seconds(SecondsBetween(stage.started_at(), stage.finished_at()));
    if (stage.state() != v1::STAGE_STATE_SUCCEEDED || !stage.has_result()) continue;
    absl::StatusOr<std::string> bytes = jobs_.FetchArtifact(record.job_id(), stage.result());
    if (!bytes.ok()) {
      return rpc::ToGrpcStatus(
          absl::Status(bytes.status().code(),
                       absl::StrCat("reading the result of stage '", stage.name(), "' of job ",
                                    record.job_id(), ": ", bytes.status().message())));
    }
    result->mutable_response()->set_type_url(stage.result().content_type());
    result->mutable_response()->set_value(*std::move(bytes));
  }
  return grpc::Status::OK;
}

grpc::Status GatewayService::SubmitJob(grpc::ServerContext* context,
                                       const v1::SubmitJobRequest* request,
                                       v1::SubmitJobResponse* response) {
  const std::string trace_id = TraceIdFrom(context);
  common::ScopedTraceId trace(trace_id);
  context->AddInitialMetadata(kTraceIdMetadata, trace_id);
  absl::StatusOr<SubmitResult> submitted =
      jobs_.Submit(request->job(), request->idempotency_key(), trace_id);
  if (!submitted.ok()) return rpc::ToGrpcStatus(submitted.status());
  response->set_job_id(submitted->job_id);
  response->set_created(submitted->created);
  return grpc::Status::OK;
}

grpc::Status GatewayService::GetJob(grpc::ServerContext* context, const v1::GetJobRequest* request,
                                    v1::Job* response) {
  common::ScopedTraceId trace(TraceIdFrom(context));
  absl::StatusOr<jobbus::VersionedRecord> job = jobs_.Get(request->job_id());
  if (!job.ok()) return rpc::ToGrpcStatus(job.status());
  *response = MakeJob(*job);
  return grpc::Status::OK;
}

grpc::Status GatewayService::WatchJob(grpc::ServerContext* context,
                                      const v1::WatchJobRequest* request,
                                      grpc::ServerWriter<v1::Job>* writer) {
  common::ScopedTraceId trace(TraceIdFrom(context));
  bool write_failed = false;
  const absl::Status status = jobs_.Watch(
      request->job_id(),
      [&](const jobbus::VersionedRecord& versioned) {
        write_failed = !writer->Write(MakeJob(versioned));
        return !write_failed;
      },
      [context] { return context->IsCancelled(); });
  if (write_failed) {
    return rpc::ToGrpcStatus(absl::CancelledError("the client stopped reading the watch"));
  }
  return rpc::ToGrpcStatus(status);
}

grpc::Status GatewayService::CancelJob(grpc::ServerContext* context,
                                       const v1::CancelJobRequest* request,
                                       v1::CancelJobResponse* response) {
  common::ScopedTraceId trace(TraceIdFrom(context));
  absl::StatusOr<jobbus::VersionedRecord> job = jobs_.Cancel(request->job_id());
  if (!job.ok()) return rpc::ToGrpcStatus(job.status());
  *response->mutable_job() = MakeJob(*job);
  return grpc::Status::OK;
}

grpc::Status GatewayService::ListJobs(grpc::ServerContext* context,
                                      const v1::ListJobsRequest* request,
                                      v1::ListJobsResponse* response) {
  common::ScopedTraceId trace(TraceIdFrom(context));
  std::vector<v1::JobState> states;
  for (const int state : request->states()) states.push_back(static_cast<v1::JobState>(state));
  absl::StatusOr<std::vector<jobbus::VersionedRecord>> jobs = jobs_.List(states, request->limit());
  if (!jobs.ok()) return rpc::ToGrpcStatus(jobs.status());
  for (const jobbus::VersionedRecord& job : *jobs) *response->add_jobs() = MakeJob(job);
  return grpc::Status::OK;
}

grpc::Status GatewayService::DeleteJob(grpc::ServerContext* context,
                                       const v1::DeleteJobRequest* request,
                                       v1::DeleteJobResponse* response) {
  common::ScopedTraceId trace(TraceIdFrom(context));
  return rpc::ToGrpcStatus(jobs_.Delete(request->job_id()));
}

grpc::Status GatewayService::ListPipelines(grpc::ServerContext* context,
                                           const v1::ListPipelinesRequest* request,
                                           v1::ListPipelinesResponse* response) {
  *response->mutable_pipelines() = pipelines_.config().pipelines();
  for (v1::PipelineSpec& pipeline : *response->mutable_pipelines()) {
    for (const auto& [name, required] : PipelineRegistry::Parameters(pipeline)) {
      v1::PipelineParameter* parameter = pipeline.add_parameters();
      parameter->set_name(name);
      parameter->set_required(required);
    }
  }
  return grpc::Status::OK;
}

grpc::Status GatewayService::DownloadResult(grpc::ServerContext* context,
                                            const v1::DownloadResultRequest* request,
                                            grpc::ServerWriter<v1::ResultChunk>* writer) {
  common::ScopedTraceId trace(TraceIdFrom(context));
  absl::StatusOr<ResultPayload> payload = jobs_.FetchResult(request->job_id(), request->stage());
  if (!payload.ok()) return rpc::ToGrpcStatus(payload.status());
  const int64_t chunk_bytes = std::clamp<int64_t>(options_.download_chunk_bytes, 1, 1 << 20);
  const int64_t total = static_cast<int64_t>(payload->data.size());
  int64_t offset = 0;
  do {
    if (context->IsCancelled()) {
      return rpc::ToGrpcStatus(absl::CancelledError("the client cancelled the download"));
    }
    const int64_t size = std::min(chunk_bytes, total - offset);
    v1::ResultChunk chunk;
    chunk.set_content_type(payload->content_type);
    chunk.set_total_size(total);
    chunk.set_offset(offset);
    chunk.set_data(payload->data.substr(offset, size));
    if (!writer->Write(chunk)) {
      return rpc::ToGrpcStatus(absl::CancelledError("the client stopped reading the download"));
    }
    offset += size;
  } while (offset < total);
  return grpc::Status::OK;
}

}  // namespace imginterp::gateway
