#include "proxy/response_rules.hpp"

#include <algorithm>

#include "http/text.hpp"

namespace wsgate::proxy {

using http::iequals;

namespace {
bool listed(std::string_view name, const std::optional<std::vector<std::string>>& list) {
  if (!list) return false;
  return std::any_of(list->begin(), list->end(),
                     [&](const std::string& n) { return iequals(n, name); });
}
}  // namespace

bool hide_response_header(std::string_view name, const config::location_settings& settings,
                          bool upgrade) {
  // Hop-by-hop: framing and connection management are wsgate's own towards the client.
  if (iequals(name, "connection") || iequals(name, "keep-alive") ||
      iequals(name, "transfer-encoding") || iequals(name, "proxy-connection"))
    return true;
  if (iequals(name, "upgrade")) return !upgrade;
  // nginx's proxy_hide_header defaults, unless proxy_pass_header names them.
  const bool hidden_by_default = iequals(name, "date") || iequals(name, "server") ||
                                 iequals(name, "x-pad") ||
                                 (name.size() >= 8 && iequals(name.substr(0, 8), "x-accel-"));
  if (hidden_by_default) return !listed(name, settings.proxy_pass_header);
  return listed(name, settings.proxy_hide_header);
}

std::optional<std::string> rewrite_location(std::string_view value, const config::location& loc) {
  const auto& rules = loc.settings.proxy_redirect;
  if (!rules) return std::nullopt;
  for (const auto& r : *rules) {
    std::string from, to;
    switch (r.type) {
      case config::proxy_redirect_setting::kind::off:
        return std::nullopt;
      case config::proxy_redirect_setting::kind::default_: {
        if (!loc.proxy_pass || loc.proxy_pass->url.has_variables()) continue;
        from = loc.proxy_pass->url.raw;
        if (loc.proxy_pass->uri && !loc.proxy_pass->uri->empty()) {
          to = loc.pattern;
        } else {
          if (from.empty() || from.back() != '/') from += '/';
          to = "/";
        }
        break;
      }
      case config::proxy_redirect_setting::kind::replace:
        if (r.from.has_variables() || r.to.has_variables()) continue;
        from = r.from.raw;
        to = r.to.raw;
        break;
    }
    if (!from.empty() && value.substr(0, from.size()) == from)
      return to + std::string(value.substr(from.size()));
  }
  return std::nullopt;
}

std::string absolute_location(std::string_view value, std::string_view host, uint16_t port,
                              bool tls) {
  if (value.empty() || value.front() != '/') return std::string(value);
  std::string url = tls ? "https://" : "http://";
  url += host;
  if (port != (tls ? 443 : 80)) url += ":" + std::to_string(port);
  url += value;
  return url;
}

}  // namespace wsgate::proxy
