// Model services on their own (typed API, KServe v2, metrics), as real processes.
#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <future>
#include <opencv2/core.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "imginterp/v1/classify.grpc.pb.h"
#include "imginterp/v1/edges.grpc.pb.h"
#include "services/core/codec/image_codec.h"
#include "tests/integration/stack.h"

namespace imginterp::integration {
namespace {

// A PNG whose header claims 50000x50000 pixels: a decompression bomb's signature.
std::string BombPng() {
  std::string png = *codec::EncodePng(cv::Mat(4, 4, CV_8UC3, cv::Scalar(1, 2, 3)));
  // IHDR data starts at byte 16: width then height, big-endian.
  for (int offset : {16, 20}) {
    png[offset] = 0;
    png[offset + 1] = 0;
    png[offset + 2] = static_cast<char>(50000 >> 8);
    png[offset + 3] = static_cast<char>(50000 & 0xff);
  }
  return png;
}

TEST(EdgesServiceTest, BadInputGetsAClearStatusAndNothingCrashes) {
  Stack stack;
  auto edges = stack.StartService("edges", {"--nats_url="});
  ASSERT_TRUE(edges.ok()) << edges.status();
  auto stub = v1::EdgesService::NewStub(Stack::Channel((*edges)->address()));
  const std::string good = MakePng(64, 64, 1);
  const std::string jpeg = *codec::EncodeJpeg(cv::Mat(64, 64, CV_8UC3, cv::Scalar(9, 99, 199)));
  struct Case {
    std::string name;
    std::string model;
    int64_t version;
    std::string image;
    grpc::StatusCode code;
    std::string mentions;
  };
  const Case cases[] = {
      {"empty bytes", "canny", 0, "", grpc::StatusCode::INVALID_ARGUMENT, "empty"},
      {"truncated png", "canny", 0, good.substr(0, good.size() / 2),
       grpc::StatusCode::INVALID_ARGUMENT, "PNG"},
      {"truncated jpeg", "canny", 0, jpeg.substr(0, jpeg.size() / 2),
       grpc::StatusCode::INVALID_ARGUMENT, "JPEG"},
      {"not an image", "canny", 0, "hello, I am text", grpc::StatusCode::INVALID_ARGUMENT, "image"},
      {"50000x50000 header", "canny", 0, BombPng(), grpc::StatusCode::RESOURCE_EXHAUSTED,
       "50000x50000"},
      {"unknown model", "hed", 0, good, grpc::StatusCode::NOT_FOUND, "hed"},
      {"unknown version", "canny", 7, good, grpc::StatusCode::NOT_FOUND, "version 7"},
  };
  for (const Case& c : cases) {
    grpc::ClientContext context;
    v1::EdgesRequest request;
    request.mutable_model()->set_name(c.model);
    request.mutable_model()->set_version(c.version);
    request.mutable_image()->set_data(c.image);
    v1::EdgesResponse response;
    grpc::Status status = stub->Detect(&context, request, &response);
    EXPECT_EQ(status.error_code(), c.code) << c.name << ": " << status.error_message();
    EXPECT_NE(status.error_message().find(c.mentions), std::string::npos)
        << c.name << ": " << status.error_message();
  }
  // Still serving, and answering correctly.
  grpc::ClientContext context;
  v1::EdgesRequest request;
  request.mutable_image()->set_data(good);
  v1::EdgesResponse response;
  ASSERT_TRUE(stub->Detect(&context, request, &response).ok());
  EXPECT_EQ(response.model().name(), "canny");
  EXPECT_EQ(response.map().image().width(), 64);
  EXPECT_TRUE((*edges)->child->Running());
}

class ClassifyServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto classify = stack_.StartService("classify", {"--nats_url="});
    ASSERT_TRUE(classify.ok()) << classify.status();
    classify_ = *classify;
    stub_ = v1::ClassifyService::NewStub(Stack::Channel(classify_->address()));
  }

