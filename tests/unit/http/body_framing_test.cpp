#include <gtest/gtest.h>

#include <string>

#include "http/chunked.hpp"

using namespace wsgate::http;

namespace {

// Feeds `input` in pieces of `step` bytes, as reads from a socket would, and collects the body.
std::string drain(body_framing& f, const std::string& input, size_t step, size_t& used) {
  std::string body;
  used = 0;
  std::string buffered;
  for (size_t at = 0; at < input.size() && !f.done(); at += step) {
    buffered += input.substr(at, step);
    while (!buffered.empty() && !f.done()) {
      const auto s = f.next(buffered);
      EXPECT_FALSE(s.error);
      body += s.data;
      used += s.consumed;
      buffered.erase(0, s.consumed);
      if (s.consumed == 0) break;
    }
  }
  return body;
}

}  // namespace

TEST(BodyFraming, ContentLengthStopsAtTheLengthAcrossReads) {
  body_framing f(false, 10);
  EXPECT_FALSE(f.done());
  size_t used = 0;
  // The next response's bytes follow the body in the same buffer and are left alone.
  EXPECT_EQ(drain(f, "0123456789HTTP/1.1 200", 3, used), "0123456789");
  EXPECT_EQ(used, 10u);
  EXPECT_TRUE(f.done());
}

TEST(BodyFraming, ZeroLengthIsDoneBeforeAnyByte) {
  body_framing f(false, 0);
  EXPECT_TRUE(f.done());
}

TEST(BodyFraming, ChunkedIgnoresAContentLengthAndDecodes) {
  body_framing f(true, 3);  // both present: the chunked framing wins
  size_t used = 0;
  const std::string wire = "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nnext";
  EXPECT_EQ(drain(f, wire, 4, used), "hello world");
  EXPECT_EQ(used, wire.size() - 4);
  EXPECT_TRUE(f.done());
}

TEST(BodyFraming, MalformedChunkIsAnError) {
  body_framing f(true, std::nullopt);
  EXPECT_TRUE(f.next("zz\r\n").error);
}

TEST(BodyFraming, CloseDelimitedTakesEverythingAndNeverEnds) {
  body_framing f(false, std::nullopt);
  const auto s = f.next("all of it");
  EXPECT_EQ(s.data, "all of it");
  EXPECT_EQ(s.consumed, 9u);
  EXPECT_FALSE(s.done);
  EXPECT_FALSE(f.done());
}
