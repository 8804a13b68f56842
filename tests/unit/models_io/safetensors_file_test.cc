#include "services/models/io/safetensors_file.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <memory>
#include <ostream>
#include <string>

#include "tests/unit/models_io/test_util.h"

namespace imginterp::models {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::RawSafetensors;
using testing::TempDir;
using testing::WriteBytes;

std::unique_ptr<SafetensorsFile> OpenOrDie(const std::string& path) {
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(path);
  EXPECT_TRUE(file.ok()) << file.status();
  return file.ok() ? std::move(*file) : nullptr;
}

at::Tensor TensorOrDie(const TensorSource& source, const std::string& name) {
  absl::StatusOr<at::Tensor> tensor = source.Tensor(name);
  EXPECT_TRUE(tensor.ok()) << tensor.status();
  return tensor.ok() ? *tensor : at::Tensor();
}

TEST(SafetensorsFile, RoundTripsEveryDtypeWithValuesShapesAndMetadata) {
  TempDir dir;
  const std::map<std::string, at::Tensor> tensors = {
      {"f64", at::arange(6, at::kDouble).reshape({2, 3}) * 0.1},
      {"f32", at::randn({3, 4, 5})},
      {"f16", at::tensor({0.5f, -1.25f, 65504.f, 1e-3f}).to(at::kHalf)},
      {"bf16", at::tensor({1.0f, -2.5f, 3.0e38f, 0.0078125f}).to(at::kBFloat16)},
      {"i64", at::tensor({int64_t{-1}, int64_t{1} << 40, int64_t{7}})},
      {"i32", at::tensor({-5, 0, 2147483647}, at::kInt)},
      {"i16", at::tensor({-300, 300}, at::kShort)},
      {"i8", at::tensor({-128, 127}, at::kChar)},
      {"u8", at::tensor({0, 255, 17}, at::kByte)},
      {"bool", at::tensor({1, 0, 1}, at::kByte).to(at::kBool)},
      {"scalar", at::scalar_tensor(2.5)},
      {"empty", at::empty({0, 3})},
  };
  const std::string path = dir.File("all.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, tensors, {{"format", "pt"}, {"note", "round trip"}}).ok());

  std::unique_ptr<SafetensorsFile> file = OpenOrDie(path);
  ASSERT_NE(file, nullptr);
  EXPECT_EQ(file->Metadata(),
            (std::map<std::string, std::string>{{"format", "pt"}, {"note", "round trip"}}));
  EXPECT_EQ(file->Names().size(), tensors.size());
  for (const auto& [name, expected] : tensors) {
    SCOPED_TRACE(name);
    at::Tensor actual = TensorOrDie(*file, name);
    ASSERT_TRUE(actual.defined());
    EXPECT_EQ(actual.scalar_type(), expected.scalar_type());
    EXPECT_EQ(actual.sizes(), expected.sizes());
    EXPECT_TRUE(at::equal(actual, expected));
  }
  absl::StatusOr<TensorInfo> info = file->Info("bf16");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->dtype, "BF16");
  EXPECT_EQ(info->scalar_type, at::kBFloat16);
  EXPECT_THAT(info->shape, ElementsAre(4));
  EXPECT_EQ(info->data_end - info->data_begin, 8u);
  EXPECT_EQ(file->Info("scalar")->shape.size(), 0u);
}

TEST(SafetensorsFile, HalfAndBfloat16KeepTheirBitPatterns) {
  TempDir dir;
  // 0x3C00 = 1.0 in fp16; 0x3F80 = 1.0 in bf16; 0xC000 = -2.0 in both encodings' own way.
  std::string data;
  for (uint16_t bits : {0x3C00, 0xC000, 0x3F80, 0xC000}) {
    data.push_back(static_cast<char>(bits & 0xff));
    data.push_back(static_cast<char>(bits >> 8));
  }
  const std::string header = R"({"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},)"
                             R"("b":{"dtype":"BF16","shape":[2],"data_offsets":[4,8]}})";
  WriteBytes(dir.File("bits.safetensors"), RawSafetensors(header, data));
  std::unique_ptr<SafetensorsFile> file = OpenOrDie(dir.File("bits.safetensors"));
  ASSERT_NE(file, nullptr);
  at::Tensor h = ToFloat(TensorOrDie(*file, "h"));
  at::Tensor b = ToFloat(TensorOrDie(*file, "b"));
  EXPECT_EQ(h.scalar_type(), at::kFloat);
  EXPECT_FLOAT_EQ(h[0].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(h[1].item<float>(), -2.0f);
  EXPECT_FLOAT_EQ(b[0].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(b[1].item<float>(), -2.0f);
}

TEST(SafetensorsFile, TensorsAreZeroCopyViewsOfTheMappingAndOutliveTheFile) {
  TempDir dir;
  const std::string path = dir.File("zc.safetensors");
  at::Tensor original = at::randn({64, 32});
  ASSERT_TRUE(WriteSafetensors(path, {{"w", original}, {"flag", at::ones({3}, at::kBool)}}).ok());
  std::unique_ptr<SafetensorsFile> file = OpenOrDie(path);
  ASSERT_NE(file, nullptr);
  at::Tensor view = TensorOrDie(*file, "w");
  const auto* begin = static_cast<const char*>(file->MappedData());
  const auto* ptr = static_cast<const char*>(view.data_ptr());
  EXPECT_GE(ptr, begin + file->DataOffset());
  EXPECT_LE(ptr + view.nbytes(), begin + file->MappedSize());
  EXPECT_EQ(file->DataOffset() % 8, 0u);

  file.reset();
  EXPECT_TRUE(at::equal(view, original));  // the mapping lives as long as the tensor
  view.mul_(2);                            // writes stay private and do not fault
  EXPECT_TRUE(at::equal(view, original * 2));
  std::unique_ptr<SafetensorsFile> reopened = OpenOrDie(path);
  ASSERT_NE(reopened, nullptr);
  EXPECT_TRUE(at::equal(TensorOrDie(*reopened, "w"), original));
}

TEST(SafetensorsFile, UnalignedDataIsCopiedIntoAnAlignedTensor) {
  TempDir dir;
  const float values[2] = {1.5f, -3.25f};
  const std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  ASSERT_NE((8 + header.size()) % 4, 0u);  // the data section starts misaligned for F32
  WriteBytes(dir.File("odd.safetensors"),
             RawSafetensors(header, std::string(reinterpret_cast<const char*>(values), 8)));
  std::unique_ptr<SafetensorsFile> file = OpenOrDie(dir.File("odd.safetensors"));
  ASSERT_NE(file, nullptr);
  at::Tensor a = TensorOrDie(*file, "a");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a.data_ptr()) % alignof(float), 0u);
  EXPECT_FLOAT_EQ(a[0].item<float>(), 1.5f);
  EXPECT_FLOAT_EQ(a[1].item<float>(), -3.25f);
}

