#include "gateway/pipeline_registry.h"

#include <algorithm>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gateway/job_logic.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "services/core/common/status_macros.h"
#include "services/core/proto_path/proto_path.h"

namespace imginterp::gateway {
namespace {

namespace pb = google::protobuf;

// Collects the text parser's errors with their position (1-based, as editors show them).
class ErrorList : public pb::io::ErrorCollector {
 public:
  void AddError(int line, pb::io::ColumnNumber column, const std::string& message) override {
    errors_.push_back(absl::StrCat("line ", line + 1, ":", column + 1, ": ", message));
  }
  void AddWarning(int line, pb::io::ColumnNumber column, const std::string& message) override {}
  std::string Joined() const { return absl::StrJoin(errors_, "; "); }

 private:
  std::vector<std::string> errors_;
};

std::string TypeNameOf(const std::string& type_url) {
  const auto slash = type_url.rfind('/');
  return slash == std::string::npos ? type_url : type_url.substr(slash + 1);
}

absl::Status StageError(const std::string& source, const v1::PipelineSpec& pipeline,
                        const v1::StageSpec& stage, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(source, ": pipeline '", pipeline.name(),
                                                 "', stage '", stage.name(), "': ", what));
}

absl::Status ValidateRequest(const std::string& source, const v1::PipelineSpec& pipeline,
                             const v1::StageSpec& stage) {
  if (!stage.has_request() || stage.request().type_url().empty()) {
    return StageError(source, pipeline, stage,
                      "has no request; write one as request { [type.googleapis.com/"
                      "imginterp.v1.<Family>Request] { ... } }");
  }
  const std::string type_name = TypeNameOf(stage.request().type_url());
  const pb::Descriptor* descriptor =
      pb::DescriptorPool::generated_pool()->FindMessageTypeByName(type_name);
  if (descriptor == nullptr) {
    return StageError(source, pipeline, stage,
                      absl::StrCat("request type '", stage.request().type_url(),
                                   "' is not a message type this gateway knows"));
  }
  // A stage with inputs says where each of its images goes; others get the job's image.
  if (!stage.inputs().empty()) return absl::OkStatus();
  const pb::FieldDescriptor* image = descriptor->FindFieldByName("image");
  if (image == nullptr || image->is_repeated() ||
      image->type() != pb::FieldDescriptor::TYPE_MESSAGE ||
      image->message_type()->full_name() != v1::Image::descriptor()->full_name()) {
    return StageError(source, pipeline, stage,
                      absl::StrCat("request type '", type_name,
                                   "' has no field 'image' of type imginterp.v1.Image to "
                                   "receive the job's input"));
  }
  return absl::OkStatus();
}

// StageSpec.inputs: each source parses and, for a stage result, is a dependency; each target
// is a field of the stage's request that can take the value (checked on a scratch request).
absl::Status ValidateInputs(const std::string& source, const v1::PipelineSpec& pipeline,
                            const v1::StageSpec& stage) {
  if (stage.inputs().empty()) return absl::OkStatus();
  if (!stage.image_from().empty()) {
    return StageError(source, pipeline, stage,
                      absl::StrCat("has both image_from and inputs; write image_from as "
                                   "inputs { from: \"",
                                   stage.image_from(), "\" to: \"image\" }"));
  }
  // ValidateRequest has checked that the type is known.
  IMGINTERP_ASSIGN_OR_RETURN(std::unique_ptr<pb::Message> scratch,
                             NewMessageOfType(stage.request().type_url()));
  const pb::Descriptor* descriptor = scratch->GetDescriptor();
  if (!stage.request().UnpackTo(scratch.get())) {
    return StageError(source, pipeline, stage, "its request does not parse");
  }
  std::set<std::string> parameters;
  for (const v1::StageInput& input : stage.inputs()) {
    absl::StatusOr<InputSource> from = ParseInputSource(input.from());
    if (!from.ok()) {
      return StageError(source, pipeline, stage, std::string(from.status().message()));
    }
    if (from->kind == InputSource::Kind::kStageResult &&
        std::find(stage.depends_on().begin(), stage.depends_on().end(), from->stage) ==
            stage.depends_on().end()) {
      return StageError(source, pipeline, stage,
                        absl::StrCat("input '", input.from(), "' names stage '", from->stage,
                                     "', which must also be listed in depends_on"));
    }
    if (input.required() && from->kind != InputSource::Kind::kJobParameter) {
      return StageError(
          source, pipeline, stage,
          absl::StrCat("input '", input.from(), "': only job parameters can be required"));
    }
    absl::Status target;
    if (from->kind == InputSource::Kind::kJobParameter) {
      if (!parameters.insert(from->parameter).second) {
        return StageError(source, pipeline, stage,
                          absl::StrCat("parameter '", from->parameter, "' is used twice"));
      }
      target = proto_path::CheckScalarPath(descriptor, input.to());
    } else {
      target = proto_path::PutImage(scratch.get(), input.to(), v1::Image());
    }
    if (!target.ok()) {
      return StageError(
          source, pipeline, stage,
          absl::StrCat("input '", input.from(), "' to '", input.to(), "': ", target.message()));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidatePipeline(const std::string& source, const v1::PipelineSpec& pipeline) {
  if (pipeline.stages().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": pipeline '", pipeline.name(), "' has no stages"));
  }
  std::map<std::string, const v1::StageSpec*> stages;
  for (const v1::StageSpec& stage : pipeline.stages()) {
    if (!IsToken(stage.name())) {
      return StageError(source, pipeline, stage, "stage name must match [a-z0-9_-]+");
    }
    if (stage.name() == "job") {
      return StageError(source, pipeline, stage,
                        "'job' is reserved (inputs say job.image, job.parameters.<key>)");
    }
    if (!stages.emplace(stage.name(), &stage).second) {
      return StageError(source, pipeline, stage, "duplicate stage name");
    }
    if (!IsToken(stage.family())) {
      return StageError(source, pipeline, stage,
                        absl::StrCat("family '", stage.family(),
                                     "' must match [a-z0-9_-]+ (it names a NATS subject)"));
    }
    if (stage.start_timeout_seconds() < 0) {
      return StageError(source, pipeline, stage, "start_timeout_seconds must be >= 0");
    }
    IMGINTERP_RETURN_IF_ERROR(ValidateRequest(source, pipeline, stage));
  }
  for (const v1::StageSpec& stage : pipeline.stages()) {
    for (const std::string& dependency : stage.depends_on()) {
      if (stages.count(dependency) == 0) {
        return StageError(source, pipeline, stage,
                          absl::StrCat("depends_on names unknown stage '", dependency, "'"));
      }
    }
    if (!stage.image_from().empty()) {
      absl::StatusOr<InputSource> from = ParseImageFrom(stage.image_from());
      if (!from.ok()) {
        return StageError(source, pipeline, stage, std::string(from.status().message()));
      }
      if (std::find(stage.depends_on().begin(), stage.depends_on().end(), from->stage) ==
          stage.depends_on().end()) {
        return StageError(source, pipeline, stage,
                          absl::StrCat("image_from names stage '", from->stage,
                                       "', which must also be listed in depends_on"));
      }
    }
    IMGINTERP_RETURN_IF_ERROR(ValidateInputs(source, pipeline, stage));
  }
  // Depth-first search; a stage met again while still on the path closes a cycle.
  enum class Mark { kNew, kOnPath, kDone };
  std::map<std::string, Mark> marks;
  std::vector<std::string> path;
  std::function<absl::Status(const v1::StageSpec&)> visit =
      [&](const v1::StageSpec& stage) -> absl::Status {
    Mark& mark = marks[stage.name()];
    if (mark == Mark::kDone) return absl::OkStatus();
    if (mark == Mark::kOnPath) {
      path.push_back(stage.name());
      return StageError(source, pipeline, stage,
                        absl::StrCat("depends_on forms a cycle: ", absl::StrJoin(path, " -> ")));
    }
    mark = Mark::kOnPath;
    path.push_back(stage.name());
    for (const std::string& dependency : stage.depends_on()) {
      IMGINTERP_RETURN_IF_ERROR(visit(*stages.at(dependency)));
    }
    path.pop_back();
    marks[stage.name()] = Mark::kDone;
    return absl::OkStatus();
  };
  for (const v1::StageSpec& stage : pipeline.stages()) {
    IMGINTERP_RETURN_IF_ERROR(visit(stage));
  }
  return absl::OkStatus();
}

}  // namespace

bool IsToken(const std::string& name) {
  if (name.empty()) return false;
  for (const char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

PipelineRegistry::PipelineRegistry(v1::PipelinesConfig config) : config_(std::move(config)) {
  for (int i = 0; i < config_.pipelines_size(); ++i) index_[config_.pipelines(i).name()] = i;
}

absl::Status PipelineRegistry::Validate(const v1::PipelinesConfig& config,
                                        const std::string& source) {
  if (config.pipelines().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": defines no pipelines"));
  }
  std::set<std::string> names;
  for (const v1::PipelineSpec& pipeline : config.pipelines()) {
    if (!IsToken(pipeline.name())) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": pipeline name '", pipeline.name(), "' must match [a-z0-9_-]+"));
    }
    if (!names.insert(pipeline.name()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": pipeline '", pipeline.name(), "' is defined twice"));
    }
    IMGINTERP_RETURN_IF_ERROR(ValidatePipeline(source, pipeline));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<PipelineRegistry>> PipelineRegistry::Parse(
    const std::string& text, const std::string& source) {
  v1::PipelinesConfig config;
  ErrorList errors;
  pb::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, &config)) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": not a valid imginterp.v1.PipelinesConfig: ", errors.Joined()));
  }
  IMGINTERP_RETURN_IF_ERROR(Validate(config, source));
  return std::unique_ptr<PipelineRegistry>(new PipelineRegistry(std::move(config)));
}

