#include "services/core/common/media_type.h"

#include "gtest/gtest.h"

namespace imginterp::common {
namespace {

TEST(ImageMediaTypeOf, KnowsTheImageTypesTheServicesDecodeByExtension) {
  EXPECT_EQ(ImageMediaTypeOf("photo.png"), "image/png");
  EXPECT_EQ(ImageMediaTypeOf("dir/photo.jpg"), "image/jpeg");
  EXPECT_EQ(ImageMediaTypeOf("photo.jpeg"), "image/jpeg");
  EXPECT_EQ(ImageMediaTypeOf("photo.webp"), "image/webp");
  EXPECT_EQ(ImageMediaTypeOf("/tmp/photo.bmp"), "image/bmp");
}

TEST(ImageMediaTypeOf, IgnoresTheCaseOfTheExtension) {
  EXPECT_EQ(ImageMediaTypeOf("IMG_0001.JPG"), "image/jpeg");
  EXPECT_EQ(ImageMediaTypeOf("scan.Png"), "image/png");
}

TEST(ImageMediaTypeOf, AnythingElseIsEmpty) {
  EXPECT_EQ(ImageMediaTypeOf("photo"), "");
  EXPECT_EQ(ImageMediaTypeOf("photo.gif"), "");
  EXPECT_EQ(ImageMediaTypeOf("photo.png.txt"), "");
  EXPECT_EQ(ImageMediaTypeOf("dir.png/photo"), "");
}

}  // namespace
}  // namespace imginterp::common