TEST(SafetensorsFile, ToFloatConvertsFloatingTypesOnly) {
  TempDir dir;
  const std::string path = dir.File("mixed.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, {{"h", at::ones({2}, at::kHalf)},
                                      {"d", at::ones({2}, at::kDouble)},
                                      {"f", at::ones({2})},
                                      {"i", at::ones({2}, at::kLong)}})
                  .ok());
  std::unique_ptr<SafetensorsFile> file = OpenOrDie(path);
  ASSERT_NE(file, nullptr);
  EXPECT_EQ(file->FloatTensor("h")->scalar_type(), at::kFloat);
  EXPECT_EQ(file->FloatTensor("d")->scalar_type(), at::kFloat);
  EXPECT_EQ(file->FloatTensor("i")->scalar_type(), at::kLong);
  at::Tensor f = TensorOrDie(*file, "f");
  EXPECT_EQ(file->FloatTensor("f")->data_ptr(), f.data_ptr());  // fp32 is not copied
}

TEST(SafetensorsFile, MissingTensorIsNotFoundAndNamesTheFile) {
  TempDir dir;
  const std::string path = dir.File("one.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, {{"a", at::ones({1})}}).ok());
  std::unique_ptr<SafetensorsFile> file = OpenOrDie(path);
  ASSERT_NE(file, nullptr);
  EXPECT_TRUE(file->Contains("a"));
  EXPECT_FALSE(file->Contains("b"));
  absl::StatusOr<at::Tensor> missing = file->Tensor("b");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), AllOf(HasSubstr("'b'"), HasSubstr(path)));
  EXPECT_EQ(file->Info("b").status().code(), absl::StatusCode::kNotFound);
}

