#include "services/core/codec/image_codec.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "services/core/common/status_macros.h"

namespace imginterp::codec {
namespace {

constexpr std::string_view kPngSignature("\x89PNG\r\n\x1a\n", 8);
constexpr std::string_view kExifPrefix("Exif\0\0", 6);
constexpr std::string_view kSupportedList = "send PNG, JPEG, WebP or BMP";

// ---- Byte access. Callers check bounds first. ----

uint32_t U8(std::string_view d, size_t at) { return static_cast<unsigned char>(d[at]); }
uint32_t U16Be(std::string_view d, size_t at) { return (U8(d, at) << 8) | U8(d, at + 1); }
uint32_t U32Be(std::string_view d, size_t at) { return (U16Be(d, at) << 16) | U16Be(d, at + 2); }
uint32_t U16Le(std::string_view d, size_t at) { return U8(d, at) | (U8(d, at + 1) << 8); }
uint32_t U24Le(std::string_view d, size_t at) { return U16Le(d, at) | (U8(d, at + 2) << 16); }
uint32_t U32Le(std::string_view d, size_t at) { return U16Le(d, at) | (U16Le(d, at + 2) << 16); }

// Debian's abseil is built with its own string_view, so std::string_view needs converting.
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

bool StartsWith(std::string_view d, std::string_view prefix) {
  return d.substr(0, prefix.size()) == prefix;
}

// "PNG" for "image/png" and so on: the short name used in messages.
std::string ShortName(std::string_view media_type) {
  if (media_type == "image/png") return "PNG";
  if (media_type == "image/jpeg") return "JPEG";
  if (media_type == "image/webp") return "WebP";
  if (media_type == "image/bmp") return "BMP";
  if (media_type == "image/gif") return "GIF";
  if (media_type == "image/tiff") return "TIFF";
  return std::string(media_type);
}

std::string FirstBytesHex(std::string_view d) {
  std::vector<std::string> hex;
  for (size_t i = 0; i < std::min<size_t>(d.size(), 4); ++i) {
    hex.push_back(absl::StrFormat("%02x", U8(d, i)));
  }
  return absl::StrJoin(hex, " ");
}

absl::Status Truncated(std::string_view format) {
  return absl::InvalidArgumentError(absl::StrCat("image header is truncated (", Sv(format), ")"));
}

absl::Status InvalidHeader(std::string_view format, std::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("image header is invalid (", Sv(format), "): ", Sv(why)));
}

absl::StatusOr<ImageHeader> MakeHeader(std::string_view media_type, int64_t width, int64_t height) {
  const std::string name = ShortName(media_type);
  if (width <= 0 || height <= 0 || width > std::numeric_limits<int>::max() ||
      height > std::numeric_limits<int>::max()) {
    return InvalidHeader(
        name, absl::StrCat("declared size ", width, "x", height, " is not a valid image size"));
  }
  return ImageHeader{std::string(media_type), static_cast<int>(width), static_cast<int>(height)};
}

// ---- Header readers, one per format. `d` starts with the format's signature. ----

absl::StatusOr<ImageHeader> PeekPng(std::string_view d) {
  // Signature (8), IHDR length (4), "IHDR" (4), width (4), height (4).
  if (d.size() < 24) return Truncated("PNG");
  if (d.substr(12, 4) != "IHDR") return InvalidHeader("PNG", "the first chunk is not IHDR");
  return MakeHeader("image/png", U32Be(d, 16), U32Be(d, 20));
}

// Start-of-frame markers carry the frame size: C0-CF except DHT (C4), JPG (C8) and DAC (CC).
bool IsJpegSof(uint32_t marker) {
  return marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
}

// Markers that stand alone, without a length field.
bool IsJpegStandalone(uint32_t marker) {
  return marker == 0x01 || marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7);
}

