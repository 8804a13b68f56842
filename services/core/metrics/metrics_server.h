// The process's one metrics registry and the HTTP endpoint Prometheus scrapes (GET /metrics).
// Made once in main and handed by reference to whatever records metrics; there are no globals.
//
// The endpoint is a small HTTP/1.0 server of our own on one thread, not prometheus-cpp's
// civetweb Exposer: Debian's civetweb starts its threads with a fixed 100 KiB stack, which
// glibc refuses (EINVAL) in processes whose static TLS is large, as LibTorch's is.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace imginterp::metrics {

class ProcessCollector;

// Owns the registry and the serving thread; the registry lives as long as the server, so
// everything that records into it must be destroyed first.
//
// Thread-safe (prometheus-cpp's Registry is). Neither copyable nor movable.
class MetricsServer {
 public:
  // Serves GET /metrics on `bind_address` ("0.0.0.0:9464", "127.0.0.1:0"; port 0 picks a free
  // port): the registry's families followed by the process's own (ProcessCollector), labelled
  // service=`service` when it is not empty. INVALID_ARGUMENT for an empty or malformed address;
  // UNAVAILABLE "cannot listen on <address>: ..." when the port is taken or the address cannot be
  // bound.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Create(const std::string& bind_address,
                                                               const std::string& service = "");
  // Stops serving (within ~100 ms) and joins the thread.
  ~MetricsServer();

  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;
  MetricsServer(MetricsServer&&) = delete;
  MetricsServer& operator=(MetricsServer&&) = delete;

  prometheus::Registry& registry() { return *registry_; }
  // The actual listening port (the one picked when bind_address asked for port 0).
  int port() const { return port_; }

 private:
  MetricsServer(std::shared_ptr<prometheus::Registry> registry,
                std::unique_ptr<ProcessCollector> process, int listen_fd, int port);
  void Serve();
  void Answer(int client_fd);

  const std::shared_ptr<prometheus::Registry> registry_;
  const std::unique_ptr<ProcessCollector> process_;
  const int listen_fd_;
  const int port_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace imginterp::metrics
