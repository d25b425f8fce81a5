// error_page's named locations: route() answers from the named location without searching the
// locations or running the server's rewrites again; the URI and method stay as received.
#include <gtest/gtest.h>

#include "helpers.hpp"

namespace wsgate::routing {
namespace {

using test::load;
using test::req;
using test::server;

constexpr const char* kNamed = R"(
  rewrite ^/old/(.*)$ /new/$1 last;
  location / { return 404; }
  location @fallback { proxy_pass http://127.0.0.1:9000; proxy_set_header X-Via fallback; }
  location @rewrites { rewrite ^ /moved last; }
  location /moved { proxy_pass http://127.0.0.1:9001; }
)";

TEST(NamedLocation, AnswersWithTheRequestUnchanged) {
  auto c = server(kNamed);
  auto rq = req("/old/x?a=1");
  rq.method = "POST";
  rq.named_location = "fallback";
  const auto d = route(*c, rq);
  ASSERT_EQ(d.what, action::proxy);
  ASSERT_NE(d.location, nullptr);
  EXPECT_EQ(d.location->pattern, "fallback");
  EXPECT_EQ(d.upstream.method, "POST");
  EXPECT_EQ(d.upstream.uri, "/old/x?a=1");  // the server's rewrite did not run again
  EXPECT_EQ(d.upstream.port, 9000);
}

TEST(NamedLocation, ItsRewritesSearchTheLocationsAgain) {
  auto c = server(kNamed);
  auto rq = req("/x");
  rq.named_location = "rewrites";
  const auto d = route(*c, rq);
  ASSERT_EQ(d.what, action::proxy);
  EXPECT_EQ(d.upstream.port, 9001);
  EXPECT_EQ(d.upstream.uri, "/moved");
}

TEST(NamedLocation, MissingNameIs500AndPlainRequestsNeverMatchANamedLocation) {
  auto c = server(kNamed);
  auto rq = req("/x");
  rq.named_location = "nothere";
  auto d = route(*c, rq);
  EXPECT_EQ(d.what, action::respond);
  EXPECT_EQ(d.status, 500);
  EXPECT_EQ(d.location, nullptr);
  d = route(*c, req("/fallback"));
  EXPECT_EQ(d.status, 404);
  d = route(*c, req("@fallback"));
  EXPECT_EQ(d.status, 400);
}

}  // namespace
}  // namespace wsgate::routing
