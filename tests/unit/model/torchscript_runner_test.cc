#include "services/core/model/torchscript_runner.h"

#include <ATen/Parallel.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/script.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "services/core/model/model_repository.h"

namespace imginterp::model {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

TorchScriptOptions CpuOptions() {
  TorchScriptOptions options;
  options.use_cuda_if_available = false;
  return options;
}

// The input make_squeezenet.py feeds the model for expected.json.
at::Tensor DeterministicInput() {
  return torch::sin(torch::linspace(-1.0, 1.0, 1 * 3 * 224 * 224, torch::kFloat32) * 7.0)
      .reshape({1, 3, 224, 224});
}

// Loads the SqueezeNet fixture once for all tests (loading takes a moment).
class SqueezeNetTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto repository = ModelRepository::Create({IMGINTERP_TEST_MODELS_DIR});
    ASSERT_TRUE(repository.ok()) << repository.status();
    auto model = (*repository)->Resolve("squeezenet", 0);
    ASSERT_TRUE(model.ok()) << model.status();
    version_dir_ = new std::string(model->version_dir);
    auto runner = TorchScriptRunner::Load(*version_dir_ + "/model.pt", CpuOptions());
    ASSERT_TRUE(runner.ok()) << runner.status();
    runner_ = runner->release();
    std::ifstream in(*version_dir_ + "/expected.json");
    expected_ = new nlohmann::json(nlohmann::json::parse(in));
  }
  static void TearDownTestSuite() {
    delete runner_;
    delete expected_;
    delete version_dir_;
  }
  void SetUp() override { ASSERT_NE(runner_, nullptr) << "the SqueezeNet fixture did not load"; }

  static TorchScriptRunner* runner_;
  static nlohmann::json* expected_;
  static std::string* version_dir_;
};
TorchScriptRunner* SqueezeNetTest::runner_ = nullptr;
nlohmann::json* SqueezeNetTest::expected_ = nullptr;
std::string* SqueezeNetTest::version_dir_ = nullptr;

TEST_F(SqueezeNetTest, RunsOnTheCpuWhenCudaIsNotRequested) { EXPECT_EQ(runner_->device(), "cpu"); }

TEST_F(SqueezeNetTest, ReproducesThePythonLogitsAndTop5) {
  auto outputs = runner_->Forward({DeterministicInput()});
  ASSERT_TRUE(outputs.ok()) << outputs.status();
  ASSERT_EQ(outputs->size(), 1u);
  const at::Tensor& logits = (*outputs)[0];
  EXPECT_EQ(logits.device().type(), c10::kCPU);
  ASSERT_EQ(logits.sizes().vec(), (std::vector<int64_t>{1, 1000}));

  const std::vector<float> expected_logits = (*expected_)["logits"].get<std::vector<float>>();
  ASSERT_EQ(expected_logits.size(), 1000u);
  const at::Tensor row = logits[0].contiguous();
  for (int64_t i = 0; i < 1000; ++i) {
    ASSERT_NEAR(row[i].item<float>(), expected_logits[i], 1e-4) << "class " << i;
  }
  const at::Tensor top5_ids = std::get<1>(row.topk(5)).contiguous();
  const std::vector<int64_t> top5(top5_ids.data_ptr<int64_t>(), top5_ids.data_ptr<int64_t>() + 5);
  EXPECT_EQ(top5, (*expected_)["top5_ids"].get<std::vector<int64_t>>());
}

TEST_F(SqueezeNetTest, ABatchOfThreeGivesTheSameRowsAsThreeSingles) {
  const at::Tensor base = DeterministicInput();
  const std::vector<at::Tensor> singles = {base, base * 0.5, torch::flip(base, {3})};
  auto batched = runner_->Forward({torch::cat(singles, 0)});
  ASSERT_TRUE(batched.ok()) << batched.status();
  ASSERT_EQ((*batched)[0].size(0), 3);
  for (int64_t i = 0; i < 3; ++i) {
    auto single = runner_->Forward({singles[i]});
    ASSERT_TRUE(single.ok()) << single.status();
    EXPECT_TRUE(torch::allclose((*batched)[0][i], (*single)[0][0], /*rtol=*/0, /*atol=*/1e-5))
        << "row " << i << " differs by "
        << ((*batched)[0][i] - (*single)[0][0]).abs().max().item<float>();
  }
}

TEST_F(SqueezeNetTest, WrongChannelCountIsInvalidArgumentWithTheModelsMessage) {
  auto outputs = runner_->Forward({torch::zeros({1, 4, 224, 224})});
  ASSERT_EQ(outputs.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(outputs.status().message()), HasSubstr("channels"));
  EXPECT_THAT(std::string(outputs.status().message()), Not(HasSubstr("\n")));
}

