// route_into(): one decision reused request after request must read exactly as a fresh route()
// decision (nothing left over from the previous request), and a warm one allocates nothing.
#include <gtest/gtest.h>

#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "counted_new.hpp"  // counts this binary's heap allocations
#include "helpers.hpp"

namespace wsgate::routing {
namespace {

void expect_same(const decision& a, const decision& b) {
  EXPECT_EQ(a.server, b.server);
  EXPECT_EQ(a.server_reason, b.server_reason);
  EXPECT_EQ(a.location, b.location);
  EXPECT_EQ(a.candidates.size(), b.candidates.size());
  EXPECT_EQ(a.normalized_uri, b.normalized_uri);
  EXPECT_EQ(a.what, b.what);
  EXPECT_EQ(a.status, b.status);
  EXPECT_EQ(a.body, b.body);
  EXPECT_EQ(a.location_header, b.location_header);
  EXPECT_EQ(a.upstream.scheme, b.upstream.scheme);
  EXPECT_EQ(a.upstream.host, b.upstream.host);
  EXPECT_EQ(a.upstream.port, b.upstream.port);
  EXPECT_EQ(a.upstream.via_upstream_block, b.upstream.via_upstream_block);
  EXPECT_EQ(a.upstream.method, b.upstream.method);
  EXPECT_EQ(a.upstream.uri, b.upstream.uri);
  EXPECT_EQ(a.upstream.version, b.upstream.version);
  EXPECT_EQ(a.upstream.headers, b.upstream.headers);
  EXPECT_EQ(a.upstream.pass_body, b.upstream.pass_body);
  EXPECT_EQ(a.upstream.pending_content_length_at, b.upstream.pending_content_length_at);
  EXPECT_EQ(a.limits.connect, b.limits.connect);
  EXPECT_EQ(a.limits.read, b.limits.read);
  EXPECT_EQ(a.websocket, b.websocket);
  ASSERT_EQ(a.warnings.size(), b.warnings.size());
  for (size_t i = 0; i < a.warnings.size(); ++i) {
    EXPECT_EQ(a.warnings[i].id, b.warnings[i].id);
    EXPECT_EQ(a.warnings[i].text, b.warnings[i].text);
  }
}

// Heap allocations of 100 route_into calls on `d` once three have warmed it (as the data path
// routes: no diagnostics).
unsigned long warm_allocations(const config::snapshot& c, request_info rq, decision& d) {
  rq.diagnostics = false;
  for (int i = 0; i < 3; ++i) route_into(c, rq, d);
  const unsigned long before = counted_new::calls.load();
  for (int i = 0; i < 100; ++i) route_into(c, rq, d);
  return counted_new::calls.load() - before;
}

TEST(RouteInto, ReusedDecisionMatchesFreshOneAcrossDifferentRequests) {
  auto c = test::server(R"(
    location /api/ {
      proxy_pass http://127.0.0.1:9000/v2/;
      proxy_http_version 1.1;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_request_buffering on;
    }
    location /plain/ { proxy_pass http://127.0.0.1:9000; }
    location /text { return 200 "a body long enough not to fit in a small string"; }
    location /moved { return 302 /elsewhere/with/a/long/path; }
    location ~ ^/re/(\d+)$ { rewrite ^ /api/item$1 last; }
  )");
  ASSERT_TRUE(c);
  using hl = header_list;
  std::vector<request_info> reqs = {
      test::req("/api/a%20b?x=1",
                hl{{"Host", "localhost"},
                   {"Upgrade", "websocket"},
                   {"Connection", "Upgrade"},
                   {"X-Forwarded-For", "1.2.3.4"},
                   {"Cookie", "a=b; c=d; a-longer-cookie-value=0123456789abcdef"}}),
      test::req("/api/chunked", hl{{"Host", "localhost"}, {"Transfer-Encoding", "chunked"}}),
      test::req("/text"),
      test::req("/plain/x?y", hl{{"Host", "LOCALHOST:8080"}, {"User-Agent", "test agent"}}),
      test::req("/moved"),
      test::req("/re/42", hl{{"Host", "localhost"}, {"Accept", "*/*"}}),
      test::req("/api/../../x"),
      test::req("/api/x", hl{{"Host", "a"}, {"Host", "b"}}),
      test::req("/api"),
      test::req("http://example.com:8080/plain/abs?q=1"),
      test::req("/nothing"),
  };
  for (bool diagnostics : {false, true}) {
    decision reused;
    // Every order of two requests, so each can follow each.
    for (const auto& first : reqs)
      for (auto second : reqs) {
        SCOPED_TRACE(first.target + " then " + second.target);
        auto a = first;
        a.diagnostics = diagnostics;
        second.diagnostics = diagnostics;
        route_into(*c, a, reused);
        expect_same(route(*c, a), reused);
        route_into(*c, second, reused);
        expect_same(route(*c, second), reused);
      }
  }
}

// Map results (chained, with regex keys that capture) and location captures: a request without
// captures after one with them reads as fresh, and nested maps keep their own keys.
TEST(RouteInto, MapsAndCapturesDoNotLeakIntoTheNextRequest) {
  auto c = test::server(R"(
    location ~ ^/re/(?<id>[0-9]+)/(.*)$ {
      proxy_pass http://127.0.0.1:9000/item/$id/$2?t=$tier&$args;
      proxy_set_header X-Pool $pool;
      proxy_set_header X-Section $section;
      proxy_set_header X-Both "$pool-$tier-$1";
    }
    location / {
      proxy_pass http://127.0.0.1:9000;
      proxy_set_header X-Pool $pool;
      proxy_set_header X-Section $section;
      proxy_set_header X-Both "$pool-$tier-$1-$id";
    }
  )",
                        "map $http_x_tier $tier { default basic; gold premium; }\n"
                        "map $tier $pool { premium fast; default slow; }\n"
                        "map $uri $section { ~^/(?<sec>[a-z]+)/ $sec; default none; }");
  ASSERT_TRUE(c);
  using hl = header_list;
  const request_info gold =
      test::req("/re/42/deep/path?a=1", hl{{"Host", "localhost"}, {"X-Tier", "gold"}});
  const request_info plain = test::req("/plain/x");
  const request_info root = test::req("/");
  {
    auto d = route(*c, gold);
    EXPECT_EQ(d.upstream.uri, "/item/42/deep/path?t=premium&a=1");
    EXPECT_EQ(test::header(d, "X-Pool"), "fast");
    EXPECT_EQ(test::header(d, "X-Section"), "re");
    // $1 after $section's regex: that map's match replaced the location's captures.
    EXPECT_EQ(test::header(d, "X-Both"), "fast-premium-re");
  }
  {
    auto d = route(*c, root);
    EXPECT_EQ(test::header(d, "X-Section"), "none");
    EXPECT_EQ(test::header(d, "X-Both"), "slow-basic--");
  }
  decision reused;
  for (const auto* first : {&gold, &plain, &root})
    for (const auto* second : {&gold, &plain, &root}) {
      SCOPED_TRACE(first->target + " then " + second->target);
      route_into(*c, *first, reused);
      expect_same(route(*c, *first), reused);
      route_into(*c, *second, reused);
      expect_same(route(*c, *second), reused);
    }
  decision d;
  EXPECT_EQ(warm_allocations(*c, gold, d), 0u);
}

// The proxy and return cases of the data path allocate nothing once the decision is warm.
TEST(RouteInto, WarmDecisionMakesNoAllocation) {
  auto c = test::server(R"(
    location /api/v1/ws/ {
      proxy_pass http://localhost:8000/api/v1/ws/;
      proxy_set_header Host $host;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
    }
    location / { proxy_pass http://localhost:8000; }
    location = /text { return 200 "a body long enough not to fit in a small string"; }
  )");
  ASSERT_TRUE(c);
  const header_list browser = {
      {"Host", "localhost:8080"},
      {"User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0"},
      {"Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
      {"Cookie", "session=5f2b8c1e9a; theme=dark"}};
  for (const char* target : {"/api/v1/ws/status?language=ar&voice_type=female",
                             "/index.html?with=a&long=query&string=here", "/text"}) {
    SCOPED_TRACE(target);
    request_info rq = test::req(target, browser);
    rq.diagnostics = false;
    decision d;
    EXPECT_EQ(warm_allocations(*c, rq, d), 0u);
    expect_same(route(*c, rq), d);
  }
}

}  // namespace
}  // namespace wsgate::routing
