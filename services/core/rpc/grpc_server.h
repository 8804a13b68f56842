// gRPC server scaffolding shared by every service and the gateway: one port for the typed API,
// KServe v2, standard health checking (grpc.health.v1) and server reflection; graceful
// shutdown that stops accepting calls and drains the ones in flight.
//
// Thread-safe; neither copyable nor movable.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace grpc {
class Server;
class Service;
}  // namespace grpc

namespace imginterp::rpc {

struct GrpcServerOptions {
  // "0.0.0.0:8001"; port 0 picks a free port (see GrpcServer::port()).
  std::string address = "0.0.0.0:8001";
  // Largest request/response message, bytes.
  int max_message_bytes = 64 << 20;
};

class GrpcServer {
 public:
  // Services are borrowed and must outlive the server. Health starts NOT_SERVING for every
  // service name and for the server ("") until SetServing(true).
  static absl::StatusOr<std::unique_ptr<GrpcServer>> Start(
      const GrpcServerOptions& options, const std::vector<grpc::Service*>& services);
  ~GrpcServer();
  GrpcServer(const GrpcServer&) = delete;
  GrpcServer& operator=(const GrpcServer&) = delete;

  int port() const { return port_; }
  // Health: SERVING once models are loaded and warmed up; NOT_SERVING while draining.
  void SetServing(bool serving);
  // Stops accepting calls, waits up to `grace` for calls in flight, then cancels the rest.
  void Shutdown(std::chrono::milliseconds grace);
  grpc::Server* server() { return server_.get(); }

 private:
  GrpcServer() = default;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  bool shut_down_ = false;
};

}  // namespace imginterp::rpc
