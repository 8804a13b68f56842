#include "services/generate/generate_request.h"

#include <torch/types.h>

#include <algorithm>
#include <cmath>
#include <opencv2/imgproc.hpp>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "services/core/codec/image_fit.h"
#include "services/core/codec/tensor_convert.h"
#include "services/core/common/status_macros.h"
#include "services/pose/openpose_render.h"

namespace imginterp::generate {
namespace {

constexpr float kDefaultPoseMinScore = 0.3f;

std::string Shape(const at::Tensor& t) {
  return absl::StrCat("[", absl::StrJoin(t.sizes(), ", "), "]");
}

// A request image decoded to RGB, refused below 8x8 (it has no latent pixel).
absl::StatusOr<cv::Mat> DecodeImage(const v1::Image& image, const std::string& field,
                                    const codec::ImageLimits& limits) {
  auto decoded = codec::Decode(image.data(), limits);
  if (!decoded.ok()) {
    return absl::Status(decoded.status().code(),
                        absl::StrCat(field, ": ", decoded.status().message()));
  }
  const cv::Mat& rgb = decoded->rgb;
  if (rgb.cols < kMinImageSide || rgb.rows < kMinImageSide) {
    return absl::InvalidArgumentError(absl::StrCat(field, " is ", rgb.cols, "x", rgb.rows,
                                                   "; images must be at least ", kMinImageSide, "x",
                                                   kMinImageSide));
  }
  return decoded->rgb;
}

// RGB CV_8UC3 -> [1, 3, height, width] float32 in [0, 1], resized to the output size.
absl::StatusOr<at::Tensor> ToPipelineImage(const cv::Mat& rgb, int width, int height) {
  cv::Mat sized = rgb;
  if (rgb.cols != width || rgb.rows != height) {
    sized = codec::FitImage(
        rgb, codec::ComputeFit(rgb.cols, rgb.rows, width, height, codec::FitMode::kStretch));
  }
  at::Tensor hwc = codec::MatToTensor(sized);
  if (!hwc.defined() || hwc.dim() != 3 || hwc.size(2) != 3) {
    return absl::InternalError("could not convert the image to a tensor");
  }
  return hwc.permute({2, 0, 1}).unsqueeze(0).to(torch::kFloat32).div(255.0).contiguous();
}

// A float32 advanced tensor of `field`, or an undefined tensor when unset.
absl::StatusOr<at::Tensor> FloatTensor(const v1::Tensor& wire, bool present,
                                       const std::string& field) {
  if (!present) return at::Tensor();
  auto tensor = codec::FromProto(wire);
  if (!tensor.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", tensor.status().message()));
  }
  if (tensor->scalar_type() != torch::kFloat32) {
    return absl::InvalidArgumentError(absl::StrCat(field, " must be DATA_TYPE_FLOAT32"));
  }
  return *std::move(tensor);
}

absl::Status CheckEmbeds(const at::Tensor& embeds, const std::string& field) {
  if (!embeds.defined()) return absl::OkStatus();
  if (embeds.dim() != 3 || embeds.size(0) != 1 || embeds.size(1) != 77 || embeds.size(2) < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " must have shape [1, 77, D]; got ", Shape(embeds)));
  }
  return absl::OkStatus();
}

absl::Status CheckFraction(double value, const std::string& field) {
  if (!std::isfinite(value) || value < 0 || value > 1) {
    return absl::InvalidArgumentError(absl::StrCat(field, " must be in [0, 1]; got ", value));
  }
  return absl::OkStatus();
}

// The pose keypoints drawn as the OpenPose map, at the output size.
absl::StatusOr<cv::Mat> RenderPose(const v1::PoseKeypoints& pose, int width, int height,
                                   const std::string& field) {
  IMGINTERP_ASSIGN_OR_RETURN(pose::Skeleton skeleton, pose::ParseSkeleton(pose.skeleton()));
  if ((pose.width() == 0) != (pose.height() == 0) || pose.width() < 0 || pose.height() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".width and .height must both be positive or both 0"));
  }
  const int canvas_width = pose.width() > 0 ? pose.width() : width;
  const int canvas_height = pose.height() > 0 ? pose.height() : height;
  auto map = pose::RenderOpenPose(canvas_width, canvas_height, pose.people(), skeleton,
                                  pose.min_score() > 0 ? pose.min_score() : kDefaultPoseMinScore);
  if (!map.ok()) {
    return absl::Status(map.status().code(), absl::StrCat(field, ": ", map.status().message()));
  }
  return *std::move(map);
}

}  // namespace

