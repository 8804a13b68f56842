#include "services/detect/detect_handler.h"

#include <torch/types.h>

#include <algorithm>
#include <any>
#include <cmath>
#include <numeric>
#include <opencv2/imgproc.hpp>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "inference/grpc_service.pb.h"
#include "services/core/codec/tensor_convert.h"
#include "services/core/common/status_macros.h"

namespace imginterp::detect {
namespace {

constexpr float kDefaultMinScore = 0.3f;
constexpr float kDefaultIouThreshold = 0.5f;
constexpr int kDefaultMaxDetections = 100;
constexpr int kMaxDetectionsLimit = 1000;

std::string ShapeText(const at::Tensor& t) {
  if (!t.defined()) return "undefined";
  return absl::StrCat("[", absl::StrJoin(t.sizes().vec(), ","), "]");
}

enum class Kind { kCenterNet, kNanoDet };

struct DetectorSettings {
  std::string name;
  Kind kind = Kind::kCenterNet;
  int model_width = 0;
  int model_height = 0;
  bool nchw = false;
  // Multiplies 0..255 pixel values.
  float input_scale = 1.0f;
  FitMode fit = FitMode::kStretch;
};

// One detector model. Externally synchronized, like every ModelInstance.
class DetectorModel final : public service::TensorModel {
 public:
  DetectorModel(std::unique_ptr<model::ModelRunner> runner, DetectorSettings settings,
                codec::ImageLimits limits)
      : TensorModel(std::move(runner)), settings_(std::move(settings)), limits_(limits) {}

 protected:
  absl::StatusOr<std::vector<at::Tensor>> Preprocess(
      const google::protobuf::Message& message) override {
    const auto& request = static_cast<const v1::DetectRequest&>(message);
    if (!(request.min_score() >= 0 && request.min_score() <= 1)) {
      return absl::InvalidArgumentError(absl::StrCat("min_score must be in [0, 1] (0 means ",
                                                     kDefaultMinScore, "); got ",
                                                     request.min_score()));
    }
    if (!(request.iou_threshold() >= 0 && request.iou_threshold() <= 1)) {
      return absl::InvalidArgumentError(absl::StrCat("iou_threshold must be in [0, 1] (0 means ",
                                                     kDefaultIouThreshold, "); got ",
                                                     request.iou_threshold()));
    }
    if (request.max_detections() < 0 || request.max_detections() > kMaxDetectionsLimit) {
      return absl::InvalidArgumentError(
          absl::StrCat("max_detections must be in 0..", kMaxDetectionsLimit, " (0 means ",
                       kDefaultMaxDetections, "); got ", request.max_detections()));
    }
    IMGINTERP_ASSIGN_OR_RETURN(codec::DecodedImage image,
                               codec::Decode(request.image().data(), limits_));
    const Fit fit = ComputeFit(image.rgb.cols, image.rgb.rows, settings_.model_width,
                               settings_.model_height, settings_.fit);
    at::Tensor input;
    try {
      input = codec::MatToTensor(FitImage(image.rgb, fit))
                  .to(torch::kFloat32)
                  .mul_(settings_.input_scale);
      input = (settings_.nchw ? input.permute({2, 0, 1}) : input).unsqueeze(0).contiguous();
    } catch (const cv::Exception& e) {
      return absl::InternalError(absl::StrCat("resizing the image failed: ", e.what()));
    }
    SetRequestState(message, fit);
    return std::vector<at::Tensor>{std::move(input)};
  }

