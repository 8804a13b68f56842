#include "services/core/codec/tensor_convert.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <cstring>
#include <limits>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace imginterp::codec {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "raw_data is little-endian and is copied without byte swapping");

std::optional<at::ScalarType> ToScalarType(v1::DataType dtype) {
  switch (dtype) {
    case v1::DATA_TYPE_FLOAT32:
      return at::kFloat;
    case v1::DATA_TYPE_FLOAT16:
      return at::kHalf;
    case v1::DATA_TYPE_INT32:
      return at::kInt;
    case v1::DATA_TYPE_INT64:
      return at::kLong;
    case v1::DATA_TYPE_UINT8:
      return at::kByte;
    case v1::DATA_TYPE_BOOL:
      return at::kBool;
    case v1::DATA_TYPE_FLOAT64:
      return at::kDouble;
    default:
      return std::nullopt;
  }
}

std::optional<v1::DataType> ToDataType(at::ScalarType type) {
  switch (type) {
    case at::kFloat:
      return v1::DATA_TYPE_FLOAT32;
    case at::kHalf:
      return v1::DATA_TYPE_FLOAT16;
    case at::kInt:
      return v1::DATA_TYPE_INT32;
    case at::kLong:
      return v1::DATA_TYPE_INT64;
    case at::kByte:
      return v1::DATA_TYPE_UINT8;
    case at::kBool:
      return v1::DATA_TYPE_BOOL;
    case at::kDouble:
      return v1::DATA_TYPE_FLOAT64;
    default:
      return std::nullopt;
  }
}

std::string Describe(const v1::Tensor& t) {
  return t.name().empty() ? std::string("tensor") : absl::StrCat("tensor '", t.name(), "'");
}

std::string DataTypeName(v1::DataType dtype) {
  switch (dtype) {
    case v1::DATA_TYPE_FLOAT32:
      return "float32";
    case v1::DATA_TYPE_FLOAT16:
      return "float16";
    case v1::DATA_TYPE_INT32:
      return "int32";
    case v1::DATA_TYPE_INT64:
      return "int64";
    case v1::DATA_TYPE_UINT8:
      return "uint8";
    case v1::DATA_TYPE_BOOL:
      return "bool";
    case v1::DATA_TYPE_FLOAT64:
      return "float64";
    default:
      return absl::StrCat("dtype ", static_cast<int>(dtype));
  }
}

bool IsChannelCount(int64_t n) { return n == 1 || n == 3 || n == 4; }

// The tensor as [H, W, C] (not yet contiguous), or an error naming the shape.
absl::StatusOr<at::Tensor> AsHwc(at::Tensor t) {
  const std::string shape = absl::StrCat("[", absl::StrJoin(t.sizes(), ", "), "]");
  if (t.dim() == 4) {
    if (t.size(0) != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("image tensor of shape ", shape, " holds a batch; pass one image"));
    }
    t = t.squeeze(0);
    // A batch is LibTorch's NCHW unless only the last axis can be channels.
    if (IsChannelCount(t.size(0))) return t.permute({1, 2, 0});
  }
  if (t.dim() == 2) return t.unsqueeze(2);
  if (t.dim() == 3) {
    if (IsChannelCount(t.size(2))) return t;
    if (IsChannelCount(t.size(0))) return t.permute({1, 2, 0});
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "image tensor of shape ", shape, " is not [H, W], [H, W, C] or [C, H, W] with C 1, 3 or 4"));
}

}  // namespace

at::Tensor MatToTensor(const cv::Mat& rgb) {
  at::ScalarType type;
  switch (rgb.depth()) {
    case CV_8U:
      type = at::kByte;
      break;
    case CV_32S:
      type = at::kInt;
      break;
    case CV_32F:
      type = at::kFloat;
      break;
    case CV_64F:
      type = at::kDouble;
      break;
    default:
      return at::Tensor();
  }
  at::Tensor out = at::empty({rgb.rows, rgb.cols, rgb.channels()}, at::TensorOptions(type));
  if (rgb.empty()) return out;
  const size_t row_bytes = static_cast<size_t>(rgb.cols) * rgb.elemSize();
  auto* dst = static_cast<uint8_t*>(out.data_ptr());
  for (int y = 0; y < rgb.rows; ++y) {
    std::memcpy(dst + y * row_bytes, rgb.ptr(y), row_bytes);
  }
  return out;
}

