// One JetStream KV bucket.
//
// Thread-safe. Status codes: NOT_FOUND for a missing or deleted key, ALREADY_EXISTS when
// Create finds the key, ABORTED when Update's expected revision is not the current one (the
// compare-and-set lost), UNAVAILABLE when the server cannot be reached.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

typedef struct __kvStore kvStore;
typedef struct __kvWatcher kvWatcher;

namespace imginterp::jobbus {

class NatsConnection;

struct KvEntry {
  std::string key;
  std::string value;
  uint64_t revision = 0;
  // True for delete and purge markers seen by a watcher.
  bool deleted = false;
};

// Streams the changes of the keys it watches. Owned by one thread (Next is not re-entrant);
// Stop may be called from any thread and wakes a waiting Next.
class KvWatcher {
 public:
  ~KvWatcher();
  KvWatcher(const KvWatcher&) = delete;
  KvWatcher& operator=(const KvWatcher&) = delete;

  // The next change; nullopt after `timeout_ms` without one. Unless the watcher was made with
  // `updates_only`, the first entries are the current values of the watched keys (nats.c's
  // "initial values done" marker is not exposed). CANCELLED after Stop.
  absl::StatusOr<std::optional<KvEntry>> Next(int64_t timeout_ms);
  void Stop();

 private:
  friend class KeyValue;
  KvWatcher(kvWatcher* watcher, bool updates_only)
      : watcher_(watcher), updates_only_(updates_only) {}
  kvWatcher* watcher_;
  // nats.c 3.4 has no updates-only watch: the current values are skipped until the marker.
  bool updates_only_;
  bool initial_values_done_ = false;
};

class KeyValue {
 public:
  // NOT_FOUND when the bucket does not exist (EnsureBus creates the project's buckets).
  static absl::StatusOr<std::unique_ptr<KeyValue>> Open(NatsConnection& connection,
                                                        const std::string& bucket);
  ~KeyValue();
  KeyValue(const KeyValue&) = delete;
  KeyValue& operator=(const KeyValue&) = delete;

  absl::StatusOr<KvEntry> Get(const std::string& key);
  // Returns the new revision.
  absl::StatusOr<uint64_t> Put(const std::string& key, const std::string& value);
  absl::StatusOr<uint64_t> Create(const std::string& key, const std::string& value);
  absl::StatusOr<uint64_t> Update(const std::string& key, const std::string& value,
                                  uint64_t expected_revision);
  absl::Status Delete(const std::string& key);
  // Removes the key and its history.
  absl::Status Purge(const std::string& key);
  // Current keys (no deleted ones); empty bucket gives an empty list.
  absl::StatusOr<std::vector<std::string>> Keys();
  // `key_pattern` may use NATS wildcards ("*", ">"). With `updates_only` the current values
  // are not replayed first. nats.c 3.4 has no updates-only consumer, so the watcher skips what
  // is delivered before nats.c's "initial values done" marker: a change made while those are
  // still being delivered counts as a current value and is skipped too. Callers that must not
  // miss a change list the keys after watching (as the gateway's JobManager does).
  absl::StatusOr<std::unique_ptr<KvWatcher>> Watch(const std::string& key_pattern,
                                                   bool updates_only = false);
  const std::string& bucket() const { return bucket_; }

 private:
  KeyValue(kvStore* kv, std::string bucket) : kv_(kv), bucket_(std::move(bucket)) {}
  kvStore* kv_;
  std::string bucket_;
};

}  // namespace imginterp::jobbus