  absl::Status Postprocess(const google::protobuf::Message& message,
                           const std::vector<at::Tensor>& outputs,
                           google::protobuf::Message* response_message) override {
    const auto& request = static_cast<const v1::DetectRequest&>(message);
    auto& response = static_cast<v1::DetectResponse&>(*response_message);
    const std::any* state = RequestState(message);
    if (state == nullptr) {
      return absl::InternalError("detect: no preprocessing state for this request");
    }
    const Fit fit = std::any_cast<Fit>(*state);

    const float min_score = request.min_score() == 0 ? kDefaultMinScore : request.min_score();
    const float iou = request.iou_threshold() == 0 ? kDefaultIouThreshold : request.iou_threshold();
    const int max_detections =
        request.max_detections() == 0 ? kDefaultMaxDetections : request.max_detections();
    const int num_classes = static_cast<int>(CocoNames().size());

    std::vector<RawDetection> candidates;
    if (settings_.kind == Kind::kCenterNet) {
      // The `detections` head is the one [1,K,6] output (the others are feature maps).
      const at::Tensor* detections = nullptr;
      for (const auto& output : outputs) {
        if (output.dim() == 3 && output.size(2) == 6) detections = &output;
      }
      if (detections == nullptr) {
        std::vector<std::string> shapes;
        for (const auto& output : outputs) shapes.push_back(ShapeText(output));
        return absl::InternalError(absl::StrCat("centernet model '", settings_.name,
                                                "' returned no [1,K,6] detections output; got ",
                                                absl::StrJoin(shapes, " ")));
      }
      IMGINTERP_ASSIGN_OR_RETURN(candidates, DecodeCenterNet(*detections, min_score, num_classes));
    } else {
      IMGINTERP_ASSIGN_OR_RETURN(
          candidates, DecodeNanoDet(outputs, settings_.model_width, settings_.model_height,
                                    min_score, num_classes));
    }
    for (auto& candidate : candidates) candidate = MapToImage(candidate, fit);
    const std::vector<RawDetection> kept =
        NonMaxSuppression(std::move(candidates), iou, max_detections);
    for (const auto& d : kept) {
      auto* detection = response.add_detections();
      detection->mutable_box()->set_x1(d.x1);
      detection->mutable_box()->set_y1(d.y1);
      detection->mutable_box()->set_x2(d.x2);
      detection->mutable_box()->set_y2(d.y2);
      detection->set_class_id(d.class_id);
      detection->set_name(CocoNames()[d.class_id]);
      detection->set_score(d.score);
    }
    try {
      IMGINTERP_ASSIGN_OR_RETURN(
          std::string png, codec::EncodePng(DetectionMap(kept, fit.image_width, fit.image_height)));
      auto* map = response.mutable_map();
      map->set_kind(v1::PRIOR_KIND_DETECTION);
      map->set_method(settings_.name);
      map->mutable_image()->set_data(std::move(png));
      map->mutable_image()->set_media_type("image/png");
      map->mutable_image()->set_width(fit.image_width);
      map->mutable_image()->set_height(fit.image_height);
    } catch (const cv::Exception& e) {
      return absl::InternalError(absl::StrCat("drawing the detection map failed: ", e.what()));
    }
    return absl::OkStatus();
  }

