// Job records (imginterp.v1.JobRecord) in the jobs KV bucket, keyed by job id, changed only by
// compare-and-set so that concurrent writers (workers, gateways) never lose an update and the
// first result for a stage wins.
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "imginterp/v1/bus.pb.h"

namespace imginterp::jobbus {

class KeyValue;
class KvWatcher;

struct VersionedRecord {
  v1::JobRecord record;
  uint64_t revision = 0;
};

class JobStore {
 public:
  // `kv` is the jobs bucket; it must outlive the store.
  explicit JobStore(KeyValue& kv) : kv_(kv) {}

  // ALREADY_EXISTS if the id is taken.
  absl::StatusOr<uint64_t> Create(const v1::JobRecord& record);
  // NOT_FOUND names the job id.
  absl::StatusOr<VersionedRecord> Get(const std::string& job_id);

  // Reads the record, applies `mutate`, and writes it back if the revision is unchanged,
  // retrying on a lost compare-and-set (up to 32 times). `mutate` returns false to leave the
  // record as it is (nothing is written; the current record is returned) or an error to abort.
  // It must be a pure function of the record it is given, since it may run several times.
  using Mutation = std::function<absl::StatusOr<bool>(v1::JobRecord& record)>;
  absl::StatusOr<VersionedRecord> Mutate(const std::string& job_id, const Mutation& mutate);

  absl::Status Delete(const std::string& job_id);
  absl::StatusOr<std::vector<VersionedRecord>> List();

  // Streams every revision of one job (key = job id) or, with job_id "", of all jobs.
  absl::StatusOr<std::unique_ptr<KvWatcher>> Watch(const std::string& job_id,
                                                   bool updates_only = false);
  // Decodes a watcher entry; nullopt for delete markers.
  static absl::StatusOr<std::optional<VersionedRecord>> Decode(const std::string& value,
                                                               uint64_t revision, bool deleted);

 private:
  KeyValue& kv_;
};

}  // namespace imginterp::jobbus
