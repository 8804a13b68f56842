#include "benchmarks/load/loadgen/machine_description.h"

#include <unistd.h>

#include <regex>

#include "gtest/gtest.h"

namespace imginterp::loadgen {
namespace {

TEST(DescribeMachine, SaysWhenInUtcAndOnWhatCpuCountAndKernel) {
  const MachineDescription machine = DescribeMachine();
  EXPECT_TRUE(std::regex_match(machine.date, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)")))
      << machine.date;
  EXPECT_EQ(machine.cores, static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)));
  EXPECT_GE(machine.cores, 1);
  EXPECT_EQ(machine.kernel.rfind("Linux ", 0), 0u) << machine.kernel;
  EXPECT_FALSE(machine.cpu.empty());
  EXPECT_NE(machine.cpu.front(), ' ') << "the value after 'model name :' is trimmed";
}

}  // namespace
}  // namespace imginterp::loadgen