 private:
  const DetectorSettings settings_;
  const codec::ImageLimits limits_;
};

float Area(const RawDetection& d) {
  return std::max(0.0f, d.x2 - d.x1) * std::max(0.0f, d.y2 - d.y1);
}

}  // namespace

const std::vector<std::string>& CocoNames() {
  static const auto* const names =
      new std::vector<std::string>{"person",        "bicycle",      "car",
                                   "motorcycle",    "airplane",     "bus",
                                   "train",         "truck",        "boat",
                                   "traffic light", "fire hydrant", "stop sign",
                                   "parking meter", "bench",        "bird",
                                   "cat",           "dog",          "horse",
                                   "sheep",         "cow",          "elephant",
                                   "bear",          "zebra",        "giraffe",
                                   "backpack",      "umbrella",     "handbag",
                                   "tie",           "suitcase",     "frisbee",
                                   "skis",          "snowboard",    "sports ball",
                                   "kite",          "baseball bat", "baseball glove",
                                   "skateboard",    "surfboard",    "tennis racket",
                                   "bottle",        "wine glass",   "cup",
                                   "fork",          "knife",        "spoon",
                                   "bowl",          "banana",       "apple",
                                   "sandwich",      "orange",       "broccoli",
                                   "carrot",        "hot dog",      "pizza",
                                   "donut",         "cake",         "chair",
                                   "couch",         "potted plant", "bed",
                                   "dining table",  "toilet",       "tv",
                                   "laptop",        "mouse",        "remote",
                                   "keyboard",      "cell phone",   "microwave",
                                   "oven",          "toaster",      "sink",
                                   "refrigerator",  "book",         "clock",
                                   "vase",          "scissors",     "teddy bear",
                                   "hair drier",    "toothbrush"};
  return *names;
}

float IntersectionOverUnion(const RawDetection& a, const RawDetection& b) {
  const float ix = std::min(a.x2, b.x2) - std::max(a.x1, b.x1);
  const float iy = std::min(a.y2, b.y2) - std::max(a.y1, b.y1);
  if (ix <= 0 || iy <= 0) return 0;
  const float intersection = ix * iy;
  const float union_area = Area(a) + Area(b) - intersection;
  return union_area > 0 ? intersection / union_area : 0;
}

std::vector<RawDetection> NonMaxSuppression(std::vector<RawDetection> detections,
                                            float iou_threshold, int max_detections) {
  std::stable_sort(detections.begin(), detections.end(),
                   [](const RawDetection& a, const RawDetection& b) { return a.score > b.score; });
  std::vector<RawDetection> kept;
  for (const RawDetection& candidate : detections) {
    if (static_cast<int>(kept.size()) >= max_detections) break;
    const bool suppressed = std::any_of(kept.begin(), kept.end(), [&](const RawDetection& k) {
      return k.class_id == candidate.class_id &&
             IntersectionOverUnion(k, candidate) > iou_threshold;
    });
    if (!suppressed) kept.push_back(candidate);
  }
  return kept;
}

absl::StatusOr<std::vector<RawDetection>> DecodeCenterNet(const at::Tensor& detections,
                                                          float min_score, int num_classes) {
  at::Tensor rows = detections;
  if (rows.dim() == 3 && rows.size(0) == 1) rows = rows[0];
  if (rows.dim() != 2 || rows.size(1) != 6) {
    return absl::InvalidArgumentError(
        absl::StrCat("centernet detections must be [1,K,6] (x1,y1,x2,y2,score,class); got ",
                     ShapeText(detections)));
  }
  rows = rows.to(torch::kFloat32).contiguous();
  const float* data = rows.data_ptr<float>();
  std::vector<RawDetection> out;
  for (int64_t i = 0; i < rows.size(0); ++i) {
    const float* row = data + i * 6;
    const float score = row[4];
    const float class_value = row[5];
    if (!(score >= min_score) || !std::isfinite(class_value)) continue;
    const int class_id = static_cast<int>(std::lround(class_value));
    if (class_id < 0 || class_id >= num_classes) continue;
    out.push_back({row[0], row[1], row[2], row[3], score, class_id});
  }
  return out;
}

absl::StatusOr<std::vector<RawDetection>> DecodeNanoDet(const std::vector<at::Tensor>& outputs,
                                                        int input_width, int input_height,
                                                        float min_score, int num_classes,
                                                        int max_candidates) {
  std::vector<at::Tensor> scores;
  std::vector<at::Tensor> boxes;
  for (const auto& output : outputs) {
    if (output.dim() != 3 || output.size(0) != 1) continue;
    if (output.size(2) == num_classes) {
      scores.push_back(output[0].to(torch::kFloat32).contiguous());
    } else if (output.size(2) % 4 == 0 && output.size(2) >= 8) {
      boxes.push_back(output[0].to(torch::kFloat32).contiguous());
    }
  }
  auto describe = [&] {
    std::vector<std::string> shapes;
    for (const auto& output : outputs) shapes.push_back(ShapeText(output));
    return absl::StrJoin(shapes, " ");
  };
  if (scores.empty() || scores.size() != boxes.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("nanodet outputs must pair score tensors [1,N,", num_classes,
                     "] with box distributions [1,N,4*(R+1)]; got ", describe()));
  }
  std::vector<RawDetection> out;
  for (const at::Tensor& level_scores : scores) {
    const int64_t cells = level_scores.size(0);
    const at::Tensor* level_boxes = nullptr;
    for (const auto& b : boxes) {
      if (b.size(0) == cells) level_boxes = &b;
    }
    int stride = 0;
    int grid_width = 0;
    for (int s = 4; s <= 128; s *= 2) {
      const int w = (input_width + s - 1) / s;
      const int h = (input_height + s - 1) / s;
      if (static_cast<int64_t>(w) * h == cells) {
        stride = s;
        grid_width = w;
        break;
      }
    }
    if (level_boxes == nullptr || stride == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "nanodet: cannot find the box distribution and stride for a score tensor of ", cells,
          " cells on a ", input_width, "x", input_height, " input; outputs ", describe()));
    }
    const int bins = static_cast<int>(level_boxes->size(1) / 4);
    const float* score_data = level_scores.data_ptr<float>();
    const float* box_data = level_boxes->data_ptr<float>();
    for (int64_t cell = 0; cell < cells; ++cell) {
      const float* cell_scores = score_data + cell * num_classes;
      bool any = false;
      for (int c = 0; c < num_classes && !any; ++c) any = cell_scores[c] >= min_score;
      if (!any) continue;
      // Expected distance per side: softmax over the bins, then sum(p_i * i), in strides.
      float d[4];
      for (int side = 0; side < 4; ++side) {
        const float* logits = box_data + (cell * 4 + side) * bins;
        const float top = *std::max_element(logits, logits + bins);
        double total = 0;
        double weighted = 0;
        for (int i = 0; i < bins; ++i) {
          const double p = std::exp(static_cast<double>(logits[i] - top));
          total += p;
          weighted += p * i;
        }
        d[side] = static_cast<float>(weighted / total * stride);
      }
      const float cx = (static_cast<float>(cell % grid_width) + 0.5f) * stride;
      const float cy = (static_cast<float>(cell / grid_width) + 0.5f) * stride;
      RawDetection box;
      box.x1 = std::clamp(cx - d[0], 0.0f, static_cast<float>(input_width));
      box.y1 = std::clamp(cy - d[1], 0.0f, static_cast<float>(input_height));
      box.x2 = std::clamp(cx + d[2], 0.0f, static_cast<float>(input_width));
      box.y2 = std::clamp(cy + d[3], 0.0f, static_cast<float>(input_height));
      for (int c = 0; c < num_classes; ++c) {
        if (cell_scores[c] < min_score) continue;
        box.score = cell_scores[c];
        box.class_id = c;
        out.push_back(box);
      }
    }
  }
  if (static_cast<int>(out.size()) > max_candidates) {
    std::stable_sort(out.begin(), out.end(), [](const RawDetection& a, const RawDetection& b) {
      return a.score > b.score;
    });
    out.resize(max_candidates);
  }
  return out;
}

