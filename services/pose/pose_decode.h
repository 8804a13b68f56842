// Pre- and post-processing of the pose models, kept free of LibTorch so it is tested on plain
// numbers: the square region of the image a model pass sees (letterbox or crop), the image
// extraction for that region, the mapping of model coordinates back to the original pixels, the
// MoveNet crop-region rule, and the decoding of MoveNet single/multi-pose and BlazePose outputs.
//
// Every function is stateless and thread-safe; none throws.
#pragma once

#include <cstdint>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "imginterp/v1/pose.pb.h"

namespace imginterp::pose {

// The keypoint sets the service speaks.
enum class Skeleton { kCoco17, kBlazePose33 };

// "coco17" or "blazepose33".
std::string SkeletonName(Skeleton skeleton);
// "" (the default, coco17), "coco17" or "blazepose33"; INVALID_ARGUMENT otherwise.
absl::StatusOr<Skeleton> ParseSkeleton(const std::string& name);
// Point names in model order: COCO-17 ("nose", "left_eye", ...) or BlazePose-33 ("nose",
// "left_eye_inner", ...).
const std::vector<std::string>& KeypointNames(Skeleton skeleton);

// COCO-17 indices used by the crop rule and the OpenPose mapping.
namespace coco {
inline constexpr int kNose = 0, kLeftEye = 1, kRightEye = 2, kLeftEar = 3, kRightEar = 4,
                     kLeftShoulder = 5, kRightShoulder = 6, kLeftElbow = 7, kRightElbow = 8,
                     kLeftWrist = 9, kRightWrist = 10, kLeftHip = 11, kRightHip = 12,
                     kLeftKnee = 13, kRightKnee = 14, kLeftAnkle = 15, kRightAnkle = 16;
}  // namespace coco
// BlazePose-33 indices (MediaPipe order).
namespace blaze {
inline constexpr int kNose = 0, kLeftEye = 2, kRightEye = 5, kLeftEar = 7, kRightEar = 8,
                     kLeftShoulder = 11, kRightShoulder = 12, kLeftElbow = 13, kRightElbow = 14,
                     kLeftWrist = 15, kRightWrist = 16, kLeftHip = 23, kRightHip = 24,
                     kLeftKnee = 25, kRightKnee = 26, kLeftAnkle = 27, kRightAnkle = 28;
}  // namespace blaze

// A square window onto the original image, in its pixels: top-left (x, y) and side. It may
// reach outside the image; what lies outside is black in the model input. A model pass sees
// exactly this window scaled to its input size, so model coordinate u in 0..1 (fraction of the
// input side) is original pixel x + u * side.
struct SquareRegion {
  double x = 0;
  double y = 0;
  double side = 1;
};

// The whole image padded to a square around its centre (aspect ratio preserved): the first
// pass of every model.
SquareRegion LetterboxRegion(int width, int height);

// Model-normalised (u, v in 0..1 of the input side) -> original pixels, and back.
cv::Point2d ToImage(const SquareRegion& region, double u, double v);
cv::Point2d ToModel(const SquareRegion& region, double x, double y);

// The model input for `region`: a CV_8UC3 `size`x`size` image (same channel order as `rgb`),
// black outside the image. Shrinks with area averaging, enlarges bilinearly. INVALID_ARGUMENT
// for an empty image, a size < 1 or a region with side <= 0.
absl::StatusOr<cv::Mat> ExtractRegion(const cv::Mat& rgb, const SquareRegion& region, int size);

// MoveNet's crop-region rule for a second pass (TF Hub MoveNet tutorial, "cropping
// algorithm"): when the torso is visible (a hip and a shoulder above `min_score`), a square
// centred on the hips' midpoint whose half side is the largest of 1.9x the torso's extent from
// that centre (shoulders and hips, x and y separately) and 1.2x the body's extent (every
// keypoint above `min_score`); the half side is then clamped to the centre's largest distance
// to an image edge, and if it still exceeds half the image's longer side the letterbox region
// is returned instead. No visible torso: the letterbox region. `points` are original pixels,
// one per keypoint; `torso` lists the left/right shoulder and left/right hip indices.
struct TorsoIndices {
  int left_shoulder, right_shoulder, left_hip, right_hip;
};
inline constexpr TorsoIndices kCocoTorso{coco::kLeftShoulder, coco::kRightShoulder, coco::kLeftHip,
                                         coco::kRightHip};
inline constexpr TorsoIndices kBlazeTorso{blaze::kLeftShoulder, blaze::kRightShoulder,
                                          blaze::kLeftHip, blaze::kRightHip};
inline constexpr float kCropMinScore = 0.2f;
SquareRegion CropRegion(const v1::Person& person, const TorsoIndices& torso, int width, int height,
                        float min_score = kCropMinScore);

// MoveNet single-pose output [1,1,17,3] flattened (y, x, score; y and x normalised to the
// input) -> one person in original pixels. Person score: mean score of the keypoints above
// `min_score` (0 when none is). Box: around those keypoints, clamped to the image.
// INTERNAL (the model is not what its config says) unless data has 51 values.
absl::StatusOr<v1::Person> DecodeMoveNetSingle(absl::Span<const float> data,
                                               const SquareRegion& region, int width, int height,
                                               float min_score);

// MoveNet multi-pose output [1,N,56] flattened (17 x (y, x, score), then ymin, xmin, ymax, xmax,
// score, all normalised to the input) -> the people whose score is at least `min_score`, best
// first, with the model's box mapped to original pixels (clamped to the image).
// INTERNAL (the model is not what its config says) unless data has a multiple of 56 values.
absl::StatusOr<std::vector<v1::Person>> DecodeMoveNetMulti(absl::Span<const float> data,
                                                           const SquareRegion& region, int width,
                                                           int height, float min_score);

// BlazePose landmarks output (`ld_3d`, [1,195] = 39 x (x, y, z, visibility, presence), x/y/z in
// input pixels, visibility and presence as logits) and the pose flag (already a probability)
// -> one person with the 33 body landmarks in original pixels (the 6 auxiliary points are
// dropped). Keypoint score: sigmoid(visibility) * sigmoid(presence); z scaled like x; person
// score: the pose flag. INTERNAL unless data has 39 x 5 values (33 x 5 also accepted) and
// input_size > 0.
absl::StatusOr<v1::Person> DecodeBlazePose(absl::Span<const float> landmarks, float pose_flag,
                                           int input_size, const SquareRegion& region, int width,
                                           int height, float min_score);

// Box around the keypoints with score >= min_score, clamped to width x height; all zero when
// none qualifies.
v1::Box BoxAroundKeypoints(const v1::Person& person, int width, int height, float min_score);

}  // namespace imginterp::pose
