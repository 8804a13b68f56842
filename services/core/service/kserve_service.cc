#include "services/core/service/kserve_service.h"

#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/grpcpp.h"
#include "imginterp/v1/common.pb.h"
#include "services/core/common/logging.h"
#include "services/core/rpc/grpc_status.h"
#include "services/core/service/family_handler.h"
#include "services/core/service/model_host.h"
#include "services/core/service/proto_fields.h"
#include "services/core/service/service_core.h"

namespace imginterp::service {
namespace {

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context,
                                    const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(rpc::ToGrpcStatus(status));
  return reactor;
}

absl::StatusOr<int64_t> ParseVersion(const std::string& version) {
  if (version.empty()) return 0;
  int64_t v = 0;
  if (!absl::SimpleAtoi(version, &v) || v < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("model_version '", version, "' is not a non-negative integer"));
  }
  return v;
}

// The single element of BYTES input `index`: from typed contents or from raw_input_contents,
// whose BYTES elements carry a 4-byte little-endian length prefix.
absl::StatusOr<std::string> BytesInput(const inference::ModelInferRequest& in, int index,
                                       const std::string& what) {
  const auto& input = in.inputs(index);
  if (input.datatype() != "BYTES") {
    return absl::InvalidArgumentError(absl::StrCat("input '", input.name(),
                                                   "' must have datatype BYTES (", what, "), not ",
                                                   input.datatype()));
  }
  int64_t elements = 1;
  for (int64_t d : input.shape()) elements *= d;
  if (elements != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input '", input.name(), "' must hold exactly one element (shape [1]); got ", elements,
        " elements: send one request per ", what, ", the server batches them"));
  }
  if (in.raw_input_contents_size() > 0) {
    if (in.raw_input_contents_size() != in.inputs_size()) {
      return absl::InvalidArgumentError("raw_input_contents must have one entry per input");
    }
    const std::string& raw = in.raw_input_contents(index);
    if (raw.size() < 4)
      return absl::InvalidArgumentError("raw BYTES input is shorter than its length prefix");
    uint32_t length = 0;
    for (int b = 3; b >= 0; --b) length = (length << 8) | static_cast<uint8_t>(raw[b]);
    if (raw.size() - 4 != length) {
      return absl::InvalidArgumentError(absl::StrCat("raw BYTES input: length prefix says ", length,
                                                     " bytes, ", raw.size() - 4, " follow"));
    }
    return raw.substr(4);
  }
  if (input.contents().bytes_contents_size() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("input '", input.name(), "' has no bytes_contents"));
  }
  return input.contents().bytes_contents(0);
}

// The encoded image of the BYTES input named "image" (or the only input).
absl::StatusOr<std::string> ImageBytes(const inference::ModelInferRequest& in) {
  int index = -1;
  for (int i = 0; i < in.inputs_size(); ++i) {
    if (in.inputs(i).name() == "image") index = i;
  }
  if (index < 0 && in.inputs_size() == 1) index = 0;
  if (index < 0) {
    return absl::InvalidArgumentError(
        "ModelInfer needs one BYTES input named \"image\" holding the encoded image");
  }
  return BytesInput(in, index, "encoded image");
}

// The top-level field a BYTES input named `name` fills: a non-repeated string/bytes field or an
// imginterp.v1.Image field; null if there is none.
const google::protobuf::FieldDescriptor* BytesTarget(const google::protobuf::Message& typed,
                                                     const std::string& name) {
  using google::protobuf::FieldDescriptor;
  const FieldDescriptor* field = typed.GetDescriptor()->FindFieldByName(name);
  if (field == nullptr || field->is_repeated()) return nullptr;
  if (field->cpp_type() == FieldDescriptor::CPPTYPE_STRING) return field;
  if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE &&
      field->message_type()->full_name() == v1::Image::descriptor()->full_name()) {
    return field;
  }
  return nullptr;
}

// Fills the fields named by BYTES inputs; returns how many inputs were used.
absl::StatusOr<int> ApplyNamedInputs(const inference::ModelInferRequest& in,
                                     google::protobuf::Message* typed) {
  int used = 0;
  for (int i = 0; i < in.inputs_size(); ++i) {
    const google::protobuf::FieldDescriptor* field = BytesTarget(*typed, in.inputs(i).name());
    if (field == nullptr) continue;
    const bool is_image = field->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE;
    auto bytes = BytesInput(in, i, is_image ? "encoded image" : "text");
    if (!bytes.ok()) return bytes.status();
    const auto* reflection = typed->GetReflection();
    if (is_image) {
      v1::Image image;
      image.set_data(*std::move(bytes));
      reflection->MutableMessage(typed, field)->CopyFrom(image);
    } else {
      reflection->SetString(typed, field, *std::move(bytes));
    }
    ++used;
  }
  return used;
}