RawDetection MapToImage(const RawDetection& box, const Fit& fit) {
  const auto w = static_cast<float>(fit.image_width);
  const auto h = static_cast<float>(fit.image_height);
  RawDetection out = box;
  out.x1 = std::clamp(static_cast<float>((box.x1 - fit.offset_x) / fit.scale_x), 0.0f, w);
  out.x2 = std::clamp(static_cast<float>((box.x2 - fit.offset_x) / fit.scale_x), 0.0f, w);
  out.y1 = std::clamp(static_cast<float>((box.y1 - fit.offset_y) / fit.scale_y), 0.0f, h);
  out.y2 = std::clamp(static_cast<float>((box.y2 - fit.offset_y) / fit.scale_y), 0.0f, h);
  return out;
}

cv::Vec3b ClassColour(int class_id) {
  // Golden-angle hue steps spread neighbouring ids apart; full saturation and value.
  const double hue = std::fmod(class_id * 137.50776405, 360.0);
  cv::Mat hsv(1, 1, CV_8UC3, cv::Scalar(hue / 2.0, 255, 255));  // OpenCV 8-bit hue is 0..180.
  cv::Mat rgb;
  cv::cvtColor(hsv, rgb, cv::COLOR_HSV2RGB);
  return rgb.at<cv::Vec3b>(0, 0);
}

cv::Mat DetectionMap(const std::vector<RawDetection>& detections, int width, int height) {
  cv::Mat map(height, width, CV_8UC3, cv::Scalar(0, 0, 0));
  std::vector<size_t> order(detections.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return Area(detections[a]) > Area(detections[b]); });
  for (size_t i : order) {
    const RawDetection& d = detections[i];
    const int x1 = std::clamp(static_cast<int>(std::floor(d.x1)), 0, width);
    const int y1 = std::clamp(static_cast<int>(std::floor(d.y1)), 0, height);
    const int x2 = std::clamp(static_cast<int>(std::ceil(d.x2)), 0, width);
    const int y2 = std::clamp(static_cast<int>(std::ceil(d.y2)), 0, height);
    if (x2 <= x1 || y2 <= y1) continue;
    const cv::Vec3b colour = ClassColour(d.class_id);
    map(cv::Rect(x1, y1, x2 - x1, y2 - y1)).setTo(cv::Scalar(colour[0], colour[1], colour[2]));
  }
  return map;
}

std::string DetectHandler::description() const {
  return "Object detection (CenterNet and NanoDet, imported from TF.js): boxes in image pixels "
         "with COCO-80 names and scores after per-class NMS, and a layout map (boxes filled in "
         "per-class colours). Requests are batched when the model allows it.";
}

