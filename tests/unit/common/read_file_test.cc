#include "services/core/common/read_file.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace imginterp::common {
namespace {

using ::testing::HasSubstr;

class ReadFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "read_file_test.XXXXXX");
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string dir_;
};

TEST_F(ReadFileTest, ReturnsEveryByteOfTheFile) {
  const std::string path = dir_ + "/bytes.bin";
  const std::string bytes("\x89PNG\r\n\0\xff tail", 12);
  std::ofstream(path, std::ios::binary) << bytes;
  absl::StatusOr<std::string> read = ReadFile(path, "--image");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, bytes);
}

TEST_F(ReadFileTest, AnEmptyFileIsEmpty) {
  const std::string path = dir_ + "/empty";
  std::ofstream(path).close();
  absl::StatusOr<std::string> read = ReadFile(path, "--request_file");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, "");
}

TEST_F(ReadFileTest, AMissingFileIsNotFoundAndNamedAsTheUserGaveIt) {
  const std::string path = dir_ + "/missing.png";
  absl::StatusOr<std::string> read = ReadFile(path, "--image");
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(read.status().message(), HasSubstr("--image: cannot read '" + path + "'"));
  EXPECT_THAT(read.status().message(), HasSubstr("No such file"));
}

TEST_F(ReadFileTest, ADirectoryIsInvalid) {
  absl::StatusOr<std::string> read = ReadFile(dir_, "--image");
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(read.status().message(), HasSubstr("is a directory"));
}

}  // namespace
}  // namespace imginterp::common
