#include "benchmarks/load/loadgen/latency_stats.h"

#include <algorithm>
#include <random>

#include "gtest/gtest.h"

namespace imginterp::loadgen {
namespace {

TEST(Summarize, NearestRankPercentilesOfOneToHundredAreTheRanks) {
  std::vector<double> seconds;
  for (int i = 1; i <= 100; ++i) seconds.push_back(i);
  std::shuffle(seconds.begin(), seconds.end(), std::mt19937(3));
  const LatencySummary summary = Summarize(seconds);
  EXPECT_EQ(summary.count, 100);
  EXPECT_EQ(summary.min, 1);
  EXPECT_EQ(summary.p50, 50);
  EXPECT_EQ(summary.p90, 90);
  EXPECT_EQ(summary.p95, 95);
  EXPECT_EQ(summary.p99, 99);
  EXPECT_EQ(summary.max, 100);
  EXPECT_DOUBLE_EQ(summary.mean, 50.5);
}

TEST(Summarize, PercentilesAreSamplesNotInterpolations) {
  const LatencySummary summary = Summarize({0.010, 0.020, 0.030, 0.040});
  EXPECT_EQ(summary.p50, 0.020);  // rank ceil(2.0) = 2
  EXPECT_EQ(summary.p90, 0.040);  // rank ceil(3.6) = 4
  EXPECT_EQ(summary.p99, 0.040);
}

TEST(Summarize, OneSampleIsEveryStatistic) {
  const LatencySummary summary = Summarize({0.25});
  EXPECT_EQ(summary.count, 1);
  EXPECT_EQ(summary.min, 0.25);
  EXPECT_EQ(summary.p50, 0.25);
  EXPECT_EQ(summary.p99, 0.25);
  EXPECT_EQ(summary.max, 0.25);
}

TEST(Summarize, NoSamplesIsAllZero) {
  const LatencySummary summary = Summarize({});
  EXPECT_EQ(summary.count, 0);
  EXPECT_EQ(summary.p99, 0);
  EXPECT_EQ(summary.max, 0);
}

TEST(NearestRankPercentile, SmallPercentilesPickTheMinimum) {
  EXPECT_EQ(NearestRankPercentile({1, 2, 3}, 0.1), 1);
  EXPECT_EQ(NearestRankPercentile({1, 2, 3}, 100), 3);
}

TEST(Summarize, PercentilesAreOrdered) {
  std::mt19937 engine(11);
  std::lognormal_distribution<double> latency(-4, 0.8);
  std::vector<double> seconds;
  for (int i = 0; i < 1000; ++i) seconds.push_back(latency(engine));
  const LatencySummary s = Summarize(seconds);
  EXPECT_LE(s.min, s.p50);
  EXPECT_LE(s.p50, s.p90);
  EXPECT_LE(s.p90, s.p95);
  EXPECT_LE(s.p95, s.p99);
  EXPECT_LE(s.p99, s.max);
  EXPECT_LT(s.p50, s.mean);  // lognormal: right-skewed
}

}  // namespace
}  // namespace imginterp::loadgen
