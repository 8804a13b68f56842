#include "services/upscale/tiling.h"

#include <torch/types.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace imginterp::upscale {
namespace {

// Input coordinate (in input pixels) where tile `i` hands over to tile `i + 1`: the middle of
// their overlap, rounded down to a whole input pixel.
int Cut(const std::vector<Span>& spans, size_t i) {
  return (spans[i + 1].start + spans[i].end()) / 2;
}

// Half-width of the hand-over band at cut `i`, in input pixels: feather / 2, narrowed so the band
// stays inside both tiles and does not reach the middle between this cut and its neighbours.
double HalfBand(const std::vector<Span>& spans, size_t i, int feather) {
  const double cut = Cut(spans, i);
  double half = feather / 2.0;
  half = std::min(half, cut - spans[i + 1].start);
  half = std::min(half, spans[i].end() - cut);
  if (i > 0) half = std::min(half, (cut - Cut(spans, i - 1)) / 2.0);
  if (i + 2 < spans.size()) half = std::min(half, (Cut(spans, i + 1) - cut) / 2.0);
  return std::max(0.0, half);
}

// 0 before cut `i`, 1 after, a linear ramp across its band; `u` in input pixels.
double Ramp(const std::vector<Span>& spans, size_t i, int feather, double u) {
  const double cut = Cut(spans, i);
  const double half = HalfBand(spans, i, feather);
  if (half <= 0) return u >= cut ? 1.0 : 0.0;
  return std::clamp((u - (cut - half)) / (2 * half), 0.0, 1.0);
}

// [first, last) of the nonzero entries of `weights`; {0, 0} if none.
std::pair<int, int> Support(const std::vector<float>& weights) {
  int first = 0;
  while (first < static_cast<int>(weights.size()) && weights[first] == 0) ++first;
  int last = static_cast<int>(weights.size());
  while (last > first && weights[last - 1] == 0) --last;
  return {first, last};
}

absl::Status CheckOptions(const TilingOptions& options) {
  if (options.scale < 1 || options.scale > 16) {
    return absl::InvalidArgumentError(absl::StrCat("scale must be in 1..16; got ", options.scale));
  }
  if (options.feather < 0) {
    return absl::InvalidArgumentError(absl::StrCat("feather must be >= 0; got ", options.feather));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<Span>> PlanAxis(int length, int tile, int overlap) {
  if (length < 1 || tile < 1 || overlap < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("tiling needs length >= 1, tile size >= 1 and overlap >= 0; got length ",
                     length, ", tile size ", tile, ", overlap ", overlap));
  }
  if (length <= tile) return std::vector<Span>{{0, length}};
  if (overlap >= tile) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tile overlap (", overlap, ") must be smaller than the tile size (", tile, ")"));
  }
  const int64_t stride = tile - overlap;
  const int64_t count = (length - overlap + stride - 1) / stride;  // >= 2 as length > tile
  const int64_t travel = length - tile;
  std::vector<Span> spans;
  spans.reserve(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    // round(i * travel / (count - 1)) in integers: steps differ by at most one pixel.
    const int64_t start = (2 * i * travel + (count - 1)) / (2 * (count - 1));
    spans.push_back({static_cast<int>(start), tile});
  }
  return spans;
}

absl::StatusOr<TilePlan> PlanTiles(int width, int height, int tile_size, int overlap) {
  TilePlan plan;
  plan.width = width;
  plan.height = height;
  auto columns = PlanAxis(width, tile_size, overlap);
  if (!columns.ok()) return columns.status();
  auto rows = PlanAxis(height, tile_size, overlap);
  if (!rows.ok()) return rows.status();
  plan.columns = *std::move(columns);
  plan.rows = *std::move(rows);
  return plan;
}

std::vector<float> AxisWeights(const std::vector<Span>& spans, int index, int scale, int feather) {
  const Span& span = spans[static_cast<size_t>(index)];
  std::vector<float> weights(static_cast<size_t>(span.size) * scale);
  for (size_t k = 0; k < weights.size(); ++k) {
    // The centre of output pixel k, in input pixels.
    const double u = span.start + (static_cast<double>(k) + 0.5) / scale;
    const double after_left = index == 0 ? 1.0 : Ramp(spans, index - 1, feather, u);
    const double after_right =
        index + 1 == static_cast<int>(spans.size()) ? 0.0 : Ramp(spans, index, feather, u);
    weights[k] = static_cast<float>(after_left - after_right);
  }
  return weights;
}

Span OwnedOutputRange(const std::vector<Span>& spans, int index, int scale) {
  const int first = index == 0 ? 0 : Cut(spans, index - 1);
  const int last =
      index + 1 == static_cast<int>(spans.size()) ? spans.back().end() : Cut(spans, index);
  return {first * scale, (last - first) * scale};
}

absl::StatusOr<TiledResult> UpscaleTiled(const cv::Mat& rgb, const TilingOptions& options,
                                         const TileUpscaler& upscale_tile) {
  if (rgb.empty() || rgb.type() != CV_8UC3) {
    return absl::InvalidArgumentError("upscaling needs a non-empty 8-bit RGB image");
  }
  if (auto status = CheckOptions(options); !status.ok()) return status;
  auto plan = PlanTiles(rgb.cols, rgb.rows, options.tile_size, options.overlap);
  if (!plan.ok()) return plan.status();
  const int s = options.scale;
  const int out_width = rgb.cols * s;
  const int out_height = rgb.rows * s;
  const int total = plan->count();

  std::vector<std::vector<float>> column_weights;
  for (size_t i = 0; i < plan->columns.size(); ++i) {
    column_weights.push_back(AxisWeights(plan->columns, static_cast<int>(i), s, options.feather));
  }

  TiledResult result;
  result.rgb.create(out_height, out_width, CV_8UC3);
  // Float sums for output rows [band_top, band_top + band.rows) that some row of tiles still
  // adds to. Rows above the next tile row's first weighted row are final and written as 8-bit.
  cv::Mat band;
  int band_top = 0;
  auto flush_until = [&](int row_end) {
    const int rows = row_end - band_top;
    if (rows <= 0) return;
    for (int y = 0; y < rows; ++y) {
      const float* in = band.ptr<float>(y);
      uint8_t* out = result.rgb.ptr<uint8_t>(band_top + y);
      for (int x = 0; x < out_width * 3; ++x) {
        const float v = std::nearbyint(in[x]);
        out[x] = static_cast<uint8_t>(std::isnan(v) ? 0.0f : std::clamp(v, 0.0f, 255.0f));
      }
    }
    band = band.rows > rows ? band.rowRange(rows, band.rows).clone() : cv::Mat();
    band_top = row_end;
  };

  int done = 0;
  for (size_t j = 0; j < plan->rows.size(); ++j) {
    const Span& row = plan->rows[j];
    const std::vector<float> row_weights =
        AxisWeights(plan->rows, static_cast<int>(j), s, options.feather);
    const auto [row_first, row_last] = Support(row_weights);
    // Grow the band so it reaches this tile row's last weighted output row.
    const int needed = row.start * s + row_last - band_top;
    if (needed > band.rows) {
      cv::Mat grown = cv::Mat::zeros(needed, out_width, CV_32FC3);
      if (!band.empty()) band.copyTo(grown.rowRange(0, band.rows));
      band = grown;
    }
    for (size_t i = 0; i < plan->columns.size(); ++i) {
      if (options.cancelled && options.cancelled()) {
        return absl::CancelledError(
            absl::StrCat("upscaling cancelled after ", done, " of ", total, " tiles"));
      }
      const Span& column = plan->columns[i];
      at::Tensor input;
      try {
        cv::Mat tile;
        rgb(cv::Rect(column.start, row.start, column.size, row.size)).convertTo(tile, CV_32FC3);
        input = torch::from_blob(tile.data, {1, row.size, column.size, 3}, torch::kFloat32).clone();
      } catch (const std::exception& e) {
        return absl::InternalError(absl::StrCat("could not cut a tile: ", e.what()));
      }
      auto output = upscale_tile(input);
      if (!output.ok()) return output.status();
      const std::vector<int64_t> expected{1, row.size * s, column.size * s, 3};
      if (output->sizes().vec() != expected) {
        return absl::InternalError(absl::StrCat(
            "the upscaler returned shape [", absl::StrJoin(output->sizes().vec(), ","), "] for a ",
            column.size, "x", row.size, " tile; expected [", absl::StrJoin(expected, ","), "]"));
      }
      const at::Tensor values = output->to(torch::kFloat32).contiguous();
      const float* data = values.data_ptr<float>();
      const std::vector<float>& col_weights = column_weights[i];
      const auto [col_first, col_last] = Support(col_weights);
      const int tile_width = column.size * s;
      for (int y = row_first; y < row_last; ++y) {
        const float wy = row_weights[static_cast<size_t>(y)];
        float* acc = band.ptr<float>(row.start * s + y - band_top) + column.start * s * 3;
        const float* src = data + static_cast<int64_t>(y) * tile_width * 3;
        for (int x = col_first; x < col_last; ++x) {
          const float w = wy * col_weights[static_cast<size_t>(x)];
          for (int c = 0; c < 3; ++c) acc[x * 3 + c] += w * src[x * 3 + c];
        }
      }
      ++done;
      if (options.progress) options.progress(done, total);
    }
    // Rows before the next tile row's first weighted row receive nothing more.
    if (j + 1 < plan->rows.size()) {
      const std::vector<float> next =
          AxisWeights(plan->rows, static_cast<int>(j + 1), s, options.feather);
      flush_until(plan->rows[j + 1].start * s + Support(next).first);
    } else {
      flush_until(out_height);
    }
  }
  result.tiles = total;
  return result;
}

}  // namespace imginterp::upscale
