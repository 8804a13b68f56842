#include "gateway/job_logic.h"

#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/dynamic_message.h"
#include "imginterp/v1/common.pb.h"
#include "services/core/common/status_macros.h"
#include "services/core/proto_path/proto_path.h"

namespace imginterp::gateway {
namespace {

bool IsSet(const google::protobuf::Timestamp& timestamp) {
  return timestamp.seconds() != 0 || timestamp.nanos() != 0;
}

v1::ErrorDetail MakeError(const std::string& code, const std::string& message) {
  v1::ErrorDetail error;
  error.set_code(code);
  error.set_message(message);
  return error;
}

// Every stage that is not terminal, except those in `keep`.
std::vector<std::string> NonTerminalStages(const v1::JobRecord& record,
                                           const std::set<v1::StageState>& keep) {
  std::vector<std::string> names;
  for (const v1::StageRecord& stage : record.stages()) {
    if (!IsTerminal(stage.state()) && keep.count(stage.state()) == 0) {
      names.push_back(stage.name());
    }
  }
  return names;
}

}  // namespace

bool IsTerminal(v1::JobState state) {
  return state == v1::JOB_STATE_SUCCEEDED || state == v1::JOB_STATE_FAILED ||
         state == v1::JOB_STATE_CANCELLED;
}

bool IsTerminal(v1::StageState state) {
  return state == v1::STAGE_STATE_SUCCEEDED || state == v1::STAGE_STATE_FAILED ||
         state == v1::STAGE_STATE_CANCELLED;
}

AdvancePlan ComputeAdvance(const v1::JobRecord& record) {
  AdvancePlan plan;
  plan.job_state = record.state();
  if (IsTerminal(record.state())) return plan;

  if (record.cancel_requested()) {
    // RUNNING stages are left to their workers, which check cancel_requested between steps.
    plan.stages_to_cancel = NonTerminalStages(record, {v1::STAGE_STATE_RUNNING});
    plan.job_state = v1::JOB_STATE_CANCELLED;
    plan.error = MakeError("CANCELLED", "the job was cancelled by a client");
    plan.changed = true;
    return plan;
  }

  std::map<std::string, v1::StageState> states;
  const v1::StageRecord* failed = nullptr;
  const v1::StageRecord* cancelled = nullptr;
  bool all_succeeded = true;
  bool any_started = false;
  for (const v1::StageRecord& stage : record.stages()) {
    states[stage.name()] = stage.state();
    if (stage.state() == v1::STAGE_STATE_FAILED && failed == nullptr) failed = &stage;
    if (stage.state() == v1::STAGE_STATE_CANCELLED && cancelled == nullptr) cancelled = &stage;
    if (stage.state() != v1::STAGE_STATE_SUCCEEDED) all_succeeded = false;
    if (stage.state() == v1::STAGE_STATE_RUNNING || stage.state() == v1::STAGE_STATE_SUCCEEDED) {
      any_started = true;
    }
  }

  if (failed != nullptr) {
    plan.stages_to_cancel = NonTerminalStages(record, {});
    plan.job_state = v1::JOB_STATE_FAILED;
    const std::string code = failed->error().code().empty() ? "UNKNOWN" : failed->error().code();
    const std::string message = failed->error().message().empty()
                                    ? std::string("no error message recorded")
                                    : failed->error().message();
    plan.error = MakeError(code, absl::StrCat("stage '", failed->name(), "' (", failed->family(),
                                              ") failed: ", message));
    plan.changed = true;
    return plan;
  }
  if (cancelled != nullptr) {
    plan.stages_to_cancel = NonTerminalStages(record, {});
    plan.job_state = v1::JOB_STATE_CANCELLED;
    plan.error = MakeError("CANCELLED", absl::StrCat("stage '", cancelled->name(), "' (",
                                                     cancelled->family(), ") was cancelled"));
    plan.changed = true;
    return plan;
  }
  if (all_succeeded && !record.stages().empty()) {
    plan.job_state = v1::JOB_STATE_SUCCEEDED;
    plan.changed = true;
    return plan;
  }

  for (const v1::StageRecord& stage : record.stages()) {
    if (stage.state() != v1::STAGE_STATE_PENDING) continue;
    bool ready = true;
    for (const std::string& dependency : stage.depends_on()) {
      const auto it = states.find(dependency);
      if (it == states.end() || it->second != v1::STAGE_STATE_SUCCEEDED) ready = false;
    }
    if (ready) plan.stages_to_queue.push_back(stage.name());
  }
  if (any_started && record.state() != v1::JOB_STATE_RUNNING) {
    plan.job_state = v1::JOB_STATE_RUNNING;
  }
  plan.changed = !plan.stages_to_queue.empty() || plan.job_state != record.state();
  return plan;
}

bool ApplyAdvance(const AdvancePlan& plan, absl::Time now, v1::JobRecord* record) {
  if (!plan.changed) return false;
  const std::set<std::string> to_queue(plan.stages_to_queue.begin(), plan.stages_to_queue.end());
  const std::set<std::string> to_cancel(plan.stages_to_cancel.begin(), plan.stages_to_cancel.end());
  for (v1::StageRecord& stage : *record->mutable_stages()) {
    if (to_queue.count(stage.name()) > 0) {
      stage.set_state(v1::STAGE_STATE_QUEUED);
      ToTimestamp(now, stage.mutable_queued_at());
    } else if (to_cancel.count(stage.name()) > 0) {
      stage.set_state(v1::STAGE_STATE_CANCELLED);
      ToTimestamp(now, stage.mutable_finished_at());
    }
  }
  record->set_state(plan.job_state);
  if (plan.error.has_value()) *record->mutable_error() = *plan.error;
  if (IsTerminal(plan.job_state)) ToTimestamp(now, record->mutable_finished_at());
  ToTimestamp(now, record->mutable_updated_at());
  return true;
}

absl::Duration StartTimeouts::For(const std::string& stage) const {
  const auto it = per_stage.find(stage);
  return it == per_stage.end() ? default_timeout : it->second;
}

std::vector<std::string> FindUnstartedStages(const v1::JobRecord& record, absl::Time now,
                                             const StartTimeouts& timeouts) {
  std::vector<std::string> names;
  if (IsTerminal(record.state())) return names;
  for (const v1::StageRecord& stage : record.stages()) {
    if (stage.state() != v1::STAGE_STATE_QUEUED || !IsSet(stage.queued_at())) continue;
    if (now - FromTimestamp(stage.queued_at()) > timeouts.For(stage.name())) {
      names.push_back(stage.name());
    }
  }
  return names;
}

bool FailUnstartedStages(absl::Time now, const StartTimeouts& timeouts, v1::JobRecord* record) {
  const std::vector<std::string> names = FindUnstartedStages(*record, now, timeouts);
  if (names.empty()) return false;
  const std::set<std::string> unstarted(names.begin(), names.end());
  for (v1::StageRecord& stage : *record->mutable_stages()) {
    if (unstarted.count(stage.name()) == 0) continue;
    stage.set_state(v1::STAGE_STATE_FAILED);
    *stage.mutable_error() = MakeError(
        "UNAVAILABLE", UnstartedMessage(stage.family(), stage.name(), timeouts.For(stage.name())));
    ToTimestamp(now, stage.mutable_finished_at());
  }
  ToTimestamp(now, record->mutable_updated_at());
  return true;
}

std::string UnstartedMessage(const std::string& family, const std::string& stage,
                             absl::Duration timeout) {
  return absl::StrFormat(
      "no worker of family '%s' started stage '%s' within %g s: is the imginterp-%s service "
      "running and connected to NATS?",
      family, stage, absl::ToDoubleSeconds(timeout), family);
}

float JobProgress(const v1::JobRecord& record) {
  if (record.stages().empty()) return 0.0f;
  double sum = 0.0;
  for (const v1::StageRecord& stage : record.stages()) {
    double progress = stage.state() == v1::STAGE_STATE_SUCCEEDED ? 1.0 : stage.progress();
    if (progress < 0.0) progress = 0.0;
    if (progress > 1.0) progress = 1.0;
    sum += progress;
  }
  return static_cast<float>(sum / record.stages_size());
}

v1::JobRecord WithoutPayloads(const v1::JobRecord& record) {
  v1::JobRecord copy = record;
  copy.mutable_input_image()->clear_inline_data();
  for (v1::StageRecord& stage : *copy.mutable_stages()) {
    stage.mutable_result()->clear_inline_data();
  }
  if (!record.has_input_image()) copy.clear_input_image();
  for (int i = 0; i < copy.stages_size(); ++i) {
    if (!record.stages(i).has_result()) copy.mutable_stages(i)->clear_result();
  }
  return copy;
}

absl::Time FromTimestamp(const google::protobuf::Timestamp& timestamp) {
  if (!IsSet(timestamp)) return absl::InfinitePast();
  return absl::FromUnixSeconds(timestamp.seconds()) + absl::Nanoseconds(timestamp.nanos());
}

void ToTimestamp(absl::Time time, google::protobuf::Timestamp* timestamp) {
  const int64_t nanos = absl::ToUnixNanos(time);
  int64_t seconds = nanos / 1000000000;
  int64_t rest = nanos % 1000000000;
  if (rest < 0) {
    rest += 1000000000;
    --seconds;
  }
  timestamp->set_seconds(seconds);
  timestamp->set_nanos(static_cast<int32_t>(rest));
}

double SecondsBetween(const google::protobuf::Timestamp& from,
                      const google::protobuf::Timestamp& to) {
  if (!IsSet(from) || !IsSet(to)) return 0.0;
  return absl::ToDoubleSeconds(FromTimestamp(to) - FromTimestamp(from));
}

absl::StatusOr<std::unique_ptr<google::protobuf::Message>> NewMessageOfType(
    const std::string& type_url) {
  namespace pb = google::protobuf;
  const pb::Descriptor* descriptor = pb::DescriptorPool::generated_pool()->FindMessageTypeByName(
      type_url.substr(type_url.rfind('/') + 1));
  if (descriptor == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("type '", type_url, "' is not a message type this gateway knows"));
  }
  return std::unique_ptr<pb::Message>(
      pb::MessageFactory::generated_factory()->GetPrototype(descriptor)->New());
}

