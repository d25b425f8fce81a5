#include "url.hpp"

#include <algorithm>
#include <cctype>

namespace wsgate::client {

std::string url::host_header() const {
  const std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return default_port ? h : h + ":" + port;
}

std::optional<url> parse_url(std::string_view text, std::string& error) {
  url out;
  const auto sep = text.find("://");
  if (sep == std::string_view::npos) {
    error = "'" + std::string(text) +
            "' has no scheme; write e.g. ws://127.0.0.1:8080/path or https://host/";
    return std::nullopt;
  }
  out.scheme = text.substr(0, sep);
  std::ranges::transform(out.scheme, out.scheme.begin(),
                         [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  std::string default_port;
  if (out.scheme == "ws" || out.scheme == "http") {
    default_port = "80";
  } else if (out.scheme == "wss" || out.scheme == "https") {
    default_port = "443";
    out.secure = true;
  } else {
    error = "unsupported scheme '" + out.scheme + "'; use ws://, wss://, http:// or https://";
    return std::nullopt;
  }
  out.websocket = out.scheme == "ws" || out.scheme == "wss";
  std::string_view rest = text.substr(sep + 3);
  const auto path_start = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, path_start);
  std::string_view target =
      path_start == std::string_view::npos ? std::string_view{} : rest.substr(path_start);
  if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
    error = "credentials in the URL are not supported; send them with -H 'Authorization: ...'";
    return std::nullopt;
  }
  if (authority.empty()) {
    error = "the URL has no host";
    return std::nullopt;
  }
  std::string_view port;
  if (authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) {
      error = "unterminated IPv6 literal in '" + std::string(authority) + "'";
      return std::nullopt;
    }
    out.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') {
        error = "unexpected text after the IPv6 literal in '" + std::string(authority) + "'";
        return std::nullopt;
      }
      port = authority.substr(close + 2);
    }
  } else if (const auto colon = authority.rfind(':'); colon != std::string_view::npos) {
    out.host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  } else {
    out.host = authority;
  }
  if (out.host.empty()) {
    error = "the URL has no host";
    return std::nullopt;
  }
  if (!port.empty()) {
    const bool digits =
        std::ranges::all_of(port, [](unsigned char c) { return std::isdigit(c) != 0; });
    if (!digits || port.size() > 5 || std::stoul(std::string(port)) == 0 ||
        std::stoul(std::string(port)) > 65535) {
      error = "bad port '" + std::string(port) + "'; a port is a number 1-65535";
      return std::nullopt;
    }
    out.port = port;
    out.default_port = out.port == default_port;
  } else {
    out.port = default_port;
  }
  // The fragment never goes on the wire.
  if (const auto hash = target.find('#'); hash != std::string_view::npos) {
    target = target.substr(0, hash);
  }
  out.target = target.empty() ? "/" : std::string(target);
  if (out.target.front() == '?') {
    out.target.insert(0, "/");
  }
  return out;
}

}  // namespace wsgate::client
