#include "tests/integration/stack.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <opencv2/imgproc.hpp>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "services/core/codec/image_codec.h"
#include "services/core/common/http_get.h"
#include "tests/support/assets.h"

namespace imginterp::integration {

std::string BinaryPath(const std::string& name) {
  if (name == "gateway") return IMGINTERP_GATEWAY_BIN;
  if (name == "edges") return IMGINTERP_EDGES_BIN;
  if (name == "classify") return IMGINTERP_CLASSIFY_BIN;
  if (name == "cli") return IMGINTERP_CLI_BIN;
  // Every other family: <build>/services/<family>/imginterp-<family>.
  return absl::StrCat(IMGINTERP_SERVICES_BIN_DIR, "/", name, "/imginterp-", name);
}

std::string TestModelsDir() { return IMGINTERP_TEST_MODELS_DIR; }

std::shared_ptr<grpc::Channel> Stack::Channel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(128 << 20);
  args.SetMaxSendMessageSize(128 << 20);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

bool WaitServing(const std::string& address, std::chrono::milliseconds timeout) {
  auto stub = grpc::health::v1::Health::NewStub(Stack::Channel(address));
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
    grpc::health::v1::HealthCheckRequest request;
    grpc::health::v1::HealthCheckResponse response;
    if (stub->Check(&context, request, &response).ok() &&
        response.status() == grpc::health::v1::HealthCheckResponse::SERVING) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

std::string MakePng(int width, int height, int seed) {
  cv::Mat rgb(height, width, CV_8UC3, cv::Scalar(20 + seed % 50, 40, 60));
  cv::circle(rgb, cv::Point(width / 3 + seed % 7, height / 2), std::max(3, height / 5),
             cv::Scalar(250, 200, 30), cv::FILLED);
  cv::rectangle(rgb,
                cv::Rect(width / 2, height / 4, std::max(2, width / 4), std::max(2, height / 3)),
                cv::Scalar(30, 220, 120 + seed % 100), cv::FILLED);
  return *codec::EncodePng(rgb);
}

std::string HttpGet(int port, const std::string& path) {
  absl::StatusOr<std::string> body =
      common::HttpGet(common::HttpUrl{"127.0.0.1", port, path}, std::chrono::milliseconds(10000));
  return body.ok() ? *std::move(body) : "";
}

Stack::Stack() : work_dir_(test_support::MakeTempDir("imginterp-it")) {}

Stack::~Stack() {
  // Gateway first, then workers, then the bus: the order a real shutdown takes.
  if (gateway_ != nullptr && gateway_->child != nullptr) gateway_->child->Terminate();
  for (auto& process : processes_) {
    if (process->child != nullptr) process->child->Terminate();
  }
  nats_.reset();
  // The processes' logs: failing tests print their tails before the stack goes away. Set
  // IMGINTERP_KEEP_TEST_DIRS=1 to keep them for a closer look.
  if (std::getenv("IMGINTERP_KEEP_TEST_DIRS") == nullptr) test_support::RemoveTree(work_dir_);
}

absl::Status Stack::StartNats() {
  auto nats = test_support::NatsServer::Start();
  if (!nats.ok()) return nats.status();
  nats_ = *std::move(nats);
  return absl::OkStatus();
}

absl::StatusOr<Process*> Stack::Launch(const std::string& name, std::vector<std::string> argv,
                                       int grpc_port, int metrics_port) {
  auto process = std::make_unique<Process>();
  process->grpc_port = grpc_port;
  process->metrics_port = metrics_port;
  process->log_path = absl::StrCat(work_dir_, "/", name, "-", launched_++, ".log");
  auto child = test_support::ChildProcess::Start(
      std::move(argv), {{"OPENBLAS_NUM_THREADS", "1"}, {"OMP_NUM_THREADS", "1"}},
      process->log_path);
  if (!child.ok()) return child.status();
  process->child = *std::move(child);
  // gRPC's first connection attempt to a port nobody listens on yet stalls the channel for
  // seconds (measured ~5 s per process with gRPC 1.51); a plain TCP probe first avoids that.
  test_support::WaitForTcpPort(grpc_port, std::chrono::seconds(60));
  if (!WaitServing(process->address(), std::chrono::seconds(60))) {
    const std::string tail = Tail(*process);
    process->child->Kill();
    return absl::UnavailableError(
        absl::StrCat(name, " did not become SERVING at ", process->address(), "; log:\n", tail));
  }
  processes_.push_back(std::move(process));
  return processes_.back().get();
}

absl::StatusOr<Process*> Stack::StartService(const std::string& family,
                                             std::vector<std::string> extra_flags) {
  const int grpc_port = test_support::FreeLoopbackPort();
  const int metrics_port = test_support::FreeLoopbackPort();
  std::vector<std::string> argv = {BinaryPath(family), "--bind_host=127.0.0.1",
                                   absl::StrCat("--grpc_port=", grpc_port),
                                   absl::StrCat("--metrics_port=", metrics_port),
                                   "--nats_url=" + (nats_ ? nats_->url() : std::string())};
  if (family == "classify") {
    argv.push_back("--model_repository=" + TestModelsDir());
  } else if (family != "edges") {
    // Families of imported pretrained models serve the model store's repository.
    argv.push_back("--model_repository=" + test_support::FamilyRepository(family));
  }
  for (auto& flag : extra_flags) argv.push_back(std::move(flag));
  return Launch(family, std::move(argv), grpc_port, metrics_port);
}

absl::StatusOr<Process*> Stack::StartGateway(std::vector<std::string> extra_flags, int grpc_port) {
  if (grpc_port == 0) grpc_port = test_support::FreeLoopbackPort();
  const int metrics_port = test_support::FreeLoopbackPort();
  std::vector<std::string> argv = {BinaryPath("gateway"), absl::StrCat("--grpc_port=", grpc_port),
                                   absl::StrCat("--metrics_port=", metrics_port),
                                   "--nats_url=" + nats_->url(),
                                   std::string("--pipelines=") + IMGINTERP_IT_PIPELINES};
  for (auto& flag : extra_flags) argv.push_back(std::move(flag));
  auto process = Launch("gateway", std::move(argv), grpc_port, metrics_port);
  if (process.ok()) gateway_ = *process;
  return process;
}

std::unique_ptr<v1::GatewayService::Stub> Stack::GatewayStub() const {
  return v1::GatewayService::NewStub(Channel(gateway_->address()));
}

std::string Stack::Tail(const Process& process, int lines) {
  std::ifstream in(process.log_path);
  std::vector<std::string> all;
  std::string line;
  while (std::getline(in, line)) all.push_back(line);
  std::ostringstream out;
  for (size_t i = all.size() > static_cast<size_t>(lines) ? all.size() - lines : 0; i < all.size();
       ++i) {
    out << all[i] << "\n";
  }
  return out.str();
}

}  // namespace imginterp::integration
