// Clients in other languages and the CLI against the real stack.
#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/integration/stack.h"

namespace imginterp::integration {
namespace {

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(stack_.StartNats().ok());
    ASSERT_TRUE(stack_.StartService("edges").ok());
    ASSERT_TRUE(stack_.StartGateway().ok());
    image_ = stack_.work_dir() + "/input.png";
    std::ofstream(image_, std::ios::binary) << MakePng(120, 80, 7);
  }

  // Runs a command, returns its exit status; its output goes to <work>/<name>.log.
  int RunCommand(const std::string& name, std::vector<std::string> argv,
                 std::map<std::string, std::string> env = {}) {
    auto child = test_support::ChildProcess::Start(std::move(argv), std::move(env),
                                                   stack_.work_dir() + "/" + name + ".log");
    EXPECT_TRUE(child.ok());
    auto status = (*child)->WaitExit(std::chrono::seconds(120));
    return status.value_or(-1);
  }

  std::string Log(const std::string& name) {
    std::ifstream in(stack_.work_dir() + "/" + name + ".log");
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }

  Stack stack_;
  std::string image_;
};

TEST_F(ClientTest, PythonClientSubmitsWatchesAndDownloads) {
  const std::string out = stack_.work_dir() + "/py-out";
  const int status =
      RunCommand("python", {"/usr/bin/python3", IMGINTERP_PYTHON_CLIENT, image_, "--gateway",
                            stack_.gateway()->address(), "--pipeline", "priors", "--out", out,
                            "--stubs", IMGINTERP_PYTHON_STUBS});
  ASSERT_EQ(status, 0) << Log("python");
  EXPECT_TRUE(std::filesystem::exists(out + "/canny.png")) << Log("python");
  EXPECT_TRUE(std::filesystem::exists(out + "/sobel.png"));
  EXPECT_NE(Log("python").find("succeeded"), std::string::npos);
}

TEST_F(ClientTest, CliRunWritesOnePngPerPriorAndResultJson) {
  const std::string out = stack_.work_dir() + "/cli-out";
  const int status = RunCommand(
      "cli", {BinaryPath("cli"), "run", image_, "--gateway=" + stack_.gateway()->address(),
              "--pipeline=priors", "--out=" + out});
  ASSERT_EQ(status, 0) << Log("cli");
  EXPECT_TRUE(std::filesystem::exists(out + "/canny.png"));
  EXPECT_TRUE(std::filesystem::exists(out + "/sobel.png"));
  std::ifstream in(out + "/result.json");
  nlohmann::json result = nlohmann::json::parse(in);
  EXPECT_EQ(result["state"], "succeeded");
  EXPECT_EQ(result["pipeline"], "priors");
  ASSERT_EQ(result["stages"].size(), 2u);
  for (const auto& stage : result["stages"]) {
    EXPECT_EQ(stage["state"], "succeeded");
    EXPECT_EQ(stage["files"].size(), 1u);
  }
  // Listing commands answer too.
  EXPECT_EQ(RunCommand("cli-pipelines", {BinaryPath("cli"), "pipelines",
                                         "--gateway=" + stack_.gateway()->address()}),
            0);
  EXPECT_NE(Log("cli-pipelines").find("priors"), std::string::npos);
  EXPECT_EQ(RunCommand("cli-jobs",
                       {BinaryPath("cli"), "jobs", "--gateway=" + stack_.gateway()->address()}),
            0);
  EXPECT_NE(Log("cli-jobs").find("succeeded"), std::string::npos);
}

TEST_F(ClientTest, CliRunOfUnknownPipelineFailsWithItsName) {
  const int status =
      RunCommand("cli-bad", {BinaryPath("cli"), "run", image_,
                             "--gateway=" + stack_.gateway()->address(), "--pipeline=nope"});
  EXPECT_NE(status, 0);
  EXPECT_NE(Log("cli-bad").find("nope"), std::string::npos) << Log("cli-bad");
}

}  // namespace
}  // namespace imginterp::integration
