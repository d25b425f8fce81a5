#include "routing/uri.hpp"

#include <cstdint>

namespace wsgate::routing {

namespace {

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}
int hex_value(char c) {
  return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

}  // namespace

bool normalize_path_into(std::string_view path, bool merge_slashes, std::string& u, bool* quoted) {
  // The states of ngx_http_parse_complex_uri. A decoded %XX is fed back through the state it
  // interrupted, so "%2F" acts as a slash and "%2E%2E" as a dot segment, as in nginx; a decoded
  // '%', '#' or '?' is taken literally.
  enum state_t { usual, slash, dot, dot_dot, quoted_first, quoted_second };
  state_t state = usual, quoted_state = usual;
  u.clear();
  u.reserve(path.size());
  int decoded = 0;
  bool any_quoted = false;

  // Removes the last path segment for "..": u ends with "/x/.." (nginx: u -= 4, scan back to '/').
  auto back_up = [&u]() -> bool {
    if (u.size() < 4) return false;
    long i = static_cast<long>(u.size()) - 4;
    for (;; --i) {
      if (i < 0) return false;
      if (u[static_cast<size_t>(i)] == '/') break;
    }
    u.resize(static_cast<size_t>(i) + 1);
    return true;
  };

  size_t p = 0;
  bool done = false;
  while (!done && p < path.size()) {
    char ch = path[p++];
    bool reprocess = true;
    while (reprocess) {
      reprocess = false;
      switch (state) {
        case usual:
          if (ch == '/') {
            state = slash;
            u += ch;
          } else if (ch == '%') {
            quoted_state = state;
            state = quoted_first;
          } else if (ch == '?' || ch == '#') {
            done = true;
          } else {
            u += ch;
          }
          break;
        case slash:
          if (ch == '/') {
            if (!merge_slashes) u += ch;
          } else if (ch == '.') {
            state = dot;
            u += ch;
          } else if (ch == '%') {
            quoted_state = state;
            state = quoted_first;
          } else if (ch == '?' || ch == '#') {
            done = true;
          } else {
            state = usual;
            u += ch;
          }
          break;
        case dot:
          if (ch == '/') {
            state = slash;
            u.pop_back();
          } else if (ch == '.') {
            state = dot_dot;
            u += ch;
          } else if (ch == '%') {
            quoted_state = state;
            state = quoted_first;
          } else if (ch == '?' || ch == '#') {
            u.pop_back();
            state = usual;
            done = true;
          } else {
            state = usual;
            u += ch;
          }
          break;
        case dot_dot:
          if (ch == '/' || ch == '?' || ch == '#') {
            if (!back_up()) return false;
            state = slash;
            if (ch != '/') {
              state = usual;
              done = true;
            }
          } else if (ch == '%') {
            quoted_state = state;
            state = quoted_first;
          } else {
            state = usual;
            u += ch;
          }
          break;
        case quoted_first:
          any_quoted = true;
          if (!is_hex(ch)) return false;
          decoded = hex_value(ch);
          state = quoted_second;
          break;
        case quoted_second: {
          if (!is_hex(ch)) return false;
          const bool digit = ch >= '0' && ch <= '9';
          ch = static_cast<char>((decoded << 4) + hex_value(ch));
          // nginx tests '%'/'#'/NUL only after a decimal second digit, '?' only after a hex one.
          if (digit && (ch == '%' || ch == '#')) {
            state = usual;
            u += ch;
          } else if (digit && ch == '\0') {
            return false;
          } else if (!digit && ch == '?') {
            state = usual;
            u += ch;
          } else {
            state = quoted_state;
            reprocess = true;
          }
          break;
        }
      }
    }
  }
  if (state == quoted_first || state == quoted_second) return false;
  if (state == dot) {
    u.pop_back();
  } else if (state == dot_dot) {
    if (!back_up()) return false;
  }
  if (quoted) *quoted = any_quoted;
  return true;
}

std::optional<std::string> normalize_path(std::string_view path, bool merge_slashes, bool* quoted) {
  std::string u;
  if (!normalize_path_into(path, merge_slashes, u, quoted)) return std::nullopt;
  return u;
}

void parse_target_into(std::string_view target, bool merge_slashes, parsed_target& out) {
  // Every field is reset, keeping the strings' capacity (the data path reuses one per worker).
  out.ok = false;
  out.error.clear();
  out.uri.clear();
  out.args.clear();
  out.has_args = false;
  out.unparsed_uri.clear();
  out.host.clear();
  out.quoted_uri = false;
  out.plus_in_uri = false;
  std::string_view rest = target;
  if (rest.empty()) {
    out.error = "empty request target";
    return;
  }
  // nginx 1.21.1+ rejects spaces and control characters in the request line.
  for (char c : rest)
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      out.error = "space or control character in the request target";
      return;
    }
  if (rest.front() != '/') {
    // Absolute form: scheme "://" host [":" port] [path]. nginx accepts any scheme letters here.
    size_t i = 0;
    while (i < rest.size() && ((rest[i] | 0x20) >= 'a' && (rest[i] | 0x20) <= 'z')) ++i;
    if (i == 0 || rest.substr(i, 3) != "://") {
      out.error = "request target is neither \"/path\" nor \"scheme://host/path\"";
      return;
    }
    rest.remove_prefix(i + 3);
    size_t h = 0;
    if (!rest.empty() && rest[0] == '[') {
      h = rest.find(']');
      if (h == std::string_view::npos) {
        out.error = "unterminated IPv6 literal in request target";
        return;
      }
      ++h;
    } else {
      while (h < rest.size()) {
        const char c = rest[h];
        if (((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
            c == '-')
          ++h;
        else
          break;
      }
    }
    std::string_view host = rest.substr(0, h);
    rest.remove_prefix(h);
    if (!rest.empty() && rest[0] == ':') {
      size_t d = 1;
      while (d < rest.size() && rest[d] >= '0' && rest[d] <= '9') ++d;
      rest.remove_prefix(d);
    }
    if (!rest.empty() && rest[0] != '/' && rest[0] != '?') {
      out.error = "invalid character in the host of the request target";
      return;
    }
    if (!validate_host_into(host, out.host)) {
      out.error = "invalid host in request target";
      return;
    }
    if (rest.empty()) rest = "/";  // nginx: an empty path is "/"
  }
  out.unparsed_uri.assign(rest);
  // A view of the target, copied only for "http://h?x", whose path is "/".
  std::string with_slash;
  std::string_view path_part = rest;
  if (path_part.front() == '?') {
    with_slash = "/" + std::string(rest);
    path_part = with_slash;
  }

  const size_t q = path_part.find('?');
  const size_t hash = path_part.find('#');
  if (q != std::string_view::npos && (hash == std::string_view::npos || q < hash)) {
    out.has_args = true;
    const size_t end = path_part.find('#', q + 1);
    out.args.assign(path_part.substr(
        q + 1, end == std::string_view::npos ? std::string_view::npos : end - q - 1));
  }
  const bool uri_ok = normalize_path_into(path_part, merge_slashes, out.uri, &out.quoted_uri);
  const std::string_view path_only = path_part.substr(0, path_part.find_first_of("?#"));
  out.plus_in_uri = path_only.find('+') != std::string_view::npos ||
                    path_only.find("%2B") != std::string_view::npos ||
                    path_only.find("%2b") != std::string_view::npos;
  if (!uri_ok) {
    out.uri.clear();
    out.error = "invalid URI: bad %XX escape or \"..\" above the root";
    return;
  }
  out.ok = true;
}

parsed_target parse_target(std::string_view target, bool merge_slashes) {
  parsed_target out;
  parse_target_into(target, merge_slashes, out);
  return out;
}

void escape_into(std::string_view s, escape_kind kind, std::string& out) {
  static constexpr char hex[] = "0123456789ABCDEF";
  for (char c : s) {
    const auto b = static_cast<unsigned char>(c);
    bool esc = b <= 0x20 || b >= 0x7f || c == '#' || c == '%' || c == '?';
    if (kind == escape_kind::args) esc = esc || c == '&' || c == '+' || c == ';';
    if (esc) {
      out += '%';
      out += hex[b >> 4];
      out += hex[b & 0xf];
    } else {
      out += c;
    }
  }
}

std::string escape(std::string_view s, escape_kind kind) {
  std::string out;
  out.reserve(s.size());
  escape_into(s, kind, out);
  return out;
}

bool validate_host_into(std::string_view host, std::string& out) {
  enum { usual, literal, rest } state = usual;
  size_t dot_pos = host.size();
  size_t host_len = host.size();
  for (size_t i = 0; i < host.size(); ++i) {
    const char ch = host[i];
    switch (ch) {
      case '.':
        if (dot_pos + 1 == i) return false;  // ".."
        dot_pos = i;
        break;
      case ':':
        if (state == usual) {
          host_len = i;
          state = rest;
        }
        break;
      case '[':
        if (i == 0) state = literal;
        break;
      case ']':
        if (state == literal) {
          host_len = i + 1;
          state = rest;
        }
        break;
      case '\0':
      case '/':
        return false;
      default:
        if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) return false;
        break;
    }
  }
  if (host_len > 0 && dot_pos == host_len - 1) --host_len;
  if (host_len == 0) return false;
  out.assign(host.substr(0, host_len));
  for (auto& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c | 0x20);
  return true;
}

std::optional<std::string> validate_host(std::string_view host) {
  std::string out;
  if (!validate_host_into(host, out)) return std::nullopt;
  return out;
}

}  // namespace wsgate::routing