absl::StatusOr<generation::GenerationRequest> ToGenerationRequest(
    const v1::GenerateRequest& request, const PipelineFacts& facts,
    const GenerateModelConfig& config, const codec::ImageLimits& limits, const std::string& field) {
  generation::GenerationRequest out;
  // Text or embeddings.
  IMGINTERP_ASSIGN_OR_RETURN(
      out.prompt_embeds,
      FloatTensor(request.prompt_embeds(), request.has_prompt_embeds(), field + "prompt_embeds"));
  IMGINTERP_ASSIGN_OR_RETURN(
      out.negative_prompt_embeds,
      FloatTensor(request.negative_prompt_embeds(), request.has_negative_prompt_embeds(),
                  field + "negative_prompt_embeds"));
  IMGINTERP_RETURN_IF_ERROR(CheckEmbeds(out.prompt_embeds, field + "prompt_embeds"));
  IMGINTERP_RETURN_IF_ERROR(
      CheckEmbeds(out.negative_prompt_embeds, field + "negative_prompt_embeds"));
  if (request.prompt().empty() && !out.prompt_embeds.defined()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, "prompt is required (or ", field, "prompt_embeds)"));
  }
  out.prompt = request.prompt();
  out.negative_prompt = request.negative_prompt();

  // Counts and limits.
  out.num_inference_steps = request.steps() == 0 ? kDefaultSteps : request.steps();
  if (out.num_inference_steps < 1) {
    return absl::InvalidArgumentError(absl::StrCat(field, "steps must be >= 1 (0 means ",
                                                   kDefaultSteps, "); got ", request.steps()));
  }
  if (out.num_inference_steps > config.max_steps) {
    return absl::OutOfRangeError(absl::StrCat(field, "steps is ", out.num_inference_steps,
                                              "; this model allows at most ", config.max_steps,
                                              " (config parameter max_steps)"));
  }
  out.num_images = request.num_images() == 0 ? 1 : request.num_images();
  if (out.num_images < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, "num_images must be >= 1; got ", request.num_images()));
  }
  if (out.num_images > config.max_images) {
    return absl::OutOfRangeError(absl::StrCat(field, "num_images is ", out.num_images,
                                              "; this model allows at most ", config.max_images,
                                              " per request (config parameter max_images)"));
  }
  out.guidance_scale =
      request.has_guidance_scale() ? request.guidance_scale() : kDefaultGuidanceScale;
  if (!std::isfinite(out.guidance_scale) || out.guidance_scale < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, "guidance_scale must be >= 0; got ", request.guidance_scale()));
  }
  if (!std::isfinite(request.eta()) || request.eta() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(field, "eta must be >= 0"));
  }
  out.eta = request.eta();
  out.scheduler = request.scheduler();
  out.seed = request.seed();
  out.guess_mode = request.guess_mode();

  // Decode the images first: the output size may come from them.
  std::vector<std::optional<cv::Mat>> control_images(request.controls_size());
  for (int i = 0; i < request.controls_size(); ++i) {
    const v1::ControlInput& control = request.controls(i);
    const std::string name = absl::StrCat(field, "controls[", i, "]");
    if (control.kind().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, ".kind is required (one of: ", absl::StrJoin(facts.control_kinds, ", "), ")"));
    }
    if (!std::binary_search(facts.control_kinds.begin(), facts.control_kinds.end(),
                            control.kind())) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, ".kind \"", control.kind(), "\" has no ControlNet in this model; kinds: ",
          facts.control_kinds.empty() ? "(none)" : absl::StrJoin(facts.control_kinds, ", ")));
    }
    if (control.source_case() == v1::ControlInput::SOURCE_NOT_SET) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, " needs an image, pose keypoints or a tensor"));
    }
    if (control.has_image()) {
      IMGINTERP_ASSIGN_OR_RETURN(control_images[i],
                                 DecodeImage(control.image(), name + ".image", limits));
    }
  }
  std::optional<cv::Mat> init_image;
  if (request.has_init_image()) {
    IMGINTERP_ASSIGN_OR_RETURN(init_image,
                               DecodeImage(request.init_image(), field + "init_image", limits));
  }

  // Output size.
  if ((request.width() == 0) != (request.height() == 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, "width and height must both be set or both be 0; got ", request.width(),
                     "x", request.height()));
  }
  const int scale = facts.vae_scale_factor;
  if (request.width() != 0) {
    out.width = request.width();
    out.height = request.height();
    if (out.width < scale || out.height < scale || out.width % scale != 0 ||
        out.height % scale != 0) {
      return absl::InvalidArgumentError(absl::StrCat(field,
                                                     "width and height must be positive "
                                                     "multiples of ",
                                                     scale, "; got ", out.width, "x", out.height));
    }
  } else {
    const cv::Mat* source = nullptr;
    for (const auto& image : control_images) {
      if (image.has_value()) {
        source = &*image;
        break;
      }
    }
    if (source == nullptr && init_image.has_value()) source = &*init_image;
    out.width = source != nullptr ? source->cols / scale * scale : facts.default_size;
    out.height = source != nullptr ? source->rows / scale * scale : facts.default_size;
  }
  if (int64_t{out.width} * out.height > config.max_pixels) {
    return absl::OutOfRangeError(absl::StrCat(field, "the output ", out.width, "x", out.height,
                                              " has ", int64_t{out.width} * out.height,
                                              " pixels; this model allows at most ",
                                              config.max_pixels, " (config parameter max_pixels)"));
  }

  // Controls.
  for (int i = 0; i < request.controls_size(); ++i) {
    const v1::ControlInput& control = request.controls(i);
    const std::string name = absl::StrCat(field, "controls[", i, "]");
    generation::ControlCondition condition;
    condition.kind = control.kind();
    condition.conditioning_scale =
        control.has_conditioning_scale() ? control.conditioning_scale() : 1.0;
    condition.guidance_start = control.guidance_start();
    condition.guidance_end = control.has_guidance_end() ? control.guidance_end() : 1.0;
    if (!std::isfinite(condition.conditioning_scale)) {
      return absl::InvalidArgumentError(absl::StrCat(name, ".conditioning_scale must be finite"));
    }
    IMGINTERP_RETURN_IF_ERROR(CheckFraction(condition.guidance_start, name + ".guidance_start"));
    IMGINTERP_RETURN_IF_ERROR(CheckFraction(condition.guidance_end, name + ".guidance_end"));
    if (condition.guidance_start >= condition.guidance_end) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ".guidance_start must be below guidance_end"));
    }
    switch (control.source_case()) {
      case v1::ControlInput::kImage: {
        IMGINTERP_ASSIGN_OR_RETURN(condition.image,
                                   ToPipelineImage(*control_images[i], out.width, out.height));
        break;
      }
      case v1::ControlInput::kPose: {
        IMGINTERP_ASSIGN_OR_RETURN(
            cv::Mat map, RenderPose(control.pose(), out.width, out.height, name + ".pose"));
        IMGINTERP_ASSIGN_OR_RETURN(condition.image, ToPipelineImage(map, out.width, out.height));
        break;
      }
      case v1::ControlInput::kTensor: {
        IMGINTERP_ASSIGN_OR_RETURN(at::Tensor image,
                                   FloatTensor(control.tensor(), true, name + ".tensor"));
        if (image.dim() == 3) image = image.unsqueeze(0);
        if (image.dim() != 4 || image.size(0) != 1 || image.size(1) != 3 ||
            image.size(2) != out.height || image.size(3) != out.width) {
          return absl::InvalidArgumentError(
              absl::StrCat(name, ".tensor must have shape [1, 3, ", out.height, ", ", out.width,
                           "] (the output size); got ", Shape(image)));
        }
        condition.image = image;
        break;
      }
      case v1::ControlInput::SOURCE_NOT_SET:
        break;
    }
    out.controls.push_back(std::move(condition));
  }

  // Image-to-image.
  if (init_image.has_value()) {
    IMGINTERP_ASSIGN_OR_RETURN(out.init_image, ToPipelineImage(*init_image, out.width, out.height));
    out.strength = request.has_strength() ? request.strength() : kDefaultStrength;
    if (!std::isfinite(out.strength) || out.strength <= 0 || out.strength > 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, "strength must be in (0, 1]; got ", request.strength()));
    }
  }

  // Advanced starting noise.
  IMGINTERP_ASSIGN_OR_RETURN(out.latents,
                             FloatTensor(request.initial_latents(), request.has_initial_latents(),
                                         field + "initial_latents"));
  if (out.latents.defined()) {
    const std::vector<int64_t> expected = {out.num_images, facts.latent_channels,
                                           out.height / scale, out.width / scale};
    if (out.latents.sizes().vec() != expected) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, "initial_latents must have shape [", absl::StrJoin(expected, ", "),
          "] (num_images, latent channels, height/8, width/8); got ", Shape(out.latents)));
    }
  }
  return out;
}

}  // namespace imginterp::generate
