#include "http/request_parser.hpp"

#include "http/text.hpp"

namespace wsgate::http {

void request_parser::reset(const header_limits& limits) {
  limits_ = limits;
  head_.headers.clear();
  head_.content_length.reset();
  head_.chunked = head_.expect_continue = head_.http09 = false;
  head_.keep_alive = true;
  head_.major = head_.minor = 1;
  head_.size = 0;
  pos_ = 0;
  have_line_ = false;
  spans_.clear();
  buf_cap_ = limits.first_buffer;
  buf_used_ = 0;
  large_used_ = 0;
  status_ = 0;
  too_large_ = false;
  why_ = "";
}

parse_result request_parser::fail(int status, const char* why, bool too_large) {
  status_ = status;
  why_ = why;
  too_large_ = too_large;
  return parse_result::error;
}

// Packs one line as nginx packs the head into its buffers; false when it does not fit.
bool request_parser::account_line(size_t length, bool request_line) {
  (void)request_line;
  if (buf_used_ + length <= buf_cap_) {
    buf_used_ += length;
    return true;
  }
  if (length > limits_.large_size || ++large_used_ > limits_.large_count) return false;
  buf_cap_ = limits_.large_size;
  buf_used_ = length;
  return true;
}

parse_result request_parser::parse(std::string_view data) {
  for (;;) {
    if (!have_line_) {
      // nginx skips empty lines before the request line.
      while (pos_ < data.size() && (data[pos_] == '\r' || data[pos_] == '\n')) ++pos_;
    }
    const size_t lf = data.find('\n', pos_);
    if (lf == std::string_view::npos) {
      const size_t partial = data.size() - pos_;
      if (partial > limits_.large_size || data.size() >= limits_.max_bytes()) {
        if (!have_line_) return fail(414, "client sent too long URI");
        return fail(400, "client sent too long header line", true);
      }
      return parse_result::need_more;
    }
    size_t end = lf;
    if (end > pos_ && data[end - 1] == '\r') --end;
    const std::string_view line = data.substr(pos_, end - pos_);
    if (line.find('\r') != std::string_view::npos) return fail(400, "client sent invalid line");
    const size_t start = pos_;
    pos_ = lf + 1;
    if (!account_line(pos_ - start, !have_line_)) {
      if (!have_line_) return fail(414, "client sent too long URI");
      return fail(400, "client sent too long header line", true);
    }
    if (!have_line_) {
      if (auto r = parse_request_line(line); r != parse_result::need_more) return r;
      have_line_ = true;
      method_ = {static_cast<uint32_t>(start + method_.off), method_.len};
      target_ = {static_cast<uint32_t>(start + target_.off), target_.len};
      if (head_.http09) return finish(data);
      continue;
    }
    if (line.empty()) return finish(data);
    if (auto r = parse_header_line(line, start); r != parse_result::need_more) return r;
  }
}

// METHOD SP+ target [SP+ HTTP/x.y SP*]; offsets relative to the line.
parse_result request_parser::parse_request_line(std::string_view line) {
  size_t i = 0;
  while (i < line.size() &&
         ((line[i] >= 'A' && line[i] <= 'Z') || line[i] == '_' || line[i] == '-'))
    ++i;
  if (i == 0 || i >= line.size() || line[i] != ' ') return fail(400, "client sent invalid method");
  method_ = {0, static_cast<uint32_t>(i)};
  while (i < line.size() && line[i] == ' ') ++i;
  const size_t t0 = i;
  if (i >= line.size()) return fail(400, "client sent invalid request");
  if (line[i] != '/') {
    // absolute-form: scheme "://" ...
    size_t s = i;
    while (s < line.size() && is_alpha(line[s])) ++s;
    if (s == i || line.substr(s, 3) != "://") return fail(400, "client sent invalid request");
  }
  while (i < line.size() && line[i] != ' ') {
    const auto c = static_cast<unsigned char>(line[i]);
    if (c < 0x20 || c == 0x7f) return fail(400, "client sent invalid request");
    ++i;
  }
  target_ = {static_cast<uint32_t>(t0), static_cast<uint32_t>(i - t0)};
  while (i < line.size() && line[i] == ' ') ++i;
  if (i == line.size()) {
    if (line[line.size() - 1] == ' ' && line.size() > t0 + target_.len) {
      return fail(400, "client sent invalid request");
    }
    head_.http09 = true;
    head_.major = 0;
    head_.minor = 9;
    head_.keep_alive = false;
    return parse_result::need_more;
  }
  std::string_view v = line.substr(i);
  while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
  if (v.size() < 8 || v.substr(0, 5) != "HTTP/") return fail(400, "client sent invalid request");
  v.remove_prefix(5);
  auto number = [&](int& out) {
    if (v.empty() || !is_digit(v.front())) return false;
    out = 0;
    while (!v.empty() && is_digit(v.front())) {
      out = out * 10 + (v.front() - '0');
      if (out > 999) return false;
      v.remove_prefix(1);
    }
    return true;
  };
  int major = 0, minor = 0;
  if (!number(major) || v.empty() || v.front() != '.')
    return fail(400, "client sent invalid version");
  v.remove_prefix(1);
  if (!number(minor) || !v.empty()) return fail(400, "client sent invalid version");
  if (major > 1) return fail(505, "client sent unsupported HTTP version");
  if (major < 1) return fail(400, "client sent invalid version");
  head_.major = major;
  head_.minor = minor > 1 ? 1 : minor;
  head_.keep_alive = head_.minor >= 1;
  return parse_result::need_more;
}

// NAME ":" OWS value OWS. As nginx: a space or control character in the name is an error, a
// line without a colon is ignored, other unusual name characters are left for routing to drop.
parse_result request_parser::parse_header_line(std::string_view line, size_t offset) {
  size_t colon = std::string_view::npos;
  for (size_t i = 0; i < line.size(); ++i) {
    const auto c = static_cast<unsigned char>(line[i]);
    if (c == ':') {
      colon = i;
      break;
    }
    if (c <= 0x20 || c == 0x7f) return fail(400, "client sent invalid header line");
  }
  if (line.find('\0') != std::string_view::npos)
    return fail(400, "client sent invalid header line");
  if (colon == std::string_view::npos || colon == 0) return parse_result::need_more;  // ignored
  size_t v0 = colon + 1, v1 = line.size();
  while (v0 < v1 && (line[v0] == ' ' || line[v0] == '\t')) ++v0;
  while (v1 > v0 && (line[v1 - 1] == ' ' || line[v1 - 1] == '\t')) --v1;
  spans_.push_back({{static_cast<uint32_t>(offset), static_cast<uint32_t>(colon)},
                    {static_cast<uint32_t>(offset + v0), static_cast<uint32_t>(v1 - v0)}});
  return parse_result::need_more;
}

parse_result request_parser::finish(std::string_view data) {
  head_.size = pos_;
  head_.method = data.substr(method_.off, method_.len);
  head_.target = data.substr(target_.off, target_.len);
  head_.headers.clear();
  bool have_cl = false, have_te = false;
  std::string_view te;
  for (const auto& s : spans_) {
    const header_field f{data.substr(s.name.off, s.name.len),
                         data.substr(s.value.off, s.value.len)};
    head_.headers.push_back(f);
    if (iequals(f.name, "content-length")) {
      if (have_cl) return fail(400, "client sent duplicate header line: \"Content-Length\"");
      have_cl = true;
      uint64_t n = 0;
      if (f.value.empty()) return fail(400, "client sent invalid \"Content-Length\" header");
      for (char c : f.value) {
        if (!is_digit(c) || n > (UINT64_MAX - 9) / 10)
          return fail(400, "client sent invalid \"Content-Length\" header");
        n = n * 10 + static_cast<uint64_t>(c - '0');
      }
      head_.content_length = n;
    } else if (iequals(f.name, "transfer-encoding")) {
      if (have_te) return fail(400, "client sent duplicate header line: \"Transfer-Encoding\"");
      have_te = true;
      te = f.value;
    } else if (iequals(f.name, "connection")) {
      if (has_token(f.value, "close"))
        head_.keep_alive = false;
      else if (has_token(f.value, "keep-alive"))
        head_.keep_alive = true;
    } else if (iequals(f.name, "expect")) {
      head_.expect_continue = iequals(f.value, "100-continue");
    }
  }
  if (head_.method == "TRACE") return fail(405, "client sent TRACE method");
  if (head_.method == "CONNECT") return fail(400, "client sent CONNECT method");
  if (have_te) {
    if (head_.minor < 1)
      return fail(400, "client sent HTTP/1.0 request with \"Transfer-Encoding\"");
    if (!iequals(te, "chunked")) return fail(501, "client sent unknown \"Transfer-Encoding\"");
    if (have_cl)
      return fail(400, "client sent \"Content-Length\" and \"Transfer-Encoding\" at the same time");
    head_.chunked = true;
  }
  return parse_result::done;
}

}  // namespace wsgate::http
