// Binds a family's typed gRPC methods to the ModelHost with the callback API: the reactor
// validates and enqueues, the model's executor finishes the call. A family's typed service is
// a few lines that forward to Serve / ListModels.
//
// Thread-safe.
#pragma once

#include <chrono>
#include <string>

#include "google/protobuf/message.h"
#include "grpcpp/support/server_callback.h"
#include "imginterp/v1/common.pb.h"

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
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       v1::ListModelsResponse* response);
  ModelHost& host() { return host_; }

 private:
  ModelHost& host_;
};

}  // namespace imginterp::service
