// Tiled super-resolution: a planner that cuts an image into overlapping tiles, the blend weights
// that stitch the upscaled tiles back together, and the loop that runs a per-tile upscaler over
// an image with memory bounded by the tile size.
//
// Blending: neighbouring tiles hand over at the middle of their overlap. With `feather` 0 (the
// default) the hand-over is a hard cut, so every output pixel comes from the tile in which it lies
// furthest from a tile edge (at least overlap/2 input pixels): a convolutional upscaler whose
// receptive field reaches at most overlap/2 pixels then gives exactly the untiled result, and one
// that reaches further errs only by what lies beyond overlap/2. A `feather` > 0 instead ramps the
// weights linearly across a band of that many input pixels centred on the cut; that mixes in
// pixels nearer the tile edges, so for a model it is never closer to untiled than the hard cut
// (see the measurements in tests/unit/upscale/), but it hides any seam a non-local model leaves.
//
// Everything here is stateless and thread-safe.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <opencv2/core.hpp>
#include <vector>

#include "absl/status/statusor.h"

namespace imginterp::upscale {

// One tile along one axis, in input pixels: [start, start + size).
struct Span {
  int start = 0;
  int size = 0;
  int end() const { return start + size; }
  bool operator==(const Span& other) const { return start == other.start && size == other.size; }
};

// Tiles along an axis of `length` input pixels: one tile of `length` when length <= tile, else
// the fewest tiles of exactly `tile` pixels whose neighbours share at least `overlap` pixels,
// spread evenly from 0 to `length` (so neighbours share between `overlap` and about twice as
// much). INVALID_ARGUMENT for length < 1, tile < 1, overlap < 0 or overlap >= tile when more than
// one tile is needed.
absl::StatusOr<std::vector<Span>> PlanAxis(int length, int tile, int overlap);

// The tiles of a width x height image: every combination of a column and a row span.
struct TilePlan {
  int width = 0;
  int height = 0;
  std::vector<Span> columns;
  std::vector<Span> rows;
  int count() const { return static_cast<int>(columns.size() * rows.size()); }
};
absl::StatusOr<TilePlan> PlanTiles(int width, int height, int tile_size, int overlap);

// Blend weights of tile `index` of `spans` (from PlanAxis) for each of its size * scale output
// pixels along the axis. Tiles hand over at the middle of each overlap, linearly across `feather`
// input pixels (0: a hard cut; the band is narrowed where the overlap or the tiles' spacing is
// too small for it). For every output pixel, the weights of all tiles sum to 1 and every weight
// is in [0, 1]; a 2-D tile's weight is the product of its column and row weights.
std::vector<float> AxisWeights(const std::vector<Span>& spans, int index, int scale, int feather);

// The output pixels (along the axis) that tile `index` owns under a hard cut (feather 0):
// [start, end) in output pixels. Owned ranges of all tiles partition [0, length * scale).
Span OwnedOutputRange(const std::vector<Span>& spans, int index, int scale);

// Upscales one tile: input [1, h, w, 3] float32 RGB 0..255 (contiguous, NHWC); output
// [1, h * scale, w * scale, 3] float in 0..255 (values outside are clamped when blending).
using TileUpscaler = std::function<absl::StatusOr<at::Tensor>(const at::Tensor& tile)>;

struct TilingOptions {
  // Output pixels per input pixel, 1..16.
  int scale = 4;
  // Largest tile side in input pixels (memory is proportional to its square times scale^2).
  int tile_size = 128;
  // Input pixels shared by neighbouring tiles.
  int overlap = 16;
  // Width of the linear hand-over band in input pixels; 0: a hard cut at the middle.
  int feather = 0;
  // Checked before each tile; when it returns true the loop stops with CANCELLED.
  std::function<bool()> cancelled;
  // Called after each tile with (tiles done, tiles in total).
  std::function<void(int done, int total)> progress;
};

struct TiledResult {
  // CV_8UC3 RGB, scale times the input's size.
  cv::Mat rgb;
  int tiles = 0;
};

// Upscales a CV_8UC3 RGB image tile by tile. Memory beyond the 8-bit output is one tile's input
// and output tensors, plus (only when feather > 0) a float accumulator for one row of tiles.
// Errors: INVALID_ARGUMENT for a bad image or options, CANCELLED when `cancelled` fires between
// tiles, INTERNAL when the upscaler returns a tensor of the wrong shape, and whatever the
// upscaler returns.
absl::StatusOr<TiledResult> UpscaleTiled(const cv::Mat& rgb, const TilingOptions& options,
                                         const TileUpscaler& upscale_tile);

}  // namespace imginterp::upscale
