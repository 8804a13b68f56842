// The real stack for integration tests: a nats-server, service processes and the gateway, each
// on free loopback ports, started and stopped by the test. Nothing is mocked.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"
#include "imginterp/v1/gateway.grpc.pb.h"
#include "tests/support/nats_server.h"
#include "tests/support/process.h"

namespace imginterp::integration {

struct Process {
  std::unique_ptr<test_support::ChildProcess> child;
  int grpc_port = 0;
  int metrics_port = 0;
  std::string log_path;
  std::string address() const { return "127.0.0.1:" + std::to_string(grpc_port); }
};

// Externally synchronized: one test thread drives it. Stops everything it started on
// destruction.
class Stack {
 public:
  Stack();
  ~Stack();

  absl::Status StartNats();
  // Starts imginterp-<family> with the bus and waits until it is SERVING.
  absl::StatusOr<Process*> StartService(const std::string& family,
                                        std::vector<std::string> extra_flags = {});
  // Starts the gateway on the integration pipelines file and waits until it is SERVING. With
  // `grpc_port` > 0 it reuses that port (a restart).
  absl::StatusOr<Process*> StartGateway(std::vector<std::string> extra_flags = {},
                                        int grpc_port = 0);
  Process* gateway() { return gateway_; }
  std::unique_ptr<v1::GatewayService::Stub> GatewayStub() const;
  test_support::NatsServer& nats() { return *nats_; }
  const std::string& work_dir() const { return work_dir_; }
  // The log of a process, for failure messages.
  static std::string Tail(const Process& process, int lines = 30);

  static std::shared_ptr<grpc::Channel> Channel(const std::string& address);

 private:
  absl::StatusOr<Process*> Launch(const std::string& name, std::vector<std::string> argv,
                                  int grpc_port, int metrics_port);

  std::string work_dir_;
  std::unique_ptr<test_support::NatsServer> nats_;
  std::vector<std::unique_ptr<Process>> processes_;
  Process* gateway_ = nullptr;
  std::vector<std::string> gateway_flags_;
  int launched_ = 0;
};

// Waits until `address` answers SERVING to grpc.health.v1.Check.
bool WaitServing(const std::string& address, std::chrono::milliseconds timeout);
// A PNG of width x height with shapes, different per seed.
std::string MakePng(int width, int height, int seed);
// Body of GET http://127.0.0.1:<port><path> ("" on failure).
std::string HttpGet(int port, const std::string& path);
// Paths of build products and test data (from compile definitions).
std::string BinaryPath(const std::string& name);
std::string TestModelsDir();

}  // namespace imginterp::integration