absl::StatusOr<std::vector<v1::StageRecord>> BuildStageRecords(
    const v1::PipelineSpec& pipeline,
    const google::protobuf::Map<std::string, std::string>& parameters) {
  namespace pb = google::protobuf;
  std::set<std::string> known;
  std::set<std::string> used;
  std::vector<v1::StageRecord> stages;
  for (const v1::StageSpec& spec : pipeline.stages()) {
    v1::StageRecord stage;
    stage.set_name(spec.name());
    stage.set_family(spec.family());
    stage.set_state(v1::STAGE_STATE_PENDING);
    *stage.mutable_depends_on() = spec.depends_on();
    *stage.mutable_request() = spec.request();
    stage.set_image_from(spec.image_from());
    std::unique_ptr<pb::Message> request;
    for (const v1::StageInput& input : spec.inputs()) {
      IMGINTERP_ASSIGN_OR_RETURN(InputSource from, ParseInputSource(input.from()));
      if (from.kind != InputSource::Kind::kJobParameter) {
        *stage.add_inputs() = input;
        continue;
      }
      known.insert(from.parameter);
      const auto value = parameters.find(from.parameter);
      if (value == parameters.end()) {
        if (input.required()) {
          return absl::InvalidArgumentError(
              absl::StrCat("pipeline '", pipeline.name(), "' needs parameter '", from.parameter,
                           "' (stage '", spec.name(), "', field ", input.to(), ")"));
        }
        continue;
      }
      used.insert(from.parameter);
      if (request == nullptr) {
        IMGINTERP_ASSIGN_OR_RETURN(request, NewMessageOfType(spec.request().type_url()));
        if (!spec.request().UnpackTo(request.get())) {
          return absl::InvalidArgumentError(
              absl::StrCat("stage '", spec.name(), "': its request does not parse"));
        }
      }
      absl::Status set = proto_path::SetFromText(request.get(), input.to(), value->second);
      if (!set.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "parameter '", from.parameter, "' for stage '", spec.name(), "': ", set.message()));
      }
    }
    if (request != nullptr) stage.mutable_request()->PackFrom(*request);
    stages.push_back(std::move(stage));
  }
  for (const auto& [key, value] : parameters) {
    if (used.count(key) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "pipeline '", pipeline.name(), "' has no parameter '", key,
          "'; its parameters: ", known.empty() ? std::string("none") : absl::StrJoin(known, ", ")));
    }
  }
  return stages;
}

