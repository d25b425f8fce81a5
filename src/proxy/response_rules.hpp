// What the client receives of an upstream response's header: nginx's hidden and hop-by-hop
// headers dropped, proxy_hide_header / proxy_pass_header applied, Location rewritten by
// proxy_redirect. No I/O, so it is unit-tested on its own.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "config/model.hpp"

namespace wsgate::proxy {

// True when the upstream header `name` is not passed to the client. Content-Length,
// Content-Type and Location are passed but written by the caller in nginx's order.
bool hide_response_header(std::string_view name, const config::location_settings& settings,
                          bool upgrade);

// proxy_redirect applied to a Location value; nullopt when no rule changes it.
std::optional<std::string> rewrite_location(std::string_view value, const config::location& loc);

// A Location starting with '/' made absolute as nginx does (absolute_redirect, port_in_redirect).
std::string absolute_location(std::string_view value, std::string_view host, uint16_t port,
                              bool tls);

}  // namespace wsgate::proxy
