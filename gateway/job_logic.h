// The job state machine as pure functions over imginterp.v1.JobRecord: which stages are ready,
// when a job is finished, which queued stages no worker picked up in time, and progress.
// JobManager runs these inside JobStore::Mutate (compare-and-set), so they must depend only on
// the record and the arguments they are given.
//
// Stateless: thread-safe.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "imginterp/v1/bus.pb.h"
#include "imginterp/v1/gateway.pb.h"

namespace imginterp::gateway {

bool IsTerminal(v1::JobState state);
bool IsTerminal(v1::StageState state);

// What advancing a job changes.
struct AdvancePlan {
  // PENDING stages whose dependencies all SUCCEEDED: to become QUEUED and be published.
  std::vector<std::string> stages_to_queue;
  // Non-terminal stages to become CANCELLED (job cancelled or failed).
  std::vector<std::string> stages_to_cancel;
  // The job's state afterwards (equal to the current one when it does not change).
  v1::JobState job_state = v1::JOB_STATE_UNSPECIFIED;
  // The job's error when it becomes FAILED or CANCELLED.
  std::optional<v1::ErrorDetail> error;
  // True when applying the plan changes the record.
  bool changed = false;
};

// Rules, in order, for a non-terminal job (a terminal job gets an unchanged plan):
// cancel_requested -> PENDING/QUEUED stages CANCELLED, job CANCELLED (workers stop RUNNING
// ones); a FAILED stage -> job FAILED with "stage '<s>' (<family>) failed: <msg>" and every
// other non-terminal stage CANCELLED; a CANCELLED stage without cancel_requested -> job
// CANCELLED likewise; all SUCCEEDED -> job SUCCEEDED; otherwise ready stages are queued and
// the job is RUNNING once a stage is RUNNING or SUCCEEDED.
AdvancePlan ComputeAdvance(const v1::JobRecord& record);

// Applies `plan` to `record` (queued_at, finished_at and updated_at set to `now`). Returns
// plan.changed.
bool ApplyAdvance(const AdvancePlan& plan, absl::Time now, v1::JobRecord* record);

// Per-stage start timeouts of one pipeline.
struct StartTimeouts {
  absl::Duration default_timeout = absl::Seconds(30);
  // Stage name -> timeout; stages not listed use default_timeout.
  std::map<std::string, absl::Duration> per_stage;

  absl::Duration For(const std::string& stage) const;
};

// Names of QUEUED stages queued longer than their start timeout before `now` (none for a
// terminal job).
std::vector<std::string> FindUnstartedStages(const v1::JobRecord& record, absl::Time now,
                                             const StartTimeouts& timeouts);

// Marks the stages FindUnstartedStages returns FAILED with ErrorDetail code UNAVAILABLE and a
// message naming the family and the service to start. Returns true if any changed.
bool FailUnstartedStages(absl::Time now, const StartTimeouts& timeouts, v1::JobRecord* record);

// "no worker of family 'edges' started stage 'canny' within 30 s: is the imginterp-edges
// service running and connected to NATS?"
std::string UnstartedMessage(const std::string& family, const std::string& stage,
                             absl::Duration timeout);

// Mean over stages of (SUCCEEDED ? 1 : stage progress), in [0, 1]; 0 without stages.
float JobProgress(const v1::JobRecord& record);

// The record as clients see it: artifact references keep name, type, size and digest but
// lose their inline bytes.
v1::JobRecord WithoutPayloads(const v1::JobRecord& record);

// Where a stage input (StageInput.from, or StageSpec.image_from) takes its value from.
struct InputSource {
  enum class Kind { kJobImage, kJobParameter, kStageResult };
  Kind kind = Kind::kStageResult;
  // kJobParameter: the key of JobRequest.parameters.
  std::string parameter;
  // kStageResult: the producing stage and the field path within its result ("map.image").
  std::string stage;
  std::string field_path;
};

// A new, empty message of the type `type_url` names ("type.googleapis.com/imginterp.v1.X"),
// from the generated descriptor pool. INVALID_ARGUMENT when this gateway does not know it.
absl::StatusOr<std::unique_ptr<google::protobuf::Message>> NewMessageOfType(
    const std::string& type_url);

// The stage records of a new job of `pipeline` (PENDING), with the job's parameters applied to
// the stages' requests (StageSpec.inputs from job.parameters.<key>) and the remaining inputs
// kept for publishing. INVALID_ARGUMENT for a parameter no stage reads (listing those that
// are), a required parameter that is missing, or a value its field cannot take (naming the
// parameter, the stage and the field).
absl::StatusOr<std::vector<v1::StageRecord>> BuildStageRecords(
    const v1::PipelineSpec& pipeline,
    const google::protobuf::Map<std::string, std::string>& parameters);

// "job.image", "job.parameters.<key>" or "<stage>.<field path>" (the path checked with
// proto_path::ParsePath). INVALID_ARGUMENT with the accepted forms otherwise. A stage cannot be
// named "job" (the pipeline registry refuses it), so the forms do not overlap.
absl::StatusOr<InputSource> ParseInputSource(const std::string& from);

// StageSpec.image_from: ParseInputSource restricted to "<stage>.<field path>".
absl::StatusOr<InputSource> ParseImageFrom(const std::string& image_from);

// The encoded bytes of the images at `field_path` (proto_path syntax: one Image, or every image
// of a repeated Image field) in a serialized stage response of type `type_url`. INVALID_ARGUMENT
// when the type is unknown or the path does not lead to images (naming the field);
// FAILED_PRECONDITION when an image there is empty.
absl::StatusOr<std::vector<std::string>> ExtractImages(const std::string& type_url,
                                                       const std::string& serialized,
                                                       const std::string& field_path);

// google.protobuf.Timestamp <-> absl::Time; an unset timestamp is absl::InfinitePast().
absl::Time FromTimestamp(const google::protobuf::Timestamp& timestamp);
void ToTimestamp(absl::Time time, google::protobuf::Timestamp* timestamp);
// Seconds from `from` to `to`, 0 when either is unset.
double SecondsBetween(const google::protobuf::Timestamp& from,
                      const google::protobuf::Timestamp& to);

}  // namespace imginterp::gateway
