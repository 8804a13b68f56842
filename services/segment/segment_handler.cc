#include "services/segment/segment_handler.h"

#include <torch/types.h>

#include <algorithm>
#include <any>
#include <cmath>
#include <opencv2/imgproc.hpp>
#include <utility>

#include "absl/strings/str_cat.h"
#include "inference/grpc_service.pb.h"
#include "services/core/codec/tensor_convert.h"
#include "services/core/common/status_macros.h"

namespace imginterp::segment {
namespace {

constexpr float kDefaultThreshold = 0.5f;

// What a model kind needs: its input size when config.pbtxt leaves it dynamic.
struct KindDefaults {
  const char* kind;
  int width;
  int height;
};
constexpr KindDefaults kKinds[] = {{"selfie", 256, 256}, {"meet", 256, 144}};

absl::StatusOr<v1::PriorMap> ColourMapToPrior(const cv::Mat& rgb, const std::string& method) {
  IMGINTERP_ASSIGN_OR_RETURN(std::string png, codec::EncodePng(rgb));
  v1::PriorMap map;
  map.set_kind(v1::PRIOR_KIND_SEGMENTATION);
  map.set_method(method);
  map.mutable_image()->set_data(std::move(png));
  map.mutable_image()->set_media_type("image/png");
  map.mutable_image()->set_width(rgb.cols);
  map.mutable_image()->set_height(rgb.rows);
  return map;
}

struct PersonModelSettings {
  std::string name;
  int model_width = 0;
  int model_height = 0;
  // Multiplies 0..255 pixel values: 1/255 for "0..1" models.
  float input_scale = 1.0f / 255;
  FitMode fit = FitMode::kStretch;
};

// Person segmentation (selfie, meet). Externally synchronized, like every ModelInstance.
class PersonSegmentModel final : public service::TensorModel {
 public:
  PersonSegmentModel(std::unique_ptr<model::ModelRunner> runner, PersonModelSettings settings,
                     codec::ImageLimits limits)
      : TensorModel(std::move(runner)), settings_(std::move(settings)), limits_(limits) {}

 protected:
  absl::StatusOr<std::vector<at::Tensor>> Preprocess(
      const google::protobuf::Message& message) override {
    const auto& request = static_cast<const v1::SegmentRequest&>(message);
    const float threshold = request.threshold();
    if (!(threshold >= 0 && threshold < 1)) {
      return absl::InvalidArgumentError(absl::StrCat("threshold must be in [0, 1) (0 means ",
                                                     kDefaultThreshold, "); got ", threshold));
    }
    IMGINTERP_ASSIGN_OR_RETURN(codec::DecodedImage image,
                               codec::Decode(request.image().data(), limits_));
    const Fit fit = ComputeFit(image.rgb.cols, image.rgb.rows, settings_.model_width,
                               settings_.model_height, settings_.fit);
    at::Tensor input;
    try {
      const cv::Mat fitted = FitImage(image.rgb, fit);
      input = codec::MatToTensor(fitted)
                  .to(torch::kFloat32)
                  .mul_(settings_.input_scale)
                  .unsqueeze(0)
                  .contiguous();
    } catch (const cv::Exception& e) {
      return absl::InternalError(absl::StrCat("resizing the image failed: ", e.what()));
    }
    SetRequestState(message, fit);
    return std::vector<at::Tensor>{std::move(input)};
  }

