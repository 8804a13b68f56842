#include "services/pose/pose_handler.h"

#include <torch/types.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "inference/grpc_service.pb.h"
#include "services/core/codec/tensor_convert.h"
#include "services/core/common/status_macros.h"
#include "services/core/model/model_runner.h"
#include "services/pose/openpose_render.h"
#include "services/pose/pose_decode.h"

namespace imginterp::pose {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

constexpr char kSingle[] = "movenet-singlepose";
constexpr char kMulti[] = "movenet-multipose";
constexpr char kBlaze[] = "blazepose";

// Seconds per phase over all passes of one request.
struct Timing {
  double preprocess = 0;
  double inference = 0;
  double postprocess = 0;
};

// An output as contiguous float32 values.
at::Tensor AsFloat(const at::Tensor& t) { return t.to(torch::kFloat32).contiguous(); }
absl::Span<const float> Values(const at::Tensor& contiguous_float) {
  return {contiguous_float.data_ptr<float>(), static_cast<size_t>(contiguous_float.numel())};
}

// Mean of all keypoint scores: compares two passes on the same person independently of the
// visibility threshold.
double MeanScore(const v1::Person& person) {
  double sum = 0;
  for (const auto& k : person.keypoints()) sum += k.score();
  return person.keypoints_size() == 0 ? 0 : sum / person.keypoints_size();
}

bool SameRegion(const SquareRegion& a, const SquareRegion& b) {
  return std::abs(a.x - b.x) < 1e-6 && std::abs(a.y - b.y) < 1e-6 &&
         std::abs(a.side - b.side) < 1e-6;
}

absl::StatusOr<v1::PriorMap> ToOpenPoseMap(const cv::Mat& canvas) {
  IMGINTERP_ASSIGN_OR_RETURN(std::string png, codec::EncodePng(canvas));
  v1::PriorMap map;
  map.set_kind(v1::PRIOR_KIND_POSE);
  map.set_method("openpose");
  map.mutable_image()->set_data(std::move(png));
  map.mutable_image()->set_media_type("image/png");
  map.mutable_image()->set_width(canvas.cols);
  map.mutable_image()->set_height(canvas.rows);
  return map;
}

// Externally synchronized (one executor thread), like every ModelInstance.
class PoseModel final : public service::ExecuteModel {
 public:
  PoseModel(std::unique_ptr<model::ModelRunner> runner, std::string name,
            PoseModelSettings settings, codec::ImageLimits limits)
      : runner_(std::move(runner)),
        name_(std::move(name)),
        settings_(std::move(settings)),
        limits_(limits) {}

 protected:
  absl::Status Execute(service::WorkItem& item) override {
    Timing timing;
    absl::Status status;
    try {
      status = Run(static_cast<const v1::PoseRequest&>(*item.request),
                   static_cast<v1::PoseResponse&>(*item.response), timing);
    } catch (const c10::Error& e) {
      status = absl::InternalError(
          absl::StrCat("pose model '", name_, "' failed: ", e.what_without_backtrace()));
    } catch (const cv::Exception& e) {
      status = absl::InternalError(absl::StrCat("pose model '", name_, "' failed: ", e.what()));
    }
    item.preprocess_seconds = timing.preprocess;
    item.inference_seconds = timing.inference;
    item.postprocess_seconds = timing.postprocess;
    return status;
  }

 private:
  absl::Status Run(const v1::PoseRequest& request, v1::PoseResponse& response, Timing& timing) {
    const float min_score = request.min_score() == 0 ? kDefaultMinScore : request.min_score();
    if (!(min_score > 0 && min_score <= 1)) {
      return absl::InvalidArgumentError(
          absl::StrCat("min_score must be in 0..1 (0 means 0.3); got ", request.min_score()));
    }
    if (request.max_people() < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "max_people must be >= 0 (0 means the model's maximum); got ", request.max_people()));
    }
    auto start = Clock::now();
    IMGINTERP_ASSIGN_OR_RETURN(codec::DecodedImage image,
                               codec::Decode(request.image().data(), limits_));
    timing.preprocess += Since(start);
    const cv::Mat& rgb = image.rgb;

