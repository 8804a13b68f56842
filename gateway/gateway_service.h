// imginterp.v1.GatewayService: the public API, a thin adapter over JobManager.
//
// Uses gRPC's sync service API on purpose (the house rule prefers the callback API): RunPipeline,
// WatchJob and the other handlers block on KV watches and JetStream round trips, which is
// simplest and correct on the sync server's thread pool and would stall a callback reactor.
// Every error goes through rpc::ToGrpcStatus. The caller's trace id (metadata "x-trace-id",
// or a new one) is set for the call's log lines and becomes a new job's trace id.
//
// Thread-safe (the manager and registry are).
#pragma once

#include <cstdint>
#include <string>

#include "absl/time/time.h"
#include "imginterp/v1/gateway.grpc.pb.h"

namespace imginterp::gateway {

class JobManager;
class PipelineRegistry;

struct GatewayServiceOptions {
  // Longest RunPipeline wait when the caller set no earlier deadline.
  absl::Duration sync_timeout = absl::Seconds(300);
  // DownloadResult chunk size, bytes (at most 1 MiB).
  int64_t download_chunk_bytes = 1 << 20;
};

// Metadata key carrying a caller's trace id (lower case, as gRPC requires).
inline constexpr char kTraceIdMetadata[] = "x-trace-id";

class GatewayService final : public v1::GatewayService::Service {
 public:
  // `jobs` and `pipelines` must outlive the service.
  GatewayService(const GatewayServiceOptions& options, JobManager& jobs,
                 const PipelineRegistry& pipelines);

  grpc::Status RunPipeline(grpc::ServerContext* context, const v1::RunPipelineRequest* request,
                           v1::RunPipelineResponse* response) override;
  grpc::Status SubmitJob(grpc::ServerContext* context, const v1::SubmitJobRequest* request,
                         v1::SubmitJobResponse* response) override;
  grpc::Status GetJob(grpc::ServerContext* context, const v1::GetJobRequest* request,
                      v1::Job* response) override;
  grpc::Status WatchJob(grpc::ServerContext* context, const v1::WatchJobRequest* request,
                        grpc::ServerWriter<v1::Job>* writer) override;
  grpc::Status CancelJob(grpc::ServerContext* context, const v1::CancelJobRequest* request,
                         v1::CancelJobResponse* response) override;
  grpc::Status ListJobs(grpc::ServerContext* context, const v1::ListJobsRequest* request,
                        v1::ListJobsResponse* response) override;
  grpc::Status DeleteJob(grpc::ServerContext* context, const v1::DeleteJobRequest* request,
                         v1::DeleteJobResponse* response) override;
  grpc::Status ListPipelines(grpc::ServerContext* context, const v1::ListPipelinesRequest* request,
                             v1::ListPipelinesResponse* response) override;
  grpc::Status DownloadResult(grpc::ServerContext* context,
                              const v1::DownloadResultRequest* request,
                              grpc::ServerWriter<v1::ResultChunk>* writer) override;

 private:
  const GatewayServiceOptions options_;
  JobManager& jobs_;
  const PipelineRegistry& pipelines_;
};

}  // namespace imginterp::gateway
