#include "services/pose/pose_decode.h"

#include <cmath>
#include <opencv2/imgproc.hpp>

#include "gtest/gtest.h"

namespace imginterp::pose {
namespace {

v1::Person CocoPerson(const std::vector<cv::Point2f>& points, float score = 0.9f) {
  v1::Person person;
  for (size_t i = 0; i < points.size(); ++i) {
    auto* k = person.add_keypoints();
    k->set_name(KeypointNames(Skeleton::kCoco17)[i]);
    k->set_x(points[i].x);
    k->set_y(points[i].y);
    k->set_score(score);
  }
  return person;
}

// A person standing upright in a 400x600 image (COCO order).
std::vector<cv::Point2f> StandingPerson() {
  return {{200, 200}, {195, 195}, {205, 195}, {190, 200}, {210, 200},  // face
          {220, 250}, {180, 250},                                      // shoulders (l, r)
          {230, 320}, {170, 320}, {235, 380}, {165, 380},              // elbows, wrists
          {210, 400}, {190, 400},                                      // hips
          {210, 480}, {190, 480}, {210, 560}, {190, 560}};             // knees, ankles
}

TEST(SkeletonTest, NamesAndParsing) {
  ASSERT_EQ(KeypointNames(Skeleton::kCoco17).size(), 17u);
  ASSERT_EQ(KeypointNames(Skeleton::kBlazePose33).size(), 33u);
  EXPECT_EQ(KeypointNames(Skeleton::kCoco17)[coco::kLeftShoulder], "left_shoulder");
  EXPECT_EQ(KeypointNames(Skeleton::kCoco17)[coco::kRightAnkle], "right_ankle");
  EXPECT_EQ(KeypointNames(Skeleton::kBlazePose33)[blaze::kRightHip], "right_hip");
  EXPECT_EQ(KeypointNames(Skeleton::kBlazePose33)[blaze::kLeftEar], "left_ear");
  EXPECT_EQ(KeypointNames(Skeleton::kBlazePose33)[32], "right_foot_index");
  EXPECT_EQ(*ParseSkeleton(""), Skeleton::kCoco17);
  EXPECT_EQ(*ParseSkeleton("blazepose33"), Skeleton::kBlazePose33);
  EXPECT_EQ(ParseSkeleton("body25").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(LetterboxTest, PadsTheShorterSideEquallyAndMapsBothWays) {
  const SquareRegion wide = LetterboxRegion(640, 424);
  EXPECT_DOUBLE_EQ(wide.side, 640);
  EXPECT_DOUBLE_EQ(wide.x, 0);
  EXPECT_DOUBLE_EQ(wide.y, -108);
  const SquareRegion tall = LetterboxRegion(100, 300);
  EXPECT_DOUBLE_EQ(tall.x, -100);
  EXPECT_DOUBLE_EQ(tall.y, 0);
  // The image centre is the model input's centre; the top-left pixel sits below the bar.
  EXPECT_NEAR(ToImage(wide, 0.5, 0.5).x, 320, 1e-9);
  EXPECT_NEAR(ToImage(wide, 0.5, 0.5).y, 212, 1e-9);
  EXPECT_NEAR(ToModel(wide, 0, 0).y, 108.0 / 640, 1e-12);
  for (const cv::Point2d p :
       {cv::Point2d(0, 0), cv::Point2d(639, 423), cv::Point2d(17.25, 300.5)}) {
    const cv::Point2d m = ToModel(wide, p.x, p.y);
    const cv::Point2d back = ToImage(wide, m.x, m.y);
    EXPECT_NEAR(back.x, p.x, 1e-9);
    EXPECT_NEAR(back.y, p.y, 1e-9);
  }
}

TEST(ExtractRegionTest, LetterboxedInputPutsPixelsWhereTheMappingSays) {
  // 200x100 grey image with a white 4x4 dot centred on (150, 30).
  cv::Mat rgb(100, 200, CV_8UC3, cv::Scalar(60, 60, 60));
  cv::rectangle(rgb, cv::Rect(148, 28, 4, 4), cv::Scalar(255, 255, 255), cv::FILLED);
  const SquareRegion region = LetterboxRegion(200, 100);
  auto input = ExtractRegion(rgb, region, 100);
  ASSERT_TRUE(input.ok()) << input.status();
  ASSERT_EQ(input->size(), cv::Size(100, 100));
  ASSERT_EQ(input->type(), CV_8UC3);
  // Bars of 25 rows above and below are black; the image is grey in between.
  EXPECT_EQ((*input)(cv::Rect(0, 0, 100, 24)).clone().reshape(1).at<uint8_t>(0), 0);
  EXPECT_EQ(cv::countNonZero((*input)(cv::Rect(0, 0, 100, 24)).clone().reshape(1)), 0);
  EXPECT_EQ(cv::countNonZero((*input)(cv::Rect(0, 76, 100, 24)).clone().reshape(1)), 0);
  EXPECT_EQ(input->at<cv::Vec3b>(50, 10)[0], 60);
  // The dot lands at (75, 40) in the input, and maps back to (150, 30).
  cv::Mat gray;
  cv::cvtColor(*input, gray, cv::COLOR_RGB2GRAY);
  cv::Point brightest;
  cv::minMaxLoc(gray, nullptr, nullptr, nullptr, &brightest);
  EXPECT_NEAR(brightest.x, 75, 1);
  EXPECT_NEAR(brightest.y, 40, 1);
  const cv::Point2d back = ToImage(region, (brightest.x + 0.5) / 100, (brightest.y + 0.5) / 100);
  EXPECT_NEAR(back.x, 150, 2);
  EXPECT_NEAR(back.y, 30, 2);
}

TEST(ExtractRegionTest, CropReachingOutsideTheImageIsBlackThere) {
  cv::Mat rgb(100, 100, CV_8UC3, cv::Scalar(200, 100, 50));
  auto input = ExtractRegion(rgb, SquareRegion{-50, -50, 100}, 50);
  ASSERT_TRUE(input.ok());
  // Top-left quarter is outside the image.
  EXPECT_EQ(cv::countNonZero((*input)(cv::Rect(0, 0, 24, 24)).clone().reshape(1)), 0);
  EXPECT_EQ(input->at<cv::Vec3b>(40, 40), cv::Vec3b(200, 100, 50));
  EXPECT_EQ(input->at<cv::Vec3b>(10, 40), cv::Vec3b(0, 0, 0));
  // Entirely outside: all black, not an error.
  auto outside = ExtractRegion(rgb, SquareRegion{500, 500, 10}, 8);
  ASSERT_TRUE(outside.ok());
  EXPECT_EQ(cv::countNonZero(outside->reshape(1)), 0);
  EXPECT_EQ(ExtractRegion(rgb, SquareRegion{0, 0, 0}, 8).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ExtractRegion(cv::Mat(), SquareRegion{}, 8).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ExtractRegionTest, ExtremeAspectRatiosAndTinyImagesWork) {
  auto tiny =
      ExtractRegion(cv::Mat(1, 1, CV_8UC3, cv::Scalar(9, 9, 9)), LetterboxRegion(1, 1), 192);
  ASSERT_TRUE(tiny.ok());
  EXPECT_EQ(tiny->at<cv::Vec3b>(96, 96), cv::Vec3b(9, 9, 9));
  auto strip = ExtractRegion(cv::Mat(100, 10000, CV_8UC3, cv::Scalar(7, 7, 7)),
                             LetterboxRegion(10000, 100), 192);
  ASSERT_TRUE(strip.ok());
  EXPECT_EQ(strip->at<cv::Vec3b>(96, 96), cv::Vec3b(7, 7, 7));
  EXPECT_EQ(strip->at<cv::Vec3b>(10, 96), cv::Vec3b(0, 0, 0));
}

TEST(CropRegionTest, SquareAroundTheHipsSizedByTorsoAndBody) {
  const v1::Person person = CocoPerson(StandingPerson());
  // Centre (200, 400). Torso extent: y 150 (shoulders) -> 285; body extent: y 200 (nose) ->
  // 240; x is smaller. 285 is below both the largest edge distance (400) and half the longer
  // image side (300).
  const SquareRegion crop = CropRegion(person, kCocoTorso, 400, 600);
  EXPECT_NEAR(crop.side, 570, 1e-6);
  EXPECT_NEAR(crop.x, 200 - 285, 1e-6);
  EXPECT_NEAR(crop.y, 400 - 285, 1e-6);
}

TEST(CropRegionTest, FallsBackToTheLetterboxWithoutATorsoOrWhenTooLarge) {
  std::vector<cv::Point2f> points = StandingPerson();
  v1::Person no_hips = CocoPerson(points);
  no_hips.mutable_keypoints(coco::kLeftHip)->set_score(0.1f);
  no_hips.mutable_keypoints(coco::kRightHip)->set_score(0.1f);
  const SquareRegion letterbox = LetterboxRegion(400, 600);
  SquareRegion crop = CropRegion(no_hips, kCocoTorso, 400, 600);
  EXPECT_DOUBLE_EQ(crop.side, letterbox.side);
  EXPECT_DOUBLE_EQ(crop.x, letterbox.x);
  // The same person in a 400x400 image: 285 > 200 = half the longer side.
  crop = CropRegion(CocoPerson(points), kCocoTorso, 400, 400);
  EXPECT_DOUBLE_EQ(crop.side, 400);
  // Too few keypoints for the torso indices.
  crop = CropRegion(CocoPerson({{1, 1}}), kCocoTorso, 400, 600);
  EXPECT_DOUBLE_EQ(crop.side, letterbox.side);
}

TEST(CropRegionTest, MayReachOutsideTheImageButNeverExceedsTheLetterbox) {
  // A small torso near the top-left corner of a 1000x1000 image.
  std::vector<cv::Point2f> points(17, cv::Point2f(50, 50));
  points[coco::kLeftShoulder] = {55, 40};
  points[coco::kRightShoulder] = {45, 40};
  points[coco::kNose] = {250, 50};  // body extent 200 -> half 240
  const SquareRegion crop = CropRegion(CocoPerson(points), kCocoTorso, 1000, 1000);
  EXPECT_NEAR(crop.side, 480, 1e-6);
  EXPECT_NEAR(crop.x, 50 - 240, 1e-6);  // left of the image: black in the model input
  EXPECT_NEAR(crop.y, 50 - 240, 1e-6);
  // A visible point far away: 1.2 x 500 = 600 is more than half the image side.
  points[coco::kNose] = {550, 50};
  const SquareRegion large = CropRegion(CocoPerson(points), kCocoTorso, 1000, 1000);
  EXPECT_DOUBLE_EQ(large.side, 1000);
  EXPECT_DOUBLE_EQ(large.x, 0);
}

TEST(DecodeMoveNetSingleTest, MapsNormalisedYxScoreToOriginalPixels) {
  std::vector<float> output;
  for (int i = 0; i < 17; ++i) {
    output.push_back(0.2f + 0.03f * i);      // y
    output.push_back(0.5f - 0.01f * i);      // x
    output.push_back(i < 10 ? 0.8f : 0.1f);  // score
  }
  const SquareRegion region = LetterboxRegion(640, 424);
  auto person = DecodeMoveNetSingle(output, region, 640, 424, 0.3f);
  ASSERT_TRUE(person.ok()) << person.status();
  ASSERT_EQ(person->keypoints_size(), 17);
  EXPECT_EQ(person->keypoints(0).name(), "nose");
  EXPECT_NEAR(person->keypoints(0).x(), 0.5 * 640, 1e-3);
  EXPECT_NEAR(person->keypoints(0).y(), -108 + 0.2 * 640, 1e-3);
  EXPECT_NEAR(person->keypoints(16).x(), (0.5 - 0.16) * 640, 1e-3);
  EXPECT_FLOAT_EQ(person->keypoints(16).score(), 0.1f);
  EXPECT_NEAR(person->score(), 0.8f, 1e-6);  // mean of the visible ones
  // Box around the ten visible keypoints.
  EXPECT_NEAR(person->box().x1(), (0.5 - 0.09) * 640, 1e-3);
  EXPECT_NEAR(person->box().x2(), 0.5 * 640, 1e-3);
  EXPECT_NEAR(person->box().y1(), -108 + 0.2 * 640, 1e-3);
  EXPECT_NEAR(person->box().y2(), -108 + 0.47 * 640, 1e-3);
  EXPECT_EQ(DecodeMoveNetSingle(std::vector<float>(50), region, 640, 424, 0.3f).status().code(),
            absl::StatusCode::kInternal);
}

TEST(DecodeMoveNetMultiTest, KeepsPeopleAboveTheThresholdBestFirstWithTheirBoxes) {
  std::vector<float> output(6 * 56, 0.0f);
  auto set_person = [&](int row, float score, float ymin, float xmin, float ymax, float xmax) {
    float* p = output.data() + 56 * row;
    for (int i = 0; i < 17; ++i) {
      p[3 * i] = (ymin + ymax) / 2;
      p[3 * i + 1] = (xmin + xmax) / 2;
      p[3 * i + 2] = 0.7f;
    }
    p[51] = ymin;
    p[52] = xmin;
    p[53] = ymax;
    p[54] = xmax;
    p[55] = score;
  };
  set_person(0, 0.2f, 0.1f, 0.1f, 0.2f, 0.2f);  // below the threshold
  set_person(1, 0.6f, 0.3f, 0.1f, 0.9f, 0.4f);
  set_person(2, 0.9f, 0.2f, 0.5f, 0.95f, 1.2f);  // box reaches past the right edge
  const SquareRegion region = LetterboxRegion(640, 424);
  auto people = DecodeMoveNetMulti(output, region, 640, 424, 0.3f);
  ASSERT_TRUE(people.ok()) << people.status();
  ASSERT_EQ(people->size(), 2u);
  EXPECT_FLOAT_EQ((*people)[0].score(), 0.9f);
  EXPECT_FLOAT_EQ((*people)[1].score(), 0.6f);
  EXPECT_NEAR((*people)[0].box().x1(), 0.5 * 640, 1e-3);
  EXPECT_NEAR((*people)[0].box().x2(), 640, 1e-3);  // clamped
  EXPECT_NEAR((*people)[0].box().y1(), -108 + 0.2 * 640, 1e-3);
  EXPECT_NEAR((*people)[1].box().y2(), 424, 1e-3);  // -108 + 0.9 * 640 = 468 -> clamped
  EXPECT_NEAR((*people)[1].keypoints(5).x(), 0.25 * 640, 1e-3);
  EXPECT_EQ(DecodeMoveNetMulti(std::vector<float>(55), region, 640, 424, 0.3f).status().code(),
            absl::StatusCode::kInternal);
}

TEST(DecodeBlazePoseTest, LandmarksInInputPixelsMapThroughTheCropWithSigmoidScores) {
  std::vector<float> output;
  for (int i = 0; i < 39; ++i) {
    for (float v : {10.0f + i, 100.0f + 2 * i, 4.0f, 2.0f, 3.0f}) output.push_back(v);
  }
  const SquareRegion crop{50, 60, 128};
  auto person = DecodeBlazePose(output, 0.7f, 256, crop, 640, 424, 0.3f);
  ASSERT_TRUE(person.ok()) << person.status();
  ASSERT_EQ(person->keypoints_size(), 33);
  EXPECT_EQ(person->keypoints(blaze::kRightHip).name(), "right_hip");
  EXPECT_NEAR(person->keypoints(0).x(), 50 + 10.0 / 256 * 128, 1e-4);
  EXPECT_NEAR(person->keypoints(32).y(), 60 + 164.0 / 256 * 128, 1e-4);
  EXPECT_NEAR(person->keypoints(3).z(), 4.0 / 256 * 128, 1e-5);
  const double expected = 1 / (1 + std::exp(-2.0)) * 1 / (1 + std::exp(-3.0));
  EXPECT_NEAR(person->keypoints(7).score(), expected, 1e-6);
  EXPECT_FLOAT_EQ(person->score(), 0.7f);
  EXPECT_NEAR(person->box().x1(), 50 + 10.0 / 256 * 128, 1e-3);
  EXPECT_NEAR(person->box().x2(), 50 + 42.0 / 256 * 128, 1e-3);
  EXPECT_EQ(
      DecodeBlazePose(std::vector<float>(117), 0.7f, 256, crop, 640, 424, 0.3f).status().code(),
      absl::StatusCode::kInternal);
}

TEST(BoxAroundKeypointsTest, EmptyWhenNothingIsVisibleAndClampedOtherwise) {
  v1::Person person = CocoPerson({{-20, 10}, {50, 500}}, 0.9f);
  const v1::Box box = BoxAroundKeypoints(person, 100, 200, 0.3f);
  EXPECT_FLOAT_EQ(box.x1(), 0);
  EXPECT_FLOAT_EQ(box.y1(), 10);
  EXPECT_FLOAT_EQ(box.x2(), 50);
  EXPECT_FLOAT_EQ(box.y2(), 200);
  const v1::Box none = BoxAroundKeypoints(person, 100, 200, 0.95f);
  EXPECT_FLOAT_EQ(none.x2(), 0);
  EXPECT_FLOAT_EQ(none.y2(), 0);
}

}  // namespace
}  // namespace imginterp::pose
