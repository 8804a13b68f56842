// Turning imginterp-load's flags into one serialized request: the method looked up in the
// descriptor pool of the linked protos, the message filled from JSON, then --model, --pipeline
// and the images (set by field path through proto_path, or as KServe BYTES inputs).
//
// Stateless functions: thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "inference/grpc_service.pb.h"

namespace imginterp::load {

// An image file and where it goes: a field path of the request ("image", "job.image",
// "controls.0.image") or, for KServe, the name of the BYTES input.
struct ImageArgument {
  std::string path;
  std::string file;
};

// "FILE" or "path=FILE", comma-separated; an entry without a path goes to `default_path`.
// INVALID_ARGUMENT for an empty entry or path.
absl::StatusOr<std::vector<ImageArgument>> ParseImageArguments(absl::string_view text,
                                                               absl::string_view default_path);

// A unary method of the linked protos, named "imginterp.v1.EdgesService/Detect" (a leading '/'
// and '.' before the method name are accepted too). NOT_FOUND naming the services that are
// linked, or the service's methods; INVALID_ARGUMENT for a streaming method.
absl::StatusOr<const google::protobuf::MethodDescriptor*> FindUnaryMethod(absl::string_view name);

// "/imginterp.v1.EdgesService/Detect", the path gRPC sends.
std::string MethodPath(const google::protobuf::MethodDescriptor& method);

// Where an image without a path goes in `type`: "job.image" for gateway requests, else "image".
std::string DefaultImagePath(const google::protobuf::Descriptor& type);

struct RequestOptions {
  std::string json;      // the request in protobuf's JSON mapping ("" for an empty message)
  std::string model;     // typed: model.name; KServe: model_name ("" leaves the JSON's)
  std::string pipeline;  // gateway requests: job.pipeline ("" leaves the JSON's)
  std::vector<ImageArgument> images;
};

// A `type` request (a family's request, RunPipelineRequest, SubmitJobRequest, ...) from
// `options`. INVALID_ARGUMENT naming the type for bad JSON, a --model or --pipeline the type has
// no field for, or an image path that does not end at an imginterp.v1.Image; NOT_FOUND for an
// unreadable image file.
absl::StatusOr<std::unique_ptr<google::protobuf::Message>> BuildTypedRequest(
    const google::protobuf::Descriptor& type, const RequestOptions& options);

// A KServe v2 ModelInfer request: the JSON as inference.ModelInferRequest, --model as
// model_name, and each image as a BYTES input of shape [1] named by its path ("image" by
// default), which is how the services take images (services/core/service/kserve_service.h).
absl::StatusOr<inference::ModelInferRequest> BuildKServeRequest(const RequestOptions& options);

}  // namespace imginterp::load