  absl::Status Postprocess(const google::protobuf::Message& message,
                           const std::vector<at::Tensor>& outputs,
                           google::protobuf::Message* response_message) override {
    const auto& request = static_cast<const v1::SegmentRequest&>(message);
    auto& response = static_cast<v1::SegmentResponse&>(*response_message);
    const std::any* state = RequestState(message);
    if (state == nullptr) {
      return absl::InternalError("segment: no preprocessing state for this request");
    }
    const Fit fit = std::any_cast<Fit>(*state);
    if (outputs.empty()) {
      return absl::InternalError(
          absl::StrCat("model '", settings_.name, "' returned no output tensor"));
    }
    IMGINTERP_ASSIGN_OR_RETURN(cv::Mat probability, PersonProbability(outputs[0]));
    if (probability.cols != fit.model_width || probability.rows != fit.model_height) {
      return absl::InternalError(absl::StrCat(
          "model '", settings_.name, "' returned a ", probability.cols, "x", probability.rows,
          " map for a ", fit.model_width, "x", fit.model_height, " input"));
    }
    const float threshold = request.threshold() == 0 ? kDefaultThreshold : request.threshold();
    try {
      const cv::Mat full = MapToImage(probability, fit);
      IMGINTERP_ASSIGN_OR_RETURN(std::string mask_png, codec::EncodePng(ProbabilityToMask(full)));
      auto* mask = response.mutable_mask();
      mask->set_data(std::move(mask_png));
      mask->set_media_type("image/png");
      mask->set_width(full.cols);
      mask->set_height(full.rows);

      const std::vector<PaletteEntry> palette = {PersonEntry()};
      cv::Mat class_map(full.size(), CV_32SC1, cv::Scalar(kBackground));
      class_map.setTo(cv::Scalar(0), full > threshold);
      IMGINTERP_ASSIGN_OR_RETURN(*response.mutable_map(),
                                 ColourMapToPrior(ColourMap(class_map, palette), settings_.name));
      for (auto& c : DescribeClasses(class_map, palette)) *response.add_classes() = std::move(c);
    } catch (const cv::Exception& e) {
      return absl::InternalError(absl::StrCat("segment postprocessing failed: ", e.what()));
    }
    return absl::OkStatus();
  }

