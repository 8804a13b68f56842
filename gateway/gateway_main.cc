// imginterp-gateway: the public gRPC API (imginterp.v1.GatewayService) running pipelines as
// jobs on the NATS JetStream job bus. Links no LibTorch and no OpenCV.
#include <chrono>
#include <cstdint>
#include <iostream>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gateway/consumer_lag_poller.h"
#include "gateway/gateway_metrics.h"
#include "gateway/gateway_service.h"
#include "gateway/job_manager.h"
#include "gateway/pipeline_registry.h"
#include "services/core/common/flags.h"
#include "services/core/common/logging.h"
#include "services/core/common/shutdown.h"
#include "services/core/common/status_macros.h"
#include "services/core/jobbus/artifact_store.h"
#include "services/core/jobbus/bus_layout.h"
#include "services/core/jobbus/job_store.h"
#include "services/core/jobbus/key_value.h"
#include "services/core/jobbus/nats_connection.h"
#include "services/core/jobbus/task_queue.h"
#include "services/core/metrics/metrics_server.h"
#include "services/core/rpc/grpc_server.h"

#ifndef IMGINTERP_GATEWAY_DEFAULT_PIPELINES
#define IMGINTERP_GATEWAY_DEFAULT_PIPELINES "gateway/pipelines.pbtxt"
#endif

