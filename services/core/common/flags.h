// Command-line flags with environment fall-back: --name=value (or --name value) wins over the
// environment variable IMGINTERP_<NAME> (upper case, '-' as '_'), which wins over the default.
// --help prints every flag with its default and environment variable.
//
// Read in main() only; externally synchronized.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace imginterp::common {

class FlagSet {
 public:
  FlagSet(std::string program, std::string description);

  // The target keeps its current value as the default. Pointers must outlive Parse().
  void Add(const std::string& name, std::string* target, const std::string& help);
  void Add(const std::string& name, int64_t* target, const std::string& help);
  void Add(const std::string& name, int* target, const std::string& help);
  void Add(const std::string& name, double* target, const std::string& help);
  void Add(const std::string& name, bool* target, const std::string& help);

  // Parses argv and the environment. On --help, `help_requested()` is true and Parse returns
  // OK without touching the targets. Positional arguments are kept in `positional()`.
  absl::Status Parse(int argc, char** argv);

  bool help_requested() const { return help_requested_; }
  const std::vector<std::string>& positional() const { return positional_; }
  std::string Usage() const;
  // "name=value ..." of every flag after parsing: the configuration line logged at start.
  std::string Describe() const;

  static std::string EnvName(const std::string& flag);

 private:
  enum class Kind { kString, kInt64, kInt, kDouble, kBool };
  struct Flag {
    std::string name;
    Kind kind;
    void* target;
    std::string help;
    std::string default_value;
  };
  absl::Status Set(const Flag& flag, const std::string& value, const std::string& origin);
  static std::string Current(const Flag& flag);
  void AddFlag(const std::string& name, Kind kind, void* target, const std::string& help);

  std::string program_;
  std::string description_;
  std::vector<Flag> flags_;
  std::vector<std::string> positional_;
  bool help_requested_ = false;
};

}  // namespace imginterp::common
