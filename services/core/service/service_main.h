// The whole life of a model-service process, shared by every family: flags and environment,
// metrics endpoint, model loading and warm-up, gRPC (typed API + KServe v2 + health +
// reflection), the NATS worker, reload on SIGHUP and graceful shutdown on SIGTERM/SIGINT.
// A family's main() is a call to RunFamilyService.
#pragma once

#include <functional>
#include <memory>

namespace grpc {
class Service;
}

namespace imginterp::service {

class FamilyHandler;
class ServiceCore;

struct ServiceDefinition {
  std::unique_ptr<FamilyHandler> handler;
  // The family's typed gRPC service, forwarding to the core.
  std::function<std::unique_ptr<grpc::Service>(ServiceCore& core)> make_typed_service;
  int default_grpc_port = 8001;
  int default_metrics_port = 9401;
};

int ServiceMain(int argc, char** argv, ServiceDefinition definition);

// A family's main(): ServiceMain with `GrpcService` (its TypedService, service_core.h) as the
// typed API.
template <typename GrpcService>
int RunFamilyService(int argc, char** argv, std::unique_ptr<FamilyHandler> handler,
                     int default_grpc_port, int default_metrics_port) {
  ServiceDefinition definition;
  definition.handler = std::move(handler);
  definition.make_typed_service = [](ServiceCore& core) {
    return std::make_unique<GrpcService>(core);
  };
  definition.default_grpc_port = default_grpc_port;
  definition.default_metrics_port = default_metrics_port;
  return ServiceMain(argc, argv, std::move(definition));
}

}  // namespace imginterp::service
