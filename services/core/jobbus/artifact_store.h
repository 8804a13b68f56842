// Payloads of any size (input images, stage results) without a shared filesystem: small ones
// inline in the ArtifactRef, large ones in chunks of the artifacts KV bucket under
// "<job_id>.<name>.<n>". The ArtifactRef goes into tasks and job records.
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "imginterp/v1/bus.pb.h"

namespace imginterp::jobbus {

class KeyValue;

class ArtifactStore {
 public:
  // `kv` is the artifacts bucket and must outlive the store. Payloads above
  // `inline_limit_bytes` are chunked into pieces of `chunk_bytes`.
  ArtifactStore(KeyValue& kv, int64_t inline_limit_bytes, int64_t chunk_bytes);

  // `name` must be a KV token: [A-Za-z0-9_-]+ (INVALID_ARGUMENT otherwise).
  absl::StatusOr<v1::ArtifactRef> Put(const std::string& job_id, const std::string& name,
                                      const std::string& content_type, const std::string& data);
  // DATA_LOSS when a chunk is missing or the sha256 does not match; NOT_FOUND when expired.
  absl::StatusOr<std::string> Get(const std::string& job_id, const v1::ArtifactRef& ref);
  // Removes every chunk of every artifact of the job.
  absl::Status DeleteJob(const std::string& job_id);

 private:
  KeyValue& kv_;
  int64_t inline_limit_bytes_;
  int64_t chunk_bytes_;
};

// Lower-case hex sha256 of `data`.
std::string Sha256Hex(const std::string& data);

}  // namespace imginterp::jobbus
