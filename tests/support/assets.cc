#include "tests/support/assets.h"

#include <sys/stat.h>

#include <cstdlib>

namespace imginterp::test_support {
namespace {

std::string CacheRoot() {
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && *xdg != '\0') {
    return std::string(xdg) + "/image-interpreter";
  }
  const char* home = std::getenv("HOME");
  return std::string(home != nullptr ? home : "/tmp") + "/.cache/image-interpreter";
}

std::string EnvOr(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::string(value) : fallback;
}

}  // namespace

std::string ModelStoreDir() { return EnvOr("IMGINTERP_MODEL_STORE", CacheRoot() + "/models"); }

std::string FamilyRepository(const std::string& family) { return ModelStoreDir() + "/" + family; }

std::string SamplesDir() { return EnvOr("IMGINTERP_SAMPLES_DIR", CacheRoot() + "/samples"); }

bool RunningInCi() {
  const std::string ci = EnvOr("CI", "");
  return ci == "true" || ci == "1";
}

bool PathExists(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0;
}

}  // namespace imginterp::test_support