TEST_F(SqueezeNetTest, WrongArgumentCountIsInvalidArgument) {
  auto outputs = runner_->Forward({DeterministicInput(), DeterministicInput()});
  EXPECT_EQ(outputs.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(runner_->Forward({}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(SqueezeNetTest, WrongDtypeIsInvalidArgument) {
  auto outputs = runner_->Forward({torch::zeros({1, 3, 224, 224}, torch::kFloat64)});
  EXPECT_EQ(outputs.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(SqueezeNetTest, SetsTheIntraOpThreadCountOfTheCallingThread) {
  at::set_num_threads(2);
  ASSERT_TRUE(runner_->Forward({torch::zeros({1, 3, 64, 64})}).ok());
  EXPECT_EQ(at::get_num_threads(), 1);
}

// Scratch folder for models written by the tests below.
class TorchScriptRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::path(::testing::TempDir()) / "torchscript_XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Saves a scripted module whose forward is `source` and returns its path.
  std::string SaveModule(const std::string& source) {
    torch::jit::Module module("TestModule");
    module.define(source);
    const std::string path = (dir_ / "model.pt").string();
    module.save(path);
    return path;
  }

  fs::path dir_;
};

TEST_F(TorchScriptRunnerTest, MissingFileIsNotFound) {
  auto runner = TorchScriptRunner::Load((dir_ / "missing.pt").string(), CpuOptions());
  EXPECT_EQ(runner.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(TorchScriptRunnerTest, GarbageFileIsInvalidArgumentNamingThePath) {
  const std::string path = (dir_ / "model.pt").string();
  std::ofstream(path) << "this is not a zip archive";
  auto runner = TorchScriptRunner::Load(path, CpuOptions());
  ASSERT_EQ(runner.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(runner.status().message()),
              StartsWith(path + " is not a TorchScript archive: "));
  EXPECT_THAT(std::string(runner.status().message()), Not(HasSubstr("\n")));
}

TEST_F(TorchScriptRunnerTest, FolderIsInvalidArgument) {
  auto runner = TorchScriptRunner::Load(dir_.string(), CpuOptions());
  EXPECT_EQ(runner.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(TorchScriptRunnerTest, PicksCudaOnlyWhenAvailable) {
  auto runner = TorchScriptRunner::Load(SaveModule("def forward(self, x):\n  return x\n"),
                                        TorchScriptOptions{});
  ASSERT_TRUE(runner.ok()) << runner.status();
  EXPECT_EQ((*runner)->device(), torch::cuda::is_available() ? "cuda:0" : "cpu");
}

TEST_F(TorchScriptRunnerTest, FlattensTuplesListsAndDictsInOrder) {
  auto runner = TorchScriptRunner::Load(SaveModule("def forward(self, x):\n"
                                                   "  d = {'z': x + 3.0, 'a': x + 4.0}\n"
                                                   "  return (x + 1.0, [x + 2.0], d)\n"),
                                        CpuOptions());
  ASSERT_TRUE(runner.ok()) << runner.status();
  auto outputs = (*runner)->Forward({torch::zeros({2})});
  ASSERT_TRUE(outputs.ok()) << outputs.status();
  ASSERT_EQ(outputs->size(), 4u);
  for (size_t i = 0; i < outputs->size(); ++i) {
    EXPECT_FLOAT_EQ((*outputs)[i][0].item<float>(), static_cast<float>(i + 1)) << "output " << i;
  }
}

TEST_F(TorchScriptRunnerTest, NonTensorOutputIsAFailedPrecondition) {
  auto runner = TorchScriptRunner::Load(
      SaveModule("def forward(self, x):\n  return (x, x.size(0))\n"), CpuOptions());
  ASSERT_TRUE(runner.ok()) << runner.status();
  auto outputs = (*runner)->Forward({torch::zeros({2})});
  ASSERT_EQ(outputs.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(outputs.status().message()), HasSubstr("Int"));
}

TEST_F(TorchScriptRunnerTest, ExceptionRaisedByTheModelIsInvalidArgument) {
  auto runner = TorchScriptRunner::Load(SaveModule("def forward(self, x):\n"
                                                   "  assert x.dim() == 4, 'expected a 4-D input'\n"
                                                   "  return x\n"),
                                        CpuOptions());
  ASSERT_TRUE(runner.ok()) << runner.status();
  auto outputs = (*runner)->Forward({torch::zeros({2})});
  ASSERT_EQ(outputs.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(outputs.status().message()), HasSubstr("expected a 4-D input"));
}

}  // namespace
}  // namespace imginterp::model
