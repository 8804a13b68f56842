// A real nats-server for tests, on a free loopback port with JetStream in its own store dir.
//
// Externally synchronized (one test thread drives it).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tests/support/process.h"

namespace imginterp::test_support {

struct NatsServerOptions {
  // Largest message the server accepts (nats-server allows at most 64 MB).
  int64_t max_payload = 8 * 1024 * 1024;
  // JetStream store; default: a new directory inside the server's temp dir.
  std::string store_dir;
  // False starts the server without -js (to test the "no JetStream" error path).
  bool jetstream = true;
};

class NatsServer {
 public:
  // Runs /usr/sbin/nats-server (or nats-server on PATH) with -a 127.0.0.1 -p <free port> -js
  // -sd <store_dir> and a generated config for max_payload, and waits until the port accepts
  // connections. The server's output goes to server.log in its temp dir (log_path()).
  // NOT_FOUND when nats-server is not installed; UNAVAILABLE when it does not come up.
  static absl::StatusOr<std::unique_ptr<NatsServer>> Start(NatsServerOptions options = {});
  // Stops the server and removes its temp dir (and the store, unless the caller gave one).
  ~NatsServer();
  NatsServer(const NatsServer&) = delete;
  NatsServer& operator=(const NatsServer&) = delete;

  // "nats://127.0.0.1:<port>".
  std::string url() const;
  int port() const { return port_; }
  const std::string& store_dir() const { return store_dir_; }
  std::string log_path() const;
  bool Running() const { return process_ != nullptr && process_->Running(); }

  // Stops gracefully (SIGTERM, then SIGKILL after 10 s). The port and store are kept.
  absl::Status Stop();
  // Kills the server with SIGKILL, as a crash would.
  void Kill();
  // Starts it again on the same port with the same store (Stop or Kill first, or it is
  // stopped here): JetStream streams, consumers and KV buckets survive.
  absl::Status Restart();

 private:
  NatsServer(NatsServerOptions options, std::string work_dir, int port)
      : options_(std::move(options)), work_dir_(std::move(work_dir)), port_(port) {}
  // Launches the process and waits for the port; UNAVAILABLE if it exits or stays closed.
  absl::Status Launch();

  NatsServerOptions options_;
  std::string work_dir_;
  std::string store_dir_;
  std::string config_path_;
  bool owns_store_ = false;
  int port_;
  std::unique_ptr<ChildProcess> process_;
};

}  // namespace imginterp::test_support
