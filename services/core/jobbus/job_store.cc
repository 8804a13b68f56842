#include "services/core/jobbus/job_store.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "services/core/common/status_macros.h"
#include "services/core/jobbus/key_value.h"

namespace imginterp::jobbus {
namespace {

// Compare-and-set attempts before Mutate gives up with ABORTED.
constexpr int kMaxMutateAttempts = 32;
// Upper bound of the random pause after a lost compare-and-set, so that writers racing on one
// record spread out instead of colliding again in lock step.
constexpr int kMaxBackoffMs = 20;

absl::StatusOr<std::string> Serialize(const v1::JobRecord& record) {
  std::string bytes;
  if (!record.SerializeToString(&bytes)) {
    return absl::InternalError(
        absl::StrCat("cannot serialize the record of job '", record.job_id(), "'"));
  }
  return bytes;
}

void BackOff(int attempt) {
  thread_local std::minstd_rand random(std::random_device{}());
  int limit_ms = std::min(kMaxBackoffMs, 1 << std::min(attempt, 5));
  std::uniform_int_distribution<int> pause_ms(0, limit_ms);
  std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms(random)));
}

}  // namespace

absl::StatusOr<uint64_t> JobStore::Create(const v1::JobRecord& record) {
  if (record.job_id().empty()) return absl::InvalidArgumentError("job record has no job_id");
  IMGINTERP_ASSIGN_OR_RETURN(std::string bytes, Serialize(record));
  absl::StatusOr<uint64_t> revision = kv_.Create(record.job_id(), bytes);
  if (absl::IsAlreadyExists(revision.status())) {
    return absl::AlreadyExistsError(absl::StrCat("job id '", record.job_id(), "' is taken"));
  }
  return revision;
}

absl::StatusOr<VersionedRecord> JobStore::Get(const std::string& job_id) {
  absl::StatusOr<KvEntry> entry = kv_.Get(job_id);
  if (absl::IsNotFound(entry.status())) {
    return absl::NotFoundError(
        absl::StrCat("job '", job_id, "' not found (never created, deleted or expired)"));
  }
  if (!entry.ok()) return entry.status();
  IMGINTERP_ASSIGN_OR_RETURN(std::optional<VersionedRecord> record,
                             Decode(entry->value, entry->revision, entry->deleted));
  if (!record.has_value())
    return absl::NotFoundError(absl::StrCat("job '", job_id, "' is deleted"));
  return *std::move(record);
}

absl::StatusOr<VersionedRecord> JobStore::Mutate(const std::string& job_id,
                                                 const Mutation& mutate) {
  for (int attempt = 0; attempt < kMaxMutateAttempts; ++attempt) {
    IMGINTERP_ASSIGN_OR_RETURN(VersionedRecord current, Get(job_id));
    VersionedRecord next{current.record, 0};
    IMGINTERP_ASSIGN_OR_RETURN(bool changed, mutate(next.record));
    if (!changed) return current;
    if (next.record.job_id() != job_id) {
      return absl::InvalidArgumentError(absl::StrCat(
          "a mutation of job '", job_id, "' changed its job_id to '", next.record.job_id(), "'"));
    }
    IMGINTERP_ASSIGN_OR_RETURN(std::string bytes, Serialize(next.record));
    absl::StatusOr<uint64_t> revision = kv_.Update(job_id, bytes, current.revision);
    if (revision.ok()) {
      next.revision = *revision;
      return next;
    }
    if (!absl::IsAborted(revision.status())) return revision.status();
    BackOff(attempt);
  }
  return absl::AbortedError(absl::StrCat("job '", job_id, "' changed under ", kMaxMutateAttempts,
                                         " consecutive updates; too many concurrent writers"));
}

absl::Status JobStore::Delete(const std::string& job_id) { return kv_.Delete(job_id); }

absl::StatusOr<std::vector<VersionedRecord>> JobStore::List() {
  IMGINTERP_ASSIGN_OR_RETURN(std::vector<std::string> keys, kv_.Keys());
  std::vector<VersionedRecord> records;
  records.reserve(keys.size());
  for (const std::string& key : keys) {
    absl::StatusOr<VersionedRecord> record = Get(key);
    if (absl::IsNotFound(record.status())) continue;  // Deleted or expired since Keys().
    if (!record.ok()) return record.status();
    records.push_back(*std::move(record));
  }
  return records;
}

absl::StatusOr<std::unique_ptr<KvWatcher>> JobStore::Watch(const std::string& job_id,
                                                           bool updates_only) {
  return kv_.Watch(job_id.empty() ? ">" : job_id, updates_only);
}

absl::StatusOr<std::optional<VersionedRecord>> JobStore::Decode(const std::string& value,
                                                                uint64_t revision, bool deleted) {
  if (deleted) return std::nullopt;
  VersionedRecord result;
  if (!result.record.ParseFromString(value)) {
    return absl::DataLossError(absl::StrCat("job record at revision ", revision, " (", value.size(),
                                            " bytes) is not a JobRecord"));
  }
  result.revision = revision;
  return result;
}

}  // namespace imginterp::jobbus
