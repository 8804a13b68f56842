// The pose handler with the real imported TorchScript models on sample photos. Skips when the
// model or photo is missing (fails under CI=true).
//
// Person regions, read off the photos (pixels, x1,y1-x2,y2), with a margin of ~10 px:
//   astronaut.png (512x512): the astronaut's head, suit and arms fill x 15..365, y 10..512
//     (the helmet she holds at the bottom right is not part of her) -> [0,0]-[400,512];
//     face around x 170..280, y 60..180.
//   person.jpg (640x424): a person seen from behind, head turned right, standing between a dog
//     and a horse: hat top y ~100, boots y ~375, blue jacket and arms x 190..275 ->
//     [180,90]-[285,385] (the detect service's person box should be close to this).
#include <torch/types.h>

#include <fstream>
#include <iostream>
#include <sstream>

#include "gtest/gtest.h"
#include "services/core/model/model_repository.h"
#include "services/core/model/torchscript_runner.h"
#include "services/pose/pose_decode.h"
#include "services/pose/pose_handler.h"
#include "tests/support/assets.h"

namespace imginterp::pose {
namespace {

struct Region {
  float x1, y1, x2, y2;
  bool Contains(float x, float y) const { return x >= x1 && x <= x2 && y >= y1 && y <= y2; }
};
constexpr Region kAstronaut{0, 0, 400, 512};
constexpr Region kAstronautFace{170, 60, 280, 180};
constexpr Region kPersonJpg{180, 90, 285, 385};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::unique_ptr<service::ModelInstance> LoadModel(const std::string& name) {
  auto repository = model::ModelRepository::Create({test_support::FamilyRepository("pose")});
  EXPECT_TRUE(repository.ok()) << repository.status();
  if (!repository.ok()) return nullptr;
  auto version = (*repository)->Resolve(name, 0);
  EXPECT_TRUE(version.ok()) << version.status();
  if (!version.ok()) return nullptr;
  model::TorchScriptOptions options;
  options.intra_op_threads = 2;
  auto runner = model::TorchScriptRunner::Load(version->version_dir + "/model.pt", options);
  EXPECT_TRUE(runner.ok()) << runner.status();
  if (!runner.ok()) return nullptr;
  service::ModelLoadInfo info;
  info.name = name;
  info.version = version->version;
  info.config = version->config;
  info.version_dir = version->version_dir;
  auto instance = PoseHandler().CreateInstance(info, *std::move(runner));
  EXPECT_TRUE(instance.ok()) << instance.status();
  return instance.ok() ? *std::move(instance) : nullptr;
}

absl::StatusOr<v1::PoseResponse> Estimate(service::ModelInstance& instance,
                                          const std::string& sample) {
  v1::PoseRequest request;
  request.mutable_image()->set_data(ReadFile(test_support::SamplesDir() + "/" + sample));
  v1::PoseResponse response;
  service::WorkItem item;
  item.request = &request;
  item.response = &response;
  instance.RunBatch({&item});
  if (!item.status.ok()) return item.status;
  return response;
}

const v1::Keypoint& Point(const v1::Person& person, const std::string& name) {
  for (const auto& k : person.keypoints()) {
    if (k.name() == name) return k;
  }
  static const v1::Keypoint kMissing;
  ADD_FAILURE() << "no keypoint " << name;
  return kMissing;
}

void Print(const std::string& what, const v1::Person& person) {
  std::cout << what << ": score " << person.score() << ", box (" << person.box().x1() << ","
            << person.box().y1() << ")-(" << person.box().x2() << "," << person.box().y2() << ")\n";
  for (const auto& k : person.keypoints()) {
    std::cout << "  " << k.name() << " (" << k.x() << ", " << k.y() << ") " << k.score() << "\n";
  }
}

void ExpectVisibleKeypointsInside(const v1::Person& person, const Region& region) {
  int visible = 0;
  for (const auto& k : person.keypoints()) {
    if (k.score() <= 0.3f) continue;
    ++visible;
    EXPECT_TRUE(region.Contains(k.x(), k.y()))
        << k.name() << " at (" << k.x() << ", " << k.y() << ") score " << k.score();
  }
  EXPECT_GE(visible, 5);
}

// One upright person facing the camera: nose in the face, shoulders below it, the person's
// left shoulder on the image's right.
void ExpectAstronaut(const v1::PoseResponse& response) {
  ASSERT_EQ(response.people_size(), 1);
  const v1::Person& person = response.people(0);
  const v1::Keypoint& nose = Point(person, "nose");
  EXPECT_GT(nose.score(), 0.3f);
  EXPECT_TRUE(kAstronautFace.Contains(nose.x(), nose.y())) << nose.x() << ", " << nose.y();
  const v1::Keypoint& left = Point(person, "left_shoulder");
  const v1::Keypoint& right = Point(person, "right_shoulder");
  EXPECT_GT(left.score(), 0.3f);
  EXPECT_GT(right.score(), 0.3f);
  EXPECT_GT(left.x(), right.x());
  EXPECT_GT(left.y(), nose.y());
  EXPECT_GT(right.y(), nose.y());
  EXPECT_LT(std::max(left.y(), right.y()), 350);
  ExpectVisibleKeypointsInside(person, kAstronaut);
  EXPECT_EQ(response.openpose_map().image().width(), 512);
}

// person.jpg: one standing person seen from behind: shoulders above hips above ankles, the
// head (whichever of nose, eyes and ears is visible) above the shoulders.
void ExpectPersonJpg(const v1::Person& person) {
  for (const char* side : {"left", "right"}) {
    const std::string prefix = side;
    const v1::Keypoint& shoulder = Point(person, prefix + "_shoulder");
    const v1::Keypoint& hip = Point(person, prefix + "_hip");
    const v1::Keypoint& ankle = Point(person, prefix + "_ankle");
    EXPECT_GT(shoulder.score(), 0.3f) << side;
    EXPECT_GT(hip.score(), 0.3f) << side;
    EXPECT_LT(shoulder.y(), hip.y()) << side;
    EXPECT_LT(hip.y(), ankle.y()) << side;
    for (const char* head : {"nose", "left_eye", "right_eye", "left_ear", "right_ear"}) {
      const v1::Keypoint& k = Point(person, head);
      if (k.score() > 0.3f) {
        EXPECT_LT(k.y(), shoulder.y()) << head;
      }
    }
  }
  ExpectVisibleKeypointsInside(person, kPersonJpg);
}

class RealPoseModelTest : public ::testing::TestWithParam<std::string> {};

TEST_P(RealPoseModelTest, FindsTheAstronaut) {
  IMGINTERP_REQUIRE_IMPORTED_MODEL("pose", GetParam());
  IMGINTERP_REQUIRE_SAMPLE("astronaut.png");
  auto instance = LoadModel(GetParam());
  ASSERT_NE(instance, nullptr);
  auto response = Estimate(*instance, "astronaut.png");
  ASSERT_TRUE(response.ok()) << response.status();
  for (const auto& person : response->people()) Print(GetParam() + " astronaut.png", person);
  ExpectAstronaut(*response);
}

TEST_P(RealPoseModelTest, FindsThePersonInPersonJpg) {
  IMGINTERP_REQUIRE_IMPORTED_MODEL("pose", GetParam());
  IMGINTERP_REQUIRE_SAMPLE("person.jpg");
  auto instance = LoadModel(GetParam());
  ASSERT_NE(instance, nullptr);
  auto response = Estimate(*instance, "person.jpg");
  ASSERT_TRUE(response.ok()) << response.status();
  for (const auto& person : response->people()) Print(GetParam() + " person.jpg", person);
  ASSERT_GE(response->people_size(), 1);
  ExpectPersonJpg(response->people(0));
  EXPECT_EQ(response->openpose_map().image().width(), 640);
  EXPECT_EQ(response->openpose_map().image().height(), 424);
}

INSTANTIATE_TEST_SUITE_P(Models, RealPoseModelTest,
                         ::testing::Values("movenet-lightning", "movenet-thunder",
                                           "movenet-multipose", "blazepose-lite", "blazepose-full",
                                           "blazepose-heavy"),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& c : name) {
                             if (c == '-') c = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace imginterp::pose