    std::vector<v1::Person> people;
    if (settings_.kind == kMulti) {
      IMGINTERP_ASSIGN_OR_RETURN(people, MultiPose(rgb, min_score, timing));
    } else {
      IMGINTERP_ASSIGN_OR_RETURN(v1::Person person, settings_.kind == kBlaze
                                                        ? BlazePose(rgb, min_score, timing)
                                                        : SinglePose(rgb, min_score, timing));
      if (person.score() >= min_score) people.push_back(std::move(person));
    }

    start = Clock::now();
    if (request.max_people() > 0 && static_cast<int>(people.size()) > request.max_people()) {
      people.resize(request.max_people());
    }
    const Skeleton skeleton = settings_.kind == kBlaze ? Skeleton::kBlazePose33 : Skeleton::kCoco17;
    response.set_skeleton(SkeletonName(skeleton));
    for (auto& person : people) *response.add_people() = std::move(person);
    IMGINTERP_ASSIGN_OR_RETURN(
        cv::Mat canvas, RenderOpenPose(rgb.cols, rgb.rows, response.people(), skeleton, min_score));
    IMGINTERP_ASSIGN_OR_RETURN(*response.mutable_openpose_map(), ToOpenPoseMap(canvas));
    timing.postprocess += Since(start);
    return absl::OkStatus();
  }

  // One forward pass on `region`; the outputs as float32.
  absl::StatusOr<std::vector<at::Tensor>> Pass(const cv::Mat& rgb, const SquareRegion& region,
                                               Timing& timing) {
    auto start = Clock::now();
    IMGINTERP_ASSIGN_OR_RETURN(cv::Mat input, ExtractRegion(rgb, region, settings_.input_size));
    at::Tensor tensor = codec::MatToTensor(input).unsqueeze(0);
    if (settings_.int_input) {
      tensor = tensor.to(torch::kInt32);
    } else {
      tensor = tensor.to(torch::kFloat32).mul_(settings_.input_max / 255.0f);
    }
    timing.preprocess += Since(start);
    start = Clock::now();
    IMGINTERP_ASSIGN_OR_RETURN(std::vector<at::Tensor> outputs, runner_->Forward({tensor}));
    timing.inference += Since(start);
    if (outputs.empty()) {
      return absl::InternalError(absl::StrCat("pose model '", name_, "' returned no outputs"));
    }
    for (auto& output : outputs) output = AsFloat(output);
    return outputs;
  }

  absl::StatusOr<v1::Person> SinglePose(const cv::Mat& rgb, float min_score, Timing& timing) {
    auto decode = [&](const SquareRegion& region) -> absl::StatusOr<v1::Person> {
      IMGINTERP_ASSIGN_OR_RETURN(std::vector<at::Tensor> outputs, Pass(rgb, region, timing));
      const auto start = Clock::now();
      auto person = DecodeMoveNetSingle(Values(outputs[0]), region, rgb.cols, rgb.rows, min_score);
      timing.postprocess += Since(start);
      return person;
    };
    const SquareRegion full = LetterboxRegion(rgb.cols, rgb.rows);
    IMGINTERP_ASSIGN_OR_RETURN(v1::Person first, decode(full));
    if (!settings_.crop_pass) return first;
    const SquareRegion crop = CropRegion(first, kCocoTorso, rgb.cols, rgb.rows);
    if (SameRegion(crop, full)) return first;
    IMGINTERP_ASSIGN_OR_RETURN(v1::Person second, decode(crop));
    return MeanScore(second) >= MeanScore(first) ? second : first;
  }

  absl::StatusOr<std::vector<v1::Person>> MultiPose(const cv::Mat& rgb, float min_score,
                                                    Timing& timing) {
    const SquareRegion full = LetterboxRegion(rgb.cols, rgb.rows);
    IMGINTERP_ASSIGN_OR_RETURN(std::vector<at::Tensor> outputs, Pass(rgb, full, timing));
    const auto start = Clock::now();
    auto people = DecodeMoveNetMulti(Values(outputs[0]), full, rgb.cols, rgb.rows, min_score);
    timing.postprocess += Since(start);
    return people;
  }

  absl::StatusOr<v1::Person> BlazePose(const cv::Mat& rgb, float min_score, Timing& timing) {
    auto decode = [&](const SquareRegion& region) -> absl::StatusOr<v1::Person> {
      IMGINTERP_ASSIGN_OR_RETURN(std::vector<at::Tensor> outputs, Pass(rgb, region, timing));
      const auto start = Clock::now();
      // Outputs are told apart by size: landmarks 39 x 5, pose flag 1 (the heatmap,
      // segmentation and world landmarks are not used).
      const at::Tensor* landmarks = nullptr;
      const at::Tensor* flag = nullptr;
      for (const auto& output : outputs) {
        if (output.numel() == 195) landmarks = &output;
        if (output.numel() == 1) flag = &output;
      }
      if (landmarks == nullptr || flag == nullptr) {
        return absl::InternalError(absl::StrCat(
            "BlazePose model '", name_,
            "' should return landmarks [1,195] and a pose flag [1,1] among its outputs"));
      }
      auto person = DecodeBlazePose(Values(*landmarks), flag->item<float>(), settings_.input_size,
                                    region, rgb.cols, rgb.rows, min_score);
      timing.postprocess += Since(start);
      return person;
    };
    const SquareRegion full = LetterboxRegion(rgb.cols, rgb.rows);
    IMGINTERP_ASSIGN_OR_RETURN(v1::Person first, decode(full));
    if (!settings_.crop_pass || first.score() < min_score) return first;
    const SquareRegion crop = CropRegion(first, kBlazeTorso, rgb.cols, rgb.rows);
    if (SameRegion(crop, full)) return first;
    IMGINTERP_ASSIGN_OR_RETURN(v1::Person second, decode(crop));
    return second.score() >= first.score() ? second : first;
  }

  const std::unique_ptr<model::ModelRunner> runner_;
  const std::string name_;
  const PoseModelSettings settings_;
  const codec::ImageLimits limits_;
};

}  // namespace

