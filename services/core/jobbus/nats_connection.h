// RAII over one nats.c connection and its JetStream context.
//
// Thread-safe (nats.c connections and JetStream contexts are); neither copyable nor movable.
// Every nats.c object the bus creates is owned by a unique_ptr with its _Destroy function, and
// every natsStatus becomes an absl::Status carrying nats.c's own error text.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

typedef struct __natsConnection natsConnection;
typedef struct __jsCtx jsCtx;

namespace imginterp::jobbus {

struct ConnectionOptions {
  // Comma-separated server URLs.
  std::string url = "nats://127.0.0.1:4222";
  // Shown in the server's connection list, e.g. "imginterp-edges".
  std::string name = "imginterp";
  int64_t connect_timeout_ms = 5000;
  // Reconnect attempts after a lost connection; -1 retries forever.
  int max_reconnect = -1;
  int64_t reconnect_wait_ms = 500;
  // Timeout of JetStream API calls (publish acks, KV operations).
  int64_t jetstream_timeout_ms = 5000;
};

class NatsConnection {
 public:
  // UNAVAILABLE with the URL and nats.c's reason when no server answers.
  static absl::StatusOr<std::unique_ptr<NatsConnection>> Connect(const ConnectionOptions& options);
  ~NatsConnection();
  NatsConnection(const NatsConnection&) = delete;
  NatsConnection& operator=(const NatsConnection&) = delete;

  natsConnection* nc() const { return nc_; }
  jsCtx* js() const { return js_; }
  // The server's max_payload in bytes: the largest message (and KV value) it accepts.
  int64_t MaxPayload() const;
  bool IsConnected() const;
  // Flushes pending publishes and closes; further calls fail.
  void Close();

 private:
  NatsConnection() = default;
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
};

}  // namespace imginterp::jobbus