absl::StatusOr<std::unique_ptr<service::ModelInstance>> DetectHandler::CreateInstance(
    const service::ModelLoadInfo& info, std::unique_ptr<model::ModelRunner> runner) const {
  if (runner == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "detect model '", info.name, "' needs backend \"torchscript\" in config.pbtxt"));
  }
  const auto& parameters = info.config.parameters();
  auto parameter = [&](const std::string& key, const std::string& fallback) {
    const auto it = parameters.find(key);
    return it == parameters.end() ? fallback : it->second;
  };
  DetectorSettings settings;
  settings.name = info.name;
  const std::string kind = parameter("kind", "");
  if (kind == "centernet") {
    settings.kind = Kind::kCenterNet;
    settings.model_width = settings.model_height = 512;
  } else if (kind == "nanodet") {
    settings.kind = Kind::kNanoDet;
    settings.model_width = settings.model_height = 416;
    settings.nchw = true;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("detect model '", info.name,
                     "': config.pbtxt parameters.kind must be \"centernet\" or \"nanodet\"; "
                     "got \"",
                     kind, "\""));
  }
  if (info.config.inputs_size() > 0) {
    const auto& input = info.config.inputs(0);
    const auto& shape = input.shape();
    if (shape.size() == 4) {
      // NCHW when the layout says so, or when only dim 1 holds the 3 channels.
      settings.nchw =
          input.layout() == "NCHW" || (input.layout().empty() && shape[1] == 3 && shape[3] != 3);
      const int64_t h = settings.nchw ? shape[2] : shape[1];
      const int64_t w = settings.nchw ? shape[3] : shape[2];
      const int64_t c = settings.nchw ? shape[1] : shape[3];
      if (c != 3 && c != -1) {
        return absl::InvalidArgumentError(absl::StrCat(
            "detect model '", info.name, "': input must have 3 (RGB) channels; config says ", c));
      }
      if (h > 0 && w > 0) {
        settings.model_height = static_cast<int>(h);
        settings.model_width = static_cast<int>(w);
      }
    }
  }
  const std::string range =
      parameter("input_range", settings.kind == Kind::kCenterNet ? "0..255" : "0..1");
  if (range == "0..1") {
    settings.input_scale = 1.0f / 255;
  } else if (range == "0..255") {
    settings.input_scale = 1.0f;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "detect model '", info.name,
        "': parameters.input_range must be \"0..1\" or \"0..255\"; got \"", range, "\""));
  }
  // CenterNet was trained on aspect-preserving inputs (on person.jpg a letterbox finds the person
  // at 0.76 and the dog at 0.55, a stretch at 0.67 and 0.44); NanoDet does better stretched (a
  // letterbox loses the person to 0.44).
  const std::string fit =
      parameter("fit", settings.kind == Kind::kCenterNet ? "letterbox" : "stretch");
  if (fit == "stretch") {
    settings.fit = FitMode::kStretch;
  } else if (fit == "letterbox") {
    settings.fit = FitMode::kLetterbox;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("detect model '", info.name,
                     "': parameters.fit must be \"stretch\" or \"letterbox\"; got \"", fit, "\""));
  }
  return std::make_unique<DetectorModel>(std::move(runner), std::move(settings), limits_);
}

absl::Status DetectHandler::ToKServe(const google::protobuf::Message& message,
                                     inference::ModelInferResponse* out) const {
  const auto& response = static_cast<const v1::DetectResponse&>(message);
  const int n = response.detections_size();
  auto* boxes = out->add_outputs();
  boxes->set_name("boxes");
  boxes->set_datatype("FP32");
  boxes->add_shape(n);
  boxes->add_shape(4);
  auto* ids = out->add_outputs();
  ids->set_name("class_ids");
  ids->set_datatype("INT32");
  ids->add_shape(n);
  auto* scores = out->add_outputs();
  scores->set_name("scores");
  scores->set_datatype("FP32");
  scores->add_shape(n);
  auto* names = out->add_outputs();
  names->set_name("labels");
  names->set_datatype("BYTES");
  names->add_shape(n);
  for (const auto& d : response.detections()) {
    for (float v : {d.box().x1(), d.box().y1(), d.box().x2(), d.box().y2()}) {
      boxes->mutable_contents()->add_fp32_contents(v);
    }
    ids->mutable_contents()->add_int_contents(d.class_id());
    scores->mutable_contents()->add_fp32_contents(d.score());
    names->mutable_contents()->add_bytes_contents(d.name());
  }
  auto* map = out->add_outputs();
  map->set_name("map");
  map->set_datatype("BYTES");
  map->add_shape(1);
  map->mutable_contents()->add_bytes_contents(response.map().image().data());
  return absl::OkStatus();
}

void DetectHandler::DescribeKServeOutputs(inference::ModelMetadataResponse* metadata) const {
  struct Spec {
    const char* name;
    const char* type;
    std::vector<int64_t> shape;
  };
  for (const Spec& spec :
       {Spec{"boxes", "FP32", {-1, 4}}, Spec{"class_ids", "INT32", {-1}},
        Spec{"scores", "FP32", {-1}}, Spec{"labels", "BYTES", {-1}}, Spec{"map", "BYTES", {1}}}) {
    auto* output = metadata->add_outputs();
    output->set_name(spec.name);
    output->set_datatype(spec.type);
    for (int64_t d : spec.shape) output->add_shape(d);
  }
}

}  // namespace imginterp::detect