absl::Status ApplyParameters(
    const google::protobuf::Map<std::string, inference::InferParameter>& parameters,
    google::protobuf::Message* typed) {
  for (const auto& [name, parameter] : parameters) {
    ScalarValue value;
    switch (parameter.parameter_choice_case()) {
      case inference::InferParameter::kBoolParam:
        value = parameter.bool_param();
        break;
      case inference::InferParameter::kInt64Param:
        value = parameter.int64_param();
        break;
      case inference::InferParameter::kUint64Param:
        value = parameter.uint64_param();
        break;
      case inference::InferParameter::kDoubleParam:
        value = parameter.double_param();
        break;
      case inference::InferParameter::kStringParam:
        value = parameter.string_param();
        break;
      default:
        continue;
    }
    if (auto s = SetScalarByPath(typed, name, value); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status KServeToTypedRequest(const inference::ModelInferRequest& in,
                                  google::protobuf::Message* typed) {
  auto version = ParseVersion(in.model_version());
  if (!version.ok()) return version.status();
  SetModelRef(typed, {in.model_name(), *version});
  auto named = ApplyNamedInputs(in, typed);
  if (!named.ok()) return named.status();
  if (*named == 0) {
    // No input names a field: the single image input of the image-in families.
    auto image = ImageBytes(in);
    if (!image.ok()) return image.status();
    if (auto s = SetImage(typed, *image, ""); !s.ok()) return s;
  }
  return ApplyParameters(in.parameters(), typed);
}

void FamilyHandler::DescribeKServeInputs(inference::ModelMetadataResponse* metadata) const {
  auto* image = metadata->add_inputs();
  image->set_name("image");
  image->set_datatype("BYTES");
  image->add_shape(1);
}

KServeService::KServeService(const FamilyHandler& handler, ModelHost& host,
                             std::string server_version)
    : handler_(handler), host_(host), server_version_(std::move(server_version)) {}

grpc::ServerUnaryReactor* KServeService::ServerLive(grpc::CallbackServerContext* context,
                                                    const inference::ServerLiveRequest*,
                                                    inference::ServerLiveResponse* response) {
  response->set_live(true);
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* KServeService::ServerReady(grpc::CallbackServerContext* context,
                                                     const inference::ServerReadyRequest*,
                                                     inference::ServerReadyResponse* response) {
  response->set_ready(host_.AnyReady());
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* KServeService::ModelReady(grpc::CallbackServerContext* context,
                                                    const inference::ModelReadyRequest* request,
                                                    inference::ModelReadyResponse* response) {
  auto version = ParseVersion(request->version());
  if (!version.ok()) return FinishNow(context, version.status());
  const absl::Status ready = host_.CheckReady(request->name(), *version);
  if (absl::IsNotFound(ready)) return FinishNow(context, ready);
  response->set_ready(ready.ok());
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* KServeService::ServerMetadata(
    grpc::CallbackServerContext* context, const inference::ServerMetadataRequest*,
    inference::ServerMetadataResponse* response) {
  response->set_name("imginterp-" + handler_.family());
  response->set_version(server_version_);
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* KServeService::ModelMetadata(
    grpc::CallbackServerContext* context, const inference::ModelMetadataRequest* request,
    inference::ModelMetadataResponse* response) {
  const std::string name = request->name().empty() ? host_.DefaultModel() : request->name();
  for (const v1::ModelInfo& info : host_.ListModels()) {
    if (info.name() != name) continue;
    response->set_name(info.name());
    for (int64_t v : info.versions()) response->add_versions(std::to_string(v));
    response->set_platform(info.backend() == "torchscript" ? "pytorch_libtorch"
                                                           : "imginterp_" + handler_.family());
    handler_.DescribeKServeInputs(response);
    handler_.DescribeKServeOutputs(response);
    return FinishNow(context, absl::OkStatus());
  }
  return FinishNow(context,
                   absl::NotFoundError(absl::StrCat("model '", name, "' is not served by the ",
                                                    handler_.family(), " service")));
}

grpc::ServerUnaryReactor* KServeService::ModelInfer(grpc::CallbackServerContext* context,
                                                    const inference::ModelInferRequest* request,
                                                    inference::ModelInferResponse* response) {
  common::ScopedTraceId trace(TraceIdOf(*context));
  // The typed messages live until the executor finishes the call.
  struct Call {
    std::unique_ptr<google::protobuf::Message> typed_request;
    std::unique_ptr<google::protobuf::Message> typed_response;
  };
  auto call = std::make_shared<Call>();
  call->typed_request.reset(handler_.request_prototype().New());
  call->typed_response.reset(handler_.response_prototype().New());
  if (auto s = KServeToTypedRequest(*request, call->typed_request.get()); !s.ok()) {
    return FinishNow(context, s);
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  Submission submission;
  const ModelRef ref = GetModelRef(*call->typed_request);
  submission.model = ref.name;
  submission.version = ref.version;
  submission.request = call->typed_request.get();
  submission.response = call->typed_response.get();
  submission.deadline = SteadyDeadline(*context);
  submission.cancelled = [context] { return context->IsCancelled(); };
  submission.done = [this, call, reactor, request, response](const absl::Status& status,
                                                             int64_t version) {
    absl::Status result = status;
    if (result.ok()) {
      response->set_model_name(GetModelRef(*call->typed_response).name);
      response->set_model_version(std::to_string(version));
      response->set_id(request->id());
      result = handler_.ToKServe(*call->typed_response, response);
    }
    reactor->Finish(rpc::ToGrpcStatus(result));
  };
  host_.Submit(std::move(submission));
  return reactor;
}

}  // namespace imginterp::service
