#pragma once
// URLs as the client tools take them: ws://, wss://, http://, https:// with host, port and target.
#include <optional>
#include <string>
#include <string_view>

namespace wsgate::client {

struct url {
  std::string scheme;      // lower case: ws, wss, http, https
  std::string host;        // without brackets for IPv6 literals
  std::string port;        // always set: explicit, or the scheme's default
  std::string target;      // path and query, at least "/"
  bool secure = false;     // wss or https
  bool websocket = false;  // ws or wss
  bool default_port = true;

  // "host" or "host:port" as a Host header carries it.
  [[nodiscard]] std::string host_header() const;
};

// Parses `text`; on failure returns nullopt and sets `error` to a message saying what to fix.
std::optional<url> parse_url(std::string_view text, std::string& error);

}  // namespace wsgate::client