absl::StatusOr<InputSource> ParseInputSource(const std::string& from) {
  InputSource source;
  if (from == "job.image") {
    source.kind = InputSource::Kind::kJobImage;
    return source;
  }
  constexpr absl::string_view kParameters = "job.parameters.";
  if (absl::StartsWith(from, kParameters)) {
    source.kind = InputSource::Kind::kJobParameter;
    source.parameter = from.substr(kParameters.size());
    if (source.parameter.empty() || absl::StrContains(source.parameter, '.')) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", from,
                       "' names no parameter; write job.parameters.<key>, e.g. "
                       "job.parameters.prompt"));
    }
    return source;
  }
  const size_t dot = from.find('.');
  if (from.empty() || dot == 0 || dot == std::string::npos || dot + 1 == from.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("input '", from,
                     "' is not job.image, job.parameters.<key> or <stage>.<field path> "
                     "(e.g. canny.map.image)"));
  }
  source.kind = InputSource::Kind::kStageResult;
  source.stage = from.substr(0, dot);
  source.field_path = from.substr(dot + 1);
  if (source.stage == "job") {
    return absl::InvalidArgumentError(absl::StrCat(
        "input '", from, "': from the job, only job.image and job.parameters.<key> exist"));
  }
  absl::Status path = proto_path::ParsePath(source.field_path).status();
  if (!path.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("input '", from, "': ", path.message()));
  }
  return source;
}