// Calls `visit(marker, payload_offset, payload_size)` for each segment between SOI and the first
// SOS (inclusive), stopping early when `visit` returns false. Returns the offset of the SOS
// payload, or an error for truncated or malformed headers.
template <typename Visit>
absl::StatusOr<size_t> WalkJpegSegments(std::string_view d, Visit visit) {
  size_t pos = 2;
  while (true) {
    if (pos >= d.size()) return Truncated("JPEG");
    if (U8(d, pos) != 0xFF) {
      return InvalidHeader("JPEG", absl::StrCat("expected a marker at byte ", pos));
    }
    while (pos < d.size() && U8(d, pos) == 0xFF) ++pos;  // Fill bytes.
    if (pos >= d.size()) return Truncated("JPEG");
    const uint32_t marker = U8(d, pos++);
    if (IsJpegStandalone(marker)) continue;
    if (marker == 0xD9) return InvalidHeader("JPEG", "end of image before any frame header");
    if (pos + 2 > d.size()) return Truncated("JPEG");
    const size_t length = U16Be(d, pos);
    if (length < 2) return InvalidHeader("JPEG", absl::StrCat("segment length ", length));
    const size_t payload = pos + 2;
    const size_t payload_size = std::min(length - 2, d.size() - std::min(payload, d.size()));
    if (!visit(marker, payload, payload_size)) return payload;
    if (marker == 0xDA) return payload;
    pos += length;
  }
}

absl::StatusOr<ImageHeader> PeekJpeg(std::string_view d) {
  bool found = false;
  bool truncated = false;
  int64_t width = 0;
  int64_t height = 0;
  bool scan_first = false;
  auto visit = [&](uint32_t marker, size_t at, size_t size) {
    if (marker == 0xDA) {
      scan_first = true;
      return false;
    }
    if (!IsJpegSof(marker)) return true;
    // Precision (1), height (2), width (2).
    if (size < 5) {
      truncated = true;
      return false;
    }
    height = U16Be(d, at + 1);
    width = U16Be(d, at + 3);
    found = true;
    return false;
  };
  IMGINTERP_RETURN_IF_ERROR(WalkJpegSegments(d, visit).status());
  if (truncated) return Truncated("JPEG");
  if (scan_first || !found) return InvalidHeader("JPEG", "scan data before any frame header");
  return MakeHeader("image/jpeg", width, height);
}

absl::StatusOr<ImageHeader> PeekWebp(std::string_view d) {
  // RIFF header (12), chunk header (8), then up to 10 bytes of the bitstream header.
  if (d.size() < 30) return Truncated("WebP");
  const std::string_view chunk = d.substr(12, 4);
  if (chunk == "VP8 ") {
    // Frame tag (3), start code 9d 01 2a (3), 14-bit width and height.
    if (U8(d, 23) != 0x9d || U8(d, 24) != 0x01 || U8(d, 25) != 0x2a) {
      return InvalidHeader("WebP", "VP8 start code missing");
    }
    return MakeHeader("image/webp", U16Le(d, 26) & 0x3fff, U16Le(d, 28) & 0x3fff);
  }
  if (chunk == "VP8L") {
    if (U8(d, 20) != 0x2f) return InvalidHeader("WebP", "VP8L signature missing");
    const uint32_t bits = U32Le(d, 21);
    return MakeHeader("image/webp", (bits & 0x3fff) + 1, ((bits >> 14) & 0x3fff) + 1);
  }
  if (chunk == "VP8X") {
    return MakeHeader("image/webp", int64_t{U24Le(d, 24)} + 1, int64_t{U24Le(d, 27)} + 1);
  }
  return InvalidHeader("WebP", absl::StrCat("unknown first chunk '", Sv(chunk), "'"));
}

absl::StatusOr<ImageHeader> PeekBmp(std::string_view d) {
  if (d.size() < 18) return Truncated("BMP");
  const uint32_t dib_size = U32Le(d, 14);
  if (dib_size == 12) {  // BITMAPCOREHEADER: 16-bit sizes.
    if (d.size() < 26) return Truncated("BMP");
    return MakeHeader("image/bmp", U16Le(d, 18), U16Le(d, 20));
  }
  if (dib_size < 40 || dib_size > 124) {
    return InvalidHeader("BMP", absl::StrCat("unknown DIB header size ", dib_size));
  }
  if (d.size() < 26) return Truncated("BMP");
  const int64_t width = static_cast<int32_t>(U32Le(d, 18));
  const int64_t height = static_cast<int32_t>(U32Le(d, 22));  // Negative: stored top-down.
  return MakeHeader("image/bmp", width, std::abs(height));
}

absl::StatusOr<ImageHeader> PeekGif(std::string_view d) {
  if (d.size() < 10) return Truncated("GIF");
  return MakeHeader("image/gif", U16Le(d, 6), U16Le(d, 8));
}

