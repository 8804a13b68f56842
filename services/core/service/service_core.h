// Binds a family's typed gRPC methods to the ModelHost with the callback API: the reactor
// validates and enqueues, the model's executor finishes the call. A family's typed service is
// a few lines that forward to Serve / ListModels.
//
// Thread-safe.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "google/protobuf/message.h"
#include "grpcpp/support/server_callback.h"
#include "imginterp/v1/common.pb.h"
#include "services/core/service/streaming_reactor.h"

namespace grpc {
class CallbackServerContext;
}

namespace imginterp::service {

class ModelHost;

// Trace id of a call: the client's "x-trace-id" metadata, or a new one.
std::string TraceIdOf(const grpc::CallbackServerContext& context);
// The call's deadline on the steady clock (time_point::max() when the client set none).
std::chrono::steady_clock::time_point SteadyDeadline(const grpc::CallbackServerContext& context);

class ServiceCore {
 public:
  // `host` outlives the core.
  explicit ServiceCore(ModelHost& host) : host_(host) {}

  // Runs `request` on the model it names; `response` is filled before the call finishes.
  grpc::ServerUnaryReactor* Serve(grpc::CallbackServerContext* context,
                                  const google::protobuf::Message* request,
                                  google::protobuf::Message* response);
  // Server-streamed Serve (see streaming_reactor.h): an `Update` per progress report of the
  // model, then one built from `response` (owned by the call) when it is done.
  template <typename Update>
  grpc::ServerWriteReactor<Update>* ServeStreaming(
      grpc::CallbackServerContext* context, const google::protobuf::Message* request,
      std::unique_ptr<google::protobuf::Message> response, StreamFormat<Update> format) {
    auto* reactor = new detail::StreamingReactor<Update>(std::move(response), std::move(format));
    reactor->Start(host_, context, request);
    return reactor;
  }
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       v1::ListModelsResponse* response);
  ModelHost& host() { return host_; }

 private:
  ModelHost& host_;
};

// The typed gRPC API of a family, served by ServiceCore. `GeneratedService` is the generated
// `<Family>Service::CallbackService`; ListModels is answered here, each unary method is one
// IMGINTERP_SERVE_UNARY line, and only methods that do something else are written out.
template <typename GeneratedService>
class TypedService : public GeneratedService {
 public:
  explicit TypedService(ServiceCore& core) : core_(core) {}
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const v1::ListModelsRequest*,
                                       v1::ListModelsResponse* response) override {
    return core_.ListModels(context, response);
  }

 protected:
  ServiceCore& core_;
};

}  // namespace imginterp::service

// Inside a TypedService: the unary `Method` runs its request on the model it names.
#define IMGINTERP_SERVE_UNARY(Method, Request, Response)                                         \
  grpc::ServerUnaryReactor* Method(grpc::CallbackServerContext* context, const Request* request, \
                                   Response* response) override {                                \
    return this->core_.Serve(context, request, response);                                        \
  }
