#include "services/core/jobbus/key_value.h"

#include <nats/nats.h>

#include <algorithm>
#include <chrono>
#include <climits>

#include "absl/strings/str_cat.h"
#include "services/core/common/status_macros.h"
#include "services/core/jobbus/nats_connection.h"
#include "services/core/jobbus/nats_status.h"

namespace imginterp::jobbus {
namespace {

using EntryPtr = std::unique_ptr<kvEntry, detail::NatsDeleter<kvEntry, kvEntry_Destroy>>;

bool IsKeyChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '/' || c == '_' || c == '=' || c == '.';
}

absl::Status ValidateKey(const std::string& key, const std::string& bucket) {
  bool valid = !key.empty() && key.front() != '.' && key.back() != '.' &&
               std::all_of(key.begin(), key.end(), IsKeyChar);
  if (!valid) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV key '", key, "' for bucket '", bucket,
                     "' is invalid: use only [-/_=.a-zA-Z0-9], not starting or ending with '.'"));
  }
  return absl::OkStatus();
}

absl::Status ValidateValue(const std::string& key, const std::string& value) {
  if (value.size() > static_cast<size_t>(INT_MAX)) {
    return absl::InvalidArgumentError(absl::StrCat("value of KV key '", key, "' is ", value.size(),
                                                   " bytes; the limit is ", INT_MAX));
  }
  return absl::OkStatus();
}

KvEntry ToKvEntry(kvEntry* entry) {
  KvEntry result;
  result.key = kvEntry_Key(entry);
  const void* data = kvEntry_Value(entry);
  int length = kvEntry_ValueLen(entry);
  if (data != nullptr && length > 0) result.value.assign(static_cast<const char*>(data), length);
  result.revision = kvEntry_Revision(entry);
  kvOperation op = kvEntry_Operation(entry);
  result.deleted = op == kvOp_Delete || op == kvOp_Purge;
  return result;
}

}  // namespace

KvWatcher::~KvWatcher() { kvWatcher_Destroy(watcher_); }

void KvWatcher::Stop() { kvWatcher_Stop(watcher_); }

absl::StatusOr<std::optional<KvEntry>> KvWatcher::Next(int64_t timeout_ms) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point deadline =
      Clock::now() + std::chrono::milliseconds(std::max<int64_t>(timeout_ms, 0));
  while (true) {
    int64_t remaining_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    // kvWatcher_Next needs a positive timeout; 1 ms still returns what is already queued.
    kvEntry* raw = nullptr;
    natsStatus s = kvWatcher_Next(&raw, watcher_, std::max<int64_t>(remaining_ms, 1));
    if (s == NATS_TIMEOUT) return std::nullopt;
    if (s == NATS_ILLEGAL_STATE) return absl::CancelledError("KV watcher was stopped");
    if (s != NATS_OK) return detail::NatsError(s, "waiting for the next KV watcher entry");
    if (raw == nullptr) {
      // The "initial values done" marker: keep waiting for the rest of the timeout.
      initial_values_done_ = true;
      if (remaining_ms <= 0) return std::nullopt;
      continue;
    }
    EntryPtr entry(raw);
    if (updates_only_ && !initial_values_done_) continue;
    return ToKvEntry(entry.get());
  }
}

absl::StatusOr<std::unique_ptr<KeyValue>> KeyValue::Open(NatsConnection& connection,
                                                         const std::string& bucket) {
  kvStore* kv = nullptr;
  natsStatus s = js_KeyValue(&kv, connection.js(), bucket.c_str());
  if (s == NATS_NOT_FOUND) {
    return absl::NotFoundError(
        absl::StrCat("KV bucket '", bucket, "' does not exist; EnsureBus creates the buckets"));
  }
  if (s != NATS_OK) return detail::NatsError(s, absl::StrCat("opening KV bucket '", bucket, "'"));
  return std::unique_ptr<KeyValue>(new KeyValue(kv, bucket));
}

KeyValue::~KeyValue() { kvStore_Destroy(kv_); }

absl::StatusOr<KvEntry> KeyValue::Get(const std::string& key) {
  IMGINTERP_RETURN_IF_ERROR(ValidateKey(key, bucket_));
  kvEntry* raw = nullptr;
  natsStatus s = kvStore_Get(&raw, kv_, key.c_str());
  if (s == NATS_NOT_FOUND) {
    return absl::NotFoundError(
        absl::StrCat("key '", key, "' not found in KV bucket '", bucket_, "'"));
  }
  if (s != NATS_OK) {
    return detail::NatsError(s,
                             absl::StrCat("getting key '", key, "' from bucket '", bucket_, "'"));
  }
  EntryPtr entry(raw);
  return ToKvEntry(entry.get());
}

