#include "services/core/common/flags.h"

#include <cstdlib>

#include "gtest/gtest.h"

namespace imginterp::common {
namespace {

struct Argv {
  explicit Argv(std::vector<std::string> args) : storage(std::move(args)) {
    for (auto& a : storage) pointers.push_back(a.data());
  }
  int argc() { return static_cast<int>(pointers.size()); }
  char** argv() { return pointers.data(); }
  std::vector<std::string> storage;
  std::vector<char*> pointers;
};

TEST(FlagSetTest, FlagWinsOverEnvironmentWhichWinsOverDefault) {
  std::string url = "default-url";
  int port = 1;
  bool verbose = false;
  FlagSet flags("prog", "test");
  flags.Add("nats_url", &url, "bus");
  flags.Add("grpc_port", &port, "port");
  flags.Add("verbose", &verbose, "chatty");
  setenv("IMGINTERP_NATS_URL", "env-url", 1);
  setenv("IMGINTERP_GRPC_PORT", "7", 1);
  Argv args({"prog", "--grpc_port=9", "--verbose", "input.png"});
  ASSERT_TRUE(flags.Parse(args.argc(), args.argv()).ok());
  EXPECT_EQ(url, "env-url");
  EXPECT_EQ(port, 9);
  EXPECT_TRUE(verbose);
  ASSERT_EQ(flags.positional().size(), 1u);
  EXPECT_EQ(flags.positional()[0], "input.png");
  EXPECT_NE(flags.Describe().find("grpc_port=9"), std::string::npos);
  unsetenv("IMGINTERP_NATS_URL");
  unsetenv("IMGINTERP_GRPC_PORT");
}

TEST(FlagSetTest, RejectsUnknownFlagAndBadNumberWithNames) {
  int port = 1;
  FlagSet flags("prog", "test");
  flags.Add("grpc_port", &port, "port");
  Argv unknown({"prog", "--grpc-prot=3"});
  auto s = flags.Parse(unknown.argc(), unknown.argv());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("grpc-prot"), std::string::npos);
  FlagSet flags2("prog", "test");
  flags2.Add("grpc_port", &port, "port");
  Argv bad({"prog", "--grpc-port", "abc"});
  s = flags2.Parse(bad.argc(), bad.argv());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("abc"), std::string::npos);
}

TEST(FlagSetTest, HelpListsEveryFlagWithDefaultAndVariable) {
  int port = 8001;
  FlagSet flags("prog", "Serves things.");
  flags.Add("grpc_port", &port, "gRPC port");
  Argv args({"prog", "--help"});
  ASSERT_TRUE(flags.Parse(args.argc(), args.argv()).ok());
  EXPECT_TRUE(flags.help_requested());
  const std::string usage = flags.Usage();
  EXPECT_NE(usage.find("--grpc_port"), std::string::npos);
  EXPECT_NE(usage.find("IMGINTERP_GRPC_PORT"), std::string::npos);
  EXPECT_NE(usage.find("8001"), std::string::npos);
}

}  // namespace
}  // namespace imginterp::common
