#include "services/core/service/proto_fields.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/descriptor.h"
#include "imginterp/v1/common.pb.h"

namespace imginterp::service {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

const FieldDescriptor* MessageField(const Message& message, const std::string& name,
                                    const std::string& type) {
  const FieldDescriptor* field = message.GetDescriptor()->FindFieldByName(name);
  if (field == nullptr || field->is_repeated() ||
      field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE ||
      field->message_type()->full_name() != type) {
    return nullptr;
  }
  return field;
}

}  // namespace

ModelRef GetModelRef(const Message& message) {
  ModelRef ref;
  const FieldDescriptor* field = MessageField(message, "model", "imginterp.v1.ModelId");
  if (field == nullptr) return ref;
  v1::ModelId id;
  id.CopyFrom(message.GetReflection()->GetMessage(message, field));
  ref.name = id.name();
  ref.version = id.version();
  return ref;
}

void SetModelRef(Message* message, const ModelRef& ref) {
  const FieldDescriptor* field = MessageField(*message, "model", "imginterp.v1.ModelId");
  if (field == nullptr) return;
  v1::ModelId id;
  id.set_name(ref.name);
  id.set_version(ref.version);
  message->GetReflection()->MutableMessage(message, field)->CopyFrom(id);
}

absl::Status SetImage(Message* message, const std::string& data, const std::string& media_type) {
  const FieldDescriptor* field = MessageField(*message, "image", "imginterp.v1.Image");
  if (field == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(message->GetTypeName(), " has no `Image image` field to put the image in"));
  }
  v1::Image image;
  image.set_data(data);
  image.set_media_type(media_type);
  message->GetReflection()->MutableMessage(message, field)->CopyFrom(image);
  return absl::OkStatus();
}

absl::Status SetScalarByPath(Message* message, const std::string& path, const ScalarValue& value) {
  std::vector<std::string> parts = absl::StrSplit(path, '.');
  Message* target = message;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    const FieldDescriptor* field = target->GetDescriptor()->FindFieldByName(parts[i]);
    if (field == nullptr || field->is_repeated() ||
        field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) {
      return absl::InvalidArgumentError(absl::StrCat(
          "parameter '", path, "': ", target->GetTypeName(), " has no field '", parts[i], "'"));
    }
    target = target->GetReflection()->MutableMessage(target, field);
  }
  const FieldDescriptor* field = target->GetDescriptor()->FindFieldByName(parts.back());
  if (field == nullptr || field->is_repeated()) {
    return absl::InvalidArgumentError(absl::StrCat("parameter '", path,
                                                   "': ", target->GetTypeName(),
                                                   " has no scalar field '", parts.back(), "'"));
  }
  const auto* reflection = target->GetReflection();
  auto bad = [&](const std::string& expected) {
    return absl::InvalidArgumentError(absl::StrCat("parameter '", path, "' must be ", expected));
  };
  const bool is_string = std::holds_alternative<std::string>(value);
  double number = 0;
  bool is_integral = false;
  if (auto* b = std::get_if<bool>(&value)) number = *b ? 1 : 0, is_integral = true;
  if (auto* i = std::get_if<int64_t>(&value)) number = static_cast<double>(*i), is_integral = true;
  if (auto* u = std::get_if<uint64_t>(&value)) number = static_cast<double>(*u), is_integral = true;
  if (auto* d = std::get_if<double>(&value)) {
    number = *d;
    is_integral = std::floor(*d) == *d;
  }
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      if (is_string || !is_integral) return bad("an integer");
      reflection->SetInt32(target, field, static_cast<int32_t>(number));
      return absl::OkStatus();
    case FieldDescriptor::CPPTYPE_INT64:
      if (is_string || !is_integral) return bad("an integer");
      reflection->SetInt64(target, field, static_cast<int64_t>(number));
      return absl::OkStatus();
    case FieldDescriptor::CPPTYPE_UINT32:
      if (is_string || !is_integral || number < 0) return bad("a non-negative integer");
      reflection->SetUInt32(target, field, static_cast<uint32_t>(number));
      return absl::OkStatus();
    case FieldDescriptor::CPPTYPE_UINT64:
      if (is_string || !is_integral || number < 0) return bad("a non-negative integer");
      reflection->SetUInt64(target, field, static_cast<uint64_t>(number));
      return absl::OkStatus();
    case FieldDescriptor::CPPTYPE_FLOAT:
      if (is_string) return bad("a number");
      reflection->SetFloat(target, field, static_cast<float>(number));
      return absl::OkStatus();
    case FieldDescriptor::CPPTYPE_DOUBLE:
      if (is_string) return bad("a number");
      reflection->SetDouble(target, field, number);
      return absl::OkStatus();
    case FieldDescriptor::CPPTYPE_BOOL:
      if (is_string) return bad("true or false");
      reflection->SetBool(target, field, number != 0);
      return absl::OkStatus();
    case FieldDescriptor::CPPTYPE_STRING:
      if (!is_string) return bad("a string");
      reflection->SetString(target, field, std::get<std::string>(value));
      return absl::OkStatus();
    case FieldDescriptor::CPPTYPE_ENUM: {
      if (!is_string) return bad("an enum value name");
      const auto* enum_value = field->enum_type()->FindValueByName(std::get<std::string>(value));
      if (enum_value == nullptr) return bad("a value of " + field->enum_type()->full_name());
      reflection->SetEnum(target, field, enum_value);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return bad("a scalar field, not a message");
  }
  return bad("a scalar");
}

}  // namespace imginterp::service
