// A log-linear latency histogram in the manner of HdrHistogram: values below 2^kSubBits are kept
// exactly, and every power-of-two range above is split into 2^kSubBits equal buckets, so a
// reported value is within 1/2^(kSubBits+1) (0.4 %) of any value that fell in its bucket. Fixed
// size (~60 KiB), no allocation after construction, merge by addition.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <limits>

namespace wsgate::bench {

class histogram {
 public:
  static constexpr unsigned kSubBits = 7;
  static constexpr uint64_t kSub = uint64_t{1} << kSubBits;
  static constexpr std::size_t kBuckets = kSub + (64 - kSubBits) * kSub;

  static constexpr std::size_t index_of(uint64_t v) {
    if (v < kSub) return static_cast<std::size_t>(v);
    const unsigned k = 63U - static_cast<unsigned>(std::countl_zero(v));  // floor(log2 v) >= 7
    const uint64_t sub = (v >> (k - kSubBits)) - kSub;                    // 0..kSub-1
    return static_cast<std::size_t>(kSub + (k - kSubBits) * kSub + sub);
  }
  // The smallest and largest value that map to bucket i.
  static constexpr uint64_t lowest_of(std::size_t i) {
    if (i < kSub) return i;
    const uint64_t k = (i - kSub) / kSub + kSubBits;
    const uint64_t sub = (i - kSub) % kSub;
    return (kSub + sub) << (k - kSubBits);
  }
  static constexpr uint64_t highest_of(std::size_t i) {
    if (i < kSub) return i;
    const uint64_t k = (i - kSub) / kSub + kSubBits;
    return lowest_of(i) + (uint64_t{1} << (k - kSubBits)) - 1;
  }

  void record(uint64_t v) {
    ++counts_[index_of(v)];
    ++total_;
    sum_ += v;
    min_ = std::min(min_, v);
    max_ = std::max(max_, v);
  }
  void merge(const histogram& o) {
    for (std::size_t i = 0; i < kBuckets; ++i) counts_[i] += o.counts_[i];
    total_ += o.total_;
    sum_ += o.sum_;
    min_ = std::min(min_, o.min_);
    max_ = std::max(max_, o.max_);
  }
  void reset() { *this = histogram{}; }

  uint64_t count() const { return total_; }
  uint64_t max() const { return total_ ? max_ : 0; }
  uint64_t min() const { return total_ ? min_ : 0; }
  double mean() const {
    return total_ ? static_cast<double>(sum_) / static_cast<double>(total_) : 0;
  }

  // The value at percentile p (0..100): the midpoint of the bucket holding the ceil(p% * n)-th
  // smallest value, clamped to the exact min and max seen.
  uint64_t percentile(double p) const {
    if (total_ == 0) return 0;
    p = std::clamp(p, 0.0, 100.0);
    auto rank = static_cast<uint64_t>(p / 100.0 * static_cast<double>(total_) + 0.5);
    rank = std::clamp<uint64_t>(rank, 1, total_);
    uint64_t seen = 0;
    for (std::size_t i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen >= rank) {
        const uint64_t mid = lowest_of(i) + (highest_of(i) - lowest_of(i)) / 2;
        return std::clamp(mid, min_, max_);
      }
    }
    return max_;
  }

 private:
  std::array<uint64_t, kBuckets> counts_{};
  uint64_t total_ = 0;
  uint64_t sum_ = 0;
  uint64_t min_ = std::numeric_limits<uint64_t>::max();
  uint64_t max_ = 0;
};

}  // namespace wsgate::bench
