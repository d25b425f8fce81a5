// Shared helpers for the routing tests: configs inline, requests built in one line.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <string_view>

#include "config/loader.hpp"
#include "routing/route.hpp"

namespace wsgate::routing::test {

inline std::shared_ptr<const config::snapshot> load(std::string_view text) {
  auto r = config::load_text(text, "test.conf", ".");
  EXPECT_FALSE(r.error) << (r.error ? r.error->format() : "");
  return r.config;
}

// A config with one server on 127.0.0.1:8080 named localhost around `body`.
inline std::shared_ptr<const config::snapshot> server(std::string_view body,
                                                      std::string_view http_extra = "") {
  return load("events {}\nhttp {\n" + std::string(http_extra) +
              "\nserver {\nlisten 127.0.0.1:8080;\nserver_name localhost;\n" + std::string(body) +
              "\n}\n}\n");
}

inline request_info req(std::string target, header_list headers = {{"Host", "localhost"}}) {
  request_info r;
  r.target = std::move(target);
  r.headers = std::move(headers);
  r.local_addr = "127.0.0.1";
  r.local_port = 8080;
  r.remote_addr = "10.0.0.7";
  r.remote_port = 40000;
  return r;
}

inline std::string header(const decision& d, std::string_view name) {
  for (const auto& [n, v] : d.upstream.headers)
    if (n == name) return v;
  return "<none>";
}

inline bool has_warning(const std::vector<warning>& ws, std::string_view id) {
  for (const auto& w : ws)
    if (w.id == id) return true;
  return false;
}

}  // namespace wsgate::routing::test
