#include "services/core/codec/image_codec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>
#include <vector>

namespace imginterp::codec {
namespace {

using ::testing::HasSubstr;

// Colours of the four quadrants of the asymmetric test image, in RGB order.
const cv::Vec3b kTopLeft(255, 0, 0);
const cv::Vec3b kTopRight(0, 255, 0);
const cv::Vec3b kBottomLeft(0, 0, 255);
const cv::Vec3b kBottomRight(255, 255, 255);

// A 64x32 RGB image with one flat colour per quadrant (flat so JPEG keeps them).
cv::Mat QuadrantRgb() {
  cv::Mat rgb(32, 64, CV_8UC3);
  rgb(cv::Rect(0, 0, 32, 16)).setTo(cv::Scalar(kTopLeft[0], kTopLeft[1], kTopLeft[2]));
  rgb(cv::Rect(32, 0, 32, 16)).setTo(cv::Scalar(kTopRight[0], kTopRight[1], kTopRight[2]));
  rgb(cv::Rect(0, 16, 32, 16)).setTo(cv::Scalar(kBottomLeft[0], kBottomLeft[1], kBottomLeft[2]));
  rgb(cv::Rect(32, 16, 32, 16))
      .setTo(cv::Scalar(kBottomRight[0], kBottomRight[1], kBottomRight[2]));
  return rgb;
}

// Deterministic noise, so compressed files are large enough to cut in half meaningfully.
cv::Mat NoiseBgr(int rows, int cols) {
  cv::Mat bgr(rows, cols, CV_8UC3);
  cv::RNG rng(1234);
  rng.fill(bgr, cv::RNG::UNIFORM, 0, 256);
  return bgr;
}

// Encodes with OpenCV directly (BGR input), independent of the code under test.
std::string CvEncode(const cv::Mat& bgr, const std::string& ext, std::vector<int> params = {}) {
  std::vector<uchar> buffer;
  EXPECT_TRUE(cv::imencode(ext, bgr, buffer, params));
  return std::string(buffer.begin(), buffer.end());
}

cv::Mat RgbToBgr(const cv::Mat& rgb) {
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  return bgr;
}

std::string Be16(uint32_t v) { return {static_cast<char>(v >> 8), static_cast<char>(v)}; }
std::string Be32(uint32_t v) { return Be16(v >> 16) + Be16(v & 0xffff); }
std::string Le16(uint32_t v) { return {static_cast<char>(v), static_cast<char>(v >> 8)}; }
std::string Le32(uint32_t v) { return Le16(v & 0xffff) + Le16(v >> 16); }

uint32_t Crc32(const std::string& bytes) {
  uint32_t crc = 0xffffffffu;
  for (unsigned char byte : bytes) {
    crc ^= byte;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

std::string PngChunk(const std::string& type, const std::string& payload) {
  return Be32(static_cast<uint32_t>(payload.size())) + type + payload + Be32(Crc32(type + payload));
}

// A TIFF block whose IFD0 holds only the orientation tag, as EXIF stores it.
std::string ExifTiff(int orientation, bool little_endian) {
  auto u16 = little_endian ? Le16 : Be16;
  auto u32 = little_endian ? Le32 : Be32;
  std::string tiff = little_endian ? "II" : "MM";
  tiff += u16(42) + u32(8);                                  // Magic, IFD0 at byte 8.
  tiff += u16(1);                                            // One entry.
  tiff += u16(0x0112) + u16(3) + u32(1);                     // Orientation, SHORT, count 1.
  tiff += u16(static_cast<uint32_t>(orientation)) + u16(0);  // Value, left-justified.
  tiff += u32(0);                                            // No next IFD.
  return tiff;
}

// Inserts an APP1 Exif segment after the JFIF APP0 segment of `jpeg`.
std::string WithExifSegment(const std::string& jpeg, int orientation, bool little_endian) {
  const std::string payload = std::string("Exif\0\0", 6) + ExifTiff(orientation, little_endian);
  const std::string app1 = "\xFF\xE1" + Be16(static_cast<uint32_t>(payload.size() + 2)) + payload;
  size_t insert_at = 2;
  if (static_cast<unsigned char>(jpeg[3]) == 0xE0) {
    insert_at =
        4 + ((static_cast<unsigned char>(jpeg[4]) << 8) | static_cast<unsigned char>(jpeg[5]));
  }
  return jpeg.substr(0, insert_at) + app1 + jpeg.substr(insert_at);
}

// Inserts an eXIf chunk right after IHDR.
std::string WithExifChunk(const std::string& png, int orientation) {
  const size_t after_ihdr = 8 + 12 + 13;
  return png.substr(0, after_ihdr) + PngChunk("eXIf", ExifTiff(orientation, false)) +
         png.substr(after_ihdr);
}

void ExpectNear(const cv::Vec3b& actual, const cv::Vec3b& expected, int tolerance,
                const std::string& where) {
  for (int c = 0; c < 3; ++c) {
    EXPECT_NEAR(actual[c], expected[c], tolerance) << where << " channel " << c;
  }
}

// ---- Round trips and conversions. ----

TEST(DecodeTest, PngRoundTripIsExactAndRgb) {
  const cv::Mat rgb = QuadrantRgb();
  auto png = EncodePng(rgb);
  ASSERT_TRUE(png.ok()) << png.status();
  auto decoded = Decode(*png, ImageLimits{});
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->media_type, "image/png");
  EXPECT_EQ(decoded->rgb.type(), CV_8UC3);
  EXPECT_EQ(cv::norm(decoded->rgb, rgb, cv::NORM_INF), 0);
  EXPECT_EQ(decoded->source_channels, 3);
  EXPECT_EQ(decoded->source_bit_depth, 8);
}

TEST(DecodeTest, PureRedDecodesWithRedInChannelZero) {
  cv::Mat bgr(4, 4, CV_8UC3, cv::Scalar(0, 0, 255));
  auto decoded = Decode(CvEncode(bgr, ".png"), ImageLimits{});
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->rgb.at<cv::Vec3b>(0, 0), cv::Vec3b(255, 0, 0));
}

TEST(DecodeTest, JpegRoundTripKeepsColoursAndOrder) {
  const cv::Mat rgb = QuadrantRgb();
  auto jpeg = EncodeJpeg(rgb, 95);
  ASSERT_TRUE(jpeg.ok()) << jpeg.status();
  auto decoded = Decode(*jpeg, ImageLimits{});
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->media_type, "image/jpeg");
  ASSERT_EQ(decoded->rgb.size(), rgb.size());
  ExpectNear(decoded->rgb.at<cv::Vec3b>(8, 16), kTopLeft, 12, "top left");
  ExpectNear(decoded->rgb.at<cv::Vec3b>(8, 48), kTopRight, 12, "top right");
  ExpectNear(decoded->rgb.at<cv::Vec3b>(24, 16), kBottomLeft, 12, "bottom left");
  ExpectNear(decoded->rgb.at<cv::Vec3b>(24, 48), kBottomRight, 12, "bottom right");
}

TEST(DecodeTest, LosslessWebpRoundTripIsExact) {
  const cv::Mat rgb = QuadrantRgb();
  const std::string webp = CvEncode(RgbToBgr(rgb), ".webp", {cv::IMWRITE_WEBP_QUALITY, 101});
  auto decoded = Decode(webp, ImageLimits{});
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->media_type, "image/webp");
  EXPECT_EQ(cv::norm(decoded->rgb, rgb, cv::NORM_INF), 0);
}