absl::StatusOr<PoseModelSettings> SettingsFromConfig(const std::string& model_name,
                                                     const v1::ModelConfig& config) {
  const auto& parameters = config.parameters();
  auto parameter = [&](const std::string& key) -> std::string {
    auto it = parameters.find(key);
    return it == parameters.end() ? "" : it->second;
  };
  PoseModelSettings settings;
  settings.kind = parameter("kind");
  if (settings.kind != kSingle && settings.kind != kMulti && settings.kind != kBlaze) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pose model '", model_name, "': config.pbtxt parameters[\"kind\"] must be \"", kSingle,
        "\", \"", kMulti, "\" or \"", kBlaze, "\"; got \"", settings.kind, "\""));
  }
  // Input size: the parameter, else the NHWC input's height (which must equal its width).
  if (const std::string size = parameter("input_size"); !size.empty()) {
    if (!absl::SimpleAtoi(size, &settings.input_size) || settings.input_size < 16 ||
        settings.input_size > 2048) {
      return absl::InvalidArgumentError(
          absl::StrCat("pose model '", model_name,
                       "': parameters[\"input_size\"] must be 16..2048; got \"", size, "\""));
    }
  } else if (config.inputs_size() > 0 && config.inputs(0).shape_size() == 4) {
    const auto& shape = config.inputs(0).shape();
    if (shape[1] > 0 && shape[1] == shape[2]) settings.input_size = static_cast<int>(shape[1]);
  }
  if (settings.input_size <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("pose model '", model_name,
                     "': config.pbtxt needs a square NHWC input shape [b, S, S, 3] or "
                     "parameters[\"input_size\"]"));
  }
  const v1::DataType dtype =
      config.inputs_size() > 0 ? config.inputs(0).dtype() : v1::DATA_TYPE_UNSPECIFIED;
  settings.int_input =
      dtype == v1::DATA_TYPE_UNSPECIFIED ? settings.kind != kBlaze : dtype == v1::DATA_TYPE_INT32;
  const std::string range = parameter("input_range");
  if (range.empty()) {
    settings.input_max = settings.int_input ? 255 : 1;
  } else if (range == "0..255" || range == "0..1") {
    settings.input_max = range == "0..1" ? 1 : 255;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("pose model '", model_name,
                                                   "': parameters[\"input_range\"] must be "
                                                   "\"0..255\" or \"0..1\"; got \"",
                                                   range, "\""));
  }
  const std::string crop = parameter("crop_pass");
  if (crop.empty()) {
    settings.crop_pass = settings.kind == kBlaze ||
                         (settings.kind == kSingle && absl::StrContains(model_name, "thunder"));
  } else if (crop == "true" || crop == "false") {
    settings.crop_pass = crop == "true";
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("pose model '", model_name,
                     "': parameters[\"crop_pass\"] must be \"true\" or \"false\"; "
                     "got \"",
                     crop, "\""));
  }
  return settings;
}