  v1::ClassifyResponse Classify(const std::string& png) {
    grpc::ClientContext context;
    v1::ClassifyRequest request;
    request.mutable_model()->set_name("squeezenet");
    request.mutable_image()->set_data(png);
    request.set_top_k(3);
    v1::ClassifyResponse response;
    grpc::Status status = stub_->Classify(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  Stack stack_;
  Process* classify_ = nullptr;
  std::unique_ptr<v1::ClassifyService::Stub> stub_;
};

// Sum of a metric's samples whose label set contains every `must` substring.
double Metric(const std::string& text, const std::string& name,
              const std::vector<std::string>& must) {
  double sum = 0;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind(name, 0) != 0) continue;
    const char next = line.size() > name.size() ? line[name.size()] : ' ';
    if (next != '{' && next != ' ') continue;
    bool ok = true;
    for (const auto& m : must) ok &= line.find(m) != std::string::npos;
    if (ok) sum += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return sum;
}

TEST_F(ClassifyServiceTest, ConcurrentRequestsAreBatchedAndEachCallerGetsItsOwnAnswer) {
  constexpr int kCallers = 8;
  std::vector<std::string> images;
  std::vector<v1::ClassifyResponse> alone;
  for (int i = 0; i < kCallers; ++i) {
    images.push_back(MakePng(200 + 10 * i, 180, 17 * i + 3));
    alone.push_back(Classify(images.back()));
  }
  const double batches_before = Metric(HttpGet(classify_->metrics_port, "/metrics"),
                                       "imginterp_batch_size_count", {"squeezenet"});
  // Several rounds of 8 simultaneous callers.
  for (int round = 0; round < 3; ++round) {
    std::vector<std::future<v1::ClassifyResponse>> together;
    for (int i = 0; i < kCallers; ++i) {
      together.push_back(std::async(std::launch::async, [&, i] { return Classify(images[i]); }));
    }
    for (int i = 0; i < kCallers; ++i) {
      v1::ClassifyResponse response = together[i].get();
      ASSERT_EQ(response.classes_size(), 3);
      for (int k = 0; k < 3; ++k) {
        EXPECT_EQ(response.classes(k).class_id(), alone[i].classes(k).class_id()) << i;
        EXPECT_NEAR(response.classes(k).score(), alone[i].classes(k).score(), 1e-4) << i;
      }
    }
  }
  const std::string metrics = HttpGet(classify_->metrics_port, "/metrics");
  const double batches =
      Metric(metrics, "imginterp_batch_size_count", {"squeezenet"}) - batches_before;
  // Fewer batches than requests: some batch held more than one caller.
  EXPECT_LT(batches, 3 * kCallers) << "24 concurrent requests ran in " << batches << " batches";
}

TEST_F(ClassifyServiceTest, MetricsShowRequestsLatencyPhasesBatchesAndLoadTime) {
  Classify(MakePng(120, 90, 1));
  Classify(MakePng(90, 120, 2));
  grpc::ClientContext context;
  v1::ClassifyRequest bad;
  bad.mutable_model()->set_name("squeezenet");
  v1::ClassifyResponse response;
  stub_->Classify(&context, bad, &response);
  const std::string text = HttpGet(classify_->metrics_port, "/metrics");
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(Metric(text, "imginterp_requests_total", {"squeezenet", "code=\"OK\""}), 2) << text;
  EXPECT_EQ(Metric(text, "imginterp_requests_total", {"squeezenet", "INVALID_ARGUMENT"}), 1);
  EXPECT_GE(Metric(text, "imginterp_request_duration_seconds_count", {"squeezenet"}), 3);
  for (const char* phase : {"queue", "preprocess", "inference", "postprocess"}) {
    EXPECT_GE(Metric(text, "imginterp_request_phase_seconds_count",
                     {"squeezenet", std::string("phase=\"") + phase + "\""}),
              2)
        << phase;
  }
  EXPECT_GE(Metric(text, "imginterp_batch_size_count", {"squeezenet"}), 2);
  EXPECT_NE(text.find("imginterp_in_flight_requests{"), std::string::npos);
  EXPECT_GT(Metric(text, "imginterp_model_load_seconds", {"squeezenet", "version=\"1\""}), 0);
}

TEST_F(ClassifyServiceTest, KServeClientBuiltFromTheSpecGetsTheTypedTop1) {
  const std::string png = MakePng(150, 150, 9);
  const std::string image_path = stack_.work_dir() + "/kserve.png";
  {
    std::ofstream out(image_path, std::ios::binary);
    out << png;
  }
  const v1::ClassifyResponse typed = Classify(png);
  ASSERT_GT(typed.classes_size(), 0);
  auto python = test_support::ChildProcess::Start(
      {"/usr/bin/python3", IMGINTERP_KSERVE_TEST_SCRIPT, "--address", classify_->address(),
       "--model", "squeezenet", "--image", image_path, "--expect-top1",
       std::to_string(typed.classes(0).class_id())},
      {}, stack_.work_dir() + "/kserve.log");
  ASSERT_TRUE(python.ok());
  auto exit = (*python)->WaitExit(std::chrono::seconds(60));
  ASSERT_TRUE(exit.has_value());
  std::ifstream log(stack_.work_dir() + "/kserve.log");
  std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_EQ(*exit, 0) << text;
}

TEST(ClassifyReloadTest, SighupServesANewVersionWithoutDroppingRequests) {
  namespace fs = std::filesystem;
  Stack stack;
  // A private repository holding version 1 of the test model.
  const std::string source = TestModelsDir() + "/squeezenet";
  const std::string repo = stack.work_dir() + "/repo";
  fs::create_directories(repo + "/squeezenet/1");
  for (const char* file : {"config.pbtxt", "labels.txt", "1/model.pt"}) {
    fs::copy_file(source + "/" + file, repo + "/squeezenet/" + file);
  }
  auto classify = stack.StartService("classify", {"--nats_url=", "--model_repository=" + repo});
  ASSERT_TRUE(classify.ok()) << classify.status();
  auto stub = v1::ClassifyService::NewStub(Stack::Channel((*classify)->address()));
  const std::string png = MakePng(96, 96, 4);

  // Callers keep calling while the model is swapped under them.
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::string first_error;
  std::thread caller([&] {
    while (!stop.load()) {
      grpc::ClientContext context;
      v1::ClassifyRequest request;
      request.mutable_image()->set_data(png);
      v1::ClassifyResponse response;
      grpc::Status status = stub->Classify(&context, request, &response);
      if (status.ok()) {
        ++ok;
      } else if (failed++ == 0) {
        first_error = status.error_message();
      }
    }
  });
  fs::create_directories(repo + "/squeezenet/2");
  fs::copy_file(source + "/1/model.pt", repo + "/squeezenet/2/model.pt");
  ASSERT_TRUE((*classify)->child->Signal(SIGHUP).ok());
  int64_t serving = 0;
  for (int i = 0; i < 600 && serving != 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    grpc::ClientContext context;
    v1::ListModelsResponse models;
    if (stub->ListModels(&context, v1::ListModelsRequest(), &models).ok() &&
        models.models_size() == 1) {
      serving = models.models(0).serving_version();
    }
  }
  const int ok_before = ok.load();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  stop = true;
  caller.join();
  EXPECT_EQ(serving, 2);
  EXPECT_EQ(failed.load(), 0) << first_error;
  EXPECT_GT(ok.load(), ok_before) << "no request completed on the new version";
  grpc::ClientContext context;
  v1::ClassifyRequest request;
  request.mutable_image()->set_data(png);
  request.mutable_model()->set_version(2);
  v1::ClassifyResponse response;
  ASSERT_TRUE(stub->Classify(&context, request, &response).ok());
  EXPECT_EQ(response.model().version(), 2);
}

}  // namespace
}  // namespace imginterp::integration