// Reads SHORT or LONG values of IFD0 entries from TIFF-structured bytes (TIFF files and EXIF
// blocks share the layout).
class TiffReader {
 public:
  explicit TiffReader(std::string_view d) : d_(d), little_(StartsWith(d, "II")) {}

  bool ValidMagic() const {
    return d_.size() >= 8 && (StartsWith(d_, "II") || StartsWith(d_, "MM")) && U16(2) == 42;
  }

  // The value of `tag` in IFD0; -1 when absent; -2 when the directory runs past the data.
  int64_t Ifd0Value(uint32_t tag) const {
    const size_t ifd = U32(4);
    if (ifd > d_.size() || d_.size() - ifd < 2) return -2;
    const size_t count = U16(ifd);
    for (size_t i = 0; i < count; ++i) {
      const size_t entry = ifd + 2 + 12 * i;
      if (entry > d_.size() || d_.size() - entry < 12) return -2;
      if (U16(entry) != tag) continue;
      const uint32_t type = U16(entry + 2);
      if (type == 3) return U16(entry + 8);  // SHORT, left-justified in the value field.
      if (type == 4) return U32(entry + 8);  // LONG.
      return -1;
    }
    return -1;
  }

 private:
  uint32_t U16(size_t at) const { return little_ ? U16Le(d_, at) : U16Be(d_, at); }
  uint32_t U32(size_t at) const { return little_ ? U32Le(d_, at) : U32Be(d_, at); }

  std::string_view d_;
  bool little_;
};

absl::StatusOr<ImageHeader> PeekTiff(std::string_view d) {
  TiffReader tiff(d);
  if (!tiff.ValidMagic()) return Truncated("TIFF");
  const int64_t width = tiff.Ifd0Value(256);
  const int64_t height = tiff.Ifd0Value(257);
  if (width == -2 || height == -2) return Truncated("TIFF");
  if (width < 0 || height < 0) return InvalidHeader("TIFF", "ImageWidth or ImageLength missing");
  return MakeHeader("image/tiff", width, height);
}

// ---- EXIF orientation. ----

// The orientation (1..8) stored in an EXIF block, 1 when absent or unreadable.
int OrientationFromExif(std::string_view exif) {
  if (StartsWith(exif, kExifPrefix)) exif.remove_prefix(kExifPrefix.size());
  TiffReader tiff(exif);
  if (!tiff.ValidMagic()) return 1;
  const int64_t orientation = tiff.Ifd0Value(0x0112);
  return orientation >= 1 && orientation <= 8 ? static_cast<int>(orientation) : 1;
}

int JpegOrientation(std::string_view d) {
  int orientation = 1;
  auto visit = [&](uint32_t marker, size_t at, size_t size) {
    if (marker == 0xDA) return false;
    const std::string_view payload = d.substr(at, size);
    if (marker == 0xE1 && StartsWith(payload, kExifPrefix)) {
      orientation = OrientationFromExif(payload);
      return false;
    }
    return true;
  };
  (void)WalkJpegSegments(d, visit);
  return orientation;
}

int PngOrientation(std::string_view d) {
  size_t pos = kPngSignature.size();
  while (pos <= d.size() && d.size() - pos >= 12) {
    const size_t length = U32Be(d, pos);
    const std::string_view type = d.substr(pos + 4, 4);
    if (length > d.size() - pos - 12) return 1;
    if (type == "eXIf") return OrientationFromExif(d.substr(pos + 8, length));
    if (type == "IEND") return 1;
    pos += 12 + length;
  }
  return 1;
}

int WebpOrientation(std::string_view d) {
  if (d.substr(12, 4) != "VP8X") return 1;  // Only the extended format carries EXIF.
  size_t pos = 12;
  while (pos <= d.size() && d.size() - pos >= 8) {
    const std::string_view fourcc = d.substr(pos, 4);
    const size_t size = U32Le(d, pos + 4);
    if (size > d.size() - pos - 8) return 1;
    if (fourcc == "EXIF") return OrientationFromExif(d.substr(pos + 8, size));
    pos += 8 + size + (size & 1);
  }
  return 1;
}

