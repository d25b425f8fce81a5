#include "proxy/response_rules.hpp"

#include <gtest/gtest.h>

using namespace wsgate;

TEST(ResponseRules, HiddenAndHopByHopHeaders) {
  config::location_settings s;
  for (const char* h : {"Connection", "Keep-Alive", "Transfer-Encoding", "Date", "Server", "X-Pad",
                        "X-Accel-Redirect", "Upgrade"})
    EXPECT_TRUE(proxy::hide_response_header(h, s, false)) << h;
  EXPECT_FALSE(proxy::hide_response_header("Upgrade", s, true));
  EXPECT_FALSE(proxy::hide_response_header("X-Z", s, false));
  s.proxy_pass_header = std::vector<std::string>{"server"};
  s.proxy_hide_header = std::vector<std::string>{"x-z"};
  EXPECT_FALSE(proxy::hide_response_header("Server", s, false));
  EXPECT_TRUE(proxy::hide_response_header("X-Z", s, false));
}

TEST(ResponseRules, ProxyRedirectDefault) {
  config::location loc;
  loc.pattern = "/api/";
  config::proxy_pass_setting pp;
  pp.url.raw = "http://b:8000/v2/";
  pp.uri = "/v2/";
  loc.proxy_pass = pp;
  loc.settings.proxy_redirect = std::vector<config::proxy_redirect_setting>{{}};
  EXPECT_EQ(proxy::rewrite_location("http://b:8000/v2/x", loc), "/api/x");
  EXPECT_EQ(proxy::rewrite_location("http://other/x", loc), std::nullopt);
  loc.proxy_pass->url.raw = "http://b:8000";
  loc.proxy_pass->uri.reset();
  EXPECT_EQ(proxy::rewrite_location("http://b:8000/x", loc), "/x");
  EXPECT_EQ(proxy::absolute_location("/x", "a", 8080, false), "http://a:8080/x");
  EXPECT_EQ(proxy::absolute_location("/x", "a", 80, false), "http://a/x");
  EXPECT_EQ(proxy::absolute_location("http://e/x", "a", 80, false), "http://e/x");
}