TEST(DecodeTest, LossyWebpRoundTripKeepsColours) {
  const cv::Mat rgb = QuadrantRgb();
  const std::string webp = CvEncode(RgbToBgr(rgb), ".webp", {cv::IMWRITE_WEBP_QUALITY, 95});
  auto decoded = Decode(webp, ImageLimits{});
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ASSERT_EQ(decoded->rgb.size(), rgb.size());
  ExpectNear(decoded->rgb.at<cv::Vec3b>(8, 16), kTopLeft, 16, "top left");
  ExpectNear(decoded->rgb.at<cv::Vec3b>(24, 48), kBottomRight, 16, "bottom right");
}

TEST(DecodeTest, BmpRoundTripIsExact) {
  const cv::Mat rgb = QuadrantRgb();
  auto decoded = Decode(CvEncode(RgbToBgr(rgb), ".bmp"), ImageLimits{});
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->media_type, "image/bmp");
  EXPECT_EQ(cv::norm(decoded->rgb, rgb, cv::NORM_INF), 0);
}

TEST(DecodeTest, GrayscalePngBecomesRgbWithEqualChannels) {
  cv::Mat gray(5, 7, CV_8UC1, cv::Scalar(77));
  gray.at<uchar>(2, 3) = 200;
  auto decoded = Decode(CvEncode(gray, ".png"), ImageLimits{});
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->source_channels, 1);
  EXPECT_EQ(decoded->rgb.type(), CV_8UC3);
  EXPECT_EQ(decoded->rgb.at<cv::Vec3b>(0, 0), cv::Vec3b(77, 77, 77));
  EXPECT_EQ(decoded->rgb.at<cv::Vec3b>(2, 3), cv::Vec3b(200, 200, 200));
}

