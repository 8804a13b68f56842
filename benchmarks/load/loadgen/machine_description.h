// The machine a benchmark ran on and when, written next to its numbers for whoever reads them
// later (a 2-core VM and a workstation give different latencies for the same code).
//
// Stateless: thread-safe.
#pragma once

#include <string>

namespace imginterp::loadgen {

struct MachineDescription {
  std::string date;    // when it was described: UTC, ISO 8601 ("2026-11-25T16:46:00Z")
  std::string cpu;     // /proc/cpuinfo "model name"; "unknown" where there is none
  int cores = 0;       // online CPUs
  std::string kernel;  // uname -sr ("Linux 6.1.0-13-amd64"); "unknown" if uname fails
};

// This machine, now.
MachineDescription DescribeMachine();

}  // namespace imginterp::loadgen
