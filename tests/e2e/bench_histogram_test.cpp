// The latency histogram of wsgate-bench: bucket arithmetic and percentiles against exact
// quantiles of known distributions (the bound is 1 % relative error).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "histogram.hpp"

using wsgate::bench::histogram;

namespace {

uint64_t exact_percentile(std::vector<uint64_t> v, double p) {
  std::sort(v.begin(), v.end());
  auto rank = static_cast<std::size_t>(p / 100.0 * static_cast<double>(v.size()) + 0.5);
  rank = std::clamp<std::size_t>(rank, 1, v.size());
  return v[rank - 1];
}

void expect_within_1pct(uint64_t got, uint64_t want) {
  const double err = std::fabs(static_cast<double>(got) - static_cast<double>(want));
  EXPECT_LE(err, 0.01 * static_cast<double>(want) + 0.5) << "got " << got << " want " << want;
}

}  // namespace

TEST(BenchHistogram, BucketsCoverEveryValueOnce) {
  // Every bucket's range starts right after the previous one ends, and values map back to it.
  for (std::size_t i = 1; i < histogram::kBuckets; ++i) {
    ASSERT_EQ(histogram::lowest_of(i), histogram::highest_of(i - 1) + 1) << i;
  }
  for (uint64_t v : {0ULL, 1ULL, 127ULL, 128ULL, 129ULL, 255ULL, 256ULL, 1000ULL, 123456789ULL,
                     (1ULL << 40) + 12345ULL, ~0ULL}) {
    const auto i = histogram::index_of(v);
    ASSERT_LT(i, histogram::kBuckets);
    EXPECT_LE(histogram::lowest_of(i), v);
    EXPECT_GE(histogram::highest_of(i), v);
    // Bucket width bounds the relative error: under 1 % of the smallest value in it.
    const double width = static_cast<double>(histogram::highest_of(i) - histogram::lowest_of(i));
    EXPECT_LE(width,
              0.01 * static_cast<double>(std::max<uint64_t>(histogram::lowest_of(i), 1)) + 1);
  }
}

TEST(BenchHistogram, SmallValuesAreExact) {
  histogram h;
  for (uint64_t v = 0; v < 100; ++v) h.record(v);
  EXPECT_EQ(h.count(), 100U);
  EXPECT_EQ(h.percentile(50), 49U);
  EXPECT_EQ(h.percentile(100), 99U);
  EXPECT_EQ(h.min(), 0U);
  EXPECT_EQ(h.max(), 99U);
}

TEST(BenchHistogram, UniformPercentilesWithinOnePercent) {
  histogram h;
  std::vector<uint64_t> all;
  for (uint64_t v = 1; v <= 1'000'000; ++v) {
    h.record(v * 7);
    all.push_back(v * 7);
  }
  for (double p : {1.0, 10.0, 50.0, 90.0, 99.0, 99.9, 99.99}) {
    expect_within_1pct(h.percentile(p), exact_percentile(all, p));
  }
  EXPECT_EQ(h.max(), 7'000'000U);
  EXPECT_NEAR(h.mean(), 3'500'003.5, 1.0);
}

TEST(BenchHistogram, LongTailedLatencyPercentilesWithinOnePercent) {
  // Latency-like: a log-normal body around 50 us with a heavy tail into the tens of ms.
  std::mt19937_64 rng(42);
  std::lognormal_distribution<double> body(std::log(50'000.0), 0.5);
  std::exponential_distribution<double> tail(1.0 / 5e6);
  histogram h;
  std::vector<uint64_t> all;
  for (int k = 0; k < 200'000; ++k) {
    const double v = (k % 100 == 0) ? tail(rng) : body(rng);
    const auto ns = static_cast<uint64_t>(v);
    h.record(ns);
    all.push_back(ns);
  }
  for (double p : {50.0, 90.0, 99.0, 99.9}) {
    expect_within_1pct(h.percentile(p), exact_percentile(all, p));
  }
  EXPECT_EQ(h.max(), *std::max_element(all.begin(), all.end()));
}

TEST(BenchHistogram, MergeEqualsRecordingEverythingInOne) {
  histogram a, b, both;
  for (uint64_t v = 1; v < 50'000; v += 3) {
    a.record(v);
    both.record(v);
  }
  for (uint64_t v = 100'000; v < 900'000; v += 101) {
    b.record(v);
    both.record(v);
  }
  a.merge(b);
  EXPECT_EQ(a.count(), both.count());
  for (double p : {10.0, 50.0, 75.0, 99.0}) EXPECT_EQ(a.percentile(p), both.percentile(p));
  EXPECT_EQ(a.min(), 1U);
  EXPECT_EQ(a.max(), both.max());
}

TEST(BenchHistogram, EmptyReportsZero) {
  histogram h;
  EXPECT_EQ(h.percentile(99), 0U);
  EXPECT_EQ(h.max(), 0U);
  EXPECT_EQ(h.count(), 0U);
}
