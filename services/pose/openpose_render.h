// The ControlNet OpenPose conditioning image: people as the 18-point OpenPose body skeleton
// drawn on black the way the ControlNet annotators draw it (lllyasviel's ControlNet 1.1
// annotator, controlnet_aux `draw_bodypose`): 17 limbs as filled ellipses (half length x stick
// width 4, rotated along the limb, as cv::ellipse2Poly polygons) in the limb's colour x 0.6,
// then the joints as filled circles of radius 4 in their full colour. Colours are RGB.
//
// Stateless and thread-safe.
#pragma once

#include <array>
#include <opencv2/core.hpp>
#include <optional>

#include "absl/status/statusor.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "imginterp/v1/pose.pb.h"
#include "services/pose/pose_decode.h"

namespace imginterp::pose {

// OpenPose body-18 order: nose, neck, right shoulder/elbow/wrist, left shoulder/elbow/wrist,
// right hip/knee/ankle, left hip/knee/ankle, right eye, left eye, right ear, left ear.
inline constexpr int kOpenPosePoints = 18;
inline constexpr int kOpenPoseLimbs = 17;
// The joint colours (RGB), one per OpenPose point; limb i is drawn in colour i x 0.6.
const std::array<cv::Vec3b, kOpenPosePoints>& OpenPoseColors();
// The limbs as pairs of OpenPose point indices (0-based), in drawing order.
const std::array<std::pair<int, int>, kOpenPoseLimbs>& OpenPoseLimbs();
// Colour a limb is drawn in: each channel of its colour x 0.6, truncated (as the annotator's
// uint8 conversion does).
cv::Vec3b OpenPoseLimbColor(int limb);

// One person's OpenPose points in pixels; nullopt for a point that is not visible. A keypoint
// is visible when its score is >= min_score and it is finite; the neck is the midpoint of the
// shoulders when both are visible (its own score is the lower of theirs). Keypoints are taken
// by name when they have one (INVALID_ARGUMENT for a name not in the skeleton), else by their
// position in the skeleton's order (INVALID_ARGUMENT for more keypoints than the skeleton has).
absl::StatusOr<std::array<std::optional<cv::Point2f>, kOpenPosePoints>> ToOpenPose(
    const v1::Person& person, Skeleton skeleton, float min_score);

// Draws `people` onto a black width x height CV_8UC3 RGB image. INVALID_ARGUMENT for a size
// below 1 and what ToOpenPose rejects; RESOURCE_EXHAUSTED above 16384 a side or 40 Mpx.
// A point more than 8192 px outside the canvas is treated as not visible (keeps OpenCV's
// fixed-point drawing in range).
absl::StatusOr<cv::Mat> RenderOpenPose(int width, int height,
                                       const google::protobuf::RepeatedPtrField<v1::Person>& people,
                                       Skeleton skeleton, float min_score);

}  // namespace imginterp::pose
