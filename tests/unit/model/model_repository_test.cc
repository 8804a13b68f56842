#include "services/core/model/model_repository.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace imginterp::model {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kValidConfig[] = R"pb(
  name: "NAME"
  backend: "torchscript"
  inputs {
    name: "input"
    dtype: DATA_TYPE_FLOAT32
    shape: [ -1, 3, 8, 8 ]
  }
  labels_file: "labels.txt"
)pb";

// A fresh folder holding `root/` (the repository) and `outside/` (a sibling that must stay
// unreachable), removed after the test.
class ModelRepositoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::path(::testing::TempDir()) / "model_repo_XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    base_ = pattern;
    root_ = base_ / "root";
    outside_ = base_ / "outside";
    fs::create_directories(root_);
    fs::create_directories(outside_);
  }
  void TearDown() override { fs::remove_all(base_); }

  static void WriteFile(const fs::path& path, const std::string& text) {
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << text;
  }

  // A model folder with a valid config (name substituted) and the given version folders.
  void AddModel(const std::string& name, std::initializer_list<const char*> versions,
                const std::string& extra_config = "") {
    std::string config = kValidConfig;
    config.replace(config.find("NAME"), 4, name);
    WriteFile(root_ / name / "config.pbtxt", config + extra_config);
    for (const char* version : versions) fs::create_directories(root_ / name / version);
  }

  std::unique_ptr<ModelRepository> Open() {
    auto repository = ModelRepository::Create({root_.string()});
    EXPECT_TRUE(repository.ok()) << repository.status();
    return repository.ok() ? std::move(repository).value() : nullptr;
  }

  fs::path base_;
  fs::path root_;
  fs::path outside_;
};

TEST_F(ModelRepositoryTest, CreateFailsWithNotFoundForAMissingRoot) {
  auto repository = ModelRepository::Create({(base_ / "missing").string()});
  ASSERT_EQ(repository.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(repository.status().message()), HasSubstr("model repository"));
  EXPECT_THAT(std::string(repository.status().message()), HasSubstr("does not exist"));
}

TEST_F(ModelRepositoryTest, CreateMakesTheRootCanonical) {
  auto repository = ModelRepository::Create({(root_ / "." / ".." / "root").string()});
  ASSERT_TRUE(repository.ok()) << repository.status();
  EXPECT_EQ((*repository)->root(), fs::canonical(root_).string());
}

TEST_F(ModelRepositoryTest, ListsFoldersWithAConfigSortedByName) {
  AddModel("zebra", {"1"});
  AddModel("alpha", {"1"});
  fs::create_directories(root_ / "no_config" / "1");
  WriteFile(root_ / "stray_file.txt", "x");
  WriteFile(root_ / ".hidden" / "config.pbtxt", kValidConfig);

  auto repository = Open();
  auto models = repository->ListModels();
  ASSERT_TRUE(models.ok()) << models.status();
  EXPECT_THAT(*models, ElementsAre("alpha", "zebra"));
}

TEST_F(ModelRepositoryTest, ResolvesVersionZeroToTheNewestVersion) {
  AddModel("net", {"1", "10", "2", "latest", "01", "0"});
  auto resolved = Open()->Resolve("net", 0);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(resolved->version, 10);
  EXPECT_THAT(resolved->available_versions, ElementsAre(1, 2, 10));
  EXPECT_EQ(resolved->name, "net");
  EXPECT_EQ(resolved->config.name(), "net");
  EXPECT_EQ(resolved->model_dir, (fs::canonical(root_) / "net").string());
  EXPECT_EQ(resolved->version_dir, (fs::canonical(root_) / "net" / "10").string());
}

TEST_F(ModelRepositoryTest, ResolvesVersionZeroToThePinnedVersion) {
  AddModel("net", {"1", "2", "3"}, "pinned_version: 2\n");
  auto resolved = Open()->Resolve("net", 0);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(resolved->version, 2);
}

TEST_F(ModelRepositoryTest, ResolvesAnExplicitVersionEvenWhenAnotherIsPinned) {
  AddModel("net", {"1", "2", "3"}, "pinned_version: 2\n");
  auto resolved = Open()->Resolve("net", 1);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(resolved->version, 1);
  EXPECT_EQ(resolved->version_dir, (fs::canonical(root_) / "net" / "1").string());
}

