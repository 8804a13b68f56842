#include "services/pose/openpose_render.h"

#include <algorithm>
#include <cmath>
#include <opencv2/imgproc.hpp>
#include <vector>

#include "absl/strings/str_cat.h"

namespace imginterp::pose {
namespace {

constexpr int kNeck = 1;
constexpr int kRightShoulder = 2;
constexpr int kLeftShoulder = 5;
constexpr int kStickWidth = 4;
constexpr int kJointRadius = 4;
constexpr int kMaxSide = 16384;
constexpr int64_t kMaxPixels = 40'000'000;
constexpr float kMaxOutside = 8192;

// For each OpenPose point, the index of the same point in the source skeleton (-1: the neck,
// which neither skeleton has).
constexpr std::array<int, kOpenPosePoints> kFromCoco = {coco::kNose,          -1,
                                                        coco::kRightShoulder, coco::kRightElbow,
                                                        coco::kRightWrist,    coco::kLeftShoulder,
                                                        coco::kLeftElbow,     coco::kLeftWrist,
                                                        coco::kRightHip,      coco::kRightKnee,
                                                        coco::kRightAnkle,    coco::kLeftHip,
                                                        coco::kLeftKnee,      coco::kLeftAnkle,
                                                        coco::kRightEye,      coco::kLeftEye,
                                                        coco::kRightEar,      coco::kLeftEar};
constexpr std::array<int, kOpenPosePoints> kFromBlaze = {
    blaze::kNose,          -1,
    blaze::kRightShoulder, blaze::kRightElbow,
    blaze::kRightWrist,    blaze::kLeftShoulder,
    blaze::kLeftElbow,     blaze::kLeftWrist,
    blaze::kRightHip,      blaze::kRightKnee,
    blaze::kRightAnkle,    blaze::kLeftHip,
    blaze::kLeftKnee,      blaze::kLeftAnkle,
    blaze::kRightEye,      blaze::kLeftEye,
    blaze::kRightEar,      blaze::kLeftEar};

}  // namespace

const std::array<cv::Vec3b, kOpenPosePoints>& OpenPoseColors() {
  // A hue wheel in 18 steps from red through yellow, green, cyan and blue to magenta.
  static const std::array<cv::Vec3b, kOpenPosePoints> kColors = {
      cv::Vec3b(255, 0, 0),   cv::Vec3b(255, 85, 0),  cv::Vec3b(255, 170, 0),
      cv::Vec3b(255, 255, 0), cv::Vec3b(170, 255, 0), cv::Vec3b(85, 255, 0),
      cv::Vec3b(0, 255, 0),   cv::Vec3b(0, 255, 85),  cv::Vec3b(0, 255, 170),
      cv::Vec3b(0, 255, 255), cv::Vec3b(0, 170, 255), cv::Vec3b(0, 85, 255),
      cv::Vec3b(0, 0, 255),   cv::Vec3b(85, 0, 255),  cv::Vec3b(170, 0, 255),
      cv::Vec3b(255, 0, 255), cv::Vec3b(255, 0, 170), cv::Vec3b(255, 0, 85)};
  return kColors;
}

const std::array<std::pair<int, int>, kOpenPoseLimbs>& OpenPoseLimbs() {
  // Neck to shoulders, right arm, left arm, neck to right leg, neck to left leg, neck to nose,
  // right eye and ear, left eye and ear.
  static const std::array<std::pair<int, int>, kOpenPoseLimbs> kLimbs = {{{1, 2},
                                                                          {1, 5},
                                                                          {2, 3},
                                                                          {3, 4},
                                                                          {5, 6},
                                                                          {6, 7},
                                                                          {1, 8},
                                                                          {8, 9},
                                                                          {9, 10},
                                                                          {1, 11},
                                                                          {11, 12},
                                                                          {12, 13},
                                                                          {1, 0},
                                                                          {0, 14},
                                                                          {14, 16},
                                                                          {0, 15},
                                                                          {15, 17}}};
  return kLimbs;
}

cv::Vec3b OpenPoseLimbColor(int limb) {
  const cv::Vec3b color = OpenPoseColors()[limb];
  cv::Vec3b out;
  for (int c = 0; c < 3; ++c) out[c] = static_cast<uint8_t>(color[c] * 0.6);
  return out;
}

absl::StatusOr<std::array<std::optional<cv::Point2f>, kOpenPosePoints>> ToOpenPose(
    const v1::Person& person, Skeleton skeleton, float min_score) {
  const auto& names = KeypointNames(skeleton);
  const int size = static_cast<int>(names.size());
  if (person.keypoints_size() > size) {
    return absl::InvalidArgumentError(absl::StrCat("a person has ", person.keypoints_size(),
                                                   " keypoints; skeleton ", SkeletonName(skeleton),
                                                   " has ", size));
  }
  // Source keypoint per skeleton index (null: missing).
  std::vector<const v1::Keypoint*> points(size, nullptr);
  for (int i = 0; i < person.keypoints_size(); ++i) {
    const v1::Keypoint& keypoint = person.keypoints(i);
    int index = i;
    if (!keypoint.name().empty()) {
      auto it = std::find(names.begin(), names.end(), keypoint.name());
      if (it == names.end()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "keypoint name \"", keypoint.name(), "\" is not in skeleton ", SkeletonName(skeleton)));
      }
      index = static_cast<int>(it - names.begin());
    }
    points[index] = &keypoint;
  }
  auto visible = [&](const v1::Keypoint* k) {
    return k != nullptr && k->score() >= min_score && std::isfinite(k->x()) &&
           std::isfinite(k->y());
  };
  const auto& from = skeleton == Skeleton::kCoco17 ? kFromCoco : kFromBlaze;
  std::array<std::optional<cv::Point2f>, kOpenPosePoints> out;
  for (int i = 0; i < kOpenPosePoints; ++i) {
    if (from[i] < 0) continue;
    const v1::Keypoint* k = points[from[i]];
    if (visible(k)) out[i] = cv::Point2f(k->x(), k->y());
  }
  if (out[kRightShoulder] && out[kLeftShoulder]) {
    out[kNeck] = (*out[kRightShoulder] + *out[kLeftShoulder]) * 0.5f;
  }
  return out;
}

