// Tests of the test support library itself: other suites rely on it to start and stop real
// servers.
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "tests/support/nats_server.h"
#include "tests/support/process.h"

namespace imginterp::test_support {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

TEST(ChildProcessTest, ReportsTheExitCodeAndWritesOutputToTheLog) {
  std::string dir = MakeTempDir("imginterp-support-");
  ASSERT_FALSE(dir.empty());
  auto child = ChildProcess::Start({"/bin/sh", "-c", "echo \"hello $GREETING\"; exit 3"},
                                   {{"GREETING", "world"}}, dir + "/out.log");
  ASSERT_TRUE(child.ok()) << child.status();
  EXPECT_EQ((*child)->WaitExit(std::chrono::seconds(10)), 3);
  EXPECT_FALSE((*child)->Running());
  EXPECT_EQ(ReadFile(dir + "/out.log"), "hello world\n");
  RemoveTree(dir);
}

TEST(ChildProcessTest, TerminateStopsAProcessWithSigterm) {
  auto child = ChildProcess::Start({"sleep", "60"});
  ASSERT_TRUE(child.ok()) << child.status();
  EXPECT_TRUE((*child)->Running());
  EXPECT_EQ((*child)->Terminate(std::chrono::seconds(10)), 128 + SIGTERM);
}

TEST(ChildProcessTest, TerminateFallsBackToSigkillWhenSigtermIsIgnored) {
  std::string dir = MakeTempDir("imginterp-support-");
  ASSERT_FALSE(dir.empty());
  const std::string ready = dir + "/ready";
  auto child = ChildProcess::Start(
      {"/bin/sh", "-c", "trap '' TERM; touch \"$READY\"; while :; do sleep 1; done"},
      {{"READY", ready}});
  ASSERT_TRUE(child.ok()) << child.status();
  // Only once the trap is installed does SIGTERM stop working.
  for (int i = 0; i < 1000 && !std::ifstream(ready).good(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(std::ifstream(ready).good());
  EXPECT_EQ((*child)->Terminate(std::chrono::milliseconds(300)), 128 + SIGKILL);
  RemoveTree(dir);
}

TEST(ChildProcessTest, AMissingProgramIsNotFound) {
  auto child = ChildProcess::Start({"/nonexistent/program"});
  EXPECT_EQ(child.status().code(), absl::StatusCode::kNotFound);
}

TEST(ChildProcessTest, SignalAfterExitIsFailedPrecondition) {
  auto child = ChildProcess::Start({"true"});
  ASSERT_TRUE(child.ok());
  ASSERT_EQ((*child)->WaitExit(std::chrono::seconds(10)), 0);
  EXPECT_EQ((*child)->Signal(SIGTERM).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(PortTest, AFreePortIsClosedUntilSomeoneListens) {
  int port = FreeLoopbackPort();
  ASSERT_GT(port, 0);
  EXPECT_FALSE(WaitForTcpPort(port, std::chrono::milliseconds(50)));
}

// A gateway asks for its gRPC and metrics ports one after the other: they must differ even when
// the kernel offers a port it has just released.
TEST(PortTest, SuccessiveCallsGiveDifferentPorts) {
  std::set<int> ports;
  for (int i = 0; i < 200; ++i) {
    const int port = FreeLoopbackPort();
    ASSERT_GT(port, 0);
    EXPECT_TRUE(ports.insert(port).second) << "port " << port << " given twice";
  }
}

TEST(NatsServerTest, StartsOnItsPortRestartsOnTheSameOneAndCleansUp) {
  auto server = NatsServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  const std::string store = (*server)->store_dir();
  EXPECT_EQ((*server)->url(), "nats://127.0.0.1:" + std::to_string(port));
  EXPECT_TRUE(WaitForTcpPort(port, std::chrono::seconds(1)));
  ASSERT_TRUE((*server)->Stop().ok());
  EXPECT_FALSE(WaitForTcpPort(port, std::chrono::milliseconds(50)));
  ASSERT_TRUE((*server)->Restart().ok());
  EXPECT_TRUE((*server)->Running());
  EXPECT_EQ((*server)->port(), port);
  EXPECT_TRUE(WaitForTcpPort(port, std::chrono::seconds(1)));
  server->reset();
  EXPECT_FALSE(std::ifstream(store).good());
}

}  // namespace
}  // namespace imginterp::test_support
