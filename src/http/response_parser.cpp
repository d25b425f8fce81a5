#include "http/response_parser.hpp"

#include "http/text.hpp"

namespace wsgate::http {

parse_result parse_response(std::string_view data, response_head& out) {
  out.headers.clear();
  out.content_length.reset();
  out.chunked = out.connection_close = out.connection_upgrade = false;
  out.upgrade = {};
  size_t pos = 0;
  bool first = true;
  for (;;) {
    const size_t lf = data.find('\n', pos);
    if (lf == std::string_view::npos) return parse_result::need_more;
    size_t end = lf;
    if (end > pos && data[end - 1] == '\r') --end;
    std::string_view line = data.substr(pos, end - pos);
    pos = lf + 1;
    if (first) {
      // HTTP/1.x SP 3DIGIT [SP reason]
      if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || !is_digit(line[7]) ||
          line[8] != ' ')
        return parse_result::error;
      out.minor = line[7] - '0';
      if (!is_digit(line[9]) || !is_digit(line[10]) || !is_digit(line[11]))
        return parse_result::error;
      out.status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
      if (out.status < 100) return parse_result::error;
      if (line.size() > 12 && line[12] != ' ') return parse_result::error;
      out.reason = line.size() > 13 ? line.substr(13) : std::string_view{};
      first = false;
      continue;
    }
    if (line.empty()) {
      out.size = pos;
      return parse_result::done;
    }
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return parse_result::error;
    std::string_view name = line.substr(0, colon);
    for (char c : name)
      if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return parse_result::error;
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    out.headers.push_back({name, value});
    if (iequals(name, "content-length")) {
      uint64_t n = 0;
      if (value.empty()) return parse_result::error;
      for (char c : value) {
        if (!is_digit(c) || n > (UINT64_MAX - 9) / 10) return parse_result::error;
        n = n * 10 + static_cast<uint64_t>(c - '0');
      }
      if (out.content_length && *out.content_length != n) return parse_result::error;
      out.content_length = n;
    } else if (iequals(name, "transfer-encoding")) {
      if (has_token(value, "chunked")) out.chunked = true;
    } else if (iequals(name, "connection")) {
      if (has_token(value, "close")) out.connection_close = true;
      if (has_token(value, "upgrade")) out.connection_upgrade = true;
    } else if (iequals(name, "upgrade")) {
      out.upgrade = value;
    }
  }
}

}  // namespace wsgate::http
