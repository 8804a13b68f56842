#include "services/pose/openpose_render.h"

#include <opencv2/imgproc.hpp>

#include "gtest/gtest.h"

namespace imginterp::pose {
namespace {

// A person on a 512x512 canvas with limbs long enough (>= 30 px) and apart enough that every
// limb's midpoint is covered by that limb alone. COCO-17 order.
std::vector<cv::Point2f> CocoLayout() {
  return {{256, 120},               // nose
          {286, 90},  {226, 90},    // left eye, right eye
          {326, 100}, {186, 100},   // left ear, right ear
          {336, 200}, {176, 200},   // left shoulder, right shoulder
          {392, 280}, {120, 280},   // left elbow, right elbow
          {422, 370}, {90, 370},    // left wrist, right wrist
          {296, 340}, {216, 340},   // left hip, right hip
          {306, 420}, {206, 420},   // left knee, right knee
          {312, 500}, {200, 500}};  // left ankle, right ankle
}

v1::Person Person(const std::vector<cv::Point2f>& points, float score = 0.9f,
                  Skeleton skeleton = Skeleton::kCoco17) {
  v1::Person person;
  for (size_t i = 0; i < points.size(); ++i) {
    auto* k = person.add_keypoints();
    k->set_name(KeypointNames(skeleton)[i]);
    k->set_x(points[i].x);
    k->set_y(points[i].y);
    k->set_score(score);
  }
  return person;
}

google::protobuf::RepeatedPtrField<v1::Person> People(std::initializer_list<v1::Person> list) {
  google::protobuf::RepeatedPtrField<v1::Person> people;
  for (const auto& p : list) *people.Add() = p;
  return people;
}

cv::Mat Render(const google::protobuf::RepeatedPtrField<v1::Person>& people,
               Skeleton skeleton = Skeleton::kCoco17) {
  auto canvas = RenderOpenPose(512, 512, people, skeleton, 0.3f);
  EXPECT_TRUE(canvas.ok()) << canvas.status();
  return canvas.ok() ? *canvas : cv::Mat();
}

cv::Vec3b At(const cv::Mat& canvas, cv::Point2f p) {
  return canvas.at<cv::Vec3b>(static_cast<int>(p.y), static_cast<int>(p.x));
}

TEST(OpenPoseColorsTest, StandardPaletteAndLimbOrder) {
  const auto& colors = OpenPoseColors();
  EXPECT_EQ(colors[0], cv::Vec3b(255, 0, 0));
  EXPECT_EQ(colors[1], cv::Vec3b(255, 85, 0));
  EXPECT_EQ(colors[9], cv::Vec3b(0, 255, 255));
  EXPECT_EQ(colors[12], cv::Vec3b(0, 0, 255));
  EXPECT_EQ(colors[17], cv::Vec3b(255, 0, 85));
  // Limb colours are the joint colours x 0.6, truncated: 255 -> 153, 170 -> 102, 85 -> 51.
  EXPECT_EQ(OpenPoseLimbColor(0), cv::Vec3b(153, 0, 0));
  EXPECT_EQ(OpenPoseLimbColor(2), cv::Vec3b(153, 102, 0));
  EXPECT_EQ(OpenPoseLimbColor(16), cv::Vec3b(153, 0, 102));
  // First limb neck -> right shoulder, the 13th neck -> nose, the last left eye -> left ear.
  EXPECT_EQ(OpenPoseLimbs()[0], std::make_pair(1, 2));
  EXPECT_EQ(OpenPoseLimbs()[12], std::make_pair(1, 0));
  EXPECT_EQ(OpenPoseLimbs()[16], std::make_pair(15, 17));
}

TEST(ToOpenPoseTest, MapsCocoToTheEighteenPointsWithTheNeckBetweenTheShoulders) {
  auto points = ToOpenPose(Person(CocoLayout()), Skeleton::kCoco17, 0.3f);
  ASSERT_TRUE(points.ok()) << points.status();
  ASSERT_TRUE((*points)[1].has_value());
  EXPECT_EQ(*(*points)[1], cv::Point2f(256, 200));   // neck = mid-shoulders
  EXPECT_EQ(*(*points)[2], cv::Point2f(176, 200));   // right shoulder <- COCO 6
  EXPECT_EQ(*(*points)[4], cv::Point2f(90, 370));    // right wrist <- COCO 10
  EXPECT_EQ(*(*points)[7], cv::Point2f(422, 370));   // left wrist <- COCO 9
  EXPECT_EQ(*(*points)[8], cv::Point2f(216, 340));   // right hip <- COCO 12
  EXPECT_EQ(*(*points)[14], cv::Point2f(226, 90));   // right eye <- COCO 2
  EXPECT_EQ(*(*points)[17], cv::Point2f(326, 100));  // left ear <- COCO 3
  v1::Person one_shoulder = Person(CocoLayout());
  one_shoulder.mutable_keypoints(coco::kLeftShoulder)->set_score(0.1f);
  points = ToOpenPose(one_shoulder, Skeleton::kCoco17, 0.3f);
  ASSERT_TRUE(points.ok());
  EXPECT_FALSE((*points)[1].has_value());
  EXPECT_FALSE((*points)[5].has_value());
  EXPECT_TRUE((*points)[2].has_value());
}

TEST(ToOpenPoseTest, RejectsUnknownNamesAndTooManyKeypoints) {
  v1::Person person = Person(CocoLayout());
  person.mutable_keypoints(3)->set_name("tail");
  EXPECT_EQ(ToOpenPose(person, Skeleton::kCoco17, 0.3f).status().code(),
            absl::StatusCode::kInvalidArgument);
  std::vector<cv::Point2f> many(20, cv::Point2f(1, 1));
  v1::Person too_many;
  for (const auto& p : many) {
    auto* k = too_many.add_keypoints();
    k->set_x(p.x);
    k->set_y(p.y);
  }
  EXPECT_EQ(ToOpenPose(too_many, Skeleton::kCoco17, 0.3f).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(RenderOpenPoseTest, EveryVisibleLimbHasItsColourAtItsMidpointAndJointsTheirs) {
  const auto people = People({Person(CocoLayout())});
  const cv::Mat canvas = Render(people);
  ASSERT_EQ(canvas.type(), CV_8UC3);
  ASSERT_EQ(canvas.size(), cv::Size(512, 512));
  auto points = *ToOpenPose(people[0], Skeleton::kCoco17, 0.3f);
  for (int limb = 0; limb < kOpenPoseLimbs; ++limb) {
    const auto [a, b] = OpenPoseLimbs()[limb];
    const cv::Point2f mid = (*points[a] + *points[b]) * 0.5f;
    EXPECT_EQ(At(canvas, mid), OpenPoseLimbColor(limb)) << "limb " << limb;
  }
  for (int joint = 0; joint < kOpenPosePoints; ++joint) {
    EXPECT_EQ(At(canvas, *points[joint]), OpenPoseColors()[joint]) << "joint " << joint;
  }
}

TEST(RenderOpenPoseTest, IsBlackFarFromTheSkeleton) {
  const cv::Mat canvas = Render(People({Person(CocoLayout())}));
  EXPECT_GT(cv::countNonZero(canvas.reshape(1)), 1000);
  // Nothing left of x = 80 (the right wrist at 90 has a radius-4 joint), below y = 506 (the
  // ankles at 500), above y = 80 (the eyes at 90), or in the gap between the legs' ends.
  EXPECT_EQ(cv::countNonZero(canvas(cv::Rect(0, 0, 80, 512)).clone().reshape(1)), 0);
  EXPECT_EQ(cv::countNonZero(canvas(cv::Rect(0, 506, 512, 6)).clone().reshape(1)), 0);
  EXPECT_EQ(cv::countNonZero(canvas(cv::Rect(0, 0, 512, 80)).clone().reshape(1)), 0);
  EXPECT_EQ(cv::countNonZero(canvas(cv::Rect(225, 440, 60, 60)).clone().reshape(1)), 0);
  EXPECT_EQ(cv::countNonZero(canvas(cv::Rect(440, 0, 72, 512)).clone().reshape(1)), 0);
}

TEST(RenderOpenPoseTest, LowScoreJointsAndTheirLimbsAreNotDrawn) {
  v1::Person person = Person(CocoLayout());
  person.mutable_keypoints(coco::kLeftElbow)->set_score(0.29f);
  const cv::Mat canvas = Render(People({person}));
  const auto layout = CocoLayout();
  const cv::Point2f elbow = layout[coco::kLeftElbow];
  EXPECT_EQ(At(canvas, elbow), cv::Vec3b(0, 0, 0));
  EXPECT_EQ(At(canvas, (elbow + layout[coco::kLeftShoulder]) * 0.5f), cv::Vec3b(0, 0, 0));
  EXPECT_EQ(At(canvas, (elbow + layout[coco::kLeftWrist]) * 0.5f), cv::Vec3b(0, 0, 0));
  // The wrist itself is still a joint; the right arm is untouched.
  EXPECT_EQ(At(canvas, layout[coco::kLeftWrist]), OpenPoseColors()[7]);
  EXPECT_EQ(At(canvas, (layout[coco::kRightElbow] + layout[coco::kRightWrist]) * 0.5f),
            OpenPoseLimbColor(3));
}

TEST(RenderOpenPoseTest, NoNeckWithoutBothShoulders) {
  v1::Person person = Person(CocoLayout());
  person.mutable_keypoints(coco::kRightShoulder)->set_score(0.0f);
  const cv::Mat canvas = Render(People({person}));
  const auto layout = CocoLayout();
  const cv::Point2f neck(256, 200);
  EXPECT_EQ(At(canvas, neck), cv::Vec3b(0, 0, 0));
  // Neck -> nose, neck -> hips and neck -> left shoulder are gone with the neck.
  EXPECT_EQ(At(canvas, (neck + layout[coco::kNose]) * 0.5f), cv::Vec3b(0, 0, 0));
  EXPECT_EQ(At(canvas, (neck + layout[coco::kLeftHip]) * 0.5f), cv::Vec3b(0, 0, 0));
  EXPECT_EQ(At(canvas, (neck + layout[coco::kLeftShoulder]) * 0.5f), cv::Vec3b(0, 0, 0));
  EXPECT_EQ(At(canvas, layout[coco::kLeftShoulder]), OpenPoseColors()[5]);
}

TEST(RenderOpenPoseTest, BlazePoseAndNamedKeypointsDrawTheSameSkeleton) {
  const cv::Mat expected = Render(People({Person(CocoLayout())}));
  // The same body as 33 BlazePose points (unmapped ones far away and invisible).
  const auto coco_points = CocoLayout();
  std::vector<cv::Point2f> blaze_points(33, cv::Point2f(5, 5));
  v1::Person blaze = Person(blaze_points, 0.0f, Skeleton::kBlazePose33);
  const std::pair<int, int> pairs[] = {{blaze::kNose, coco::kNose},
                                       {blaze::kLeftEye, coco::kLeftEye},
                                       {blaze::kRightEye, coco::kRightEye},
                                       {blaze::kLeftEar, coco::kLeftEar},
                                       {blaze::kRightEar, coco::kRightEar},
                                       {blaze::kLeftShoulder, coco::kLeftShoulder},
                                       {blaze::kRightShoulder, coco::kRightShoulder},
                                       {blaze::kLeftElbow, coco::kLeftElbow},
                                       {blaze::kRightElbow, coco::kRightElbow},
                                       {blaze::kLeftWrist, coco::kLeftWrist},
                                       {blaze::kRightWrist, coco::kRightWrist},
                                       {blaze::kLeftHip, coco::kLeftHip},
                                       {blaze::kRightHip, coco::kRightHip},
                                       {blaze::kLeftKnee, coco::kLeftKnee},
                                       {blaze::kRightKnee, coco::kRightKnee},
                                       {blaze::kLeftAnkle, coco::kLeftAnkle},
                                       {blaze::kRightAnkle, coco::kRightAnkle}};
  for (auto [b, c] : pairs) {
    blaze.mutable_keypoints(b)->set_x(coco_points[c].x);
    blaze.mutable_keypoints(b)->set_y(coco_points[c].y);
    blaze.mutable_keypoints(b)->set_score(0.9f);
  }
  const cv::Mat from_blaze = Render(People({blaze}), Skeleton::kBlazePose33);
  EXPECT_EQ(cv::norm(from_blaze, expected, cv::NORM_INF), 0);
  // COCO keypoints by name, in reverse order.
  v1::Person reversed;
  const v1::Person ordered = Person(CocoLayout());
  for (int i = ordered.keypoints_size() - 1; i >= 0; --i)
    *reversed.add_keypoints() = ordered.keypoints(i);
  EXPECT_EQ(cv::norm(Render(People({reversed})), expected, cv::NORM_INF), 0);
}

TEST(RenderOpenPoseTest, DrawsEveryPerson) {
  std::vector<cv::Point2f> small = CocoLayout();
  for (auto& p : small) p = p * 0.5f;
  std::vector<cv::Point2f> shifted = small;
  for (auto& p : shifted) p += cv::Point2f(256, 256);
  const cv::Mat canvas = Render(People({Person(small), Person(shifted)}));
  EXPECT_EQ(At(canvas, small[coco::kNose]), OpenPoseColors()[0]);
  EXPECT_EQ(At(canvas, shifted[coco::kNose]), OpenPoseColors()[0]);
  EXPECT_EQ(At(canvas, shifted[coco::kRightAnkle]), OpenPoseColors()[10]);
}

TEST(RenderOpenPoseTest, BadSizesAndWildCoordinatesAreHandled) {
  const auto people = People({Person(CocoLayout())});
  EXPECT_EQ(RenderOpenPose(0, 10, people, Skeleton::kCoco17, 0.3f).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RenderOpenPose(20000, 10, people, Skeleton::kCoco17, 0.3f).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(RenderOpenPose(10000, 10000, people, Skeleton::kCoco17, 0.3f).status().code(),
            absl::StatusCode::kResourceExhausted);
  // A tiny canvas clips the drawing; huge and non-finite coordinates are dropped, not drawn.
  ASSERT_TRUE(RenderOpenPose(1, 1, people, Skeleton::kCoco17, 0.3f).ok());
  v1::Person wild = Person(CocoLayout());
  wild.mutable_keypoints(coco::kLeftWrist)->set_x(1e9f);
  wild.mutable_keypoints(coco::kRightWrist)->set_y(std::numeric_limits<float>::quiet_NaN());
  wild.mutable_keypoints(coco::kNose)->set_x(-3e38f);
  auto canvas = RenderOpenPose(512, 512, People({wild}), Skeleton::kCoco17, 0.3f);
  ASSERT_TRUE(canvas.ok()) << canvas.status();
  const auto layout = CocoLayout();
  EXPECT_EQ(At(*canvas, layout[coco::kLeftElbow]), OpenPoseColors()[6]);
  EXPECT_EQ(At(*canvas, (layout[coco::kLeftElbow] + layout[coco::kLeftWrist]) * 0.5f),
            cv::Vec3b(0, 0, 0));
  // No people: an all-black map.
  auto empty = RenderOpenPose(64, 32, {}, Skeleton::kCoco17, 0.3f);
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->size(), cv::Size(64, 32));
  EXPECT_EQ(cv::countNonZero(empty->reshape(1)), 0);
}

}  // namespace
}  // namespace imginterp::pose