absl::StatusOr<uint64_t> KeyValue::Put(const std::string& key, const std::string& value) {
  IMGINTERP_RETURN_IF_ERROR(ValidateKey(key, bucket_));
  IMGINTERP_RETURN_IF_ERROR(ValidateValue(key, value));
  uint64_t revision = 0;
  natsStatus s =
      kvStore_Put(&revision, kv_, key.c_str(), value.data(), static_cast<int>(value.size()));
  if (s != NATS_OK) {
    return detail::NatsError(s, absl::StrCat("putting key '", key, "' (", value.size(),
                                             " bytes) into bucket '", bucket_, "'"));
  }
  return revision;
}

absl::StatusOr<uint64_t> KeyValue::Create(const std::string& key, const std::string& value) {
  IMGINTERP_RETURN_IF_ERROR(ValidateKey(key, bucket_));
  IMGINTERP_RETURN_IF_ERROR(ValidateValue(key, value));
  uint64_t revision = 0;
  natsStatus s =
      kvStore_Create(&revision, kv_, key.c_str(), value.data(), static_cast<int>(value.size()));
  if (s == NATS_OK) return revision;
  if (detail::IsWrongLastSequence(s, 0)) {
    return absl::AlreadyExistsError(
        absl::StrCat("key '", key, "' already exists in KV bucket '", bucket_, "'"));
  }
  return detail::NatsError(s, absl::StrCat("creating key '", key, "' in bucket '", bucket_, "'"));
}

absl::StatusOr<uint64_t> KeyValue::Update(const std::string& key, const std::string& value,
                                          uint64_t expected_revision) {
  IMGINTERP_RETURN_IF_ERROR(ValidateKey(key, bucket_));
  IMGINTERP_RETURN_IF_ERROR(ValidateValue(key, value));
  uint64_t revision = 0;
  natsStatus s = kvStore_Update(&revision, kv_, key.c_str(), value.data(),
                                static_cast<int>(value.size()), expected_revision);
  if (s == NATS_OK) return revision;
  if (detail::IsWrongLastSequence(s, 0)) {
    return absl::AbortedError(absl::StrCat("key '", key, "' in KV bucket '", bucket_,
                                           "' is no longer at revision ", expected_revision,
                                           " (compare-and-set lost; read it again)"));
  }
  return detail::NatsError(s, absl::StrCat("updating key '", key, "' in bucket '", bucket_, "'"));
}

absl::Status KeyValue::Delete(const std::string& key) {
  IMGINTERP_RETURN_IF_ERROR(ValidateKey(key, bucket_));
  natsStatus s = kvStore_Delete(kv_, key.c_str());
  if (s != NATS_OK) {
    return detail::NatsError(s,
                             absl::StrCat("deleting key '", key, "' from bucket '", bucket_, "'"));
  }
  return absl::OkStatus();
}

absl::Status KeyValue::Purge(const std::string& key) {
  IMGINTERP_RETURN_IF_ERROR(ValidateKey(key, bucket_));
  natsStatus s = kvStore_Purge(kv_, key.c_str(), nullptr);
  if (s != NATS_OK) {
    return detail::NatsError(s,
                             absl::StrCat("purging key '", key, "' from bucket '", bucket_, "'"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> KeyValue::Keys() {
  kvKeysList list{nullptr, 0};
  natsStatus s = kvStore_Keys(&list, kv_, nullptr);
  if (s == NATS_NOT_FOUND) return std::vector<std::string>();
  if (s != NATS_OK) {
    return detail::NatsError(s, absl::StrCat("listing the keys of bucket '", bucket_, "'"));
  }
  std::vector<std::string> keys;
  keys.reserve(list.Count);
  for (int i = 0; i < list.Count; ++i) keys.emplace_back(list.Keys[i]);
  kvKeysList_Destroy(&list);
  return keys;
}

absl::StatusOr<std::unique_ptr<KvWatcher>> KeyValue::Watch(const std::string& key_pattern,
                                                           bool updates_only) {
  if (key_pattern.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("watch pattern for bucket '", bucket_, "' is empty; use \">\" for all keys"));
  }
  kvWatcher* watcher = nullptr;
  natsStatus s = kvStore_Watch(&watcher, kv_, key_pattern.c_str(), nullptr);
  if (s != NATS_OK) {
    return detail::NatsError(
        s, absl::StrCat("watching '", key_pattern, "' in bucket '", bucket_, "'"));
  }
  return std::unique_ptr<KvWatcher>(new KvWatcher(watcher, updates_only));
}

}  // namespace imginterp::jobbus
