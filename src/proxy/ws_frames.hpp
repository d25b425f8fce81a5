// WebSocket frame-boundary tracking over relayed bytes (RFC 6455 5.2), for the tunnel's
// keepalive pings and its Close on shutdown: wsgate may only put a frame of its own into a
// stream between two frames of the peer. The tracker reads frame headers only; payload bytes are
// skipped by count, never copied or unmasked. The one exception is a pong that may answer
// wsgate's own ping (8 payload bytes, only while one is outstanding): it is held until complete
// so that it can be swallowed rather than reach the other peer.
#pragma once

#include <array>
#include <boost/container/small_vector.hpp>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace wsgate::proxy {

// Writes a frame wsgate sends itself (ping, close) into `out` (at least kMaxControlFrame bytes);
// returns its size. `mask_key` non-zero: masked, as a client's frame must be (toward the
// upstream); zero: unmasked (toward the client).
inline constexpr size_t kMaxControlFrame = 2 + 4 + 125;
size_t write_control_frame(char* out, uint8_t opcode, std::string_view payload, uint32_t mask_key);

// wsgate's keepalive ping payload; a pong carrying it is wsgate's and is swallowed.
inline constexpr std::string_view kKeepaliveToken = "wsgate-k";

class frame_tracker {
 public:
  struct piece {
    const char* data;
    size_t size;
  };
  // Inline room for the usual case (one piece, or a few around swallowed pongs): an idle
  // tunnel's trackers own no heap memory.
  using piece_list = boost::container::small_vector<piece, 2>;

  // Follows one direction's bytes. Returns the pieces to pass on, in order (pointers into
  // `data` or into the tracker, valid until the next call): all of `data`, minus any pong that
  // answers wsgate's ping, minus the tail of a possible such pong that is not complete yet (held
  // and passed on with the next call if it turns out not to be one).
  const piece_list& feed(const char* data, size_t n);

  // Between two frames: a frame of wsgate's own may be written into this direction now.
  bool at_boundary() const { return !broken_ && header_len_ == 0 && payload_left_ == 0; }
  // Not WebSocket framing (a reserved opcode, an impossible length): tracking stopped, and
  // wsgate must never inject into this stream.
  bool broken() const { return broken_; }

  // wsgate sent a ping to the peer this direction comes from: the matching pong is swallowed.
  void expect_pong() { ++pongs_expected_; }
  int pongs_expected() const { return pongs_expected_; }

  uint64_t frames() const { return frames_; }  // frames whose header went through
  uint64_t pongs_swallowed() const { return swallowed_; }
  uint64_t closes() const { return closes_; }  // Close frames seen whole

 private:
  void frame_header_done();
  size_t header_size() const;

  // Members ordered to pack: a tunnel holds two trackers for its whole life.
  piece_list out_;
  uint64_t payload_left_ = 0;  // payload bytes of the current frame still to skip
  uint64_t frames_ = 0;
  uint64_t swallowed_ = 0;
  uint32_t closes_ = 0;
  int32_t pongs_expected_ = 0;
  std::array<uint8_t, 14> header_{};  // the frame header being read (up to 14 bytes)
  // A frame that may be wsgate's pong, collected whole (header + 8 payload bytes), and the
  // bytes of it held from an earlier call, passed on when it turns out not to be one.
  std::array<char, 24> candidate_{};
  std::array<char, 24> release_{};
  uint8_t header_len_ = 0;
  uint8_t candidate_len_ = 0;
  uint8_t held_len_ = 0;
  uint8_t opcode_ = 0;
  bool masked_ = false;
  bool broken_ = false;
  bool collecting_ = false;
};

}  // namespace wsgate::proxy
