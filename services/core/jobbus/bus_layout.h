// Names and limits of the job bus, shared by the gateway and every worker (see
// proto/imginterp/v1/bus.proto and ../shared/DESIGN-NOTES.md).
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace imginterp::jobbus {

class NatsConnection;

struct BusLayout {
  // Work-queue stream holding StageTask messages on "<subject_prefix>.<family>".
  std::string stream = "IMGINTERP_TASKS";
  std::string subject_prefix = "imginterp.jobs";
  // Window in which a repeated Nats-Msg-Id is dropped as a duplicate publish.
  int64_t duplicate_window_seconds = 120;
  std::string jobs_bucket = "imginterp_jobs";
  std::string artifacts_bucket = "imginterp_artifacts";
  std::string idempotency_bucket = "imginterp_idempotency";
  // Job records, artifacts and idempotency keys expire after this long.
  int64_t job_ttl_seconds = 24 * 3600;
  // Payloads up to this size stay inline in records and tasks; larger ones are chunked into
  // the artifacts bucket. Capped by the server's max_payload.
  int64_t inline_limit_bytes = 256 * 1024;
  // Chunk size in the artifacts bucket (0: half the server's max_payload).
  int64_t chunk_bytes = 0;

  std::string SubjectFor(const std::string& family) const { return subject_prefix + "." + family; }
  // Durable consumer name shared by all workers of a family.
  std::string DurableFor(const std::string& family) const { return "imginterp-" + family; }
};

// Creates the stream and the three KV buckets if they do not exist (idempotent; safe to call
// from every process at start). FAILED_PRECONDITION when the server has no JetStream.
absl::Status EnsureBus(NatsConnection& connection, const BusLayout& layout);

}  // namespace imginterp::jobbus
