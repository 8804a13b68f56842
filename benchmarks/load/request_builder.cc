#include "benchmarks/load/request_builder.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "google/protobuf/dynamic_message.h"
#include "google/protobuf/util/json_util.h"
#include "imginterp/v1/common.pb.h"
#include "services/core/common/media_type.h"
#include "services/core/common/read_file.h"
#include "services/core/proto_path/proto_path.h"

namespace imginterp::load {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::DescriptorPool;
using google::protobuf::MethodDescriptor;
using google::protobuf::ServiceDescriptor;

// The proto files linked into imginterp::proto (proto/CMakeLists.txt), for naming the services
// a mistyped --method could have meant.
constexpr const char* kProtoFiles[] = {
    "inference/grpc_service.proto", "imginterp/v1/edges.proto",   "imginterp/v1/classify.proto",
    "imginterp/v1/pose.proto",      "imginterp/v1/segment.proto", "imginterp/v1/detect.proto",
    "imginterp/v1/upscale.proto",   "imginterp/v1/clip.proto",    "imginterp/v1/generate.proto",
    "imginterp/v1/gateway.proto"};

std::string KnownServices() {
  std::vector<std::string> names;
  for (const char* file_name : kProtoFiles) {
    const auto* file = DescriptorPool::generated_pool()->FindFileByName(file_name);
    if (file == nullptr) continue;
    for (int i = 0; i < file->service_count(); ++i) names.push_back(file->service(i)->full_name());
  }
  return absl::StrJoin(names, ", ");
}

std::string MethodsOf(const ServiceDescriptor& service) {
  std::vector<std::string> names;
  for (int i = 0; i < service.method_count(); ++i) names.push_back(service.method(i)->name());
  return absl::StrJoin(names, ", ");
}

absl::StatusOr<std::string> ReadImageFile(const std::string& path) {
  absl::StatusOr<std::string> bytes = common::ReadFile(path, "--image");
  if (bytes.ok() && bytes->empty()) {
    return absl::InvalidArgumentError(absl::StrCat("--image: '", path, "' is empty"));
  }
  return bytes;
}

absl::Status ParseJsonInto(const std::string& json, google::protobuf::Message* message) {
  if (json.empty()) return absl::OkStatus();
  const auto status = google::protobuf::util::JsonStringToMessage(json, message);
  if (!status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("the request JSON is not a valid ",
                                                   message->GetTypeName(), ": ",
                                                   status.message().ToString()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<ImageArgument>> ParseImageArguments(absl::string_view text,
                                                               absl::string_view default_path) {
  std::vector<ImageArgument> images;
  for (absl::string_view entry : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    entry = absl::StripAsciiWhitespace(entry);
    ImageArgument image;
    const size_t eq = entry.find('=');
    if (eq == absl::string_view::npos) {
      image.path = std::string(default_path);
      image.file = std::string(entry);
    } else {
      image.path = std::string(absl::StripAsciiWhitespace(entry.substr(0, eq)));
      image.file = std::string(absl::StripAsciiWhitespace(entry.substr(eq + 1)));
    }
    if (image.path.empty() || image.file.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--image entry '", entry, "' is not FILE or field.path=FILE"));
    }
    images.push_back(std::move(image));
  }
  return images;
}

absl::StatusOr<const MethodDescriptor*> FindUnaryMethod(absl::string_view name) {
  absl::string_view rest = absl::StripPrefix(name, "/");
  size_t split = rest.rfind('/');
  if (split == absl::string_view::npos) split = rest.rfind('.');
  if (split == absl::string_view::npos || split == 0 || split + 1 == rest.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--method '", name,
                     "' is not package.Service/Method, e.g. imginterp.v1.EdgesService/Detect"));
  }
  const std::string service_name(rest.substr(0, split));
  const std::string method_name(rest.substr(split + 1));
  const ServiceDescriptor* service =
      DescriptorPool::generated_pool()->FindServiceByName(service_name);
  if (service == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("--method: no service '", service_name,
                     "' in the linked protos; known services: ", KnownServices()));
  }
  const MethodDescriptor* method = service->FindMethodByName(method_name);
  if (method == nullptr) {
    return absl::NotFoundError(absl::StrCat("--method: ", service_name, " has no method '",
                                            method_name, "'; its methods: ", MethodsOf(*service)));
  }
  if (method->client_streaming() || method->server_streaming()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--method: ", method->full_name(),
                     " streams; imginterp-load sends unary calls (for jobs use --gateway_async)"));
  }
  return method;
}

std::string MethodPath(const MethodDescriptor& method) {
  return absl::StrCat("/", method.service()->full_name(), "/", method.name());
}

std::string DefaultImagePath(const Descriptor& type) {
  const auto* job = type.FindFieldByName("job");
  if (job != nullptr && job->message_type() != nullptr &&
      job->message_type()->FindFieldByName("image") != nullptr) {
    return "job.image";
  }
  return "image";
}

absl::StatusOr<std::unique_ptr<google::protobuf::Message>> BuildTypedRequest(
    const Descriptor& type, const RequestOptions& options) {
  const google::protobuf::Message* prototype =
      google::protobuf::MessageFactory::generated_factory()->GetPrototype(&type);
  if (prototype == nullptr) {
    return absl::InternalError(absl::StrCat("no generated class for ", type.full_name()));
  }
  std::unique_ptr<google::protobuf::Message> request(prototype->New());
  if (absl::Status status = ParseJsonInto(options.json, request.get()); !status.ok()) {
    return status;
  }
  if (!options.model.empty()) {
    if (absl::Status status = proto_path::SetFromText(request.get(), "model.name", options.model);
        !status.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--model: ", type.full_name(), " has no model.name to set (", status.message(), ")"));
    }
  }
  if (!options.pipeline.empty()) {
    if (absl::Status status =
            proto_path::SetFromText(request.get(), "job.pipeline", options.pipeline);
        !status.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--pipeline: ", type.full_name(),
                                                     " has no job.pipeline to set (",
                                                     status.message(), ")"));
    }
  }
  for (const ImageArgument& argument : options.images) {
    absl::StatusOr<std::string> bytes = ReadImageFile(argument.file);
    if (!bytes.ok()) return bytes.status();
    v1::Image image;
    image.set_data(*std::move(bytes));
    image.set_media_type(common::ImageMediaTypeOf(argument.file));
    if (absl::Status status = proto_path::PutImage(request.get(), argument.path, image);
        !status.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--image ", argument.path, "=", argument.file, ": ", status.message()));
    }
  }
  return request;
}

absl::StatusOr<inference::ModelInferRequest> BuildKServeRequest(const RequestOptions& options) {
  inference::ModelInferRequest request;
  if (absl::Status status = ParseJsonInto(options.json, &request); !status.ok()) return status;
  if (!options.model.empty()) request.set_model_name(options.model);
  for (const ImageArgument& argument : options.images) {
    absl::StatusOr<std::string> bytes = ReadImageFile(argument.file);
    if (!bytes.ok()) return bytes.status();
    inference::ModelInferRequest::InferInputTensor* input = request.add_inputs();
    input->set_name(argument.path);
    input->set_datatype("BYTES");
    input->add_shape(1);
    input->mutable_contents()->add_bytes_contents(*std::move(bytes));
  }
  return request;
}

}  // namespace imginterp::load
