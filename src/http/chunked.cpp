#include "http/chunked.hpp"

#include <algorithm>

namespace wsgate::http {

namespace {
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
constexpr size_t kMaxTrailerLine = 8192;
}  // namespace

chunked_decoder::step chunked_decoder::next(std::string_view in) {
  step s;
  size_t i = 0;
  auto error = [&] {
    s.consumed = i;
    s.error = true;
    return s;
  };
  while (i < in.size()) {
    const char c = in[i];
    switch (state_) {
      case state::size: {
        const int h = hex_value(c);
        if (h >= 0) {
          if (++digits_ > 15) return error();
          remaining_ = remaining_ * 16 + static_cast<uint64_t>(h);
          ++i;
          break;
        }
        if (digits_ == 0) return error();
        if (c == ';' || c == ' ' || c == '\t') {
          state_ = state::ext;
          ++i;
        } else if (c == '\r') {
          state_ = state::size_lf;
          ++i;
        } else if (c == '\n') {
          ++i;
          state_ = remaining_ ? state::data : state::trailer;
        } else {
          return error();
        }
        break;
      }
      case state::ext:
        if (c == '\r')
          state_ = state::size_lf;
        else if (c == '\n')
          state_ = remaining_ ? state::data : state::trailer;
        else if (++line_ > kMaxTrailerLine)
          return error();
        ++i;
        break;
      case state::size_lf:
        if (c != '\n') return error();
        ++i;
        line_ = 0;
        state_ = remaining_ ? state::data : state::trailer;
        break;
      case state::data: {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, in.size() - i));
        s.data = in.substr(i, n);
        i += n;
        remaining_ -= n;
        if (remaining_ == 0) state_ = state::data_cr;
        s.consumed = i;
        return s;
      }
      case state::data_cr:
        if (c == '\r')
          state_ = state::data_lf;
        else if (c == '\n') {
          state_ = state::size;
          digits_ = 0;
        } else
          return error();
        ++i;
        break;
      case state::data_lf:
        if (c != '\n') return error();
        state_ = state::size;
        digits_ = 0;
        ++i;
        break;
      case state::trailer:  // at the start of a trailer line; an empty line ends the body
        if (c == '\r')
          state_ = state::trailer_lf;
        else if (c == '\n')
          state_ = state::done;
        else {
          state_ = state::trailer_line;
          line_ = 1;
        }
        ++i;
        if (state_ == state::done) {
          s.consumed = i;
          s.done = true;
          return s;
        }
        break;
      case state::trailer_line:
        if (c == '\n')
          state_ = state::trailer;
        else if (++line_ > kMaxTrailerLine)
          return error();
        ++i;
        break;
      case state::trailer_lf:
        if (c != '\n') return error();
        ++i;
        state_ = state::done;
        s.consumed = i;
        s.done = true;
        return s;
      case state::done:
        s.consumed = i;
        s.done = true;
        return s;
    }
  }
  s.consumed = i;
  s.done = state_ == state::done;
  return s;
}

chunked_decoder::step body_framing::next(std::string_view in) {
  if (chunked_) {
    const auto s = decoder_.next(in);
    done_ = s.done;
    return s;
  }
  chunked_decoder::step s;
  if (has_length_) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, in.size()));
    s.data = in.substr(0, n);
    s.consumed = n;
    remaining_ -= n;
    s.done = done_ = remaining_ == 0;
  } else {
    s.data = in;
    s.consumed = in.size();
  }
  return s;
}

size_t chunk_header(char* out, size_t size) {
  static constexpr char digits[] = "0123456789abcdef";
  char tmp[16];
  size_t n = 0;
  do {
    tmp[n++] = digits[size & 0xf];
    size >>= 4;
  } while (size);
  size_t len = 0;
  while (n) out[len++] = tmp[--n];
  out[len++] = '\r';
  out[len++] = '\n';
  return len;
}

}  // namespace wsgate::http
