// Arrival times of an open-loop load: a Poisson process at a fixed rate, reproducible from a seed.
//
// Inter-arrival gaps are exponential, drawn by inversion from a 64-bit Mersenne Twister with this
// class's own uniform mapping, so one seed gives the same schedule with any standard library
// (std::exponential_distribution is implementation-defined).
//
// Externally synchronized: one dispatcher thread draws the schedule.
#pragma once

#include <cstdint>
#include <random>

#include "absl/status/statusor.h"

namespace imginterp::loadgen {

class PoissonArrivals {
 public:
  // `rate_per_second` > 0 and finite; INVALID_ARGUMENT otherwise.
  static absl::StatusOr<PoissonArrivals> Create(double rate_per_second, uint64_t seed);

  // The next arrival, in seconds since the start of the schedule; strictly increasing.
  double Next();

  double rate() const { return rate_; }

 private:
  PoissonArrivals(double rate, uint64_t seed) : rate_(rate), engine_(seed) {}

  double rate_;
  std::mt19937_64 engine_;
  double now_ = 0;
};

}  // namespace imginterp::loadgen