absl::StatusOr<InputSource> ParseImageFrom(const std::string& image_from) {
  absl::StatusOr<InputSource> source = ParseInputSource(image_from);
  if (!source.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("image_from: ", source.status().message()));
  }
  if (source->kind != InputSource::Kind::kStageResult) {
    return absl::InvalidArgumentError(
        absl::StrCat("image_from '", image_from,
                     "' must name an earlier stage's field, e.g. canny.map.image (the job's "
                     "image is the default)"));
  }
  return source;
}

absl::StatusOr<std::vector<std::string>> ExtractImages(const std::string& type_url,
                                                       const std::string& serialized,
                                                       const std::string& field_path) {
  IMGINTERP_ASSIGN_OR_RETURN(std::unique_ptr<google::protobuf::Message> message,
                             NewMessageOfType(type_url));
  if (!message->ParseFromString(serialized)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the result is not a valid ", message->GetTypeName()));
  }
  IMGINTERP_ASSIGN_OR_RETURN(std::vector<const v1::Image*> images,
                             proto_path::FindImages(*message, field_path));
  std::vector<std::string> data;
  for (size_t i = 0; i < images.size(); ++i) {
    if (images[i]->data().empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("the image at ", field_path,
                       images.size() > 1 ? absl::StrCat(" (", i, ")") : std::string(), " of the ",
                       message->GetTypeName(), " is empty"));
    }
    data.push_back(images[i]->data());
  }
  return data;
}

}  // namespace imginterp::gateway
