// frame_tracker: boundaries over any split of the stream, pongs swallowed only when they carry
// wsgate's token and one is expected, everything else passed on byte for byte.
#include "proxy/ws_frames.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace wsgate::proxy {
namespace {

// A frame as a peer would send it; mask_key 0: unmasked (upstream), else masked (client).
std::string make_frame(uint8_t opcode, const std::string& payload, bool fin = true,
                       uint32_t mask_key = 0) {
  std::string f;
  f.push_back(static_cast<char>((fin ? 0x80 : 0) | opcode));
  const uint8_t m = mask_key ? 0x80 : 0;
  const size_t n = payload.size();
  if (n < 126) {
    f.push_back(static_cast<char>(m | n));
  } else if (n < 65536) {
    f.push_back(static_cast<char>(m | 126));
    f.push_back(static_cast<char>(n >> 8));
    f.push_back(static_cast<char>(n & 0xFF));
  } else {
    f.push_back(static_cast<char>(m | 127));
    for (int s = 56; s >= 0; s -= 8) f.push_back(static_cast<char>((n >> s) & 0xFF));
  }
  if (!mask_key) return f + payload;
  const char key[4] = {static_cast<char>(mask_key >> 24), static_cast<char>(mask_key >> 16),
                       static_cast<char>(mask_key >> 8), static_cast<char>(mask_key)};
  f.append(key, 4);
  for (size_t i = 0; i < n; ++i) f.push_back(static_cast<char>(payload[i] ^ key[i % 4]));
  return f;
}

// Feeds `stream` in pieces of `step` bytes; returns what the tracker passed on and records
// whether it reported a boundary exactly at each frame end in `boundaries`.
std::string run(frame_tracker& t, const std::string& stream, size_t step,
                std::vector<size_t>* boundaries = nullptr) {
  std::string out;
  for (size_t i = 0; i < stream.size(); i += step) {
    const size_t n = std::min(step, stream.size() - i);
    for (const auto& p : t.feed(stream.data() + i, n)) out.append(p.data, p.size);
    if (boundaries && t.at_boundary()) boundaries->push_back(i + n);
  }
  return out;
}

TEST(WsFrames, PassesEverythingAndCountsFramesAtAnySplit) {
  std::string stream;
  std::vector<size_t> ends;
  for (auto [op, len, mask] :
       std::vector<std::tuple<uint8_t, size_t, uint32_t>>{{1, 0, 0},
                                                          {2, 1, 0x01020304},
                                                          {1, 125, 0},
                                                          {2, 126, 0xA0B0C0D0},
                                                          {0, 65535, 0},
                                                          {2, 65536, 0x11223344},
                                                          {9, 3, 0},
                                                          {0xA, 8, 0x55667788},
                                                          {8, 2, 0}}) {
    stream += make_frame(op, std::string(len, 'x'), true, mask);
    ends.push_back(stream.size());
  }
  for (size_t step :
       {size_t{1}, size_t{2}, size_t{3}, size_t{7}, size_t{13}, size_t{4096}, stream.size()}) {
    frame_tracker t;
    std::vector<size_t> seen;
    EXPECT_EQ(run(t, stream, step, &seen), stream) << "step " << step;
    EXPECT_EQ(t.frames(), ends.size());
    EXPECT_EQ(t.closes(), 1u);
    EXPECT_FALSE(t.broken());
    EXPECT_TRUE(t.at_boundary());
    // A boundary is reported only where a frame ends.
    for (size_t b : seen)
      EXPECT_TRUE(std::find(ends.begin(), ends.end(), b) != ends.end())
          << "boundary at " << b << " step " << step;
    if (step == 1) {
      EXPECT_EQ(seen, ends);
    }
  }
}

TEST(WsFrames, NotAtBoundaryInsideAFrame) {
  frame_tracker t;
  const std::string f = make_frame(2, std::string(1000, 'a'));
  t.feed(f.data(), 1);
  EXPECT_FALSE(t.at_boundary());  // half a header
  t.feed(f.data() + 1, 500);
  EXPECT_FALSE(t.at_boundary());  // inside the payload
  t.feed(f.data() + 501, f.size() - 501);
  EXPECT_TRUE(t.at_boundary());
}

TEST(WsFrames, SwallowsOnlyTheExpectedPongAtAnySplit) {
  const std::string mine_masked = make_frame(0xA, std::string(kKeepaliveToken), true, 0xDEADBEEF);
  const std::string mine_plain = make_frame(0xA, std::string(kKeepaliveToken));
  const std::string other_pong = make_frame(0xA, "someone!", true, 0x01010101);  // 8 bytes too
  const std::string data1 = make_frame(1, "hello", true, 0x0A0B0C0D);
  const std::string data2 = make_frame(2, std::string(300, 'z'));
  for (const std::string* mine : {&mine_masked, &mine_plain}) {
    const std::string stream = data1 + other_pong + *mine + data2 + *mine;
    const std::string want = data1 + other_pong + data2 + *mine;  // one pong expected only
    for (size_t step = 1; step <= stream.size(); ++step) {
      frame_tracker t;
      t.expect_pong();
      EXPECT_EQ(run(t, stream, step), want) << "step " << step;
      EXPECT_EQ(t.pongs_swallowed(), 1u);
      EXPECT_EQ(t.pongs_expected(), 0);
      EXPECT_EQ(t.frames(), 5u);
    }
  }
}

TEST(WsFrames, NothingSwallowedWhenNoPingIsOutstanding) {
  const std::string stream = make_frame(0xA, std::string(kKeepaliveToken)) + make_frame(1, "after");
  frame_tracker t;
  EXPECT_EQ(run(t, stream, 3), stream);
  EXPECT_EQ(t.pongs_swallowed(), 0u);
}

TEST(WsFrames, AHeldCandidateThatIsNotOursIsPassedOnInOrder) {
  // A pong split mid-payload with another payload, then data: the held bytes come first.
  const std::string stream = make_frame(0xA, "12345678", true, 0x99999999) + make_frame(1, "next");
  for (size_t step = 1; step < stream.size(); ++step) {
    frame_tracker t;
    t.expect_pong();
    EXPECT_EQ(run(t, stream, step), stream) << "step " << step;
    EXPECT_EQ(t.pongs_expected(), 1);
  }
}

TEST(WsFrames, NonWebSocketBytesStopTracking) {
  frame_tracker t;
  t.expect_pong();
  const std::string junk = "\x83\x05hello more bytes that are not frames";  // opcode 3: reserved
  EXPECT_EQ(run(t, junk, 4), junk);
  EXPECT_TRUE(t.broken());
  EXPECT_FALSE(t.at_boundary());
  // A control frame longer than 125 bytes is not WebSocket either.
  frame_tracker u;
  const std::string big_ping = make_frame(9, std::string(200, 'p'));
  EXPECT_EQ(run(u, big_ping, 50), big_ping);
  EXPECT_TRUE(u.broken());
}

TEST(WsFrames, RandomStreamsAndSplits) {
  // Random frames (data, pings, foreign pongs, wsgate's pongs; masked or not) cut at random
  // points: the output is the input without exactly the pongs wsgate expected.
  std::mt19937 rng(12345);
  for (int round = 0; round < 300; ++round) {
    std::string stream, want;
    int ours = 0;
    const int nframes = 1 + static_cast<int>(rng() % 12);
    for (int f = 0; f < nframes; ++f) {
      const uint32_t mask = rng() % 2 ? static_cast<uint32_t>(rng() | 1) : 0;
      std::string fr;
      switch (rng() % 4) {
        case 0:
          fr = make_frame(static_cast<uint8_t>(1 + rng() % 2), std::string(rng() % 70000, 'd'),
                          true, mask);
          break;
        case 1:
          fr = make_frame(9, std::string(rng() % 126, 'p'), true, mask);
          break;
        case 2:
          fr = make_frame(0xA, "notours!", true, mask);
          break;
        default:
          fr = make_frame(0xA, std::string(kKeepaliveToken), true, mask);
          stream += fr;
          ++ours;
          continue;
      }
      stream += fr;
      want += fr;
    }
    frame_tracker t;
    for (int i = 0; i < ours; ++i) t.expect_pong();
    std::string out;
    for (size_t i = 0; i < stream.size();) {
      const size_t n = std::min<size_t>(1 + rng() % 3000, stream.size() - i);
      for (const auto& p : t.feed(stream.data() + i, n)) out.append(p.data, p.size);
      i += n;
    }
    ASSERT_EQ(out, want) << "round " << round;
    EXPECT_EQ(t.pongs_swallowed(), static_cast<uint64_t>(ours));
    EXPECT_EQ(t.frames(), static_cast<uint64_t>(nframes));
    EXPECT_TRUE(t.at_boundary());
  }
}

TEST(WsFrames, ControlFramesWsgateWrites) {
  char buf[kMaxControlFrame];
  // Unmasked Close 1001 toward the client.
  size_t n = write_control_frame(buf, 0x8, std::string_view("\x03\xe9", 2), 0);
  EXPECT_EQ(std::string(buf, n), std::string("\x88\x02\x03\xe9", 4));
  // Masked ping toward the upstream: the tracker of the other side reads it back as one frame.
  n = write_control_frame(buf, 0x9, kKeepaliveToken, 0x12345678);
  EXPECT_EQ(n, 6 + kKeepaliveToken.size());
  EXPECT_EQ(static_cast<unsigned char>(buf[1]), 0x80 | kKeepaliveToken.size());
  std::string unmasked;
  for (size_t i = 0; i < kKeepaliveToken.size(); ++i)
    unmasked.push_back(static_cast<char>(buf[6 + i] ^ buf[2 + i % 4]));
  EXPECT_EQ(unmasked, kKeepaliveToken);
  frame_tracker t;
  t.feed(buf, n);
  EXPECT_EQ(t.frames(), 1u);
  EXPECT_TRUE(t.at_boundary());
}

}  // namespace
}  // namespace wsgate::proxy
