#include "gateway/job_logic.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/dynamic_message.h"
#include "imginterp/v1/common.pb.h"

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

absl::StatusOr<ImageSource> ParseImageFrom(const std::string& image_from) {
  std::vector<std::string> parts = absl::StrSplit(image_from, '.');
  for (const std::string& part : parts) {
    if (part.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "image_from '", image_from, "' has an empty part; write <stage>.<field>[.<field>...]"));
    }
  }
  if (parts.size() < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("image_from '", image_from,
                     "' names no field; write <stage>.<field>[.<field>...], e.g. canny.map.image"));
  }
  ImageSource source;
  source.stage = parts.front();
  source.field_path.assign(parts.begin() + 1, parts.end());
  return source;
}

absl::StatusOr<std::string> ExtractImage(const std::string& type_url, const std::string& serialized,
                                         const std::vector<std::string>& field_path) {
  namespace pb = google::protobuf;
  const std::string type_name = type_url.substr(type_url.rfind('/') + 1);
  const pb::Descriptor* descriptor =
      pb::DescriptorPool::generated_pool()->FindMessageTypeByName(type_name);
  if (descriptor == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("result type '", type_url, "' is not a message type this gateway knows"));
  }
  const pb::Message* prototype = pb::MessageFactory::generated_factory()->GetPrototype(descriptor);
  std::unique_ptr<pb::Message> message(prototype->New());
  if (!message->ParseFromString(serialized)) {
    return absl::InvalidArgumentError(absl::StrCat("the result is not a valid ", type_name));
  }
  const pb::Message* current = message.get();
  for (size_t i = 0; i < field_path.size(); ++i) {
    const pb::Descriptor* type = current->GetDescriptor();
    const pb::FieldDescriptor* field = type->FindFieldByName(field_path[i]);
    if (field == nullptr || field->is_repeated() ||
        field->cpp_type() != pb::FieldDescriptor::CPPTYPE_MESSAGE) {
      return absl::InvalidArgumentError(
          absl::StrCat(type->full_name(), " has no singular message field '", field_path[i],
                       "' (path ", absl::StrJoin(field_path, "."), ")"));
    }
    current = &current->GetReflection()->GetMessage(*current, field);
  }
  if (current->GetDescriptor() != v1::Image::descriptor()) {
    return absl::InvalidArgumentError(
        absl::StrCat("field ", absl::StrJoin(field_path, "."), " of ", type_name, " is a ",
                     current->GetDescriptor()->full_name(), ", not an imginterp.v1.Image"));
  }
  // Generated types: the prototype came from the generated factory, so the cast is exact.
  const auto& image = static_cast<const v1::Image&>(*current);
  if (image.data().empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the image at ", absl::StrJoin(field_path, "."), " of the ", type_name, " is empty"));
  }
  return image.data();
}

}  // namespace imginterp::gateway
