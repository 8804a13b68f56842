#include "services/pose/pose_decode.h"

#include <algorithm>
#include <cmath>
#include <opencv2/imgproc.hpp>

#include "absl/strings/str_cat.h"

namespace imginterp::pose {
namespace {

constexpr int kCocoPoints = 17;
constexpr int kMultiPoseStride = 56;  // 17 x 3 + box (4) + score
constexpr int kBlazePoints = 33;
constexpr int kBlazeAllPoints = 39;  // 33 body landmarks + 6 auxiliary points
constexpr int kBlazeValues = 5;      // x, y, z, visibility, presence

float Sigmoid(float logit) { return 1.0f / (1.0f + std::exp(-logit)); }

v1::Box ClampedBox(double x1, double y1, double x2, double y2, int width, int height) {
  auto clamp = [](double v, int hi) { return static_cast<float>(std::clamp(v, 0.0, double(hi))); };
  v1::Box box;
  box.set_x1(clamp(std::min(x1, x2), width));
  box.set_y1(clamp(std::min(y1, y2), height));
  box.set_x2(clamp(std::max(x1, x2), width));
  box.set_y2(clamp(std::max(y1, y2), height));
  return box;
}

// Keypoints from `count` (y, x, score) triples normalised to the model input.
void AddMoveNetKeypoints(const float* triples, const SquareRegion& region, v1::Person& person) {
  const auto& names = KeypointNames(Skeleton::kCoco17);
  for (int i = 0; i < kCocoPoints; ++i) {
    const cv::Point2d p = ToImage(region, triples[3 * i + 1], triples[3 * i]);
    v1::Keypoint* keypoint = person.add_keypoints();
    keypoint->set_name(names[i]);
    keypoint->set_x(static_cast<float>(p.x));
    keypoint->set_y(static_cast<float>(p.y));
    keypoint->set_score(triples[3 * i + 2]);
  }
}

// Mean score of the keypoints at or above min_score; 0 when none is.
float MeanVisibleScore(const v1::Person& person, float min_score) {
  double sum = 0;
  int count = 0;
  for (const auto& keypoint : person.keypoints()) {
    if (keypoint.score() >= min_score) {
      sum += keypoint.score();
      ++count;
    }
  }
  return count == 0 ? 0.0f : static_cast<float>(sum / count);
}

}  // namespace

std::string SkeletonName(Skeleton skeleton) {
  return skeleton == Skeleton::kCoco17 ? "coco17" : "blazepose33";
}

absl::StatusOr<Skeleton> ParseSkeleton(const std::string& name) {
  if (name.empty() || name == "coco17") return Skeleton::kCoco17;
  if (name == "blazepose33") return Skeleton::kBlazePose33;
  return absl::InvalidArgumentError(
      absl::StrCat("skeleton must be \"coco17\" or \"blazepose33\"; got \"", name, "\""));
}

const std::vector<std::string>& KeypointNames(Skeleton skeleton) {
  static const auto* const kCoco = new std::vector<std::string>{
      "nose",           "left_eye",   "right_eye",   "left_ear",   "right_ear",   "left_shoulder",
      "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
      "right_hip",      "left_knee",  "right_knee",  "left_ankle", "right_ankle"};
  static const auto* const kBlaze = new std::vector<std::string>{
      "nose",        "left_eye_inner",  "left_eye",        "left_eye_outer", "right_eye_inner",
      "right_eye",   "right_eye_outer", "left_ear",        "right_ear",      "mouth_left",
      "mouth_right", "left_shoulder",   "right_shoulder",  "left_elbow",     "right_elbow",
      "left_wrist",  "right_wrist",     "left_pinky",      "right_pinky",    "left_index",
      "right_index", "left_thumb",      "right_thumb",     "left_hip",       "right_hip",
      "left_knee",   "right_knee",      "left_ankle",      "right_ankle",    "left_heel",
      "right_heel",  "left_foot_index", "right_foot_index"};
  return skeleton == Skeleton::kCoco17 ? *kCoco : *kBlaze;
}

SquareRegion LetterboxRegion(int width, int height) {
  const double side = std::max(1, std::max(width, height));
  return {(width - side) / 2.0, (height - side) / 2.0, side};
}

cv::Point2d ToImage(const SquareRegion& region, double u, double v) {
  return {region.x + u * region.side, region.y + v * region.side};
}

cv::Point2d ToModel(const SquareRegion& region, double x, double y) {
  return {(x - region.x) / region.side, (y - region.y) / region.side};
}

absl::StatusOr<cv::Mat> ExtractRegion(const cv::Mat& rgb, const SquareRegion& region, int size) {
  if (rgb.empty() || size < 1 || !(region.side > 0)) {
    return absl::InvalidArgumentError(absl::StrCat("cannot extract a model input of size ", size,
                                                   " from a region of side ", region.side,
                                                   rgb.empty() ? " of an empty image" : ""));
  }
  cv::Mat out(size, size, rgb.type(), cv::Scalar::all(0));
  // The part of the region that lies on the image, in image pixels and in output pixels.
  const double x0 = std::max(0.0, region.x), y0 = std::max(0.0, region.y);
  const double x1 = std::min<double>(rgb.cols, region.x + region.side);
  const double y1 = std::min<double>(rgb.rows, region.y + region.side);
  if (x1 <= x0 || y1 <= y0) return out;
  const double scale = size / region.side;
  const cv::Rect source(
      cv::Point(static_cast<int>(std::floor(x0)), static_cast<int>(std::floor(y0))),
      cv::Point(static_cast<int>(std::ceil(x1)), static_cast<int>(std::ceil(y1))));
  const int dx0 =
      std::clamp(static_cast<int>(std::lround((source.x - region.x) * scale)), 0, size - 1);
  const int dy0 =
      std::clamp(static_cast<int>(std::lround((source.y - region.y) * scale)), 0, size - 1);
  const int dx1 =
      std::clamp(static_cast<int>(std::lround((source.br().x - region.x) * scale)), dx0 + 1, size);
  const int dy1 =
      std::clamp(static_cast<int>(std::lround((source.br().y - region.y) * scale)), dy0 + 1, size);
  const cv::Rect target(cv::Point(dx0, dy0), cv::Point(dx1, dy1));
  const bool shrinking = target.width < source.width || target.height < source.height;
  cv::Mat destination = out(target);
  cv::resize(rgb(source), destination, target.size(), 0, 0,
             shrinking ? cv::INTER_AREA : cv::INTER_LINEAR);
  return out;
}

SquareRegion CropRegion(const v1::Person& person, const TorsoIndices& torso, int width, int height,
                        float min_score) {
  const SquareRegion letterbox = LetterboxRegion(width, height);
  const int count = person.keypoints_size();
  const int torso_points[] = {torso.left_shoulder, torso.right_shoulder, torso.left_hip,
                              torso.right_hip};
  for (int index : torso_points) {
    if (index < 0 || index >= count) return letterbox;
  }
  auto visible = [&](int index) { return person.keypoints(index).score() >= min_score; };
  const bool torso_visible = (visible(torso.left_hip) || visible(torso.right_hip)) &&
                             (visible(torso.left_shoulder) || visible(torso.right_shoulder));
  if (!torso_visible) return letterbox;

  // Centre: the midpoint of the visible hips.
  double cx = 0, cy = 0;
  int hips = 0;
  for (int index : {torso.left_hip, torso.right_hip}) {
    if (!visible(index)) continue;
    cx += person.keypoints(index).x();
    cy += person.keypoints(index).y();
    ++hips;
  }
  cx /= hips;
  cy /= hips;

  double torso_x = 0, torso_y = 0, body_x = 0, body_y = 0;
  for (int index : torso_points) {
    torso_x = std::max(torso_x, std::abs(cx - person.keypoints(index).x()));
    torso_y = std::max(torso_y, std::abs(cy - person.keypoints(index).y()));
  }
  for (int i = 0; i < count; ++i) {
    if (!visible(i)) continue;
    body_x = std::max(body_x, std::abs(cx - person.keypoints(i).x()));
    body_y = std::max(body_y, std::abs(cy - person.keypoints(i).y()));
  }
  double half = std::max({torso_x * 1.9, torso_y * 1.9, body_x * 1.2, body_y * 1.2});
  half = std::min(half, std::max({cx, width - cx, cy, height - cy}));
  if (half > std::max(width, height) / 2.0 || !(half > 0)) return letterbox;
  return {cx - half, cy - half, 2 * half};
}

absl::StatusOr<v1::Person> DecodeMoveNetSingle(absl::Span<const float> data,
                                               const SquareRegion& region, int width, int height,
                                               float min_score) {
  if (data.size() != 3 * kCocoPoints) {
    return absl::InternalError(
        absl::StrCat("MoveNet single-pose output should hold 17 x (y, x, score) = 51 values; got ",
                     data.size()));
  }
  v1::Person person;
  AddMoveNetKeypoints(data.data(), region, person);
  person.set_score(MeanVisibleScore(person, min_score));
  *person.mutable_box() = BoxAroundKeypoints(person, width, height, min_score);
  return person;
}

absl::StatusOr<std::vector<v1::Person>> DecodeMoveNetMulti(absl::Span<const float> data,
                                                           const SquareRegion& region, int width,
                                                           int height, float min_score) {
  if (data.empty() || data.size() % kMultiPoseStride != 0) {
    return absl::InternalError(absl::StrCat(
        "MoveNet multi-pose output should hold N x 56 values (17 x (y, x, score) + box + "
        "score); got ",
        data.size()));
  }
  std::vector<v1::Person> people;
  for (size_t offset = 0; offset < data.size(); offset += kMultiPoseStride) {
    const float* row = data.data() + offset;
    const float* box = row + 3 * kCocoPoints;  // ymin, xmin, ymax, xmax, score
    if (box[4] < min_score) continue;
    v1::Person person;
    AddMoveNetKeypoints(row, region, person);
    person.set_score(box[4]);
    const cv::Point2d top_left = ToImage(region, box[1], box[0]);
    const cv::Point2d bottom_right = ToImage(region, box[3], box[2]);
    *person.mutable_box() =
        ClampedBox(top_left.x, top_left.y, bottom_right.x, bottom_right.y, width, height);
    people.push_back(std::move(person));
  }
  std::stable_sort(people.begin(), people.end(),
                   [](const v1::Person& a, const v1::Person& b) { return a.score() > b.score(); });
  return people;
}

absl::StatusOr<v1::Person> DecodeBlazePose(absl::Span<const float> landmarks, float pose_flag,
                                           int input_size, const SquareRegion& region, int width,
                                           int height, float min_score) {
  if ((landmarks.size() != kBlazeAllPoints * kBlazeValues &&
       landmarks.size() != kBlazePoints * kBlazeValues) ||
      input_size <= 0) {
    return absl::InternalError(absl::StrCat(
        "BlazePose landmarks should hold 39 x (x, y, z, visibility, presence) = 195 values for an "
        "input size > 0; got ",
        landmarks.size(), " values, input size ", input_size));
  }
  const auto& names = KeypointNames(Skeleton::kBlazePose33);
  v1::Person person;
  for (int i = 0; i < kBlazePoints; ++i) {
    const float* values = landmarks.data() + kBlazeValues * i;
    const cv::Point2d p = ToImage(region, values[0] / input_size, values[1] / input_size);
    v1::Keypoint* keypoint = person.add_keypoints();
    keypoint->set_name(names[i]);
    keypoint->set_x(static_cast<float>(p.x));
    keypoint->set_y(static_cast<float>(p.y));
    keypoint->set_z(static_cast<float>(values[2] / input_size * region.side));
    keypoint->set_score(Sigmoid(values[3]) * Sigmoid(values[4]));
  }
  person.set_score(std::clamp(pose_flag, 0.0f, 1.0f));
  *person.mutable_box() = BoxAroundKeypoints(person, width, height, min_score);
  return person;
}

v1::Box BoxAroundKeypoints(const v1::Person& person, int width, int height, float min_score) {
  double x1 = 0, y1 = 0, x2 = 0, y2 = 0;
  bool any = false;
  for (const auto& keypoint : person.keypoints()) {
    if (keypoint.score() < min_score) continue;
    if (!any) {
      x1 = x2 = keypoint.x();
      y1 = y2 = keypoint.y();
      any = true;
      continue;
    }
    x1 = std::min<double>(x1, keypoint.x());
    y1 = std::min<double>(y1, keypoint.y());
    x2 = std::max<double>(x2, keypoint.x());
    y2 = std::max<double>(y2, keypoint.y());
  }
  if (!any) return v1::Box();
  return ClampedBox(x1, y1, x2, y2, width, height);
}

}  // namespace imginterp::pose
