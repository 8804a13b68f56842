#include "services/generate/mp4_encode.h"

#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include "absl/strings/str_cat.h"

namespace imginterp::generate {

absl::StatusOr<std::string> EncodeMp4(const std::vector<cv::Mat>& rgb_frames, double fps) {
  if (rgb_frames.empty()) return absl::InvalidArgumentError("no frames to encode");
  if (!(fps > 0)) return absl::InvalidArgumentError(absl::StrCat("fps must be > 0; got ", fps));
  const cv::Size size = rgb_frames[0].size();
  for (const cv::Mat& frame : rgb_frames) {
    if (frame.size() != size || frame.type() != CV_8UC3) {
      return absl::InvalidArgumentError("frames must all be CV_8UC3 of the same size");
    }
  }
  char path[] = "/tmp/imginterp-generate-XXXXXX.mp4";
  const int fd = mkstemps(path, 4);
  if (fd < 0) return absl::InternalError("could not create a temporary file for the MP4");
  close(fd);
  struct Remove {
    const char* path;
    ~Remove() { std::remove(path); }
  } remove{path};
  try {
    cv::VideoWriter writer(path, cv::VideoWriter::fourcc('m', 'p', '4', 'v'), fps, size);
    if (!writer.isOpened()) {
      return absl::UnavailableError(
          "this OpenCV build cannot write MP4 (codec mp4v; needs the FFmpeg videoio backend)");
    }
    cv::Mat bgr;
    for (const cv::Mat& frame : rgb_frames) {
      cv::cvtColor(frame, bgr, cv::COLOR_RGB2BGR);
      writer.write(bgr);
    }
    writer.release();
  } catch (const cv::Exception& e) {
    return absl::UnavailableError(absl::StrCat("MP4 encoding failed: ", e.what()));
  }
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.empty()) return absl::UnavailableError("the MP4 encoder wrote no data");
  return bytes;
}

}  // namespace imginterp::generate