TEST(SafetensorsFile, MissingFileIsNotFound) {
  TempDir dir;
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file =
      SafetensorsFile::Open(dir.File("absent.safetensors"));
  EXPECT_EQ(file.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(file.status().message(), HasSubstr("absent.safetensors"));
}

TEST(SafetensorsFile, EmptyFileWithNoTensorsOpens) {
  TempDir dir;
  const std::string path = dir.File("empty.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, {}).ok());
  std::unique_ptr<SafetensorsFile> file = OpenOrDie(path);
  ASSERT_NE(file, nullptr);
  EXPECT_TRUE(file->Names().empty());
}

TEST(WriteSafetensors, RejectsTheReservedMetadataName) {
  TempDir dir;
  absl::Status status =
      WriteSafetensors(dir.File("x.safetensors"), {{"__metadata__", at::ones({1})}});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("__metadata__"));
}

TEST(WriteSafetensors, RejectsDtypesTheFormatCannotStore) {
  TempDir dir;
  absl::Status status =
      WriteSafetensors(dir.File("x.safetensors"), {{"c", at::ones({1}, at::kComplexFloat)}});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("'c'"));
}

TEST(WriteSafetensors, StoresNonContiguousTensorsByValue) {
  TempDir dir;
  at::Tensor transposed = at::arange(12, at::kFloat).reshape({3, 4}).t();
  const std::string path = dir.File("t.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, {{"t", transposed}}).ok());
  std::unique_ptr<SafetensorsFile> file = OpenOrDie(path);
  ASSERT_NE(file, nullptr);
  EXPECT_TRUE(at::equal(TensorOrDie(*file, "t"), transposed));
}

// Every malformed file fails Open() with INVALID_ARGUMENT and a message naming what is wrong.
struct BadFileCase {
  std::string name;
  std::string bytes;
  std::vector<std::string> message_parts;
};

void PrintTo(const BadFileCase& bad_file, std::ostream* os) { *os << bad_file.name; }

class SafetensorsBadFile : public ::testing::TestWithParam<BadFileCase> {};

TEST_P(SafetensorsBadFile, FailsWithAMessageNamingKeyAndOffset) {
  TempDir dir;
  const std::string path = dir.File("bad.safetensors");
  WriteBytes(path, GetParam().bytes);
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(path);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument) << file.status();
  EXPECT_THAT(std::string(file.status().message()), HasSubstr(path));
  for (const std::string& part : GetParam().message_parts) {
    EXPECT_THAT(std::string(file.status().message()), HasSubstr(part));
  }
}

const std::string kEightBytes(8, '\x01');

