#include "services/core/proto_path/proto_path.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/descriptor.h"

namespace imginterp::proto_path {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// Bounds an index so that a typo cannot make PutImage allocate millions of elements.
constexpr int kMaxIndex = 1 << 20;

absl::Status PathError(absl::string_view path, const Message& at, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("path '", path, "' in ", at.GetTypeName(), ": ", what));
}

const FieldDescriptor* FindField(const Message& message, const std::string& name) {
  return message.GetDescriptor()->FindFieldByName(name);
}

bool IsImage(const FieldDescriptor* field) {
  return field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE &&
         field->message_type() == v1::Image::descriptor();
}

std::string Names(const Descriptor* type) {
  std::vector<std::string> names;
  for (int i = 0; i < type->field_count(); ++i) names.push_back(type->field(i)->name());
  return absl::StrJoin(names, ", ");
}

absl::Status UnknownField(absl::string_view path, const Message& at, const std::string& name) {
  return PathError(path, at,
                   absl::StrCat("no field '", name, "' (fields: ", Names(at.GetDescriptor()), ")"));
}

// Parses `text` as a value of `field` and stores it (appending for repeated fields).
absl::Status SetParsed(Message* target, const FieldDescriptor* field, absl::string_view text,
                       absl::string_view path) {
  const Reflection* reflection = target->GetReflection();
  const bool repeated = field->is_repeated();
  const std::string value(absl::StripAsciiWhitespace(text));
  auto bad = [&](absl::string_view expected) {
    return PathError(
        path, *target,
        absl::StrCat("field '", field->name(), "' takes ", expected, ", not '", text, "'"));
  };
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32: {
      int32_t v = 0;
      if (!absl::SimpleAtoi(value, &v)) return bad("a 32-bit integer");
      repeated ? reflection->AddInt32(target, field, v) : reflection->SetInt32(target, field, v);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_INT64: {
      int64_t v = 0;
      if (!absl::SimpleAtoi(value, &v)) return bad("an integer");
      repeated ? reflection->AddInt64(target, field, v) : reflection->SetInt64(target, field, v);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_UINT32: {
      uint32_t v = 0;
      if (!absl::SimpleAtoi(value, &v)) return bad("a non-negative 32-bit integer");
      repeated ? reflection->AddUInt32(target, field, v) : reflection->SetUInt32(target, field, v);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_UINT64: {
      uint64_t v = 0;
      if (!absl::SimpleAtoi(value, &v)) return bad("a non-negative integer");
      repeated ? reflection->AddUInt64(target, field, v) : reflection->SetUInt64(target, field, v);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_FLOAT: {
      float v = 0;
      if (!absl::SimpleAtof(value, &v) || !std::isfinite(v)) return bad("a finite number");
      repeated ? reflection->AddFloat(target, field, v) : reflection->SetFloat(target, field, v);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_DOUBLE: {
      double v = 0;
      if (!absl::SimpleAtod(value, &v) || !std::isfinite(v)) return bad("a finite number");
      repeated ? reflection->AddDouble(target, field, v) : reflection->SetDouble(target, field, v);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_BOOL: {
      bool v = false;
      if (!absl::SimpleAtob(value, &v)) return bad("true or false");
      repeated ? reflection->AddBool(target, field, v) : reflection->SetBool(target, field, v);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_ENUM: {
      const auto* enum_value = field->enum_type()->FindValueByName(value);
      if (enum_value == nullptr) {
        return bad(absl::StrCat("a value name of ", field->enum_type()->full_name()));
      }
      repeated ? reflection->AddEnum(target, field, enum_value)
               : reflection->SetEnum(target, field, enum_value);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_STRING:
      // Strings keep their text exactly (no whitespace stripping): prompts are strings.
      repeated ? reflection->AddString(target, field, std::string(text))
               : reflection->SetString(target, field, std::string(text));
      return absl::OkStatus();
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return bad("a message, which cannot be set from text (give a path to one of its fields)");
  }
  return bad("a scalar");
}

// Walks every step but the last, creating what is missing; returns the message holding the
// last field.
absl::StatusOr<Message*> MutableParent(Message* message, const std::vector<PathStep>& steps,
                                       absl::string_view path) {
  Message* current = message;
  for (size_t i = 0; i + 1 < steps.size(); ++i) {
    const PathStep& step = steps[i];
    const FieldDescriptor* field = FindField(*current, step.field);
    if (field == nullptr) return UnknownField(path, *current, step.field);
    if (field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) {
      return PathError(path, *current, absl::StrCat("'", step.field, "' is not a message"));
    }
    const Reflection* reflection = current->GetReflection();
    if (!field->is_repeated()) {
      if (step.index) {
        return PathError(path, *current, absl::StrCat("'", step.field, "' is not repeated"));
      }
      current = reflection->MutableMessage(current, field);
      continue;
    }
    const int size = reflection->FieldSize(*current, field);
    const int index = step.index.value_or(size);
    if (index > size) {
      return PathError(path, *current,
                       absl::StrCat("index ", index, " of '", step.field, "' is past its end (",
                                    size, " elements; ", size, " appends one)"));
    }
    current = index == size ? reflection->AddMessage(current, field)
                            : reflection->MutableRepeatedMessage(current, field, index);
  }
  return current;
}

}  // namespace

absl::StatusOr<std::vector<PathStep>> ParsePath(absl::string_view path) {
  std::vector<PathStep> steps;
  if (path.empty()) return absl::InvalidArgumentError("the field path is empty");
  for (absl::string_view part : absl::StrSplit(path, '.')) {
    if (part.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("field path '", path, "' has an empty part; write e.g. controls.0.image"));
    }
    if (absl::ascii_isdigit(static_cast<unsigned char>(part.front()))) {
      int index = 0;
      if (!absl::SimpleAtoi(part, &index) || index < 0 || index > kMaxIndex) {
        return absl::InvalidArgumentError(absl::StrCat("field path '", path, "': '", part,
                                                       "' is not an index from 0 to ", kMaxIndex));
      }
      if (steps.empty() || steps.back().index) {
        return absl::InvalidArgumentError(absl::StrCat("field path '", path, "': index ", index,
                                                       " must follow a repeated field's name"));
      }
      steps.back().index = index;
      continue;
    }
    for (char c : part) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_') {
        return absl::InvalidArgumentError(absl::StrCat("field path '", path, "': '", part,
                                                       "' is neither a field name nor an index"));
      }
    }
    steps.push_back(PathStep{std::string(part), std::nullopt});
  }
  return steps;
}

absl::StatusOr<std::vector<const v1::Image*>> FindImages(const Message& message,
                                                         absl::string_view path) {
  std::vector<PathStep> steps;
  {
    absl::StatusOr<std::vector<PathStep>> parsed = ParsePath(path);
    if (!parsed.ok()) return parsed.status();
    steps = *std::move(parsed);
  }
  const Message* current = &message;
  for (size_t i = 0; i < steps.size(); ++i) {
    const PathStep& step = steps[i];
    const bool last = i + 1 == steps.size();
    const FieldDescriptor* field = FindField(*current, step.field);
    if (field == nullptr) return UnknownField(path, *current, step.field);
    if (field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) {
      return PathError(path, *current, absl::StrCat("'", step.field, "' is not a message"));
    }
    const Reflection* reflection = current->GetReflection();
    if (!field->is_repeated()) {
      if (step.index) {
        return PathError(path, *current, absl::StrCat("'", step.field, "' is not repeated"));
      }
      current = &reflection->GetMessage(*current, field);
      continue;
    }
    const int size = reflection->FieldSize(*current, field);
    if (!step.index) {
      if (!last || !IsImage(field)) {
        return PathError(
            path, *current,
            absl::StrCat("'", step.field, "' is repeated: give an index, e.g. ", step.field, ".0"));
      }
      std::vector<const v1::Image*> images;
      for (int k = 0; k < size; ++k) {
        // Generated types only (the descriptor check above), so the cast is exact.
        images.push_back(
            static_cast<const v1::Image*>(&reflection->GetRepeatedMessage(*current, field, k)));
      }
      return images;
    }
    if (*step.index >= size) {
      return PathError(path, *current,
                       absl::StrCat("index ", *step.index, " of '", step.field,
                                    "' is past its end (", size, " elements)"));
    }
    current = &reflection->GetRepeatedMessage(*current, field, *step.index);
  }
  if (current->GetDescriptor() != v1::Image::descriptor()) {
    return PathError(path, message,
                     absl::StrCat("it leads to a ", current->GetDescriptor()->full_name(),
                                  ", not an imginterp.v1.Image"));
  }
  return std::vector<const v1::Image*>{static_cast<const v1::Image*>(current)};
}

namespace {

// The writers below may append intermediate elements before a later step fails; they work on a
// copy that replaces the message only on success, so a failed write changes nothing.
template <typename Write>
absl::Status WriteAtomically(Message* message, Write write) {
  std::unique_ptr<Message> copy(message->New());
  copy->CopyFrom(*message);
  absl::Status status = write(copy.get());
  if (status.ok()) message->GetReflection()->Swap(message, copy.get());
  return status;
}

absl::Status PutImageInPlace(Message* message, absl::string_view path, const v1::Image& image) {
  absl::StatusOr<std::vector<PathStep>> steps = ParsePath(path);
  if (!steps.ok()) return steps.status();
  absl::StatusOr<Message*> parent = MutableParent(message, *steps, path);
  if (!parent.ok()) return parent.status();
  const PathStep& step = steps->back();
  const FieldDescriptor* field = FindField(**parent, step.field);
  if (field == nullptr) return UnknownField(path, **parent, step.field);
  if (!IsImage(field)) {
    return PathError(path, **parent,
                     absl::StrCat("'", step.field, "' is not an imginterp.v1.Image field"));
  }
  const Reflection* reflection = (*parent)->GetReflection();
  if (!field->is_repeated()) {
    if (step.index) {
      return PathError(path, **parent, absl::StrCat("'", step.field, "' is not repeated"));
    }
    reflection->MutableMessage(*parent, field)->CopyFrom(image);
    return absl::OkStatus();
  }
  const int size = reflection->FieldSize(**parent, field);
  const int index = step.index.value_or(size);
  if (index > size) {
    return PathError(path, **parent,
                     absl::StrCat("index ", index, " of '", step.field, "' is past its end (", size,
                                  " elements; ", size, " appends one)"));
  }
  Message* target = index == size ? reflection->AddMessage(*parent, field)
                                  : reflection->MutableRepeatedMessage(*parent, field, index);
  target->CopyFrom(image);
  return absl::OkStatus();
}

absl::Status SetFromTextInPlace(Message* message, absl::string_view path, absl::string_view text) {
  absl::StatusOr<std::vector<PathStep>> steps = ParsePath(path);
  if (!steps.ok()) return steps.status();
  absl::StatusOr<Message*> parent = MutableParent(message, *steps, path);
  if (!parent.ok()) return parent.status();
  const PathStep& step = steps->back();
  const FieldDescriptor* field = FindField(**parent, step.field);
  if (field == nullptr) return UnknownField(path, **parent, step.field);
  if (step.index) {
    return PathError(path, **parent,
                     absl::StrCat("an index selects an element of a repeated message; a "
                                  "repeated scalar ('",
                                  step.field, "') is appended to without one"));
  }
  return SetParsed(*parent, field, text, path);
}

}  // namespace

absl::Status PutImage(Message* message, absl::string_view path, const v1::Image& image) {
  return WriteAtomically(message,
                         [&](Message* copy) { return PutImageInPlace(copy, path, image); });
}

absl::Status SetFromText(Message* message, absl::string_view path, absl::string_view text) {
  return WriteAtomically(message,
                         [&](Message* copy) { return SetFromTextInPlace(copy, path, text); });
}

absl::Status CheckScalarPath(const Descriptor* type, absl::string_view path) {
  absl::StatusOr<std::vector<PathStep>> steps = ParsePath(path);
  if (!steps.ok()) return steps.status();
  auto error = [&](const Descriptor* at, absl::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat("path '", path, "' in ", at->full_name(), ": ", what));
  };
  const Descriptor* current = type;
  for (size_t i = 0; i < steps->size(); ++i) {
    const PathStep& step = (*steps)[i];
    const bool last = i + 1 == steps->size();
    const FieldDescriptor* field = current->FindFieldByName(step.field);
    if (field == nullptr) {
      return error(current,
                   absl::StrCat("no field '", step.field, "' (fields: ", Names(current), ")"));
    }
    if (step.index && (!field->is_repeated() || last)) {
      return error(current, absl::StrCat("'", step.field, "' takes no index here"));
    }
    if (last) {
      if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        return error(current, absl::StrCat("'", step.field, "' is a message, not a scalar"));
      }
      return absl::OkStatus();
    }
    if (field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) {
      return error(current, absl::StrCat("'", step.field, "' is not a message"));
    }
    current = field->message_type();
  }
  return absl::OkStatus();
}

}  // namespace imginterp::proto_path
