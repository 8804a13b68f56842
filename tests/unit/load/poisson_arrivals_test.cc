#include "benchmarks/load/loadgen/poisson_arrivals.h"

#include <cmath>
#include <limits>
#include <vector>

#include "gtest/gtest.h"

namespace imginterp::loadgen {
namespace {

std::vector<double> Draw(double rate, uint64_t seed, int n) {
  PoissonArrivals arrivals = *PoissonArrivals::Create(rate, seed);
  std::vector<double> times;
  for (int i = 0; i < n; ++i) times.push_back(arrivals.Next());
  return times;
}

TEST(PoissonArrivals, SameSeedGivesTheSameSchedule) {
  EXPECT_EQ(Draw(50, 7, 1000), Draw(50, 7, 1000));
  EXPECT_NE(Draw(50, 7, 1000), Draw(50, 8, 1000));
}

TEST(PoissonArrivals, TimesStrictlyIncrease) {
  const std::vector<double> times = Draw(1e6, 1, 100000);
  EXPECT_GT(times.front(), 0);
  for (size_t i = 1; i < times.size(); ++i) ASSERT_LT(times[i - 1], times[i]) << i;
}

TEST(PoissonArrivals, GapsAreExponentialWithMeanOneOverRate) {
  const double rate = 40;
  const int n = 200000;
  const std::vector<double> times = Draw(rate, 3, n);
  double sum = 0, sum_sq = 0;
  double previous = 0;
  for (double t : times) {
    const double gap = t - previous;
    previous = t;
    sum += gap;
    sum_sq += gap * gap;
  }
  const double mean = sum / n;
  const double variance = sum_sq / n - mean * mean;
  // Standard error of the mean is (1/rate)/sqrt(n) ~ 0.2% here; 1% is 4.5 sigma.
  EXPECT_NEAR(mean, 1 / rate, 0.01 / rate);
  // Exponential: standard deviation equals the mean.
  EXPECT_NEAR(std::sqrt(variance), 1 / rate, 0.02 / rate);
}

TEST(PoissonArrivals, CountsPerSecondHaveEqualMeanAndVariance) {
  const double rate = 20;
  PoissonArrivals arrivals = *PoissonArrivals::Create(rate, 5);
  const int seconds = 5000;
  std::vector<int> counts(seconds, 0);
  for (double t = arrivals.Next(); t < seconds; t = arrivals.Next()) ++counts[static_cast<int>(t)];
  double sum = 0, sum_sq = 0;
  for (int c : counts) {
    sum += c;
    sum_sq += static_cast<double>(c) * c;
  }
  const double mean = sum / seconds;
  const double variance = sum_sq / seconds - mean * mean;
  EXPECT_NEAR(mean, rate, 0.5);
  EXPECT_NEAR(variance / mean, 1.0, 0.1);
}

TEST(PoissonArrivals, RejectsRatesThatAreNotPositiveAndFinite) {
  for (double rate : {0.0, -1.0, std::numeric_limits<double>::infinity(), std::nan("")}) {
    absl::StatusOr<PoissonArrivals> arrivals = PoissonArrivals::Create(rate, 1);
    EXPECT_EQ(arrivals.status().code(), absl::StatusCode::kInvalidArgument) << rate;
  }
}

}  // namespace
}  // namespace imginterp::loadgen