// Turns a stored image into its display orientation (EXIF orientation values 1..8).
void ApplyOrientation(int orientation, cv::Mat& image) {
  cv::Mat out;
  switch (orientation) {
    case 2:
      cv::flip(image, out, 1);
      break;  // Mirrored left-right.
    case 3:
      cv::flip(image, out, -1);
      break;  // Rotated 180.
    case 4:
      cv::flip(image, out, 0);
      break;  // Mirrored top-bottom.
    case 5:
      cv::transpose(image, out);
      break;  // Mirrored along the main diagonal.
    case 6:   // Rotate 90 clockwise to display.
      cv::transpose(image, out);
      cv::flip(out, out, 1);
      break;
    case 7:  // Mirrored along the anti-diagonal.
      cv::transpose(image, out);
      cv::flip(out, out, -1);
      break;
    case 8:  // Rotate 90 counter-clockwise to display.
      cv::transpose(image, out);
      cv::flip(out, out, 0);
      break;
    default:
      return;
  }
  image = out;
}

// ---- Truncation checks for data OpenCV would half-decode. ----

// Empty when the data looks complete, else what is missing.
std::string PngIncompleteReason(std::string_view d) {
  size_t pos = kPngSignature.size();
  while (pos <= d.size() && d.size() - pos >= 12) {
    const size_t length = U32Be(d, pos);
    if (length > d.size() - pos - 12) break;
    if (d.substr(pos + 4, 4) == "IEND") return "";
    pos += 12 + length;
  }
  return "no IEND chunk";
}

std::string JpegIncompleteReason(std::string_view d) {
  auto sos = WalkJpegSegments(d, [](uint32_t, size_t, size_t) { return true; });
  if (!sos.ok()) return "no scan data";
  // After the first scan header only entropy-coded data (where a 0xFF data byte is always
  // followed by 0x00) and markers follow, so the first FF D9 is the end-of-image marker.
  for (size_t i = *sos; i + 1 < d.size(); ++i) {
    if (U8(d, i) == 0xFF && U8(d, i + 1) == 0xD9) return "";
  }
  return "no end-of-image marker (FF D9)";
}

std::string WebpIncompleteReason(std::string_view d) {
  const uint64_t riff_size = U32Le(d, 4);
  if (riff_size + 8 > d.size()) {
    return absl::StrCat("RIFF header declares ", riff_size + 8, " bytes");
  }
  return "";
}

std::string BmpIncompleteReason(std::string_view d, const ImageHeader& header) {
  if (d.size() < 30) return "header cut short";
  const uint32_t dib_size = U32Le(d, 14);
  if (dib_size == 12) return "";  // Rare OS/2 layout; let the decoder judge it.
  const uint32_t bits = U16Le(d, 28);
  const uint32_t compression = d.size() >= 34 ? U32Le(d, 30) : 0;
  if (compression != 0 && compression != 3) return "";  // RLE: size not known up front.
  const uint64_t stride = ((uint64_t{bits} * header.width + 31) / 32) * 4;
  const uint64_t needed = uint64_t{U32Le(d, 10)} + stride * header.height;
  if (needed > d.size()) return absl::StrCat("pixel data needs ", needed, " bytes");
  return "";
}

std::string IncompleteReason(std::string_view d, const ImageHeader& header) {
  if (header.media_type == "image/png") return PngIncompleteReason(d);
  if (header.media_type == "image/jpeg") return JpegIncompleteReason(d);
  if (header.media_type == "image/webp") return WebpIncompleteReason(d);
  if (header.media_type == "image/bmp") return BmpIncompleteReason(d, header);
  return "";
}

int Orientation(std::string_view d, const ImageHeader& header) {
  if (header.media_type == "image/jpeg") return JpegOrientation(d);
  if (header.media_type == "image/png") return PngOrientation(d);
  if (header.media_type == "image/webp") return WebpOrientation(d);
  return 1;
}

// ---- Messages. ----

// "40.1 MB", "32 MB", "12 KB", "900 bytes".
std::string FormatSize(int64_t bytes) {
  auto one_decimal = [](double v, std::string_view unit) {
    std::string s = absl::StrFormat("%.1f", v);
    if (s.size() > 2 && s.substr(s.size() - 2) == ".0") s.resize(s.size() - 2);
    return absl::StrCat(s, " ", Sv(unit));
  };
  if (bytes >= (int64_t{1} << 20)) return one_decimal(bytes / 1048576.0, "MB");
  if (bytes >= 1024) return one_decimal(bytes / 1024.0, "KB");
  return absl::StrCat(bytes, " bytes");
}

