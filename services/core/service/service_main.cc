#include "services/core/service/service_main.h"

#include <csignal>
#include <iostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "services/core/common/flags.h"
#include "services/core/common/logging.h"
#include "services/core/common/shutdown.h"
#include "services/core/jobbus/bus_layout.h"
#include "services/core/jobbus/nats_connection.h"
#include "services/core/metrics/metrics_server.h"
#include "services/core/metrics/serving_metrics.h"
#include "services/core/rpc/grpc_server.h"
#include "services/core/service/family_handler.h"
#include "services/core/service/job_worker.h"
#include "services/core/service/kserve_service.h"
#include "services/core/service/model_host.h"
#include "services/core/service/service_core.h"

#ifndef IMGINTERP_VERSION
#define IMGINTERP_VERSION "0.0.0"
#endif

namespace imginterp::service {
namespace {

struct ServiceFlags {
  std::string bind_host = "0.0.0.0";
  int grpc_port = 0;
  int metrics_port = 0;
  std::string model_repository;
  std::string nats_url = "nats://127.0.0.1:4222";
  int64_t ack_wait_ms = 30000;
  int max_deliver = 5;
  int fetch_batch = 8;
  int max_in_flight = 16;
  int64_t hold_before_run_ms = 0;
  int64_t inline_limit_bytes = 256 * 1024;
  int64_t job_ttl_seconds = 24 * 3600;
  int64_t nats_connect_seconds = 30;
  int64_t drain_seconds = 10;
  bool use_cuda = true;
};

// Waits for NATS to come up (the local stack may start services before the server is ready),
// or until a shutdown signal would be due.
absl::StatusOr<std::unique_ptr<jobbus::NatsConnection>> ConnectWithRetry(
    const jobbus::ConnectionOptions& options, int64_t seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (true) {
    auto connection = jobbus::NatsConnection::Connect(options);
    if (connection.ok() || std::chrono::steady_clock::now() > deadline) return connection;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

}  // namespace

int ServiceMain(int argc, char** argv, ServiceDefinition definition) {
  common::BlockShutdownSignals();
  FamilyHandler& handler = *definition.handler;
  const std::string program = "imginterp-" + handler.family();
  ServiceFlags f;
  f.grpc_port = definition.default_grpc_port;
  f.metrics_port = definition.default_metrics_port;
  common::FlagSet flags(
      program,
      absl::StrCat(handler.description(),
                   "\n\nServes the typed API imginterp.v1 and KServe v2 "
                   "(inference.GRPCInferenceService), grpc.health.v1 and reflection on one gRPC "
                   "port, Prometheus metrics on /metrics, and stage tasks of the job bus "
                   "(subject imginterp.jobs.",
                   handler.family(),
                   "). SIGHUP reloads the model repository; SIGTERM drains and exits."));
  flags.Add("bind_host", &f.bind_host, "address to listen on");
  flags.Add("grpc_port", &f.grpc_port, "gRPC port (typed API, KServe v2, health); 0 picks one");
  flags.Add("metrics_port", &f.metrics_port, "Prometheus /metrics port; 0 picks one");
  if (handler.uses_repository()) {
    flags.Add("model_repository", &f.model_repository,
              "model repository root: <root>/<model>/config.pbtxt and <root>/<model>/<version>/");
  }
  flags.Add("nats_url", &f.nats_url, "NATS server(s) of the job bus; empty disables the worker");
  flags.Add("ack_wait_ms", &f.ack_wait_ms,
            "redeliver a task after this long without ack or heartbeat");
  flags.Add("max_deliver", &f.max_deliver, "deliveries of a task before it fails for good");
  flags.Add("fetch_batch", &f.fetch_batch, "tasks fetched from the bus at once");
  flags.Add("max_in_flight", &f.max_in_flight, "bus tasks this worker runs at once");
  flags.Add("hold_before_run_ms", &f.hold_before_run_ms,
            "testing only: hold each bus task this long after marking it running");
  flags.Add("inline_limit_bytes", &f.inline_limit_bytes,
            "results up to this size stay inline in the job record; larger ones are chunked");
  flags.Add("job_ttl_seconds", &f.job_ttl_seconds, "lifetime of job records and artifacts");
  flags.Add("nats_connect_seconds", &f.nats_connect_seconds,
            "how long to wait for the NATS server at start");
  flags.Add("drain_seconds", &f.drain_seconds, "grace period for calls in flight at shutdown");
  flags.Add("use_cuda", &f.use_cuda, "run models on CUDA when this LibTorch build has it");
  if (auto s = flags.Parse(argc, argv); !s.ok()) {
    std::cerr << program << ": " << s.message() << "\n";
    return 2;
  }
  if (flags.help_requested()) {
    std::cout << flags.Usage();
    return 0;
  }
  IMGINTERP_LOG(Info) << flags.Describe();

  auto metrics_server = metrics::MetricsServer::Create(
      absl::StrCat(f.bind_host, ":", f.metrics_port), handler.family());
  if (!metrics_server.ok()) {
    IMGINTERP_LOG(Error) << metrics_server.status().message();
    return 1;
  }
  IMGINTERP_LOG(Info) << "metrics on http://" << f.bind_host << ":" << (*metrics_server)->port()
                      << "/metrics";
  metrics::ServingMetrics serving_metrics((*metrics_server)->registry(), handler.family());

  ModelHostOptions host_options;
  host_options.repository_root = f.model_repository;
  host_options.use_cuda_if_available = f.use_cuda;
  auto host = ModelHost::Create(host_options, handler, serving_metrics);
  if (!host.ok()) {
    IMGINTERP_LOG(Error) << host.status().message();
    return 1;
  }
  ServiceCore core(**host);
  std::unique_ptr<grpc::Service> typed = definition.make_typed_service(core);
  KServeService kserve(handler, **host, IMGINTERP_VERSION);
  rpc::GrpcServerOptions server_options;
  server_options.address = absl::StrCat(f.bind_host, ":", f.grpc_port);
  auto server = rpc::GrpcServer::Start(server_options, {typed.get(), &kserve});
  if (!server.ok()) {
    IMGINTERP_LOG(Error) << server.status().message();
    return 1;
  }
  // Health stays NOT_SERVING until the models have loaded and warmed up.
  if (auto s = (*host)->LoadAll(); !s.ok()) {
    IMGINTERP_LOG(Error) << s.message();
    (*server)->Shutdown(std::chrono::milliseconds(0));
    return 1;
  }
  (*server)->SetServing(true);
  IMGINTERP_LOG(Info) << program << " serving on port " << (*server)->port();

  std::unique_ptr<jobbus::NatsConnection> connection;
  std::unique_ptr<JobWorker> worker;
  if (!f.nats_url.empty()) {
    jobbus::ConnectionOptions nats_options;
    nats_options.url = f.nats_url;
    nats_options.name = program;
    auto connected = ConnectWithRetry(nats_options, f.nats_connect_seconds);
    if (!connected.ok()) {
      IMGINTERP_LOG(Error) << "job bus unavailable: " << connected.status().message()
                           << " (start nats-server with -js, or pass --nats_url=\"\" to serve "
                              "gRPC only)";
      (*server)->Shutdown(std::chrono::milliseconds(0));
      return 1;
    }
    connection = *std::move(connected);
    JobWorkerOptions worker_options;
    worker_options.layout.job_ttl_seconds = f.job_ttl_seconds;
    worker_options.layout.inline_limit_bytes = f.inline_limit_bytes;
    worker_options.consumer.ack_wait_ms = f.ack_wait_ms;
    worker_options.consumer.max_deliver = f.max_deliver;
    worker_options.fetch_batch = f.fetch_batch;
    worker_options.max_in_flight = f.max_in_flight;
    worker_options.hold_before_run_ms = f.hold_before_run_ms;
    absl::Status bus = jobbus::EnsureBus(*connection, worker_options.layout);
    absl::StatusOr<std::unique_ptr<JobWorker>> started =
        bus.ok() ? JobWorker::Start(*connection, handler, **host, worker_options)
                 : absl::StatusOr<std::unique_ptr<JobWorker>>(bus);
    if (!started.ok()) {
      IMGINTERP_LOG(Error) << "cannot start the job bus worker: " << started.status().message();
      (*server)->Shutdown(std::chrono::milliseconds(0));
      return 1;
    }
    worker = *std::move(started);
  }

  while (true) {
    const int signal = common::WaitForShutdownOrReloadSignal();
    if (signal != SIGHUP) break;
    IMGINTERP_LOG(Info) << "SIGHUP: reloading the model repository";
    if (auto s = (*host)->Reload(); !s.ok()) {
      IMGINTERP_LOG(Warning) << "reload: " << s.message();
    }
  }
  IMGINTERP_LOG(Info) << "shutting down: draining calls and tasks in flight";
  (*server)->SetServing(false);
  if (worker != nullptr) worker->Stop();
  (*server)->Shutdown(std::chrono::seconds(f.drain_seconds));
  (*host)->Stop();
  if (connection != nullptr) connection->Close();
  IMGINTERP_LOG(Info) << program << " stopped";
  return 0;
}

}  // namespace imginterp::service
