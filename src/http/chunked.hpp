// Incremental decoder of a chunked body (RFC 9112 7.1): yields the data in place, skips
// extensions and trailers. Used for client request bodies and upstream responses alike.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace wsgate::http {

class chunked_decoder {
 public:
  struct step {
    size_t consumed = 0;    // bytes of the input used by this step
    std::string_view data;  // body bytes found (a view into the input), may be empty
    bool done = false;      // the last chunk and trailers were read
    bool error = false;     // malformed framing
  };
  // Decodes from `in` until data is found, the input ends, or the body ends.
  step next(std::string_view in);
  bool done() const { return state_ == state::done; }
  void reset() { *this = chunked_decoder{}; }

 private:
  enum class state {
    size,
    ext,
    size_lf,
    data,
    data_cr,
    data_lf,
    trailer,
    trailer_line,
    trailer_lf,
    done
  };
  state state_ = state::size;
  uint64_t remaining_ = 0;
  int digits_ = 0;
  size_t line_ = 0;  // length of the current trailer line (bounded)
};

// A response body's framing as it arrives: chunked, Content-Length, or everything until the peer
// closes. next() says which body bytes the buffered input holds and how much of it they used.
class body_framing {
 public:
  body_framing(bool chunked, std::optional<uint64_t> length)
      : chunked_(chunked),
        has_length_(!chunked && length.has_value()),
        remaining_(has_length_ ? *length : 0),
        done_(has_length_ && remaining_ == 0) {}
  chunked_decoder::step next(std::string_view in);
  // The whole body was seen (never, for a body that ends with the connection).
  bool done() const { return done_; }

 private:
  chunked_decoder decoder_;
  bool chunked_;
  bool has_length_;
  uint64_t remaining_;
  bool done_;
};

// Writes a chunk header ("1a2b\r\n") into `out` (at least 18 bytes); returns its length.
size_t chunk_header(char* out, size_t size);

}  // namespace wsgate::http
