#include "services/core/jobbus/nats_status.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace imginterp::jobbus::detail {
namespace {

// JetStream API error codes (nats/status.h jsErrCode) that decide the status code.
constexpr int kJsWrongLastSequence = 10071;
constexpr int kJsNotEnabled = 10076;
constexpr int kJsNotEnabledForAccount = 10039;
constexpr int kJsStreamNotFound = 10059;
constexpr int kJsConsumerNotFound = 10014;
constexpr int kJsStreamNameExists = 10058;
constexpr int kJsConsumerNameExists = 10013;
constexpr int kJsInsufficientResources = 10023;

absl::StatusCode CodeFor(natsStatus status, int js_error, const std::string& text) {
  if (IsWrongLastSequence(status, js_error)) return absl::StatusCode::kAborted;
  switch (js_error) {
    case kJsNotEnabled:
    case kJsNotEnabledForAccount:
      return absl::StatusCode::kFailedPrecondition;
    case kJsStreamNotFound:
    case kJsConsumerNotFound:
      return absl::StatusCode::kNotFound;
    case kJsStreamNameExists:
    case kJsConsumerNameExists:
      return absl::StatusCode::kAlreadyExists;
    case kJsInsufficientResources:
      return absl::StatusCode::kResourceExhausted;
    default:
      break;
  }
  switch (status) {
    case NATS_NOT_FOUND:
      return absl::StatusCode::kNotFound;
    case NATS_TIMEOUT:
    case NATS_NO_SERVER:
    case NATS_IO_ERROR:
    case NATS_CONNECTION_CLOSED:
    case NATS_CONNECTION_DISCONNECTED:
    case NATS_STALE_CONNECTION:
    case NATS_NOT_YET_CONNECTED:
    case NATS_NO_RESPONDERS:
    case NATS_DRAINING:
    case NATS_SLOW_CONSUMER:
      return absl::StatusCode::kUnavailable;
    case NATS_INVALID_ARG:
    case NATS_INVALID_SUBJECT:
    case NATS_INVALID_TIMEOUT:
    case NATS_ADDRESS_MISSING:
    case NATS_INVALID_QUEUE_NAME:
    case NATS_MAX_PAYLOAD:
      return absl::StatusCode::kInvalidArgument;
    case NATS_ILLEGAL_STATE:
    case NATS_INVALID_SUBSCRIPTION:
    case NATS_NO_SERVER_SUPPORT:
      return absl::StatusCode::kFailedPrecondition;
    case NATS_CONNECTION_AUTH_FAILED:
    case NATS_NOT_PERMITTED:
    case NATS_SECURE_CONNECTION_WANTED:
    case NATS_SECURE_CONNECTION_REQUIRED:
    case NATS_SSL_ERROR:
      return absl::StatusCode::kPermissionDenied;
    case NATS_NO_MEMORY:
    case NATS_MAX_DELIVERED_MSGS:
      return absl::StatusCode::kResourceExhausted;
    default:
      break;
  }
  if (absl::StrContains(text, "maximum messages exceeded") ||
      absl::StrContains(text, "maximum bytes exceeded") ||
      absl::StrContains(text, "insufficient resources")) {
    return absl::StatusCode::kResourceExhausted;
  }
  return absl::StatusCode::kInternal;
}

}  // namespace

std::string LastNatsErrorText() {
  natsStatus ignored = NATS_OK;
  const char* text = nats_GetLastError(&ignored);
  return text == nullptr ? std::string() : std::string(text);
}

bool IsWrongLastSequence(natsStatus status, int js_error) {
  if (status == NATS_OK) return false;
  if (js_error == kJsWrongLastSequence) return true;
  return status == NATS_ERR && absl::StrContains(LastNatsErrorText(), "wrong last sequence");
}

bool IsJetStreamUnavailable(natsStatus status, int js_error) {
  if (status == NATS_OK) return false;
  return status == NATS_NO_RESPONDERS || js_error == kJsNotEnabled ||
         js_error == kJsNotEnabledForAccount ||
         absl::StrContains(LastNatsErrorText(), "jetstream not enabled");
}

absl::Status NatsError(natsStatus status, absl::string_view what, int js_error) {
  const std::string text = LastNatsErrorText();
  const char* status_text = natsStatus_GetText(status);
  std::string message = absl::StrCat(what, " failed: ", status_text);
  if (!text.empty() && text != status_text) absl::StrAppend(&message, " (", text, ")");
  if (js_error != 0) absl::StrAppend(&message, " [JetStream error ", js_error, "]");
  return absl::Status(CodeFor(status, js_error, text), message);
}

}  // namespace imginterp::jobbus::detail
