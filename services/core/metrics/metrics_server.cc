#include "services/core/metrics/metrics_server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"
#include "services/core/metrics/process_collector.h"

namespace imginterp::metrics {
namespace {

// Largest request head read; a scrape's is a few hundred bytes.
constexpr size_t kMaxRequestBytes = 8192;
// A client that sends nothing for this long is dropped.
constexpr int kClientTimeoutMs = 2000;

void SendAll(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n = send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return;
    sent += static_cast<size_t>(n);
  }
}

std::string Response(int code, const char* reason, const std::string& content_type,
                     const std::string& body) {
  return absl::StrCat("HTTP/1.0 ", code, " ", reason, "\r\nContent-Type: ", content_type,
                      "\r\nContent-Length: ", body.size(), "\r\nConnection: close\r\n\r\n", body);
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Create(
    const std::string& bind_address, const std::string& service) {
  const auto colon = bind_address.rfind(':');
  int port = -1;
  if (bind_address.empty() || colon == std::string::npos ||
      !absl::SimpleAtoi(bind_address.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics address '", bind_address, "' is not host:port, e.g. 0.0.0.0:9464"));
  }
  std::string host = bind_address.substr(0, colon);
  if (host.empty() || host == "*") host = "0.0.0.0";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (host == "localhost") host = "127.0.0.1";
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics host '", host, "' is not an IPv4 address"));
  }
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat("cannot open a socket: ", std::strerror(errno)));
  }
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd, 64) != 0) {
    const std::string reason = std::strerror(errno);
    close(fd);
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", bind_address, ": ", reason,
                     " (is another process using the port? pick another with --metrics_port)"));
  }
  socklen_t length = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length);
  std::unique_ptr<MetricsServer> server(
      new MetricsServer(std::make_shared<prometheus::Registry>(),
                        std::make_unique<ProcessCollector>(service), fd, ntohs(addr.sin_port)));
  MetricsServer* raw = server.get();
  server->thread_ = std::thread([raw] { raw->Serve(); });
  return server;
}

MetricsServer::MetricsServer(std::shared_ptr<prometheus::Registry> registry,
                             std::unique_ptr<ProcessCollector> process, int listen_fd, int port)
    : registry_(std::move(registry)),
      process_(std::move(process)),
      listen_fd_(listen_fd),
      port_(port) {}

MetricsServer::~MetricsServer() {
  stopping_.store(true);
  if (thread_.joinable()) thread_.join();
  close(listen_fd_);
}

void MetricsServer::Serve() {
  while (!stopping_.load()) {
    pollfd pfd{listen_fd_, POLLIN, 0};
    if (poll(&pfd, 1, 100) <= 0) continue;
    const int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    Answer(client);
    close(client);
  }
}

void MetricsServer::Answer(int client_fd) {
  std::string head;
  char buffer[2048];
  while (head.find("\r\n\r\n") == std::string::npos && head.find("\n\n") == std::string::npos &&
         head.size() < kMaxRequestBytes) {
    pollfd pfd{client_fd, POLLIN, 0};
    if (poll(&pfd, 1, kClientTimeoutMs) <= 0) return;
    const ssize_t n = recv(client_fd, buffer, sizeof(buffer), 0);
    if (n <= 0) break;
    head.append(buffer, static_cast<size_t>(n));
  }
  const auto line_end = head.find_first_of("\r\n");
  const std::string request_line = head.substr(0, line_end);
  const auto first_space = request_line.find(' ');
  const auto second_space = request_line.find(' ', first_space + 1);
  const std::string method = request_line.substr(0, first_space);
  std::string path = first_space == std::string::npos
                         ? ""
                         : request_line.substr(first_space + 1, second_space - first_space - 1);
  if (auto query = path.find('?'); query != std::string::npos) path.resize(query);
  if (method != "GET" && method != "HEAD") {
    SendAll(client_fd, Response(405, "Method Not Allowed", "text/plain", "use GET /metrics\n"));
    return;
  }
  if (path != "/metrics") {
    SendAll(client_fd, Response(404, "Not Found", "text/plain", "metrics are at /metrics\n"));
    return;
  }
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  for (prometheus::MetricFamily& family : process_->Collect()) {
    families.push_back(std::move(family));
  }
  const std::string body = prometheus::TextSerializer().Serialize(families);
  std::string response =
      Response(200, "OK", "text/plain; version=0.0.4; charset=utf-8", method == "HEAD" ? "" : body);
  SendAll(client_fd, response);
}

}  // namespace imginterp::metrics
