// What the diffusion benchmarks (unet_bench, generation_bench) share: parsing their flags with
// common::FlagSet the way every binary of the project does, range checks for those flags, and the
// peak resident memory they report.
//
// Header-only. ParseFlagsOrExitCode is for main() only (FlagSet is externally synchronized); the
// other functions are stateless and thread-safe.
#pragma once

#include <sys/resource.h>

#include <cstdint>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "services/core/common/flags.h"

namespace imginterp::bench {

// The largest resident set, in GiB: of this process (RUSAGE_SELF), or of the largest waited-for
// child (RUSAGE_CHILDREN).
inline double PeakRssGiB(int who = RUSAGE_SELF) {
  rusage usage{};
  getrusage(who, &usage);
  return static_cast<double>(usage.ru_maxrss) / (1024.0 * 1024.0);  // ru_maxrss is in KiB
}

// InvalidArgument naming the flag and its environment variable when `value` is below `minimum`.
inline absl::Status CheckAtLeast(const std::string& flag, int64_t value, int64_t minimum) {
  if (value >= minimum) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("--", flag, " (or ",
                                                 common::FlagSet::EnvName(flag), ") is ", value,
                                                 "; it must be at least ", minimum));
}

// Parses argv and the environment into the targets of `flags`, then runs `check` (what FlagSet
// cannot check: ranges, lists). Returns nothing when the benchmark should run, otherwise the code
// main() exits with: 0 after printing --help, 2 after printing why the flags are wrong (an unknown
// flag, a bad value, a positional argument or a failed check).
inline std::optional<int> ParseFlagsOrExitCode(common::FlagSet& flags, const char* program,
                                               int argc, char** argv,
                                               const std::function<absl::Status()>& check = {}) {
  absl::Status status = flags.Parse(argc, argv);
  if (status.ok() && flags.help_requested()) {
    std::fputs(flags.Usage().c_str(), stdout);
    return 0;
  }
  if (status.ok() && !flags.positional().empty()) {
    status = absl::InvalidArgumentError(absl::StrCat("unexpected argument '", flags.positional()[0],
                                                     "'; run ", program, " --help"));
  }
  if (status.ok() && check) status = check();
  if (status.ok()) return std::nullopt;
  std::fprintf(stderr, "%s: %s\n", program, std::string(status.message()).c_str());
  return 2;
}

}  // namespace imginterp::bench
