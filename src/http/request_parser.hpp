// The client request head: a strict HTTP/1.x parser with nginx's limits and statuses.
//
// Three outcomes (need more, error, done). The parser scans the connection's contiguous buffer
// from the request's first byte; the buffer may move between calls, so progress is kept as
// offsets and the views in request_head are made only when the head is complete.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace wsgate::http {

enum class parse_result { need_more, done, error };

struct header_field {
  std::string_view name, value;
};

// nginx's client_header_buffer_size and large_client_header_buffers: the head is packed line by
// line into one small buffer, then into at most `large_count` buffers of `large_size`; a line
// must fit in one buffer.
struct header_limits {
  size_t first_buffer = 1024;
  int large_count = 4;
  size_t large_size = 8192;
  // The most bytes a head can take: reading stops there.
  size_t max_bytes() const { return first_buffer + static_cast<size_t>(large_count) * large_size; }
};

struct request_head {
  std::string_view method, target;
  int major = 1, minor = 1;
  bool http09 = false;                // "GET /path" without a version: body-only response
  std::vector<header_field> headers;  // every syntactically valid line, in order
  std::optional<uint64_t> content_length;
  bool chunked = false;
  bool keep_alive = true;
  bool expect_continue = false;
  size_t size = 0;  // bytes of the head, leading empty lines included
};

class request_parser {
 public:
  void reset(const header_limits& limits);
  // `data` starts at the request's first byte and holds everything read so far.
  parse_result parse(std::string_view data);

  const request_head& head() const { return head_; }
  // On error: the status nginx answers (400, 405, 414, 501, 505), and whether the 400 is the
  // "Request Header Or Cookie Too Large" variant.
  int error_status() const { return status_; }
  bool header_too_large() const { return too_large_; }
  const char* error_text() const { return why_; }

 private:
  parse_result fail(int status, const char* why, bool too_large = false);
  parse_result parse_request_line(std::string_view line);
  parse_result parse_header_line(std::string_view line, size_t offset);
  parse_result finish(std::string_view data);
  bool account_line(size_t length, bool request_line);

  struct span {
    uint32_t off = 0, len = 0;
  };
  struct header_span {
    span name, value;
  };

  header_limits limits_;
  request_head head_;
  size_t pos_ = 0;          // start of the first line not yet parsed
  bool have_line_ = false;  // request line parsed
  span method_, target_;
  std::vector<header_span> spans_;
  size_t buf_cap_ = 0, buf_used_ = 0;
  int large_used_ = 0;
  int status_ = 0;
  bool too_large_ = false;
  const char* why_ = "";
};

}  // namespace wsgate::http
