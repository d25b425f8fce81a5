// The buffering and client keep-alive settings of the data path: nginx 1.22's defaults, and
// values that inherit http > server > location.
#include <gtest/gtest.h>

#include "config/loader.hpp"
#include "test_util.hpp"

namespace wsgate::config {
namespace {

using namespace std::chrono_literals;

using test::load_ok;

TEST(BufferingSettings, Defaults) {
  auto c = load_ok("events {} http { server { location / { proxy_pass http://b; } } }");
  const auto& s = c->http->servers.at(0)->root_location.children.at(0)->settings;
  EXPECT_EQ(*s.client_body_buffer_size, 16u * 1024);
  EXPECT_EQ(*s.proxy_max_temp_file_size, 1024u * 1024 * 1024);
  EXPECT_EQ(*s.keepalive_requests, 1000);
  EXPECT_EQ(*s.keepalive_time, 1h);
  EXPECT_TRUE(c->notices.empty());  // applied now, no longer "accepted and ignored"
}

TEST(BufferingSettings, InheritAndOverride) {
  auto c = load_ok(
      "events {} http { client_body_buffer_size 64k; keepalive_requests 5; "
      "server { keepalive_time 10s; proxy_max_temp_file_size 0; "
      "location /a { proxy_pass http://b; client_body_buffer_size 1k; keepalive_requests 2; } "
      "location /b { proxy_pass http://b; } } }");
  const auto& a = c->http->servers.at(0)->root_location.children.at(0)->settings;
  const auto& b = c->http->servers.at(0)->root_location.children.at(1)->settings;
  EXPECT_EQ(*a.client_body_buffer_size, 1024u);
  EXPECT_EQ(*b.client_body_buffer_size, 64u * 1024);
  EXPECT_EQ(*a.keepalive_requests, 2);
  EXPECT_EQ(*b.keepalive_requests, 5);
  EXPECT_EQ(*a.keepalive_time, 10s);
  EXPECT_EQ(*b.proxy_max_temp_file_size, 0u);
}

TEST(BufferingSettings, ClientAndUpstreamKeepaliveRequestsAreDistinct) {
  auto c = load_ok(
      "events {} http { keepalive_requests 7; upstream u { server 127.0.0.1; keepalive 2; "
      "keepalive_requests 3; } server { location / { proxy_pass http://u; } } }");
  EXPECT_EQ(c->http->upstreams.at("u").keepalive_requests, 3);
  EXPECT_EQ(*c->http->servers.at(0)->root_location.children.at(0)->settings.keepalive_requests, 7);
}

TEST(BufferingSettings, BadValuesSayWhatToWrite) {
  auto r = load_text("events {} http { keepalive_requests many; }", "test.conf");
  ASSERT_TRUE(r.error);
  EXPECT_NE(r.error->format().find("invalid number \"many\""), std::string::npos)
      << r.error->format();
  r = load_text("events {} http { client_body_buffer_size 1x; }", "test.conf");
  ASSERT_TRUE(r.error);
  EXPECT_NE(r.error->format().find("write a size"), std::string::npos) << r.error->format();
}

}  // namespace
}  // namespace wsgate::config