absl::StatusOr<cv::Mat> TensorToMat(const at::Tensor& hwc_uint8, double float_scale) {
  if (!hwc_uint8.defined()) return absl::InvalidArgumentError("image tensor is undefined");
  try {
    at::Tensor t = hwc_uint8.detach().to(at::kCPU);
    const at::ScalarType type = t.scalar_type();
    if (type == at::kByte) {
      // Already 8-bit.
    } else if (type == at::kBool) {
      t = t.to(at::kByte).mul_(255);
    } else if (at::isFloatingType(type)) {
      t = at::nan_to_num(t.to(at::kFloat).mul(float_scale), 0.0, 255.0, 0.0)
              .round_()
              .clamp_(0, 255)
              .to(at::kByte);
    } else if (at::isIntegralType(type, /*includeBool=*/false)) {
      t = t.to(at::kLong).clamp(0, 255).to(at::kByte);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("image tensor has dtype ", c10::toString(type),
                       "; use uint8, bool, a float type or an integer type"));
    }
    auto hwc = AsHwc(t);
    if (!hwc.ok()) return hwc.status();
    const at::Tensor contiguous = hwc->contiguous();
    const int rows = static_cast<int>(contiguous.size(0));
    const int cols = static_cast<int>(contiguous.size(1));
    const int channels = static_cast<int>(contiguous.size(2));
    cv::Mat out(rows, cols, CV_8UC(channels));
    if (!out.empty()) std::memcpy(out.data, contiguous.data_ptr(), out.total() * out.elemSize());
    return out;
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot convert image tensor: ", e.what_without_backtrace()));
  }
}

absl::StatusOr<at::Tensor> FromProto(const v1::Tensor& t) {
  const std::optional<at::ScalarType> type = ToScalarType(t.dtype());
  if (!type) {
    return absl::InvalidArgumentError(
        absl::StrCat(Describe(t), " has ",
                     t.dtype() == v1::DATA_TYPE_UNSPECIFIED ? "no dtype"
                                                            : "an unknown "
                                                              "dtype",
                     " (", static_cast<int>(t.dtype()), "); set dtype to a DataType value"));
  }
  const std::string shape = absl::StrCat("[", absl::StrJoin(t.shape(), ", "), "]");
  const uint64_t item_size = c10::elementSize(*type);
  uint64_t count = 1;
  constexpr uint64_t kMaxBytes = uint64_t{1} << 40;  // Far above any message; stops overflow.
  for (int64_t dim : t.shape()) {
    if (dim < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(Describe(t), " has shape ", shape, "; dimensions must be 0 or more"));
    }
    if (dim != 0 && count > kMaxBytes / static_cast<uint64_t>(dim))
      count = kMaxBytes;
    else
      count *= static_cast<uint64_t>(dim);
  }
  const uint64_t expected = count >= kMaxBytes ? kMaxBytes : count * item_size;
  if (t.raw_data().size() != expected) {
    return absl::InvalidArgumentError(
        absl::StrCat(Describe(t), " raw_data is ", t.raw_data().size(), " bytes, but shape ", shape,
                     " of ", DataTypeName(t.dtype()), " needs ",
                     expected >= kMaxBytes ? "more than 1 TiB" : absl::StrCat(expected, " bytes")));
  }
  try {
    std::vector<int64_t> sizes(t.shape().begin(), t.shape().end());
    at::Tensor out = at::empty(sizes, at::TensorOptions(*type));
    if (expected > 0) std::memcpy(out.data_ptr(), t.raw_data().data(), expected);
    if (*type == at::kBool) {
      // A bool byte other than 0 or 1 is undefined behaviour for LibTorch; normalise it.
      auto* bytes = static_cast<uint8_t*>(out.data_ptr());
      for (uint64_t i = 0; i < expected; ++i) bytes[i] = bytes[i] != 0;
    }
    return out;
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(Describe(t), " cannot be built: ", e.what_without_backtrace()));
  }
}

v1::Tensor ToProto(const at::Tensor& t, const std::string& name) {
  v1::Tensor out;
  out.set_name(name);
  if (!t.defined()) return out;
  for (int64_t dim : t.sizes()) out.add_shape(dim);
  try {
    at::Tensor cpu = t.detach().to(at::kCPU);
    const at::ScalarType type = cpu.scalar_type();
    if (type == at::kChar || type == at::kShort) {
      cpu = cpu.to(at::kInt);
    } else if (type == at::kBFloat16) {
      cpu = cpu.to(at::kFloat);
    }
    const std::optional<v1::DataType> dtype = ToDataType(cpu.scalar_type());
    if (!dtype) return out;
    cpu = cpu.contiguous();
    out.set_dtype(*dtype);
    out.set_raw_data(static_cast<const char*>(cpu.data_ptr()), cpu.numel() * cpu.element_size());
  } catch (const c10::Error&) {
    out.clear_raw_data();
    out.set_dtype(v1::DATA_TYPE_UNSPECIFIED);
  }
  return out;
}

}  // namespace imginterp::codec
