#include "tests/unit/clip_service/tiny_clip_store.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <opencv2/imgproc.hpp>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "google/protobuf/text_format.h"
#include "services/core/codec/image_codec.h"
#include "tests/support/process.h"

namespace imginterp::clip_service::testing {
namespace {

struct Store {
  std::string root;
  absl::Status status;
  ~Store() {
    if (!root.empty()) test_support::RemoveTree(root);
  }
};

Store& TheStore() {
  static Store store;
  static std::once_flag once;
  std::call_once(once, [] {
    store.root = test_support::MakeTempDir("clip-service-test");
    const std::string command = absl::StrCat("python3 ", IMGINTERP_MAKE_TINY_SET, " --store ",
                                             store.root, " > ", store.root, "/make.log 2>&1");
    if (store.root.empty() || std::system(command.c_str()) != 0) {
      std::ifstream log(store.root + "/make.log");
      std::stringstream text;
      text << log.rdbuf();
      store.status =
          absl::FailedPreconditionError(absl::StrCat("`", command, "` failed: ", text.str()));
    }
  });
  return store;
}

}  // namespace

absl::StatusOr<std::string> TinyClipModelDir() {
  Store& store = TheStore();
  if (!store.status.ok()) return store.status;
  return store.root + "/clip/tiny-clip";
}

absl::StatusOr<v1::ModelConfig> TinyClipConfig() {
  auto dir = TinyClipModelDir();
  if (!dir.ok()) return dir.status();
  std::ifstream in(*dir + "/config.pbtxt");
  std::stringstream text;
  text << in.rdbuf();
  v1::ModelConfig config;
  if (!google::protobuf::TextFormat::ParseFromString(text.str(), &config)) {
    return absl::InvalidArgumentError("cannot parse " + *dir + "/config.pbtxt");
  }
  return config;
}

std::string MakePng(int width, int height, int seed) {
  cv::Mat rgb(height, width, CV_8UC3, cv::Scalar(20 + 37 * seed % 200, 40 + 11 * seed % 150, 60));
  cv::circle(rgb, cv::Point(width / 3 + seed % 7, height / 2), std::max(3, height / 5),
             cv::Scalar(250, 200 - 13 * seed % 150, 30), cv::FILLED);
  cv::rectangle(rgb,
                cv::Rect(width / 2, height / 4, std::max(2, width / 4), std::max(2, height / 3)),
                cv::Scalar(30, 220, 120 + 29 * seed % 100), cv::FILLED);
  return *codec::EncodePng(rgb);
}

}  // namespace imginterp::clip_service::testing
