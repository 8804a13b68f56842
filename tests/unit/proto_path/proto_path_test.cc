#include "services/core/proto_path/proto_path.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "path_test.pb.h"

namespace imginterp::proto_path {
namespace {

using ::testing::HasSubstr;

v1::Image ImageOf(const std::string& data) {
  v1::Image image;
  image.set_data(data);
  return image;
}

std::string Message(const absl::Status& status) { return std::string(status.message()); }

TEST(ParsePathTest, SplitsFieldsAndIndices) {
  auto steps = ParsePath("controls.1.image");
  ASSERT_TRUE(steps.ok()) << steps.status();
  ASSERT_EQ(steps->size(), 2u);
  EXPECT_EQ((*steps)[0].field, "controls");
  EXPECT_EQ((*steps)[0].index, 1);
  EXPECT_EQ((*steps)[1].field, "image");
  EXPECT_FALSE((*steps)[1].index.has_value());
}

TEST(ParsePathTest, RejectsMalformedPaths) {
  for (const char* bad :
       {"", "controls..image", "0.image", "controls.1.2", "controls.-1", "controls.99999999999"}) {
    auto steps = ParsePath(bad);
    EXPECT_EQ(steps.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(FindImagesTest, ReadsSingularIndexedAndAllImages) {
  test::Result result;
  *result.mutable_best()->mutable_image() = ImageOf("best");
  for (const char* data : {"a", "b", "c"}) {
    test::Ranked* ranked = result.add_ranked();
    *ranked->mutable_image() = ImageOf(std::string("ranked-") + data);
    *result.add_images() = ImageOf(data);
  }

  auto best = FindImages(result, "best.image");
  ASSERT_TRUE(best.ok()) << best.status();
  ASSERT_EQ(best->size(), 1u);
  EXPECT_EQ((*best)[0]->data(), "best");

  auto second = FindImages(result, "ranked.1.image");
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_EQ(second->size(), 1u);
  EXPECT_EQ((*second)[0]->data(), "ranked-b");

  auto all = FindImages(result, "images");
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[2]->data(), "c");

  auto third = FindImages(result, "images.2");
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ((*third)[0]->data(), "c");
}

TEST(FindImagesTest, ExplainsWhatIsWrongWithAPath) {
  test::Result result;
  result.add_ranked();

  auto unknown = FindImages(result, "ranked.0.picture");
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(unknown.status()), HasSubstr("no field 'picture' (fields: index, image)"));

  auto past_end = FindImages(result, "ranked.3.image");
  EXPECT_THAT(Message(past_end.status()), HasSubstr("index 3 of 'ranked' is past its end (1"));

  auto no_index = FindImages(result, "ranked.image");
  EXPECT_THAT(Message(no_index.status()), HasSubstr("'ranked' is repeated: give an index"));

  auto not_image = FindImages(result, "best");
  EXPECT_THAT(Message(not_image.status()),
              HasSubstr("leads to a imginterp.test.Control, not an imginterp.v1.Image"));

  auto scalar = FindImages(result, "ranked.0.index");
  EXPECT_THAT(Message(scalar.status()), HasSubstr("'index' is not a message"));

  auto indexed_singular = FindImages(result, "best.0.image");
  EXPECT_THAT(Message(indexed_singular.status()), HasSubstr("'best' is not repeated"));
}

TEST(PutImageTest, FillsSingularRepeatedAndNestedFields) {
  test::Request request;
  request.add_controls()->set_kind("canny");
  request.add_controls()->set_kind("pose");

  ASSERT_TRUE(PutImage(&request, "image", ImageOf("input")).ok());
  ASSERT_TRUE(PutImage(&request, "controls.1.image", ImageOf("openpose")).ok());
  ASSERT_TRUE(PutImage(&request, "single.image", ImageOf("single")).ok());
  // Without an index, and one past the end, a repeated field is appended to.
  ASSERT_TRUE(PutImage(&request, "candidates", ImageOf("first")).ok());
  ASSERT_TRUE(PutImage(&request, "candidates", ImageOf("second")).ok());
  ASSERT_TRUE(PutImage(&request, "candidates.2", ImageOf("third")).ok());
  ASSERT_TRUE(PutImage(&request, "candidates.0", ImageOf("replaced")).ok());
  ASSERT_TRUE(PutImage(&request, "controls.2.image", ImageOf("new control")).ok());

  EXPECT_EQ(request.image().data(), "input");
  EXPECT_EQ(request.controls(0).kind(), "canny");
  EXPECT_FALSE(request.controls(0).has_image());
  EXPECT_EQ(request.controls(1).kind(), "pose");
  EXPECT_EQ(request.controls(1).image().data(), "openpose");
  ASSERT_EQ(request.controls_size(), 3);
  EXPECT_EQ(request.controls(2).image().data(), "new control");
  EXPECT_EQ(request.single().image().data(), "single");
  ASSERT_EQ(request.candidates_size(), 3);
  EXPECT_EQ(request.candidates(0).data(), "replaced");
  EXPECT_EQ(request.candidates(1).data(), "second");
  EXPECT_EQ(request.candidates(2).data(), "third");
}

TEST(PutImageTest, RefusesWrongTargets) {
  test::Request request;
  auto past_end = PutImage(&request, "controls.1.image", ImageOf("x"));
  EXPECT_EQ(past_end.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(past_end), HasSubstr("index 1 of 'controls' is past its end (0 elements"));
  EXPECT_EQ(request.controls_size(), 0);
  auto bad_leaf = PutImage(&request, "controls.0.picture", ImageOf("x"));
  EXPECT_THAT(Message(bad_leaf), HasSubstr("no field 'picture'"));
  EXPECT_EQ(request.controls_size(), 0) << "a failed put must not leave elements behind";

  EXPECT_THAT(Message(PutImage(&request, "prompt", ImageOf("x"))),
              HasSubstr("'prompt' is not an imginterp.v1.Image field"));
  EXPECT_THAT(Message(PutImage(&request, "image.3", ImageOf("x"))),
              HasSubstr("'image' is not repeated"));
  EXPECT_THAT(Message(PutImage(&request, "nothing", ImageOf("x"))),
              HasSubstr("no field 'nothing'"));
}

TEST(SetFromTextTest, ConvertsTextToTheFieldsType) {
  test::Request request;
  ASSERT_TRUE(SetFromText(&request, "prompt", "  a cat, on a mat ").ok());
  ASSERT_TRUE(SetFromText(&request, "steps", "25").ok());
  ASSERT_TRUE(SetFromText(&request, "guidance", "7.5").ok());
  ASSERT_TRUE(SetFromText(&request, "guess", "true").ok());
  ASSERT_TRUE(SetFromText(&request, "seed", "18446744073709551615").ok());
  ASSERT_TRUE(SetFromText(&request, "dtype", "DATA_TYPE_FLOAT16").ok());
  ASSERT_TRUE(SetFromText(&request, "sizes", "512").ok());
  ASSERT_TRUE(SetFromText(&request, "sizes", "768").ok());
  ASSERT_TRUE(SetFromText(&request, "controls.0.scale", "0.5").ok());

  EXPECT_EQ(request.prompt(), "  a cat, on a mat ") << "strings keep their text exactly";
  EXPECT_EQ(request.steps(), 25);
  EXPECT_FLOAT_EQ(request.guidance(), 7.5f);
  EXPECT_TRUE(request.guess());
  EXPECT_EQ(request.seed(), 18446744073709551615ull);
  EXPECT_EQ(request.dtype(), v1::DATA_TYPE_FLOAT16);
  EXPECT_THAT(request.sizes(), ::testing::ElementsAre(512, 768));
  ASSERT_EQ(request.controls_size(), 1);
  EXPECT_DOUBLE_EQ(request.controls(0).scale(), 0.5);
}

TEST(SetFromTextTest, RefusesValuesThatDoNotFit) {
  test::Request request;
  EXPECT_THAT(Message(SetFromText(&request, "steps", "twenty")),
              HasSubstr("field 'steps' takes a 32-bit integer, not 'twenty'"));
  EXPECT_THAT(Message(SetFromText(&request, "steps", "9999999999")),
              HasSubstr("takes a 32-bit integer"));
  EXPECT_THAT(Message(SetFromText(&request, "seed", "-1")),
              HasSubstr("takes a non-negative integer"));
  EXPECT_THAT(Message(SetFromText(&request, "guidance", "nan")), HasSubstr("a finite number"));
  EXPECT_THAT(Message(SetFromText(&request, "guess", "maybe")), HasSubstr("true or false"));
  EXPECT_THAT(Message(SetFromText(&request, "dtype", "FLOAT")),
              HasSubstr("a value name of imginterp.v1.DataType"));
  EXPECT_THAT(Message(SetFromText(&request, "single", "x")),
              HasSubstr("a message, which cannot be set from text"));
  EXPECT_THAT(Message(SetFromText(&request, "sizes.0", "1")),
              HasSubstr("a repeated scalar ('sizes') is appended to without one"));
  EXPECT_EQ(request.steps(), 0);
  EXPECT_FALSE(request.guess());
}

TEST(CheckScalarPathTest, AcceptsScalarLeavesOnly) {
  const auto* type = test::Request::descriptor();
  EXPECT_TRUE(CheckScalarPath(type, "prompt").ok());
  EXPECT_TRUE(CheckScalarPath(type, "controls.1.scale").ok());
  EXPECT_TRUE(CheckScalarPath(type, "controls.kind").ok()) << "no index: appends an element";
  EXPECT_TRUE(CheckScalarPath(type, "sizes").ok());
  EXPECT_THAT(Message(CheckScalarPath(type, "single")), HasSubstr("is a message, not a scalar"));
  EXPECT_THAT(Message(CheckScalarPath(type, "prompt.0")), HasSubstr("takes no index"));
  EXPECT_THAT(Message(CheckScalarPath(type, "steps.x")), HasSubstr("'steps' is not a message"));
  EXPECT_THAT(Message(CheckScalarPath(type, "controls.0.nope")),
              HasSubstr("in imginterp.test.Control: no field 'nope' (fields: kind, image, scale)"));
}

}  // namespace
}  // namespace imginterp::proto_path
