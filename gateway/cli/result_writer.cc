#include "gateway/cli/result_writer.h"

#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/util/json_util.h"
#include "imginterp/v1/common.pb.h"

namespace imginterp::cli {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

std::string Extension(const v1::Image& image) {
  if (image.media_type() == "image/jpeg") return ".jpg";
  if (image.media_type() == "image/webp") return ".webp";
  return ".png";
}

absl::Status Walk(Message& message, const std::string& path, const std::string& stage,
                  const std::string& out_dir, std::vector<WrittenImage>& written) {
  if (message.GetDescriptor()->full_name() == "imginterp.v1.Image") {
    auto& image = static_cast<v1::Image&>(message);
    if (image.data().empty()) return absl::OkStatus();
    const std::string suffix = written.empty() ? "" : "_" + absl::StrReplaceAll(path, {{".", "_"}});
    const std::string file = absl::StrCat(stage, suffix, Extension(image));
    std::ofstream out(out_dir + "/" + file, std::ios::binary);
    out.write(image.data().data(), static_cast<std::streamsize>(image.data().size()));
    if (!out) return absl::UnavailableError(absl::StrCat("cannot write ", out_dir, "/", file));
    image.clear_data();
    written.push_back({path, file});
    return absl::OkStatus();
  }
  const auto* reflection = message.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);
  for (const FieldDescriptor* field : fields) {
    if (field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE || field->is_map()) continue;
    const std::string child = path.empty() ? field->name() : path + "." + field->name();
    if (field->is_repeated()) {
      for (int i = 0; i < reflection->FieldSize(message, field); ++i) {
        auto status = Walk(*reflection->MutableRepeatedMessage(&message, field, i),
                           absl::StrCat(child, ".", i), stage, out_dir, written);
        if (!status.ok()) return status;
      }
    } else {
      auto status =
          Walk(*reflection->MutableMessage(&message, field), child, stage, out_dir, written);
      if (!status.ok()) return status;
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<WrittenImage>> ExtractImages(Message& response, const std::string& stage,
                                                        const std::string& out_dir) {
  std::vector<WrittenImage> written;
  auto status = Walk(response, "", stage, out_dir, written);
  if (!status.ok()) return status;
  return written;
}

nlohmann::json MessageToJson(const Message& message) {
  std::string text;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  if (!google::protobuf::util::MessageToJsonString(message, &text, options).ok()) {
    return nlohmann::json::object();
  }
  return nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
}

}  // namespace imginterp::cli
