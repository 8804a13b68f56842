// Decoding and encoding of request and response images, with size limits checked before any
// pixel memory is allocated.
//
// Every function here is stateless and thread-safe. Errors are INVALID_ARGUMENT for data that is
// not a usable image and RESOURCE_EXHAUSTED for images over the configured limits; OpenCV
// exceptions never escape.
#pragma once

#include <cstdint>
#include <opencv2/core.hpp>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace imginterp::codec {

// Limits applied to every decoded image. A plain value type.
struct ImageLimits {
  // Largest accepted encoded size, in bytes.
  int64_t max_bytes = 32 << 20;
  // Largest accepted width*height, checked from the header before decoding.
  int64_t max_pixels = 40'000'000;
  // Largest accepted width or height, in pixels.
  int max_side = 16384;
};

// What the header of an encoded image declares.
struct ImageHeader {
  // "image/png", "image/jpeg", "image/webp", "image/bmp", "image/gif" or "image/tiff".
  std::string media_type;
  // Stored pixel size (before any EXIF orientation is applied).
  int width = 0;
  int height = 0;
};

// Reads only the header of `data`: PNG (IHDR), JPEG (the SOFn frame header, skipping APPn and
// other segments), WebP (VP8, VP8L, VP8X), BMP, GIF and TIFF. GIF is recognised so Decode can
// reject it by name. Returns INVALID_ARGUMENT for empty data, unknown formats (naming the first
// bytes) and headers cut short.
absl::StatusOr<ImageHeader> PeekHeader(std::string_view data);

// A decoded image, normalised to 8-bit RGB.
struct DecodedImage {
  // CV_8UC3 in RGB order (not OpenCV's BGR), EXIF orientation applied, owns its memory.
  cv::Mat rgb;
  // The sniffed media type, e.g. "image/png".
  std::string media_type;
  // Channels as stored: 1 gray, 3 colour, 4 colour with alpha (the alpha is dropped).
  int source_channels = 3;
  // Bits per sample as stored: 8 or 16 (16-bit samples are scaled to 8 bits).
  int source_bit_depth = 8;
};

// Decodes PNG, JPEG, WebP, BMP or TIFF bytes into 8-bit RGB. Checks, in order:
//   empty data                                -> INVALID_ARGUMENT
//   data.size() > limits.max_bytes            -> RESOURCE_EXHAUSTED
//   PeekHeader fails                          -> its INVALID_ARGUMENT
//   side or pixel count over the limits       -> RESOURCE_EXHAUSTED (nothing is allocated)
//   unsupported format (GIF)                  -> INVALID_ARGUMENT
//   corrupt or truncated data                 -> INVALID_ARGUMENT
// EXIF orientation (JPEG APP1, PNG eXIf, WebP EXIF chunk) is applied exactly once. TIFF files are
// returned as stored, without applying their orientation tag.
absl::StatusOr<DecodedImage> Decode(std::string_view data, const ImageLimits& limits);

// Encodes CV_8UC1 (gray), CV_8UC3 (RGB order), CV_8UC4 (RGBA order) or CV_16UC1 (16-bit gray)
// as PNG. INVALID_ARGUMENT for any other type or an empty image.
absl::StatusOr<std::string> EncodePng(const cv::Mat& image);

// Encodes CV_8UC3 (RGB order) or CV_8UC1 (gray) as JPEG with `quality` in [1, 100].
// INVALID_ARGUMENT for any other type, an empty image or a quality out of range.
absl::StatusOr<std::string> EncodeJpeg(const cv::Mat& rgb, int quality = 90);

}  // namespace imginterp::codec
