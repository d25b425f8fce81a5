// The upstream response head: status line and header fields, with views into the upstream
// connection's buffer. One call parses a complete head or asks for more.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "http/request_parser.hpp"

namespace wsgate::http {

struct response_head {
  int status = 0;
  int minor = 1;
  std::string_view reason;
  std::vector<header_field> headers;
  std::optional<uint64_t> content_length;
  bool chunked = false;
  bool connection_close = false;
  bool connection_upgrade = false;
  std::string_view upgrade;  // the Upgrade header's value
  size_t size = 0;           // bytes of the head
};

// Parses the head at the start of `data`. need_more when incomplete (the caller bounds the
// size: nginx's proxy_buffer_size, "upstream sent too big header"), error when malformed.
parse_result parse_response(std::string_view data, response_head& out);

}  // namespace wsgate::http
