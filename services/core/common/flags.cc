#include "services/core/common/flags.h"

#include <cstdlib>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace imginterp::common {

FlagSet::FlagSet(std::string program, std::string description)
    : program_(std::move(program)), description_(std::move(description)) {}

void FlagSet::AddFlag(const std::string& name, Kind kind, void* target, const std::string& help) {
  Flag flag{name, kind, target, help, ""};
  flag.default_value = Current(flag);
  flags_.push_back(std::move(flag));
}

void FlagSet::Add(const std::string& name, std::string* t, const std::string& help) {
  AddFlag(name, Kind::kString, t, help);
}
void FlagSet::Add(const std::string& name, int64_t* t, const std::string& help) {
  AddFlag(name, Kind::kInt64, t, help);
}
void FlagSet::Add(const std::string& name, int* t, const std::string& help) {
  AddFlag(name, Kind::kInt, t, help);
}
void FlagSet::Add(const std::string& name, double* t, const std::string& help) {
  AddFlag(name, Kind::kDouble, t, help);
}
void FlagSet::Add(const std::string& name, bool* t, const std::string& help) {
  AddFlag(name, Kind::kBool, t, help);
}

std::string FlagSet::EnvName(const std::string& flag) {
  return "IMGINTERP_" + absl::AsciiStrToUpper(absl::StrReplaceAll(flag, {{"-", "_"}}));
}

std::string FlagSet::Current(const Flag& flag) {
  switch (flag.kind) {
    case Kind::kString:
      return *static_cast<std::string*>(flag.target);
    case Kind::kInt64:
      return std::to_string(*static_cast<int64_t*>(flag.target));
    case Kind::kInt:
      return std::to_string(*static_cast<int*>(flag.target));
    case Kind::kDouble:
      return absl::StrCat(*static_cast<double*>(flag.target));
    case Kind::kBool:
      return *static_cast<bool*>(flag.target) ? "true" : "false";
  }
  return "";
}

absl::Status FlagSet::Set(const Flag& flag, const std::string& value, const std::string& origin) {
  auto bad = [&](const char* what) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ": '", value, "' is not ", what, " (flag --", flag.name, ")"));
  };
  switch (flag.kind) {
    case Kind::kString:
      *static_cast<std::string*>(flag.target) = value;
      return absl::OkStatus();
    case Kind::kInt64:
      if (!absl::SimpleAtoi(value, static_cast<int64_t*>(flag.target))) return bad("an integer");
      return absl::OkStatus();
    case Kind::kInt:
      if (!absl::SimpleAtoi(value, static_cast<int*>(flag.target))) return bad("an integer");
      return absl::OkStatus();
    case Kind::kDouble:
      if (!absl::SimpleAtod(value, static_cast<double*>(flag.target))) return bad("a number");
      return absl::OkStatus();
    case Kind::kBool: {
      const std::string v = absl::AsciiStrToLower(value);
      if (v.empty() || v == "true" || v == "1" || v == "yes") {
        *static_cast<bool*>(flag.target) = true;
      } else if (v == "false" || v == "0" || v == "no") {
        *static_cast<bool*>(flag.target) = false;
      } else {
        return bad("true or false");
      }
      return absl::OkStatus();
    }
  }
  return absl::OkStatus();
}

absl::Status FlagSet::Parse(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--help" || std::string(argv[i]) == "-h") {
      help_requested_ = true;
      return absl::OkStatus();
    }
  }
  for (const Flag& flag : flags_) {
    const std::string env = EnvName(flag.name);
    if (const char* value = std::getenv(env.c_str()); value != nullptr) {
      if (auto s = Set(flag, value, "environment " + env); !s.ok()) return s;
    }
  }
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0 || arg == "--") {
      positional_.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2);
    std::string value;
    bool has_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    const Flag* found = nullptr;
    for (const Flag& flag : flags_) {
      if (flag.name == name || absl::StrReplaceAll(flag.name, {{"_", "-"}}) == name) found = &flag;
    }
    if (found == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown flag --", name, "; run ", program_, " --help for the list"));
    }
    if (!has_value && found->kind != Kind::kBool) {
      if (i + 1 >= argc) {
        return absl::InvalidArgumentError(absl::StrCat("flag --", name, " needs a value"));
      }
      value = argv[++i];
    }
    if (auto s = Set(*found, value, "flag --" + name); !s.ok()) return s;
  }
  return absl::OkStatus();
}

std::string FlagSet::Usage() const {
  std::ostringstream out;
  out << "Usage: " << program_ << " [flags]\n\n"
      << description_ << "\n\nFlags (environment "
      << "variable in brackets; a flag wins over its variable):\n";
  for (const Flag& flag : flags_) {
    out << "  --" << flag.name << " [" << EnvName(flag.name) << "]\n      " << flag.help
        << " (default: " << (flag.default_value.empty() ? "\"\"" : flag.default_value) << ")\n";
  }
  return out.str();
}

std::string FlagSet::Describe() const {
  std::ostringstream out;
  out << program_ << " configuration:";
  for (const Flag& flag : flags_) out << ' ' << flag.name << '=' << Current(flag);
  return out.str();
}

}  // namespace imginterp::common