namespace imginterp::gateway {
namespace {

struct Config {
  int grpc_port = 8000;
  int metrics_port = 9400;
  std::string nats_url = "nats://127.0.0.1:4222";
  std::string pipelines = IMGINTERP_GATEWAY_DEFAULT_PIPELINES;
  int64_t job_ttl_seconds = 24 * 3600;
  double stage_start_timeout_seconds = 30;
  double sync_timeout_seconds = 300;
  int64_t max_image_bytes = 32 << 20;
  int64_t inline_limit_bytes = 256 * 1024;
  double bus_poll_seconds = 5;
  // How long to keep trying to reach nats-server at start.
  double nats_connect_wait_seconds = 10;
};

// Retries for a while so that starting the gateway and nats-server together just works.
absl::StatusOr<std::unique_ptr<jobbus::NatsConnection>> ConnectWithRetry(const Config& config) {
  jobbus::ConnectionOptions options;
  options.url = config.nats_url;
  options.name = "imginterp-gateway";
  const auto give_up =
      std::chrono::steady_clock::now() +
      std::chrono::milliseconds(static_cast<int64_t>(config.nats_connect_wait_seconds * 1000));
  while (true) {
    absl::StatusOr<std::unique_ptr<jobbus::NatsConnection>> connection =
        jobbus::NatsConnection::Connect(options);
    if (connection.ok() || std::chrono::steady_clock::now() >= give_up) {
      if (!connection.ok()) {
        return absl::UnavailableError(
            absl::StrCat("cannot reach NATS at ", config.nats_url, " after ",
                         config.nats_connect_wait_seconds, " s (", connection.status().message(),
                         "): start nats-server with JetStream (-js) or set --nats_url"));
      }
      return connection;
    }
    IMGINTERP_LOG(Warning) << "NATS at " << config.nats_url
                           << " is not reachable yet; retrying: " << connection.status();
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

absl::Status Run(const Config& config) {
  IMGINTERP_ASSIGN_OR_RETURN(std::unique_ptr<PipelineRegistry> pipelines,
                             PipelineRegistry::Load(config.pipelines));
  IMGINTERP_LOG(Info) << "pipelines from " << config.pipelines << ": " << pipelines->Names();

  IMGINTERP_ASSIGN_OR_RETURN(std::unique_ptr<jobbus::NatsConnection> connection,
                             ConnectWithRetry(config));
  jobbus::BusLayout layout;
  layout.job_ttl_seconds = config.job_ttl_seconds;
  // Leave room in a message for the rest of the record or task around an inline payload.
  const int64_t max_payload = connection->MaxPayload();
  layout.inline_limit_bytes = std::min<int64_t>(config.inline_limit_bytes, max_payload / 2);
  layout.chunk_bytes = max_payload / 2;
  IMGINTERP_RETURN_IF_ERROR(jobbus::EnsureBus(*connection, layout));
  IMGINTERP_ASSIGN_OR_RETURN(std::unique_ptr<jobbus::KeyValue> jobs_kv,
                             jobbus::KeyValue::Open(*connection, layout.jobs_bucket));
  IMGINTERP_ASSIGN_OR_RETURN(std::unique_ptr<jobbus::KeyValue> artifacts_kv,
                             jobbus::KeyValue::Open(*connection, layout.artifacts_bucket));
  IMGINTERP_ASSIGN_OR_RETURN(std::unique_ptr<jobbus::KeyValue> idempotency_kv,
                             jobbus::KeyValue::Open(*connection, layout.idempotency_bucket));
  jobbus::JobStore jobs(*jobs_kv);
  jobbus::ArtifactStore artifacts(*artifacts_kv, layout.inline_limit_bytes, layout.chunk_bytes);
  jobbus::TaskPublisher publisher(*connection, layout);

  IMGINTERP_ASSIGN_OR_RETURN(
      std::unique_ptr<metrics::MetricsServer> metrics_server,
      metrics::MetricsServer::Create(absl::StrCat("0.0.0.0:", config.metrics_port), "gateway"));
  GatewayMetrics gateway_metrics(metrics_server->registry());
  std::vector<std::string> pipeline_names;
  for (const v1::PipelineSpec& pipeline : pipelines->config().pipelines()) {
    pipeline_names.push_back(pipeline.name());
  }
  gateway_metrics.DeclarePipelines(pipeline_names);

  JobManagerOptions manager_options;
  manager_options.max_image_bytes = config.max_image_bytes;
  manager_options.default_start_timeout = absl::Seconds(config.stage_start_timeout_seconds);
  IMGINTERP_ASSIGN_OR_RETURN(std::unique_ptr<JobManager> manager,
                             JobManager::Create(manager_options, *pipelines, jobs, artifacts,
                                                *idempotency_kv, publisher, &gateway_metrics));
  IMGINTERP_RETURN_IF_ERROR(manager->Start());
  std::unique_ptr<ConsumerLagPoller> lag_poller;
  if (config.bus_poll_seconds > 0) {
    lag_poller = std::make_unique<ConsumerLagPoller>(*connection, layout, pipelines->Families(),
                                                     gateway_metrics,
                                                     absl::Seconds(config.bus_poll_seconds));
  }

  GatewayServiceOptions service_options;
  service_options.sync_timeout = absl::Seconds(config.sync_timeout_seconds);
  GatewayService service(service_options, *manager, *pipelines);
  rpc::GrpcServerOptions server_options;
  server_options.address = absl::StrCat("0.0.0.0:", config.grpc_port);
  IMGINTERP_ASSIGN_OR_RETURN(std::unique_ptr<rpc::GrpcServer> server,
                             rpc::GrpcServer::Start(server_options, {&service}));
  server->SetServing(true);
  IMGINTERP_LOG(Info) << "imginterp-gateway serving gRPC on port " << server->port()
                      << ", metrics on port " << metrics_server->port();

  const int signal = common::WaitForShutdownSignal();
  IMGINTERP_LOG(Info) << "signal " << signal << ": draining";
  server->SetServing(false);
  server->Shutdown(std::chrono::seconds(10));
  manager->Stop();
  lag_poller.reset();
  connection->Close();
  IMGINTERP_LOG(Info) << "imginterp-gateway stopped";
  return absl::OkStatus();
}

}  // namespace
}  // namespace imginterp::gateway

int main(int argc, char** argv) {
  using imginterp::gateway::Config;
  imginterp::common::BlockShutdownSignals();
  Config config;
  imginterp::common::FlagSet flags(
      "imginterp-gateway",
      "The image-interpreter public API: runs pipelines of model stages as jobs on NATS.");
  flags.Add("grpc_port", &config.grpc_port, "gRPC port of GatewayService");
  flags.Add("metrics_port", &config.metrics_port, "Prometheus /metrics port");
  flags.Add("nats_url", &config.nats_url, "NATS server URL(s), comma-separated");
  flags.Add("pipelines", &config.pipelines, "pipelines file (imginterp.v1.PipelinesConfig text)");
  flags.Add("job_ttl_seconds", &config.job_ttl_seconds,
            "job records, artifacts and idempotency keys expire after this long");
  flags.Add("stage_start_timeout_seconds", &config.stage_start_timeout_seconds,
            "fail a queued stage no worker started within this long (per-stage override in "
            "the pipelines file)");
  flags.Add("sync_timeout_seconds", &config.sync_timeout_seconds,
            "longest RunPipeline wait when the caller sets no earlier deadline");
  flags.Add("max_image_bytes", &config.max_image_bytes, "largest input image accepted, bytes");
  flags.Add("inline_limit_bytes", &config.inline_limit_bytes,
            "payloads up to this size stay inline in records and tasks; larger ones are chunked");
  flags.Add("bus_poll_seconds", &config.bus_poll_seconds,
            "how often to read each family's queue depth from JetStream for the "
            "imginterp_bus_consumer_* metrics (0: never)");
  flags.Add("nats_connect_wait_seconds", &config.nats_connect_wait_seconds,
            "how long to retry reaching NATS at start");
  const absl::Status parsed = flags.Parse(argc, argv);
  if (!parsed.ok()) {
    std::cerr << parsed.message() << "\n" << flags.Usage();
    return 2;
  }
  if (flags.help_requested()) {
    std::cout << flags.Usage();
    return 0;
  }
  IMGINTERP_LOG(Info) << flags.Describe();
  const absl::Status status = imginterp::gateway::Run(config);
  if (!status.ok()) {
    IMGINTERP_LOG(Error) << "imginterp-gateway: " << status;
    return 1;
  }
  return 0;
}