absl::StatusOr<v1::RenderPoseResponse> RenderPose(const v1::RenderPoseRequest& request) {
  IMGINTERP_ASSIGN_OR_RETURN(Skeleton skeleton, ParseSkeleton(request.skeleton()));
  const float min_score = request.min_score() == 0 ? kDefaultMinScore : request.min_score();
  if (!(min_score > 0 && min_score <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("min_score must be in 0..1 (0 means 0.3); got ", request.min_score()));
  }
  IMGINTERP_ASSIGN_OR_RETURN(cv::Mat canvas, RenderOpenPose(request.width(), request.height(),
                                                            request.people(), skeleton, min_score));
  v1::RenderPoseResponse response;
  IMGINTERP_ASSIGN_OR_RETURN(*response.mutable_openpose_map(), ToOpenPoseMap(canvas));
  return response;
}

std::string PoseHandler::description() const {
  return "Human pose: COCO-17 keypoints per person from MoveNet (lightning, thunder with a "
         "second pass on the person's crop, multipose for up to 6 people) or BlazePose-33 "
         "(lite/full/heavy), plus the ControlNet OpenPose conditioning image (18-point skeleton "
         "in the standard colours on black). RenderPose draws edited keypoints.";
}

absl::StatusOr<std::unique_ptr<service::ModelInstance>> PoseHandler::CreateInstance(
    const service::ModelLoadInfo& info, std::unique_ptr<model::ModelRunner> runner) const {
  if (runner == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("pose model '", info.name, "' needs backend \"torchscript\" in config.pbtxt"));
  }
  IMGINTERP_ASSIGN_OR_RETURN(PoseModelSettings settings,
                             SettingsFromConfig(info.name, info.config));
  return std::make_unique<PoseModel>(std::move(runner), info.name, std::move(settings), limits_);
}

absl::Status PoseHandler::ToKServe(const google::protobuf::Message& message,
                                   inference::ModelInferResponse* out) const {
  const auto& response = static_cast<const v1::PoseResponse&>(message);
  const int people = response.people_size();
  const int points = people == 0 ? 0 : response.people(0).keypoints_size();
  auto* keypoints = out->add_outputs();
  keypoints->set_name("keypoints");
  keypoints->set_datatype("FP32");
  for (int64_t d : {people, points, 3}) keypoints->add_shape(d);
  auto* boxes = out->add_outputs();
  boxes->set_name("boxes");
  boxes->set_datatype("FP32");
  for (int64_t d : {people, 4}) boxes->add_shape(d);
  auto* scores = out->add_outputs();
  scores->set_name("scores");
  scores->set_datatype("FP32");
  scores->add_shape(people);
  for (const auto& person : response.people()) {
    if (person.keypoints_size() != points) {
      return absl::InternalError("people in one pose response have different keypoint counts");
    }
    for (const auto& k : person.keypoints()) {
      for (float v : {k.x(), k.y(), k.score()}) keypoints->mutable_contents()->add_fp32_contents(v);
    }
    const auto& b = person.box();
    for (float v : {b.x1(), b.y1(), b.x2(), b.y2()})
      boxes->mutable_contents()->add_fp32_contents(v);
    scores->mutable_contents()->add_fp32_contents(person.score());
  }
  auto* map = out->add_outputs();
  map->set_name("openpose_map");
  map->set_datatype("BYTES");
  map->add_shape(1);
  map->mutable_contents()->add_bytes_contents(response.openpose_map().image().data());
  (*out->mutable_parameters())["skeleton"].set_string_param(response.skeleton());
  return absl::OkStatus();
}

void PoseHandler::DescribeKServeOutputs(inference::ModelMetadataResponse* metadata) const {
  struct Output {
    const char* name;
    const char* type;
    std::vector<int64_t> shape;
  };
  for (const Output& o :
       {Output{"keypoints", "FP32", {-1, -1, 3}}, Output{"boxes", "FP32", {-1, 4}},
        Output{"scores", "FP32", {-1}}, Output{"openpose_map", "BYTES", {1}}}) {
    auto* output = metadata->add_outputs();
    output->set_name(o.name);
    output->set_datatype(o.type);
    for (int64_t d : o.shape) output->add_shape(d);
  }
}

}  // namespace imginterp::pose
