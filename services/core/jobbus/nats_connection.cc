#include "services/core/jobbus/nats_connection.h"

#include <nats/nats.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "services/core/jobbus/nats_status.h"

namespace imginterp::jobbus {
namespace {

using OptionsPtr =
    std::unique_ptr<natsOptions, detail::NatsDeleter<natsOptions, natsOptions_Destroy>>;

// Flush budget when closing, so pending acks and publishes reach the server.
constexpr int64_t kCloseFlushTimeoutMs = 1000;

}  // namespace

absl::StatusOr<std::unique_ptr<NatsConnection>> NatsConnection::Connect(
    const ConnectionOptions& options) {
  if (options.url.empty()) {
    return absl::InvalidArgumentError("NATS url is empty; pass e.g. nats://127.0.0.1:4222");
  }
  if (options.connect_timeout_ms <= 0 || options.jetstream_timeout_ms <= 0 ||
      options.reconnect_wait_ms < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "NATS timeouts must be positive (connect_timeout_ms=", options.connect_timeout_ms,
        ", jetstream_timeout_ms=", options.jetstream_timeout_ms,
        ", reconnect_wait_ms=", options.reconnect_wait_ms, ")"));
  }
  natsOptions* raw_options = nullptr;
  natsStatus s = natsOptions_Create(&raw_options);
  if (s != NATS_OK) return detail::NatsError(s, "creating NATS options");
  OptionsPtr nats_options(raw_options);

  s = natsOptions_SetURL(nats_options.get(), options.url.c_str());
  if (s == NATS_OK) s = natsOptions_SetName(nats_options.get(), options.name.c_str());
  if (s == NATS_OK) s = natsOptions_SetTimeout(nats_options.get(), options.connect_timeout_ms);
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(nats_options.get(), options.max_reconnect);
  if (s == NATS_OK) {
    s = natsOptions_SetReconnectWait(nats_options.get(), options.reconnect_wait_ms);
  }
  if (s != NATS_OK) {
    return detail::NatsError(s, absl::StrCat("configuring NATS connection to '", options.url, "'"));
  }

  std::unique_ptr<NatsConnection> connection(new NatsConnection());
  s = natsConnection_Connect(&connection->nc_, nats_options.get());
  if (s != NATS_OK) {
    absl::Status status =
        detail::NatsError(s, absl::StrCat("connecting to NATS at '", options.url, "'"));
    if (absl::IsInternal(status) || absl::IsFailedPrecondition(status)) {
      return absl::UnavailableError(status.message());
    }
    return status;
  }
  jsOptions js_options;
  jsOptions_Init(&js_options);
  js_options.Wait = options.jetstream_timeout_ms;
  s = natsConnection_JetStream(&connection->js_, connection->nc_, &js_options);
  if (s != NATS_OK) return detail::NatsError(s, "creating the JetStream context");
  return connection;
}

NatsConnection::~NatsConnection() {
  // The JetStream context must go before the connection it uses. nats_Close() is not called:
  // other connections in the process may still be alive.
  if (js_ != nullptr) jsCtx_Destroy(js_);
  if (nc_ != nullptr) natsConnection_Destroy(nc_);
}

int64_t NatsConnection::MaxPayload() const { return natsConnection_GetMaxPayload(nc_); }

bool NatsConnection::IsConnected() const {
  return natsConnection_Status(nc_) == NATS_CONN_STATUS_CONNECTED;
}

void NatsConnection::Close() {
  if (natsConnection_IsClosed(nc_)) return;
  natsConnection_FlushTimeout(nc_, kCloseFlushTimeoutMs);
  natsConnection_Close(nc_);
}

}  // namespace imginterp::jobbus