TEST_F(ModelRepositoryTest, MissingVersionIsNotFoundAndNamesTheAvailableVersions) {
  AddModel("net", {"1", "2"});
  auto resolved = Open()->Resolve("net", 7);
  ASSERT_EQ(resolved.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(resolved.status().message(), "model 'net' has no version 7 (available: 1, 2)");
}

TEST_F(ModelRepositoryTest, MissingPinnedVersionIsNotFound) {
  AddModel("net", {"1"}, "pinned_version: 4\n");
  auto resolved = Open()->Resolve("net", 0);
  ASSERT_EQ(resolved.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(resolved.status().message()), HasSubstr("pins version 4"));
  EXPECT_THAT(std::string(resolved.status().message()), HasSubstr("(available: 1)"));
}

TEST_F(ModelRepositoryTest, ModelWithoutVersionsIsAFailedPreconditionThatSaysWhatToAdd) {
  AddModel("net", {});
  auto resolved = Open()->Resolve("net", 0);
  ASSERT_EQ(resolved.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(resolved.status().message()), HasSubstr("model 'net' has no versions"));
  EXPECT_THAT(std::string(resolved.status().message()), HasSubstr("net/1/ with model.pt"));
}

TEST_F(ModelRepositoryTest, NegativeVersionIsInvalid) {
  AddModel("net", {"1"});
  EXPECT_EQ(Open()->Resolve("net", -1).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ModelRepositoryTest, UnknownModelIsNotFoundAndNamesTheAvailableModels) {
  AddModel("a", {"1"});
  AddModel("b", {"1"});
  auto config = Open()->ReadConfig("x");
  ASSERT_EQ(config.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(config.status().message()),
              HasSubstr("model 'x' is not in the repository"));
  EXPECT_THAT(std::string(config.status().message()), HasSubstr("(available: a, b)"));
}

TEST_F(ModelRepositoryTest, NamesThatCouldEscapeTheRootAreRejected) {
  AddModel("net", {"1"});
  WriteFile(outside_ / "config.pbtxt", "name: \"outside\" backend: \"torchscript\"\n");
  auto repository = Open();
  for (const std::string& name :
       std::vector<std::string>{"../outside", "../x", "a/b", "net/1", "..", "a\\b", ".hidden", ".",
                                "", "/etc", outside_.string()}) {
    SCOPED_TRACE(name);
    EXPECT_EQ(repository->ReadConfig(name).status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(repository->ListVersions(name).status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(repository->Resolve(name, 0).status().code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(repository->ReadConfig("../etc").status().message(),
            "model name '../etc' escapes the repository");
}

TEST_F(ModelRepositoryTest, ModelFolderSymlinkedOutsideTheRootIsRejectedAndNotListed) {
  AddModel("net", {"1"});
  WriteFile(outside_ / "evil" / "config.pbtxt", "name: \"evil\" backend: \"torchscript\"\n");
  fs::create_directories(outside_ / "evil" / "1");
  fs::create_directory_symlink(outside_ / "evil", root_ / "evil");

  auto repository = Open();
  auto config = repository->ReadConfig("evil");
  ASSERT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(config.status().message(), "model name 'evil' escapes the repository");
  EXPECT_EQ(repository->Resolve("evil", 1).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(*repository->ListModels(), ElementsAre("net"));
}

TEST_F(ModelRepositoryTest, VersionFolderSymlinkedOutsideTheRootIsRejected) {
  AddModel("net", {"1"});
  fs::create_directories(outside_ / "weights");
  fs::create_directory_symlink(outside_ / "weights", root_ / "net" / "2");
  auto versions = Open()->ListVersions("net");
  ASSERT_EQ(versions.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(versions.status().message()),
              HasSubstr("symlink leading outside the repository"));
}

TEST_F(ModelRepositoryTest, VersionFolderSymlinkedInsideTheRootIsAVersion) {
  AddModel("net", {"1"});
  fs::create_directory_symlink(root_ / "net" / "1", root_ / "net" / "2");
  auto versions = Open()->ListVersions("net");
  ASSERT_TRUE(versions.ok()) << versions.status();
  EXPECT_THAT(*versions, ElementsAre(1, 2));
}

TEST_F(ModelRepositoryTest, ConfigThatDoesNotParseIsInvalidAndNamesFileAndLine) {
  WriteFile(root_ / "net" / "config.pbtxt",
            "name: \"net\"\nbackend: \"torchscript\"\nmax_batch_size: eight\n");
  auto config = Open()->ReadConfig("net");
  ASSERT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(config.status().message()), HasSubstr("config.pbtxt"));
  EXPECT_THAT(std::string(config.status().message()), HasSubstr("line 3, column"));
}

TEST_F(ModelRepositoryTest, ConfigWithAnUnknownFieldIsInvalid) {
  WriteFile(root_ / "net" / "config.pbtxt", "name: \"net\"\nbackend: \"torchscript\"\nbatch: 1\n");
  auto config = Open()->ReadConfig("net");
  ASSERT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(config.status().message()), HasSubstr("line 3"));
  EXPECT_THAT(std::string(config.status().message()), HasSubstr("batch"));
}

TEST_F(ModelRepositoryTest, ConfigNameMustMatchTheFolder) {
  WriteFile(root_ / "net" / "config.pbtxt", "name: \"other\"\nbackend: \"torchscript\"\n");
  auto config = Open()->ReadConfig("net");
  ASSERT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(config.status().message()),
              HasSubstr("'other' differs from its folder 'net'"));
}

TEST_F(ModelRepositoryTest, ConfigWithoutANameTakesTheFolderName) {
  WriteFile(root_ / "net" / "config.pbtxt", "backend: \"builtin\"\n");
  auto config = Open()->ReadConfig("net");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->name(), "net");
}

TEST_F(ModelRepositoryTest, ConfigWithAnUnsupportedBackendIsInvalid) {
  WriteFile(root_ / "net" / "config.pbtxt", "name: \"net\"\nbackend: \"onnx\"\n");
  auto config = Open()->ReadConfig("net");
  ASSERT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(config.status().message()), HasSubstr("backend 'onnx' is not supported"));
}

TEST_F(ModelRepositoryTest, NativeBackendResolvesToItsVersionFolder) {
  WriteFile(root_ / "sd" / "config.pbtxt", "name: \"sd\"\nbackend: \"native\"\n");
  WriteFile(root_ / "sd" / "1" / "model_index.json", "{}");
  auto repository = Open();
  auto config = repository->ReadConfig("sd");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->backend(), "native");
  auto version = repository->Resolve("sd", 0);
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_TRUE(fs::exists(fs::path(version->version_dir) / "model_index.json"));
}

TEST_F(ModelRepositoryTest, ConfigWithANegativeBatchSizeIsInvalid) {
  AddModel("net", {"1"}, "max_batch_size: -2\n");
  auto config = Open()->ReadConfig("net");
  ASSERT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(config.status().message()), HasSubstr("max_batch_size is -2"));
}