TEST(DecodeTest, RgbaPngDropsAlphaAndKeepsColour) {
  cv::Mat bgra(3, 3, CV_8UC4, cv::Scalar(10, 20, 30, 128));  // B, G, R, A.
  auto decoded = Decode(CvEncode(bgra, ".png"), ImageLimits{});
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->source_channels, 4);
  EXPECT_EQ(decoded->rgb.type(), CV_8UC3);
  EXPECT_EQ(decoded->rgb.at<cv::Vec3b>(1, 1), cv::Vec3b(30, 20, 10));
}

TEST(DecodeTest, SixteenBitPngIsScaledToEightBits) {
  cv::Mat bgr16(2, 2, CV_16UC3, cv::Scalar(65535, 257 * 100, 0));  // B, G, R.
  auto decoded = Decode(CvEncode(bgr16, ".png"), ImageLimits{});
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->source_bit_depth, 16);
  EXPECT_EQ(decoded->rgb.type(), CV_8UC3);
  EXPECT_EQ(decoded->rgb.at<cv::Vec3b>(0, 0), cv::Vec3b(0, 100, 255));
}

TEST(DecodeTest, SixteenBitGrayPngIsScaledToEightBitRgb) {
  cv::Mat gray16(2, 2, CV_16UC1, cv::Scalar(257 * 40));
  auto decoded = Decode(CvEncode(gray16, ".png"), ImageLimits{});
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->source_bit_depth, 16);
  EXPECT_EQ(decoded->source_channels, 1);
  EXPECT_EQ(decoded->rgb.at<cv::Vec3b>(1, 1), cv::Vec3b(40, 40, 40));
}

// ---- Rejections. ----

TEST(DecodeTest, EmptyDataIsInvalidArgument) {
  auto decoded = Decode("", ImageLimits{});
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(decoded.status().message(), HasSubstr("empty"));
}

TEST(DecodeTest, HtmlIsRejectedNamingItsFirstBytes) {
  auto decoded = Decode("<html><body>not found</body></html>", ImageLimits{});
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(decoded.status().message(), HasSubstr("3c 68 74 6d"));
  EXPECT_THAT(decoded.status().message(), HasSubstr("PNG, JPEG, WebP or BMP"));
}

TEST(DecodeTest, PngCutInHalfIsInvalidArgument) {
  const std::string png = CvEncode(NoiseBgr(64, 64), ".png");
  auto decoded = Decode(png.substr(0, png.size() / 2), ImageLimits{});
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(decoded.status().message(), HasSubstr("corrupt or truncated (PNG"));
}

TEST(DecodeTest, JpegCutInHalfIsInvalidArgument) {
  const std::string jpeg = CvEncode(NoiseBgr(64, 64), ".jpg");
  auto decoded = Decode(jpeg.substr(0, jpeg.size() / 2), ImageLimits{});
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(decoded.status().message(), HasSubstr("corrupt or truncated (JPEG"));
}

