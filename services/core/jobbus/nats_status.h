// Private to the jobbus library: turns a failed natsStatus, together with nats.c's thread-local
// error text and the JetStream error code, into an absl::Status a user can act on.
#pragma once

#include <nats/nats.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace imginterp::jobbus::detail {

// nats.c's last error text for the calling thread ("" when there is none).
std::string LastNatsErrorText();

// `what` says what was attempted ("put key 'a' in bucket 'b'"); `js_error` is the JetStream
// error code when the call reports one (0 otherwise). Never returns OK: `status` must not be
// NATS_OK.
absl::Status NatsError(natsStatus status, absl::string_view what, int js_error = 0);

// True when a publish with an expected last sequence lost the race (JetStream error 10071,
// "wrong last sequence"). nats.c's KV calls do not return the JetStream code, so the error
// text is consulted as well.
bool IsWrongLastSequence(natsStatus status, int js_error);

// True when the server answered that it has no JetStream (or nothing answered the JetStream API).
bool IsJetStreamUnavailable(natsStatus status, int js_error);

// Owns a nats.c object and destroys it with its _Destroy function.
template <typename T, void (*Destroy)(T*)>
struct NatsDeleter {
  void operator()(T* object) const {
    if (object != nullptr) Destroy(object);
  }
};

}  // namespace imginterp::jobbus::detail