 private:
  const PersonModelSettings settings_;
  const codec::ImageLimits limits_;
};

}  // namespace

const PaletteEntry& PersonEntry() {
  static const PaletteEntry* const entry = new PaletteEntry{12, "person", 150, 5, 61};
  return *entry;
}

cv::Mat MapToImage(const cv::Mat& model_map, const Fit& fit) {
  // Cut the padding away, then a bilinear resize with pixel-centre alignment (edges replicated).
  const cv::Mat content =
      model_map(cv::Rect(static_cast<int>(fit.offset_x), static_cast<int>(fit.offset_y),
                         fit.content_width, fit.content_height));
  cv::Mat out;
  cv::resize(content, out, cv::Size(fit.image_width, fit.image_height), 0, 0, cv::INTER_LINEAR);
  return out;
}

absl::StatusOr<cv::Mat> PersonProbability(const at::Tensor& output) {
  if (output.dim() != 4 || output.size(0) != 1 || (output.size(3) != 1 && output.size(3) != 2)) {
    std::vector<int64_t> sizes = output.defined() ? output.sizes().vec() : std::vector<int64_t>{};
    std::string shape;
    for (int64_t s : sizes) absl::StrAppend(&shape, shape.empty() ? "" : ",", s);
    return absl::InvalidArgumentError(absl::StrCat(
        "a person segmentation model should return [1,H,W,1] probabilities or [1,H,W,2] "
        "(background, person) logits; got [",
        shape, "]"));
  }
  at::Tensor map = output[0].to(torch::kFloat32);
  if (map.size(2) == 2) {
    // softmax over two channels = sigmoid of the difference.
    map = torch::sigmoid(map.select(2, 1) - map.select(2, 0));
  } else {
    map = map.select(2, 0);
  }
  map = map.contiguous();
  cv::Mat probability(static_cast<int>(map.size(0)), static_cast<int>(map.size(1)), CV_32FC1,
                      map.data_ptr<float>());
  return probability.clone();
}

cv::Mat ProbabilityToMask(const cv::Mat& probability) {
  cv::Mat mask;
  probability.convertTo(mask, CV_8U, 255.0);  // Rounds and saturates.
  return mask;
}

cv::Mat ColourMap(const cv::Mat& class_map, const std::vector<PaletteEntry>& palette) {
  cv::Mat out(class_map.size(), CV_8UC3, cv::Scalar(0, 0, 0));
  const int classes = static_cast<int>(palette.size());
  for (int y = 0; y < class_map.rows; ++y) {
    const int32_t* in = class_map.ptr<int32_t>(y);
    cv::Vec3b* row = out.ptr<cv::Vec3b>(y);
    for (int x = 0; x < class_map.cols; ++x) {
      const int32_t index = in[x];
      if (index < 0 || index >= classes) continue;
      row[x] = cv::Vec3b(palette[index].red, palette[index].green, palette[index].blue);
    }
  }
  return out;
}

std::vector<v1::SegmentClass> DescribeClasses(const cv::Mat& class_map,
                                              const std::vector<PaletteEntry>& palette) {
  struct Extent {
    int64_t count = 0;
    int x1 = 0, y1 = 0, x2 = 0, y2 = 0;
  };
  std::vector<Extent> extents(palette.size());
  for (int y = 0; y < class_map.rows; ++y) {
    const int32_t* in = class_map.ptr<int32_t>(y);
    for (int x = 0; x < class_map.cols; ++x) {
      const int32_t index = in[x];
      if (index < 0 || index >= static_cast<int>(palette.size())) continue;
      Extent& e = extents[index];
      if (e.count++ == 0) {
        e.x1 = e.x2 = x;
        e.y1 = e.y2 = y;
      } else {
        e.x1 = std::min(e.x1, x);
        e.x2 = std::max(e.x2, x);
        e.y1 = std::min(e.y1, y);
        e.y2 = std::max(e.y2, y);
      }
    }
  }
  std::vector<v1::SegmentClass> out;
  const double total = static_cast<double>(class_map.total());
  for (size_t i = 0; i < palette.size(); ++i) {
    const Extent& e = extents[i];
    if (e.count == 0) continue;
    v1::SegmentClass c;
    c.set_class_id(palette[i].class_id);
    c.set_name(palette[i].name);
    c.set_red(palette[i].red);
    c.set_green(palette[i].green);
    c.set_blue(palette[i].blue);
    c.set_area_fraction(static_cast<float>(e.count / total));
    c.mutable_box()->set_x1(static_cast<float>(e.x1));
    c.mutable_box()->set_y1(static_cast<float>(e.y1));
    c.mutable_box()->set_x2(static_cast<float>(e.x2 + 1));
    c.mutable_box()->set_y2(static_cast<float>(e.y2 + 1));
    out.push_back(std::move(c));
  }
  return out;
}

std::string SegmentHandler::description() const {
  return "Person segmentation (MediaPipe selfie and meet, imported from TF.js): the person "
         "probability as a grey mask at the input's size, a ControlNet-seg colour map (ADE20K "
         "palette, person 150,5,61) and the person's area and box. Requests are batched when "
         "the model allows it.";
}

absl::StatusOr<std::unique_ptr<service::ModelInstance>> SegmentHandler::CreateInstance(
    const service::ModelLoadInfo& info, std::unique_ptr<model::ModelRunner> runner) const {
  if (runner == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "segment model '", info.name, "' needs backend \"torchscript\" in config.pbtxt"));
  }
  const auto& parameters = info.config.parameters();
  const auto kind_it = parameters.find("kind");
  const std::string kind = kind_it == parameters.end() ? "" : kind_it->second;
  const KindDefaults* defaults = nullptr;
  for (const auto& k : kKinds) {
    if (kind == k.kind) defaults = &k;
  }
  if (defaults == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("segment model '", info.name,
                     "': config.pbtxt parameters.kind must be \"selfie\" or "
                     "\"meet\"; got \"",
                     kind, "\""));
  }
  PersonModelSettings settings;
  settings.name = info.name;
  settings.model_width = defaults->width;
  settings.model_height = defaults->height;
  if (info.config.inputs_size() > 0) {
    const auto& shape = info.config.inputs(0).shape();
    if (shape.size() == 4 && shape[3] != 3) {
      return absl::InvalidArgumentError(
          absl::StrCat("segment model '", info.name,
                       "': input must be NHWC RGB [N,H,W,3]; config says C=", shape[3]));
    }
    if (shape.size() == 4 && shape[1] > 0 && shape[2] > 0) {
      settings.model_height = static_cast<int>(shape[1]);
      settings.model_width = static_cast<int>(shape[2]);
    }
  }
  const auto range_it = parameters.find("input_range");
  const std::string range = range_it == parameters.end() ? "0..1" : range_it->second;
  if (range == "0..1") {
    settings.input_scale = 1.0f / 255;
  } else if (range == "0..255") {
    settings.input_scale = 1.0f;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("segment model '", info.name,
                                                   "': parameters.input_range must be \"0..1\" "
                                                   "or \"0..255\"; got \"",
                                                   range, "\""));
  }
  const auto fit_it = parameters.find("fit");
  const std::string fit = fit_it == parameters.end() ? "stretch" : fit_it->second;
  if (fit == "stretch") {
    settings.fit = FitMode::kStretch;
  } else if (fit == "letterbox") {
    settings.fit = FitMode::kLetterbox;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("segment model '", info.name,
                     "': parameters.fit must be \"stretch\" or \"letterbox\"; "
                     "got \"",
                     fit, "\""));
  }
  return std::make_unique<PersonSegmentModel>(std::move(runner), std::move(settings), limits_);
}