absl::StatusOr<std::unique_ptr<PipelineRegistry>> PipelineRegistry::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("cannot read pipelines file '", path, "': check --pipelines"));
  }
  std::ostringstream text;
  text << in.rdbuf();
  return Parse(text.str(), path);
}

const v1::PipelineSpec* PipelineRegistry::Find(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &config_.pipelines(it->second);
}

absl::StatusOr<const v1::PipelineSpec*> PipelineRegistry::Get(const std::string& name) const {
  const v1::PipelineSpec* pipeline = Find(name);
  if (pipeline == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("no pipeline named '", name, "'; available: ", Names()));
  }
  return pipeline;
}

std::map<std::string, bool> PipelineRegistry::Parameters(const v1::PipelineSpec& pipeline) {
  std::map<std::string, bool> parameters;
  for (const v1::StageSpec& stage : pipeline.stages()) {
    for (const v1::StageInput& input : stage.inputs()) {
      absl::StatusOr<InputSource> from = ParseInputSource(input.from());
      if (!from.ok() || from->kind != InputSource::Kind::kJobParameter) continue;
      parameters[from->parameter] |= input.required();
    }
  }
  return parameters;
}

bool PipelineRegistry::UsesJobImage(const v1::PipelineSpec& pipeline) {
  for (const v1::StageSpec& stage : pipeline.stages()) {
    if (stage.inputs().empty() && stage.image_from().empty()) return true;
    for (const v1::StageInput& input : stage.inputs()) {
      if (input.from() == "job.image") return true;
    }
  }
  return false;
}

std::string PipelineRegistry::Names() const {
  std::vector<std::string> names;
  for (const v1::PipelineSpec& pipeline : config_.pipelines()) names.push_back(pipeline.name());
  return absl::StrJoin(names, ", ");
}

std::vector<std::string> PipelineRegistry::Families() const {
  std::set<std::string> families;
  for (const v1::PipelineSpec& pipeline : config_.pipelines()) {
    for (const v1::StageSpec& stage : pipeline.stages()) families.insert(stage.family());
  }
  return {families.begin(), families.end()};
}

}  // namespace imginterp::gateway
