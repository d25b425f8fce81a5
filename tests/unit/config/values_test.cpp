// nginx's time and size syntax, with the values Debian's nginx 1.22 accepts and refuses.
#include "config/values.hpp"

#include <gtest/gtest.h>

namespace wsgate::config {
namespace {

using namespace std::chrono_literals;

TEST(Duration, Units) {
  EXPECT_EQ(parse_duration("60"), duration(60s));  // bare number: seconds
  EXPECT_EQ(parse_duration("86400s"), duration(86400s));
  EXPECT_EQ(parse_duration("500ms"), duration(500ms));
  EXPECT_EQ(parse_duration("1h30m"), duration(90min));
  EXPECT_EQ(parse_duration("1h 30m"), duration(90min));
  EXPECT_EQ(parse_duration("1s500ms"), duration(1500ms));
  EXPECT_EQ(parse_duration("2w1d"), duration(std::chrono::hours(24 * 15)));
  EXPECT_EQ(parse_duration("1m30"), duration(90s));  // a trailing number is seconds
  EXPECT_EQ(parse_duration("0"), duration(0));
  EXPECT_EQ(parse_duration("25d"), duration(std::chrono::hours(24 * 25)));  // nginx 1.22 takes it
}

TEST(Duration, Refused) {
  for (const char* bad :
       {"", "x", "ms", "1x", "500ms1s", "1m1h", "1d1d", "1y", "1M", " 5s", "5 s", "-1", "1.5s"})
    EXPECT_FALSE(parse_duration(bad)) << bad;
}

TEST(Duration, SaturatesInsteadOfWrapping) {
  auto d = parse_duration("99999999999999999999");
  ASSERT_TRUE(d);
  EXPECT_GT(d->count(), 0);
}

TEST(Size, Units) {
  EXPECT_EQ(parse_size("0"), 0u);
  EXPECT_EQ(parse_size("4096"), 4096u);
  EXPECT_EQ(parse_size("8k"), 8192u);
  EXPECT_EQ(parse_size("8K"), 8192u);
  EXPECT_EQ(parse_size("1m"), 1048576u);
  EXPECT_EQ(parse_size("2M"), 2097152u);
  EXPECT_EQ(parse_size("1g"), 1073741824u);
  for (const char* bad : {"", "k", "1q", "1kb", "-1", "1.5m", " 1"})
    EXPECT_FALSE(parse_size(bad)) << bad;
}

TEST(Number, Plain) {
  EXPECT_EQ(parse_number("0"), 0);
  EXPECT_EQ(parse_number("1024"), 1024);
  EXPECT_FALSE(parse_number(""));
  EXPECT_FALSE(parse_number("1k"));
  EXPECT_FALSE(parse_number("99999999999"));
}

}  // namespace
}  // namespace wsgate::config
