// The gateway's pipelines: a protobuf-text imginterp.v1.PipelinesConfig, loaded and validated
// once at start-up. A pipeline is a DAG of stages, each run by one model family's workers.
//
// Immutable after Create: thread-safe.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "imginterp/v1/gateway.pb.h"

namespace imginterp::gateway {

class PipelineRegistry {
 public:
  // Reads and validates the file at `path`. INVALID_ARGUMENT (naming the file, pipeline and
  // stage) when the text does not parse or a rule below is broken; NOT_FOUND when the file
  // cannot be read.
  static absl::StatusOr<std::unique_ptr<PipelineRegistry>> Load(const std::string& path);
  // Same from text; `source` names it in error messages.
  static absl::StatusOr<std::unique_ptr<PipelineRegistry>> Parse(const std::string& text,
                                                                 const std::string& source);
  // Validation rules: at least one pipeline; unique pipeline names and unique stage names
  // within a pipeline; names and families are KV/subject tokens [a-z0-9_-]+; at least one
  // stage; no stage is named "job"; depends_on names other stages of the same pipeline and the
  // graph has no cycle; the request Any resolves to a linked message type that has a field
  // `image` of type imginterp.v1.Image, unless the stage has inputs; image_from and inputs name
  // stages the stage depends on, are not combined, and inputs lead to fields that can take
  // them (an Image field for images, a scalar for a job parameter, each parameter once per
  // stage).
  static absl::Status Validate(const v1::PipelinesConfig& config, const std::string& source);

  // nullptr when there is no such pipeline.
  const v1::PipelineSpec* Find(const std::string& name) const;
  // NOT_FOUND naming the pipeline and listing the available ones.
  absl::StatusOr<const v1::PipelineSpec*> Get(const std::string& name) const;
  const v1::PipelinesConfig& config() const { return config_; }
  // The job parameters `pipeline` reads (its stages' job.parameters.<key> inputs), sorted, and
  // whether any stage requires each.
  static std::map<std::string, bool> Parameters(const v1::PipelineSpec& pipeline);
  // Whether any stage of `pipeline` takes the job's image (a stage without inputs or image_from,
  // or a job.image input).
  static bool UsesJobImage(const v1::PipelineSpec& pipeline);
  // Comma-separated pipeline names, in file order.
  std::string Names() const;
  // The families the pipelines' stages run on, sorted, each once.
  std::vector<std::string> Families() const;

 private:
  explicit PipelineRegistry(v1::PipelinesConfig config);
  v1::PipelinesConfig config_;
  std::map<std::string, int> index_;
};

// True when `name` is a non-empty token of [a-z0-9_-].
bool IsToken(const std::string& name);

}  // namespace imginterp::gateway