std::string FormatMegapixels(int64_t pixels) { return absl::StrFormat("%.1f Mpx", pixels / 1e6); }

absl::Status Corrupt(std::string_view data, const ImageHeader& header, std::string_view why) {
  std::string message = absl::StrCat("image data is corrupt or truncated (",
                                     ShortName(header.media_type), ", ", data.size(), " bytes)");
  if (!why.empty()) absl::StrAppend(&message, ": ", Sv(why));
  return absl::InvalidArgumentError(message);
}

absl::Status CheckLimits(const ImageHeader& header, const ImageLimits& limits) {
  const int64_t pixels = int64_t{header.width} * header.height;
  const std::string size = absl::StrCat(header.width, "x", header.height);
  if (pixels > limits.max_pixels) {
    return absl::ResourceExhaustedError(absl::StrCat("image is ", size, " (",
                                                     FormatMegapixels(pixels), "), limit is ",
                                                     FormatMegapixels(limits.max_pixels)));
  }
  const int longer = std::max(header.width, header.height);
  if (longer > limits.max_side) {
    return absl::ResourceExhaustedError(absl::StrCat("image is ", size, ", its longer side ",
                                                     longer, " px is over the limit of ",
                                                     limits.max_side, " px"));
  }
  return absl::OkStatus();
}

// Converts what imdecode(IMREAD_UNCHANGED) returned into 8-bit RGB.
absl::StatusOr<cv::Mat> ToRgb8(const cv::Mat& decoded, std::string_view data,
                               const ImageHeader& header) {
  cv::Mat eight_bit;
  switch (decoded.depth()) {
    case CV_8U:
      eight_bit = decoded;
      break;
    case CV_16U:
      decoded.convertTo(eight_bit, CV_8U, 1.0 / 257.0);  // 65535 -> 255, rounded.
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("image sample format is not supported (", ShortName(header.media_type),
                       ", OpenCV depth ", decoded.depth(), "): send 8- or 16-bit integer images"));
  }
  cv::Mat rgb;
  switch (eight_bit.channels()) {
    case 1:
      cv::cvtColor(eight_bit, rgb, cv::COLOR_GRAY2RGB);
      break;
    case 3:
      cv::cvtColor(eight_bit, rgb, cv::COLOR_BGR2RGB);
      break;
    case 4:
      cv::cvtColor(eight_bit, rgb, cv::COLOR_BGRA2RGB);
      break;
    default:
      return Corrupt(data, header, absl::StrCat(eight_bit.channels(), " channels"));
  }
  return rgb;
}

cv::Mat WrapBytes(std::string_view data) {
  // imdecode only reads its input; the Mat header borrows `data` for the call.
  return cv::Mat(1, static_cast<int>(data.size()), CV_8U,
                 const_cast<char*>(data.data()));  // NOLINT: read-only use.
}

}  // namespace

absl::StatusOr<ImageHeader> PeekHeader(std::string_view data) {
  if (data.empty()) return absl::InvalidArgumentError("image is empty");
  if (StartsWith(data, kPngSignature)) return PeekPng(data);
  if (StartsWith(data, "\xFF\xD8")) return PeekJpeg(data);
  if (StartsWith(data, "RIFF")) {
    if (data.size() < 12) return Truncated("WebP");
    if (data.substr(8, 4) == "WEBP") return PeekWebp(data);
  }
  if (StartsWith(data, "BM")) return PeekBmp(data);
  if (StartsWith(data, "GIF87a") || StartsWith(data, "GIF89a")) return PeekGif(data);
  if (StartsWith(data, std::string_view("II*\0", 4)) ||
      StartsWith(data, std::string_view("MM\0*", 4))) {
    return PeekTiff(data);
  }
  return absl::InvalidArgumentError(absl::StrCat("not a supported image (first bytes ",
                                                 FirstBytesHex(data), "): ", Sv(kSupportedList)));
}