TEST(DecodeTest, WebpCutInHalfIsInvalidArgument) {
  const std::string webp = CvEncode(NoiseBgr(64, 64), ".webp", {cv::IMWRITE_WEBP_QUALITY, 90});
  auto decoded = Decode(webp.substr(0, webp.size() / 2), ImageLimits{});
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(DecodeTest, BmpCutInHalfIsInvalidArgument) {
  const std::string bmp = CvEncode(NoiseBgr(16, 16), ".bmp");
  auto decoded = Decode(bmp.substr(0, bmp.size() / 2), ImageLimits{});
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(DecodeTest, PngWithCorruptPixelDataIsInvalidArgument) {
  const std::string ihdr = Be32(8) + Be32(8) + std::string("\x08\x02\x00\x00\x00", 5);
  const std::string png = std::string("\x89PNG\r\n\x1a\n", 8) + PngChunk("IHDR", ihdr) +
                          PngChunk("IDAT", "garbage!") + PngChunk("IEND", "");
  auto decoded = Decode(png, ImageLimits{});
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(DecodeTest, HugePngHeaderIsRejectedBeforeDecoding) {
  // Only a signature, an IHDR claiming 50000x50000 and a tiny bogus IDAT: decoding would fail
  // as corrupt, so RESOURCE_EXHAUSTED shows the limit was checked from the header alone.
  const std::string ihdr = Be32(50000) + Be32(50000) + std::string("\x08\x02\x00\x00\x00", 5);
  const std::string png =
      std::string("\x89PNG\r\n\x1a\n", 8) + PngChunk("IHDR", ihdr) + PngChunk("IDAT", "xx");
  auto decoded = Decode(png, ImageLimits{});
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(decoded.status().message(), HasSubstr("50000x50000"));
  EXPECT_THAT(decoded.status().message(), HasSubstr("2500.0 Mpx"));
  EXPECT_THAT(decoded.status().message(), HasSubstr("limit is 40.0 Mpx"));
}

TEST(DecodeTest, HugeJpegFrameHeaderIsRejectedBeforeDecoding) {
  std::string jpeg = "\xFF\xD8";
  jpeg += "\xFF\xE0" + Be16(16) + std::string("JFIF\0\x01\x01\0\0\x01\0\x01\0\0", 14);
  jpeg += "\xFF\xC0" + Be16(17) + std::string("\x08") + Be16(50000) + Be16(50000) +
          std::string("\x03\x01\x11\x00\x02\x11\x00\x03\x11\x00", 10);
  jpeg += "\xFF\xDA" + Be16(12) + std::string(10, '\0') + "junk\xFF\xD9";
  auto decoded = Decode(jpeg, ImageLimits{});
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(decoded.status().message(), HasSubstr("50000x50000"));
}

TEST(DecodeTest, ImageOverMaxBytesIsResourceExhausted) {
  const std::string png = CvEncode(NoiseBgr(32, 32), ".png");
  ImageLimits limits;
  limits.max_bytes = 1000;
  auto decoded = Decode(png, limits);
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(decoded.status().message(), HasSubstr("limit is 1000 bytes"));
}

TEST(DecodeTest, MaxBytesMessageUsesMegabytes) {
  ImageLimits limits;
  limits.max_bytes = 1 << 20;
  const std::string big(static_cast<size_t>(1.5 * (1 << 20)), 'x');
  auto decoded = Decode(big, limits);
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(decoded.status().message(), "image is 1.5 MB, limit is 1 MB");
}

TEST(DecodeTest, SideOverMaxSideIsResourceExhausted) {
  ImageLimits limits;
  limits.max_side = 32;
  auto decoded = Decode(CvEncode(NoiseBgr(8, 64), ".png"), limits);
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(decoded.status().message(), HasSubstr("64x8"));
  EXPECT_THAT(decoded.status().message(), HasSubstr("32 px"));
}

TEST(DecodeTest, GifIsRejectedByName) {
  const std::string gif = "GIF89a" + Le16(4) + Le16(4) + std::string("\x00\x00\x00;", 4);
  auto decoded = Decode(gif, ImageLimits{});
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(decoded.status().message(), HasSubstr("GIF"));
}

// ---- EXIF orientation. ----

// Where stored pixel (x, y) of a w x h image lands when displayed with EXIF `orientation`,
// written from the EXIF definition of where row 0 and column 0 go.
cv::Point Displayed(int orientation, int x, int y, int w, int h) {
  switch (orientation) {
    case 2:
      return {w - 1 - x, y};
    case 3:
      return {w - 1 - x, h - 1 - y};
    case 4:
      return {x, h - 1 - y};
    case 5:
      return {y, x};
    case 6:
      return {h - 1 - y, x};
    case 7:
      return {h - 1 - y, w - 1 - x};
    case 8:
      return {y, w - 1 - x};
    default:
      return {x, y};
  }
}

void ExpectQuadrantsFollowOrientation(const DecodedImage& decoded, int orientation, int tolerance) {
  const bool swaps = orientation >= 5;
  ASSERT_EQ(decoded.rgb.cols, swaps ? 32 : 64);
  ASSERT_EQ(decoded.rgb.rows, swaps ? 64 : 32);
  struct Probe {
    int x, y;
    cv::Vec3b colour;
    const char* name;
  };
  const std::array<Probe, 4> probes = {{{16, 8, kTopLeft, "top left"},
                                        {48, 8, kTopRight, "top right"},
                                        {16, 24, kBottomLeft, "bottom left"},
                                        {48, 24, kBottomRight, "bottom right"}}};
  for (const Probe& probe : probes) {
    const cv::Point at = Displayed(orientation, probe.x, probe.y, 64, 32);
    ExpectNear(
        decoded.rgb.at<cv::Vec3b>(at), probe.colour, tolerance,
        std::string("stored ") + probe.name + ", orientation " + std::to_string(orientation));
  }
}

class ExifOrientationTest : public ::testing::TestWithParam<int> {};

TEST_P(ExifOrientationTest, JpegIsTurnedToDisplayOrientationExactlyOnce) {
  const int orientation = GetParam();
  const std::string jpeg =
      CvEncode(RgbToBgr(QuadrantRgb()), ".jpg", {cv::IMWRITE_JPEG_QUALITY, 95});
  const std::string with_exif = WithExifSegment(jpeg, orientation, orientation % 2 == 0);
  auto decoded = Decode(with_exif, ImageLimits{});
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ExpectQuadrantsFollowOrientation(*decoded, orientation, 12);
}

TEST_P(ExifOrientationTest, PngExifChunkIsAppliedExactlyOnce) {
  const int orientation = GetParam();
  const std::string png = WithExifChunk(CvEncode(RgbToBgr(QuadrantRgb()), ".png"), orientation);
  auto decoded = Decode(png, ImageLimits{});
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ExpectQuadrantsFollowOrientation(*decoded, orientation, 0);
}

INSTANTIATE_TEST_SUITE_P(AllOrientations, ExifOrientationTest, ::testing::Range(1, 9));

// ---- Headers. ----

TEST(PeekHeaderTest, ReadsSizeAndTypeOfEveryFormat) {
  const cv::Mat bgr = NoiseBgr(21, 37);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {CvEncode(bgr, ".png"), "image/png"},
      {CvEncode(bgr, ".jpg"), "image/jpeg"},
      {CvEncode(bgr, ".webp", {cv::IMWRITE_WEBP_QUALITY, 80}), "image/webp"},
      {CvEncode(bgr, ".webp", {cv::IMWRITE_WEBP_QUALITY, 101}), "image/webp"},
      {CvEncode(bgr, ".bmp"), "image/bmp"},
      {CvEncode(bgr, ".tiff"), "image/tiff"},
  };
  for (const auto& [data, media_type] : cases) {
    auto header = PeekHeader(data);
    ASSERT_TRUE(header.ok()) << media_type << ": " << header.status();
    EXPECT_EQ(header->media_type, media_type);
    EXPECT_EQ(header->width, 37) << media_type;
    EXPECT_EQ(header->height, 21) << media_type;
  }
}

TEST(PeekHeaderTest, ReadsGifScreenSize) {
  auto header = PeekHeader("GIF87a" + Le16(300) + Le16(200) + std::string(4, '\0'));
  ASSERT_TRUE(header.ok()) << header.status();
  EXPECT_EQ(header->media_type, "image/gif");
  EXPECT_EQ(header->width, 300);
  EXPECT_EQ(header->height, 200);
}

TEST(PeekHeaderTest, JpegCutBeforeFrameHeaderIsTruncated) {
  const std::string jpeg = "\xFF\xD8\xFF\xE0" + Be16(16) + "JFIF";
  auto header = PeekHeader(jpeg);
  EXPECT_EQ(header.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(header.status().message(), "image header is truncated (JPEG)");
}

TEST(PeekHeaderTest, EmptyIsInvalidArgument) {
  EXPECT_EQ(PeekHeader("").status().message(), "image is empty");
}

// ---- Encoding. ----

TEST(EncodeTest, PngKeepsRgbaAndGray) {
  cv::Mat rgba(2, 2, CV_8UC4, cv::Scalar(1, 2, 3, 4));
  auto png = EncodePng(rgba);
  ASSERT_TRUE(png.ok()) << png.status();
  cv::Mat back = cv::imdecode(cv::Mat(1, static_cast<int>(png->size()), CV_8U, png->data()),
                              cv::IMREAD_UNCHANGED);
  EXPECT_EQ(back.at<cv::Vec4b>(0, 0), cv::Vec4b(3, 2, 1, 4));  // OpenCV reads BGRA.

  cv::Mat gray(2, 2, CV_8UC1, cv::Scalar(9));
  auto gray_png = EncodePng(gray);
  ASSERT_TRUE(gray_png.ok()) << gray_png.status();
  back = cv::imdecode(cv::Mat(1, static_cast<int>(gray_png->size()), CV_8U, gray_png->data()),
                      cv::IMREAD_UNCHANGED);
  EXPECT_EQ(back.type(), CV_8UC1);
  EXPECT_EQ(back.at<uchar>(1, 1), 9);
}

TEST(EncodeTest, PngRejectsFloatImages) {
  auto png = EncodePng(cv::Mat(2, 2, CV_32FC3, cv::Scalar(0.5)));
  EXPECT_EQ(png.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodePng(cv::Mat()).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(EncodeTest, JpegRejectsQualityOutOfRangeAndRgba) {
  const cv::Mat rgb = QuadrantRgb();
  EXPECT_EQ(EncodeJpeg(rgb, 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeJpeg(rgb, 101).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeJpeg(cv::Mat(2, 2, CV_8UC4)).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace imginterp::codec