INSTANTIATE_TEST_SUITE_P(
    Cases, SafetensorsBadFile,
    ::testing::Values(
        BadFileCase{"ShorterThanHeaderLength",
                    std::string("\x10\x00\x00", 3),
                    {"3 bytes", "8-byte header length"}},
        BadFileCase{"HeaderLengthBeyondFile",
                    RawSafetensors(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                                   kEightBytes, 4096),
                    {"header length 4096", "runs past the end"}},
        BadFileCase{"HeaderLengthAbsurd",
                    RawSafetensors("{}", "", uint64_t{1} << 62),
                    {"header length", "exceeds the limit"}},
        BadFileCase{"InvalidJson",
                    RawSafetensors(R"({"a": {"dtype": "F32",, }})", ""),
                    {"not valid JSON", "byte offset"}},
        BadFileCase{"HeaderNotAnObject", RawSafetensors("[1, 2]", ""), {"not a JSON object"}},
        BadFileCase{"OffsetsPastEnd",
                    RawSafetensors(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})",
                                   kEightBytes),
                    {"'a'", "[0, 16]", "past the end of the data section", "8 bytes"}},
        BadFileCase{"TruncatedData",
                    RawSafetensors(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                   R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
                                   kEightBytes + "\x01\x02"),
                    {"'b'", "[8, 16]", "truncated"}},
        BadFileCase{"SizeMismatch",
                    RawSafetensors(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})",
                                   kEightBytes),
                    {"'w'", "[0, 8]", "8 bytes at file byte offset", "needs 12 bytes"}},
        BadFileCase{
            "EndBeforeBegin",
            RawSafetensors(R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[8,0]}})", kEightBytes),
            {"'w'", "end before begin"}},
        BadFileCase{"Overlap",
                    RawSafetensors(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                   R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                                   kEightBytes),
                    {"'b'", "overlaps tensor 'a'", "file byte offset"}},
        BadFileCase{"Hole",
                    RawSafetensors(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                                   kEightBytes),
                    {"hole of 4 bytes", "'a'"}},
        BadFileCase{"TrailingBytes",
                    RawSafetensors(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                                   kEightBytes),
                    {"trailing bytes", "tensors end at 4"}},
        BadFileCase{"UnknownDtype",
                    RawSafetensors(R"({"q":{"dtype":"Q4_K","shape":[8],"data_offsets":[0,8]}})",
                                   kEightBytes),
                    {"'q'", "'Q4_K'", "not a safetensors dtype", "F32"}},
        BadFileCase{"DtypeLibTorchCannotHold",
                    RawSafetensors(R"({"f8":{"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]}})",
                                   kEightBytes),
                    {"'f8'", "'F8_E4M3'", "LibTorch"}},
        BadFileCase{"NegativeDimension",
                    RawSafetensors(R"({"n":{"dtype":"U8","shape":[-8],"data_offsets":[0,8]}})",
                                   kEightBytes),
                    {"'n'", "non-negative"}},
        BadFileCase{"OverflowingShape",
                    RawSafetensors(R"({"o":{"dtype":"F32","shape":[4294967296,4294967296,)"
                                   R"(4294967296],"data_offsets":[0,8]}})",
                                   kEightBytes),
                    {"'o'", "overflows"}},
        BadFileCase{"MissingOffsets",
                    RawSafetensors(R"({"m":{"dtype":"U8","shape":[8]}})", kEightBytes),
                    {"'m'", "data_offsets"}},
        BadFileCase{"MetadataNotStrings",
                    RawSafetensors(R"({"__metadata__":{"epoch":3}})", ""),
                    {"__metadata__", "'epoch'"}}),
    [](const ::testing::TestParamInfo<BadFileCase>& info) { return info.param.name; });

TEST(SafetensorsFile, EveryTruncationOfAValidFileFailsCleanly) {
  TempDir dir;
  const std::string good = dir.File("good.safetensors");
  ASSERT_TRUE(WriteSafetensors(good, {{"a", at::randn({3, 5})}, {"b", at::ones({7}, at::kLong)}},
                               {{"k", "v"}})
                  .ok());
  std::ifstream in(good, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (size_t length = 0; length < bytes.size(); ++length) {
    const std::string path = dir.File("cut.safetensors");
    WriteBytes(path, bytes.substr(0, length));
    EXPECT_FALSE(SafetensorsFile::Open(path).ok()) << "truncated to " << length << " bytes";
  }
}

}  // namespace
}  // namespace imginterp::models
