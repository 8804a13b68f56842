#include "services/classify/classify_handler.h"

#include <torch/types.h>

#include <algorithm>
#include <opencv2/imgproc.hpp>

#include "absl/strings/str_cat.h"
#include "inference/grpc_service.pb.h"
#include "services/core/codec/tensor_convert.h"
#include "services/core/common/status_macros.h"
#include "services/core/model/model_runner.h"

namespace imginterp::classify {
namespace {

constexpr int kDefaultTopK = 5;

class ClassifierModel final : public service::TensorModel {
 public:
  ClassifierModel(std::unique_ptr<model::ModelRunner> runner, v1::ModelConfig config,
                  std::vector<std::string> labels, codec::ImageLimits limits)
      : TensorModel(std::move(runner)),
        config_(std::move(config)),
        labels_(std::move(labels)),
        limits_(limits) {}

 protected:
  absl::StatusOr<std::vector<at::Tensor>> Preprocess(
      const google::protobuf::Message& message) override {
    const auto& request = static_cast<const v1::ClassifyRequest&>(message);
    if (request.top_k() < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("top_k must be >= 0 (0 means ", kDefaultTopK, "); got ", request.top_k()));
    }
    IMGINTERP_ASSIGN_OR_RETURN(codec::DecodedImage image,
                               codec::Decode(request.image().data(), limits_));
    IMGINTERP_ASSIGN_OR_RETURN(at::Tensor input,
                               PreprocessImage(image.rgb, config_.preprocessing()));
    return std::vector<at::Tensor>{std::move(input)};
  }

  absl::Status Postprocess(const google::protobuf::Message& message,
                           const std::vector<at::Tensor>& outputs,
                           google::protobuf::Message* response_message) override {
    const auto& request = static_cast<const v1::ClassifyRequest&>(message);
    auto& response = static_cast<v1::ClassifyResponse&>(*response_message);
    if (outputs.empty() || outputs[0].dim() != 2) {
      return absl::InternalError(
          absl::StrCat("model '", config_.name(), "' should return logits [batch, classes]; got ",
                       outputs.empty() ? std::string("nothing")
                       : outputs[0].sizes().vec().size() == 0
                           ? std::string("a scalar")
                           : std::to_string(outputs[0].dim()) + " dimensions"));
    }
    const int k = request.top_k() == 0 ? kDefaultTopK : request.top_k();
    for (auto& score : TopK(outputs[0][0], k, labels_)) *response.add_classes() = std::move(score);
    return absl::OkStatus();
  }

 private:
  const v1::ModelConfig config_;
  const std::vector<std::string> labels_;
  const codec::ImageLimits limits_;
};

}  // namespace

absl::StatusOr<at::Tensor> PreprocessImage(const cv::Mat& rgb, const v1::Preprocessing& config) {
  std::vector<float> mean(config.mean().begin(), config.mean().end());
  std::vector<float> std_dev(config.std().begin(), config.std().end());
  if (mean.empty()) mean = {0, 0, 0};
  if (std_dev.empty()) std_dev = {1, 1, 1};
  if (mean.size() != 3 || std_dev.size() != 3 ||
      std::any_of(std_dev.begin(), std_dev.end(), [](float s) { return s == 0; })) {
    return absl::InvalidArgumentError(
        "config.pbtxt preprocessing: mean and std need 3 entries (RGB) and std no zero");
  }
  cv::Mat image = rgb;
  if (config.resize_shorter() > 0) {
    const double scale =
        static_cast<double>(config.resize_shorter()) / std::min(rgb.cols, rgb.rows);
    const int width = std::max(1, static_cast<int>(std::lround(rgb.cols * scale)));
    const int height = std::max(1, static_cast<int>(std::lround(rgb.rows * scale)));
    cv::resize(rgb, image, cv::Size(width, height), 0, 0, cv::INTER_LINEAR);
  }
  if (config.center_crop() > 0) {
    const int crop = config.center_crop();
    if (image.cols < crop || image.rows < crop) {
      cv::resize(image, image, cv::Size(std::max(crop, image.cols), std::max(crop, image.rows)));
    }
    const int x = (image.cols - crop) / 2;
    const int y = (image.rows - crop) / 2;
    image = image(cv::Rect(x, y, crop, crop));
  }
  at::Tensor hwc = codec::MatToTensor(image).to(torch::kFloat32).div_(255.0);
  at::Tensor mean_t = torch::tensor(mean).view({1, 1, 3});
  at::Tensor std_t = torch::tensor(std_dev).view({1, 1, 3});
  hwc = (hwc - mean_t) / std_t;
  if (config.layout() == "NHWC") return hwc.unsqueeze(0).contiguous();
  return hwc.permute({2, 0, 1}).unsqueeze(0).contiguous();
}

std::vector<v1::ClassScore> TopK(const at::Tensor& logits_row, int k,
                                 const std::vector<std::string>& labels) {
  at::Tensor probabilities = torch::softmax(logits_row.to(torch::kFloat32).flatten(), 0);
  k = std::min<int>(k, static_cast<int>(probabilities.size(0)));
  auto [values, indices] = probabilities.topk(k);
  std::vector<v1::ClassScore> out;
  for (int i = 0; i < k; ++i) {
    v1::ClassScore score;
    const int id = static_cast<int>(indices[i].item<int64_t>());
    score.set_class_id(id);
    score.set_name(id < static_cast<int>(labels.size()) ? labels[id] : absl::StrCat("class_", id));
    score.set_score(values[i].item<float>());
    out.push_back(std::move(score));
  }
  return out;
}

std::string ClassifyHandler::description() const {
  return "Image classification with any TorchScript classifier in the model repository "
         "(preprocessing from its config.pbtxt; top-k classes with labels). Requests are "
         "batched dynamically.";
}

absl::StatusOr<std::unique_ptr<service::ModelInstance>> ClassifyHandler::CreateInstance(
    const service::ModelLoadInfo& info, std::unique_ptr<model::ModelRunner> runner) const {
  if (runner == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "classify model '", info.name, "' needs backend \"torchscript\" in config.pbtxt"));
  }
  return std::make_unique<ClassifierModel>(std::move(runner), info.config, info.labels, limits_);
}

absl::Status ClassifyHandler::ToKServe(const google::protobuf::Message& message,
                                       inference::ModelInferResponse* out) const {
  const auto& response = static_cast<const v1::ClassifyResponse&>(message);
  const int k = response.classes_size();
  auto* ids = out->add_outputs();
  ids->set_name("class_ids");
  ids->set_datatype("INT32");
  ids->add_shape(k);
  auto* scores = out->add_outputs();
  scores->set_name("scores");
  scores->set_datatype("FP32");
  scores->add_shape(k);
  auto* names = out->add_outputs();
  names->set_name("labels");
  names->set_datatype("BYTES");
  names->add_shape(k);
  for (const auto& c : response.classes()) {
    ids->mutable_contents()->add_int_contents(c.class_id());
    scores->mutable_contents()->add_fp32_contents(c.score());
    names->mutable_contents()->add_bytes_contents(c.name());
  }
  return absl::OkStatus();
}

void ClassifyHandler::DescribeKServeOutputs(inference::ModelMetadataResponse* metadata) const {
  for (auto [name, type] : {std::pair{"class_ids", "INT32"}, std::pair{"scores", "FP32"},
                            std::pair{"labels", "BYTES"}}) {
    auto* output = metadata->add_outputs();
    output->set_name(name);
    output->set_datatype(type);
    output->add_shape(-1);
  }
}

}  // namespace imginterp::classify
