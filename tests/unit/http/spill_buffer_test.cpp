// spill_buffer: order is kept across memory and the temporary file, room() honours both limits,
// and the block is reused between responses.
#include "http/spill_buffer.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>

using wsgate::http::spill_buffer;

namespace {

std::string drain(spill_buffer& q, size_t step) {
  std::string out;
  while (!q.empty()) {
    const auto f = q.front();
    EXPECT_FALSE(f.empty());
    if (f.empty()) break;
    const size_t n = std::min(step, f.size());
    out.append(f.substr(0, n));
    q.pop(n);
  }
  return out;
}

TEST(SpillBuffer, MemoryOnlyUnderTheLimit) {
  spill_buffer q;
  q.reset(100, 1000);
  EXPECT_EQ(q.room(), 1100u);
  ASSERT_TRUE(q.push("hello"));
  EXPECT_EQ(q.in_memory(), 5u);
  EXPECT_FALSE(q.spilled());
  EXPECT_EQ(drain(q, 2), "hello");
}

TEST(SpillBuffer, KeepsOrderAcrossMemoryAndFileWithInterleavedReads) {
  std::mt19937 rng(7);
  spill_buffer q;
  q.reset(64, 1 << 20);
  std::string in, out;
  for (int round = 0; round < 2000; ++round) {
    const size_t n = rng() % 50;
    std::string piece;
    for (size_t i = 0; i < n; ++i) piece.push_back(static_cast<char>('a' + (in.size() + i) % 26));
    ASSERT_TRUE(q.push(piece));
    in += piece;
    if (rng() % 3 == 0) {
      const auto f = q.front();
      const size_t k = std::min<size_t>(f.size(), rng() % 80);
      out.append(f.substr(0, k));
      q.pop(k);
    }
    EXPECT_LE(q.in_memory(), 64u);
  }
  EXPECT_TRUE(q.spilled());
  out += drain(q, 17);
  EXPECT_EQ(out, in);
}

TEST(SpillBuffer, RoomCountsBothLimitsAndNoFileMeansMemoryOnly) {
  spill_buffer q;
  q.reset(10, 0);
  ASSERT_TRUE(q.push("0123456789"));
  EXPECT_EQ(q.room(), 0u);
  ASSERT_TRUE(q.push("ab"));  // past the limit only by what a caller had already read
  EXPECT_FALSE(q.spilled());
  EXPECT_EQ(drain(q, 100), "0123456789ab");
  q.reset(10, 20);
  ASSERT_TRUE(q.push(std::string(25, 'x')));
  EXPECT_EQ(q.in_file(), 15u);
  EXPECT_EQ(q.room(), 5u);
  EXPECT_EQ(drain(q, 100), std::string(25, 'x'));
  EXPECT_EQ(q.room(), 30u);
}

TEST(SpillBuffer, ResetEmptiesAndReleaseFreesWhenEmpty) {
  spill_buffer q;
  q.reset(8, 100);
  ASSERT_TRUE(q.push("0123456789abcdef"));
  q.reset(8, 100);
  EXPECT_TRUE(q.empty());
  EXPECT_FALSE(q.spilled());
  ASSERT_TRUE(q.push("xyz"));
  EXPECT_EQ(drain(q, 1), "xyz");
  q.release();
  EXPECT_EQ(q.room(), 108u);
}

}  // namespace
