// Where tests find assets that are fetched at set-up, never committed: the model store that
// deploy/models/fetch-models.sh fills with imported models, and the sample photos of
// deploy/fetch-samples.sh. A test whose asset is missing skips with the command that provides
// it, except under CI=true, where a missing asset fails the test (a skipped check is not a pass).
#pragma once

#include <string>

namespace imginterp::test_support {

// $IMGINTERP_MODEL_STORE, else ${XDG_CACHE_HOME:-$HOME/.cache}/image-interpreter/models.
std::string ModelStoreDir();
// <store>/<family>: the repository a family's service serves.
std::string FamilyRepository(const std::string& family);
// $IMGINTERP_SAMPLES_DIR, else ${XDG_CACHE_HOME:-$HOME/.cache}/image-interpreter/samples.
std::string SamplesDir();
// True when the environment variable CI is "true" or "1".
bool RunningInCi();
bool PathExists(const std::string& path);

}  // namespace imginterp::test_support

// Skips the current test (fails it under CI=true) when `path` does not exist, naming the path and
// how to get it. Use at the top of a TEST body or a fixture's SetUp.
#define IMGINTERP_REQUIRE_ASSET(path, how_to_get)                                          \
  do {                                                                                     \
    const std::string imginterp_asset_path_ = (path);                                      \
    if (!::imginterp::test_support::PathExists(imginterp_asset_path_)) {                   \
      if (::imginterp::test_support::RunningInCi()) {                                      \
        FAIL() << "missing " << imginterp_asset_path_ << " (CI=true, so this fails); run " \
               << (how_to_get);                                                            \
      }                                                                                    \
      GTEST_SKIP() << "missing " << imginterp_asset_path_ << "; run " << (how_to_get);     \
    }                                                                                      \
  } while (0)

// The usual cases.
#define IMGINTERP_REQUIRE_IMPORTED_MODEL(family, model)                                      \
  IMGINTERP_REQUIRE_ASSET(                                                                   \
      ::imginterp::test_support::FamilyRepository(family) + "/" + (model) + "/config.pbtxt", \
      "deploy/models/fetch-models.sh")
#define IMGINTERP_REQUIRE_SAMPLE(file)                                            \
  IMGINTERP_REQUIRE_ASSET(::imginterp::test_support::SamplesDir() + "/" + (file), \
                          "deploy/fetch-samples.sh")
