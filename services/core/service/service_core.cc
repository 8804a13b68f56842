#include "services/core/service/service_core.h"

#include <chrono>

#include "grpcpp/grpcpp.h"
#include "services/core/common/logging.h"
#include "services/core/rpc/grpc_status.h"
#include "services/core/service/model_host.h"
#include "services/core/service/proto_fields.h"

namespace imginterp::service {

std::string TraceIdOf(const grpc::CallbackServerContext& context) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("x-trace-id");
  if (it != metadata.end() && !it->second.empty() && it->second.size() <= 64) {
    return std::string(it->second.data(), it->second.size());
  }
  return common::NewTraceId();
}

std::chrono::steady_clock::time_point SteadyDeadline(const grpc::CallbackServerContext& context) {
  const auto deadline = context.deadline();
  if (deadline >= std::chrono::system_clock::time_point::max() - std::chrono::hours(24 * 365)) {
    return std::chrono::steady_clock::time_point::max();
  }
  return std::chrono::steady_clock::now() + (deadline - std::chrono::system_clock::now());
}

grpc::ServerUnaryReactor* ServiceCore::Serve(grpc::CallbackServerContext* context,
                                             const google::protobuf::Message* request,
                                             google::protobuf::Message* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const std::string trace_id = TraceIdOf(*context);
  common::ScopedTraceId trace(trace_id);
  const ModelRef ref = GetModelRef(*request);
  Submission submission;
  submission.model = ref.name;
  submission.version = ref.version;
  submission.request = request;
  submission.response = response;
  submission.deadline = SteadyDeadline(*context);
  submission.cancelled = [context] { return context->IsCancelled(); };
  submission.done = [reactor, trace_id, name = ref.name](const absl::Status& status, int64_t) {
    if (!status.ok()) {
      common::ScopedTraceId trace(trace_id);
      IMGINTERP_LOG(Info) << "request for model '" << name << "' failed: " << status;
    }
    reactor->Finish(rpc::ToGrpcStatus(status));
  };
  host_.Submit(std::move(submission));
  return reactor;
}

namespace detail {

void SubmitStreaming(ModelHost& host, grpc::CallbackServerContext* context,
                     const google::protobuf::Message* request, google::protobuf::Message* response,
                     std::function<bool()> cancelled, std::function<void(int, int)> progress,
                     std::function<void(const absl::Status&)> done) {
  const std::string trace_id = TraceIdOf(*context);
  common::ScopedTraceId trace(trace_id);
  const ModelRef ref = GetModelRef(*request);
  Submission submission;
  submission.model = ref.name;
  submission.version = ref.version;
  submission.request = request;
  submission.response = response;
  submission.deadline = SteadyDeadline(*context);
  submission.cancelled = [context, cancelled = std::move(cancelled)] {
    return cancelled() || context->IsCancelled();
  };
  submission.progress = std::move(progress);
  submission.done = [trace_id, name = ref.name, done = std::move(done)](const absl::Status& status,
                                                                        int64_t) {
    if (!status.ok()) {
      common::ScopedTraceId trace(trace_id);
      IMGINTERP_LOG(Info) << "streamed request for model '" << name << "' failed: " << status;
    }
    done(status);
  };
  host.Submit(std::move(submission));
}

}  // namespace detail

grpc::ServerUnaryReactor* ServiceCore::ListModels(grpc::CallbackServerContext* context,
                                                  v1::ListModelsResponse* response) {
  for (auto& info : host_.ListModels()) *response->add_models() = std::move(info);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace imginterp::service