namespace {

using Points = std::array<std::optional<cv::Point2f>, kOpenPosePoints>;

// Limb by limb over all people, then joint by joint, as the annotator does (so overlaps
// resolve the same way). The annotator truncates coordinates and angles with int().
cv::Mat Draw(int width, int height, const std::vector<Points>& skeletons) {
  cv::Mat canvas(height, width, CV_8UC3, cv::Scalar::all(0));
  std::vector<cv::Point> polygon;
  for (int limb = 0; limb < kOpenPoseLimbs; ++limb) {
    const auto [a, b] = OpenPoseLimbs()[limb];
    const cv::Vec3b color = OpenPoseLimbColor(limb);
    for (const auto& points : skeletons) {
      if (!points[a] || !points[b]) continue;
      const cv::Point2f p = *points[a], q = *points[b];
      const double length = std::hypot(p.x - q.x, p.y - q.y);
      const double angle = std::atan2(p.y - q.y, p.x - q.x) * 180.0 / CV_PI;
      const cv::Point centre(static_cast<int>((p.x + q.x) / 2), static_cast<int>((p.y + q.y) / 2));
      cv::ellipse2Poly(centre, cv::Size(static_cast<int>(length / 2), kStickWidth),
                       static_cast<int>(angle), 0, 360, 1, polygon);
      cv::fillConvexPoly(canvas, polygon, cv::Scalar(color[0], color[1], color[2]));
    }
  }
  for (int joint = 0; joint < kOpenPosePoints; ++joint) {
    const cv::Vec3b color = OpenPoseColors()[joint];
    for (const auto& points : skeletons) {
      if (!points[joint]) continue;
      const cv::Point centre(static_cast<int>(points[joint]->x),
                             static_cast<int>(points[joint]->y));
      cv::circle(canvas, centre, kJointRadius, cv::Scalar(color[0], color[1], color[2]),
                 cv::FILLED);
    }
  }
  return canvas;
}

}  // namespace

absl::StatusOr<cv::Mat> RenderOpenPose(int width, int height,
                                       const google::protobuf::RepeatedPtrField<v1::Person>& people,
                                       Skeleton skeleton, float min_score) {
  if (width < 1 || height < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("openpose map size must be at least 1x1; got ", width, "x", height));
  }
  if (width > kMaxSide || height > kMaxSide || static_cast<int64_t>(width) * height > kMaxPixels) {
    return absl::ResourceExhaustedError(absl::StrCat("openpose map is ", width, "x", height,
                                                     "; limits are ", kMaxSide, " a side and ",
                                                     kMaxPixels / 1'000'000, " Mpx"));
  }
  std::vector<Points> skeletons;
  for (const v1::Person& person : people) {
    auto points = ToOpenPose(person, skeleton, min_score);
    if (!points.ok()) return points.status();
    for (auto& point : *points) {
      if (point && (point->x < -kMaxOutside || point->y < -kMaxOutside ||
                    point->x > width + kMaxOutside || point->y > height + kMaxOutside)) {
        point.reset();
      }
    }
    skeletons.push_back(*points);
  }

  try {
    return Draw(width, height, skeletons);
  } catch (const cv::Exception& e) {
    return absl::InternalError(absl::StrCat("drawing the openpose map failed: ", e.what()));
  }
}

}  // namespace imginterp::pose