TEST_F(ModelRepositoryTest, ReadsConfigFields) {
  AddModel("net", {"1"}, "max_batch_size: 8\nsource: \"here\"\n");
  auto config = Open()->ReadConfig("net");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->backend(), "torchscript");
  EXPECT_EQ(config->max_batch_size(), 8);
  EXPECT_EQ(config->source(), "here");
  ASSERT_EQ(config->inputs_size(), 1);
  EXPECT_THAT(config->inputs(0).shape(), ElementsAre(-1, 3, 8, 8));
}

TEST_F(ModelRepositoryTest, ReadsLabelsOnePerLine) {
  AddModel("net", {"1"});
  WriteFile(root_ / "net" / "labels.txt", "cat\r\ndog\n\nbird\n");
  auto repository = Open();
  auto model = repository->Resolve("net", 0);
  ASSERT_TRUE(model.ok()) << model.status();
  auto labels = repository->ReadLabels(*model);
  ASSERT_TRUE(labels.ok()) << labels.status();
  EXPECT_THAT(*labels, ElementsAre("cat", "dog", "", "bird"));
}

TEST_F(ModelRepositoryTest, NoLabelsFileGivesNoLabels) {
  WriteFile(root_ / "net" / "config.pbtxt", "name: \"net\"\nbackend: \"torchscript\"\n");
  fs::create_directories(root_ / "net" / "1");
  auto repository = Open();
  auto model = repository->Resolve("net", 0);
  ASSERT_TRUE(model.ok()) << model.status();
  auto labels = repository->ReadLabels(*model);
  ASSERT_TRUE(labels.ok()) << labels.status();
  EXPECT_THAT(*labels, IsEmpty());
}

TEST_F(ModelRepositoryTest, MissingLabelsFileIsNotFound) {
  AddModel("net", {"1"});
  auto repository = Open();
  auto model = repository->Resolve("net", 0);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(repository->ReadLabels(*model).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ModelRepositoryTest, LabelsFileOutsideTheModelFolderIsRejected) {
  WriteFile(root_ / "secret.txt", "secret\n");
  WriteFile(outside_ / "labels.txt", "secret\n");
  auto repository = Open();
  for (const std::string& labels_file :
       std::vector<std::string>{"../secret.txt", (outside_ / "labels.txt").string()}) {
    SCOPED_TRACE(labels_file);
    ModelVersion model;
    model.name = "net";
    model.model_dir = (fs::canonical(root_) / "net").string();
    fs::create_directories(model.model_dir);
    model.config.set_labels_file(labels_file);
    EXPECT_EQ(repository->ReadLabels(model).status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST_F(ModelRepositoryTest, LabelsSymlinkLeadingOutsideTheModelFolderIsRejected) {
  AddModel("net", {"1"});
  WriteFile(outside_ / "labels.txt", "secret\n");
  fs::create_symlink(outside_ / "labels.txt", root_ / "net" / "labels.txt");
  auto repository = Open();
  auto model = repository->Resolve("net", 0);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(repository->ReadLabels(*model).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace imginterp::model