absl::StatusOr<DecodedImage> Decode(std::string_view data, const ImageLimits& limits) {
  if (data.empty()) return absl::InvalidArgumentError("image is empty");
  if (static_cast<int64_t>(data.size()) > limits.max_bytes) {
    std::string size = FormatSize(static_cast<int64_t>(data.size()));
    std::string limit = FormatSize(limits.max_bytes);
    if (size == limit) {
      absl::StrAppend(&size, " (", data.size(), " bytes)");
      absl::StrAppend(&limit, " (", limits.max_bytes, " bytes)");
    }
    return absl::ResourceExhaustedError(absl::StrCat("image is ", size, ", limit is ", limit));
  }
  IMGINTERP_ASSIGN_OR_RETURN(ImageHeader header, PeekHeader(data));
  IMGINTERP_RETURN_IF_ERROR(CheckLimits(header, limits));
  if (header.media_type == "image/gif") {
    return absl::InvalidArgumentError(
        absl::StrCat("GIF images are not supported: ", Sv(kSupportedList)));
  }
  if (std::string why = IncompleteReason(data, header); !why.empty()) {
    return Corrupt(data, header, why);
  }

  DecodedImage out;
  out.media_type = header.media_type;
  try {
    // IMREAD_UNCHANGED keeps alpha and 16-bit samples and does not apply EXIF orientation,
    // which is applied below, once, for every format that carries it.
    const cv::Mat decoded = cv::imdecode(WrapBytes(data), cv::IMREAD_UNCHANGED);
    if (decoded.empty()) return Corrupt(data, header, "");
    out.source_channels = decoded.channels();
    out.source_bit_depth = decoded.depth() == CV_16U ? 16 : 8;
    IMGINTERP_ASSIGN_OR_RETURN(out.rgb, ToRgb8(decoded, data, header));
    ApplyOrientation(Orientation(data, header), out.rgb);
  } catch (const cv::Exception& e) {
    return Corrupt(data, header, e.err);
  }
  return out;
}

absl::StatusOr<std::string> EncodePng(const cv::Mat& image) {
  if (image.empty()) return absl::InvalidArgumentError("cannot encode an empty image as PNG");
  cv::Mat bgr;
  try {
    switch (image.type()) {
      case CV_8UC1:
      case CV_16UC1:
        bgr = image;
        break;
      case CV_8UC3:
        cv::cvtColor(image, bgr, cv::COLOR_RGB2BGR);
        break;
      case CV_8UC4:
        cv::cvtColor(image, bgr, cv::COLOR_RGBA2BGRA);
        break;
      default:
        return absl::InvalidArgumentError(
            absl::StrCat("PNG encoding needs an 8-bit gray, RGB or RGBA image or a 16-bit gray "
                         "image; got OpenCV type ",
                         cv::typeToString(image.type())));
    }
    std::vector<uchar> buffer;
    if (!cv::imencode(".png", bgr, buffer)) {
      return absl::InternalError("OpenCV could not encode the image as PNG");
    }
    return std::string(buffer.begin(), buffer.end());
  } catch (const cv::Exception& e) {
    return absl::InternalError(absl::StrCat("PNG encoding failed: ", e.err));
  }
}

absl::StatusOr<std::string> EncodeJpeg(const cv::Mat& rgb, int quality) {
  if (rgb.empty()) return absl::InvalidArgumentError("cannot encode an empty image as JPEG");
  if (quality < 1 || quality > 100) {
    return absl::InvalidArgumentError(
        absl::StrCat("JPEG quality is ", quality, ", it must be between 1 and 100"));
  }
  cv::Mat bgr;
  try {
    switch (rgb.type()) {
      case CV_8UC1:
        bgr = rgb;
        break;
      case CV_8UC3:
        cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
        break;
      default:
        return absl::InvalidArgumentError(
            absl::StrCat("JPEG encoding needs an 8-bit gray or RGB image; got OpenCV type ",
                         cv::typeToString(rgb.type())));
    }
    std::vector<uchar> buffer;
    if (!cv::imencode(".jpg", bgr, buffer, {cv::IMWRITE_JPEG_QUALITY, quality})) {
      return absl::InternalError("OpenCV could not encode the image as JPEG");
    }
    return std::string(buffer.begin(), buffer.end());
  } catch (const cv::Exception& e) {
    return absl::InternalError(absl::StrCat("JPEG encoding failed: ", e.err));
  }
}

}  // namespace imginterp::codec