absl::Status SegmentHandler::ToKServe(const google::protobuf::Message& message,
                                      inference::ModelInferResponse* out) const {
  const auto& response = static_cast<const v1::SegmentResponse&>(message);
  auto add_bytes = [&](const char* name, const std::string& data) {
    auto* output = out->add_outputs();
    output->set_name(name);
    output->set_datatype("BYTES");
    output->add_shape(1);
    output->mutable_contents()->add_bytes_contents(data);
  };
  add_bytes("mask", response.mask().data());
  add_bytes("map", response.map().image().data());
  const int n = response.classes_size();
  auto* names = out->add_outputs();
  names->set_name("class_names");
  names->set_datatype("BYTES");
  names->add_shape(n);
  auto* areas = out->add_outputs();
  areas->set_name("area_fractions");
  areas->set_datatype("FP32");
  areas->add_shape(n);
  auto* boxes = out->add_outputs();
  boxes->set_name("boxes");
  boxes->set_datatype("FP32");
  boxes->add_shape(n);
  boxes->add_shape(4);
  for (const auto& c : response.classes()) {
    names->mutable_contents()->add_bytes_contents(c.name());
    areas->mutable_contents()->add_fp32_contents(c.area_fraction());
    for (float v : {c.box().x1(), c.box().y1(), c.box().x2(), c.box().y2()}) {
      boxes->mutable_contents()->add_fp32_contents(v);
    }
  }
  return absl::OkStatus();
}

void SegmentHandler::DescribeKServeOutputs(inference::ModelMetadataResponse* metadata) const {
  struct Spec {
    const char* name;
    const char* type;
    std::vector<int64_t> shape;
  };
  for (const Spec& spec :
       {Spec{"mask", "BYTES", {1}}, Spec{"map", "BYTES", {1}}, Spec{"class_names", "BYTES", {-1}},
        Spec{"area_fractions", "FP32", {-1}}, Spec{"boxes", "FP32", {-1, 4}}}) {
    auto* output = metadata->add_outputs();
    output->set_name(spec.name);
    output->set_datatype(spec.type);
    for (int64_t d : spec.shape) output->add_shape(d);
  }
}

}  // namespace imginterp::segment
