// Conversions between cv::Mat, at::Tensor and the wire imginterp.v1.Tensor.
//
// Every function is stateless and thread-safe. Results always own their memory (nothing aliases
// the input). LibTorch and OpenCV exceptions never escape.
#pragma once

#include <ATen/core/Tensor.h>

#include <opencv2/core.hpp>
#include <string>

#include "absl/status/statusor.h"
#include "imginterp/v1/common.pb.h"

namespace imginterp::codec {

// Copies an HWC image into a contiguous CPU tensor of shape [H, W, C] (C = mat channels, also
// for one channel). Element type follows the mat depth: CV_8U -> uint8, CV_32S -> int32,
// CV_32F -> float32, CV_64F -> float64. Channel order is kept as is (an RGB mat gives RGB).
// Other depths (CV_8S, CV_16U, CV_16S, CV_16F) return an undefined tensor.
at::Tensor MatToTensor(const cv::Mat& rgb);

// Converts an image tensor on any device to an 8-bit cv::Mat with the same channel order.
// Layout:
//   [H, W]                  -> CV_8UC1
//   [H, W, C], C in 1,3,4   -> CV_8UC(C)  (HWC wins when both ends could be channels)
//   [C, H, W], C in 1,3,4   -> CV_8UC(C)
//   [1, C, H, W], C in 1,3,4 -> CV_8UC(C)  (NCHW wins for a batch of one)
//   [1, H, W, C], C in 1,3,4 -> CV_8UC(C)
// Values:
//   uint8                   -> as is
//   bool                    -> 0 or 255
//   float16/bfloat16/32/64  -> value * float_scale, rounded, clamped to 0..255, NaN -> 0
//                              (float_scale = 255 for 0..1 images, 1 for 0..255 images)
//   other integers          -> clamped to 0..255 (label maps keep their values)
// INVALID_ARGUMENT for an undefined tensor, any other layout or an unsupported dtype.
absl::StatusOr<cv::Mat> TensorToMat(const at::Tensor& hwc_uint8, double float_scale = 255.0);

// Builds a contiguous CPU tensor from the wire form. DataType maps to float32, float16, int32,
// int64, uint8, bool and float64; raw_data is row-major little-endian. An empty shape is a
// scalar. INVALID_ARGUMENT for DATA_TYPE_UNSPECIFIED or unknown dtypes, negative dimensions, and
// raw_data whose size is not product(shape) * itemsize (the message names both sizes). Bool
// bytes other than 0 read as true.
absl::StatusOr<at::Tensor> FromProto(const v1::Tensor& t);

// The wire form of `t` (moved to CPU, made contiguous) under `name`. int8 and int16 are widened
// to DATA_TYPE_INT32 and bfloat16 to DATA_TYPE_FLOAT32. Undefined tensors and dtypes with no
// wire form (complex, quantized) give DATA_TYPE_UNSPECIFIED with no raw_data.
v1::Tensor ToProto(const at::Tensor& t, const std::string& name);

}  // namespace imginterp::codec
