#include "benchmarks/load/loadgen/poisson_arrivals.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace imginterp::loadgen {

absl::StatusOr<PoissonArrivals> PoissonArrivals::Create(double rate_per_second, uint64_t seed) {
  if (!(rate_per_second > 0) || !std::isfinite(rate_per_second)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the open-loop rate must be a positive number of requests per second; got ",
                     rate_per_second));
  }
  return PoissonArrivals(rate_per_second, seed);
}

double PoissonArrivals::Next() {
  // u uniform in (0, 1]: the top 53 bits of a draw, offset by one so that log(u) is finite.
  const double u = (static_cast<double>(engine_() >> 11) + 1.0) * 0x1.0p-53;
  // Exponential gap by inversion; a gap of exactly 0 (u == 1) is nudged so times stay strictly
  // increasing.
  const double gap = -std::log(u) / rate_;
  now_ = gap > 0 ? now_ + gap : std::nextafter(now_, INFINITY);
  return now_;
}

}  // namespace imginterp::loadgen
