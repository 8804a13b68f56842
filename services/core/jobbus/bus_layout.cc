#include "services/core/jobbus/bus_layout.h"

#include <nats/nats.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "services/core/common/logging.h"
#include "services/core/common/status_macros.h"
#include "services/core/jobbus/nats_connection.h"
#include "services/core/jobbus/nats_status.h"

namespace imginterp::jobbus {
namespace {

constexpr int64_t kNanosPerSecond = 1000LL * 1000 * 1000;

absl::Status JetStreamMissing(const std::string& what) {
  return absl::FailedPreconditionError(absl::StrCat(
      what, ": the NATS server has no JetStream; start nats-server with -js (and -sd <dir>)"));
}

absl::Status ValidateLayout(const BusLayout& layout) {
  if (layout.stream.empty() || layout.subject_prefix.empty()) {
    return absl::InvalidArgumentError("bus layout needs a stream name and a subject prefix");
  }
  if (layout.job_ttl_seconds <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("job_ttl_seconds is ", layout.job_ttl_seconds, "; it must be positive"));
  }
  if (layout.duplicate_window_seconds <= 0 ||
      layout.duplicate_window_seconds > layout.job_ttl_seconds) {
    return absl::InvalidArgumentError(
        absl::StrCat("duplicate_window_seconds is ", layout.duplicate_window_seconds,
                     "; it must be in [1, job_ttl_seconds=", layout.job_ttl_seconds, "]"));
  }
  return absl::OkStatus();
}

absl::Status EnsureStream(NatsConnection& connection, const BusLayout& layout) {
  jsStreamInfo* info = nullptr;
  jsErrCode js_error = static_cast<jsErrCode>(0);
  natsStatus s =
      js_GetStreamInfo(&info, connection.js(), layout.stream.c_str(), nullptr, &js_error);
  if (s == NATS_OK) {
    jsStreamInfo_Destroy(info);
    return absl::OkStatus();
  }
  const std::string what = absl::StrCat("looking up stream '", layout.stream, "'");
  if (detail::IsJetStreamUnavailable(s, js_error)) return JetStreamMissing(what);
  if (s != NATS_NOT_FOUND) return detail::NatsError(s, what, js_error);

  const std::string subjects = layout.subject_prefix + ".>";
  const char* subject_list[] = {subjects.c_str()};
  jsStreamConfig config;
  jsStreamConfig_Init(&config);
  config.Name = layout.stream.c_str();
  config.Subjects = subject_list;
  config.SubjectsLen = 1;
  config.Retention = js_WorkQueuePolicy;
  config.Storage = js_FileStorage;
  config.MaxAge = layout.job_ttl_seconds * kNanosPerSecond;
  config.Duplicates = layout.duplicate_window_seconds * kNanosPerSecond;
  js_error = static_cast<jsErrCode>(0);
  s = js_AddStream(&info, connection.js(), &config, nullptr, &js_error);
  if (s == NATS_OK) {
    jsStreamInfo_Destroy(info);
    IMGINTERP_LOG(Info) << "created stream " << layout.stream << " on " << subjects;
    return absl::OkStatus();
  }
  // Another process created it in between: reuse it.
  if (js_error == JSStreamNameExistErr) return absl::OkStatus();
  const std::string create =
      absl::StrCat("creating stream '", layout.stream, "' on '", subjects, "'");
  if (detail::IsJetStreamUnavailable(s, js_error)) return JetStreamMissing(create);
  return detail::NatsError(s, create, js_error);
}

absl::Status EnsureBucket(NatsConnection& connection, const std::string& bucket,
                          int64_t ttl_seconds) {
  kvStore* kv = nullptr;
  natsStatus s = js_KeyValue(&kv, connection.js(), bucket.c_str());
  if (s == NATS_OK) {
    kvStore_Destroy(kv);
    return absl::OkStatus();
  }
  const std::string what = absl::StrCat("looking up KV bucket '", bucket, "'");
  if (detail::IsJetStreamUnavailable(s, 0)) return JetStreamMissing(what);
  if (s != NATS_NOT_FOUND) return detail::NatsError(s, what);

  kvConfig config;
  kvConfig_Init(&config);
  config.Bucket = bucket.c_str();
  config.History = 1;
  config.TTL = ttl_seconds * kNanosPerSecond;
  config.StorageType = js_FileStorage;
  s = js_CreateKeyValue(&kv, connection.js(), &config);
  if (s == NATS_OK) {
    kvStore_Destroy(kv);
    IMGINTERP_LOG(Info) << "created KV bucket " << bucket;
    return absl::OkStatus();
  }
  const std::string create = absl::StrCat("creating KV bucket '", bucket, "'");
  absl::Status status = detail::NatsError(s, create);
  // Another process may have created it with a slightly different configuration in between.
  s = js_KeyValue(&kv, connection.js(), bucket.c_str());
  if (s == NATS_OK) {
    kvStore_Destroy(kv);
    return absl::OkStatus();
  }
  return status;
}

}  // namespace

absl::Status EnsureBus(NatsConnection& connection, const BusLayout& layout) {
  IMGINTERP_RETURN_IF_ERROR(ValidateLayout(layout));
  IMGINTERP_RETURN_IF_ERROR(EnsureStream(connection, layout));
  for (const std::string* bucket :
       {&layout.jobs_bucket, &layout.artifacts_bucket, &layout.idempotency_bucket}) {
    IMGINTERP_RETURN_IF_ERROR(EnsureBucket(connection, *bucket, layout.job_ttl_seconds));
  }
  return absl::OkStatus();
}

}  // namespace imginterp::jobbus
